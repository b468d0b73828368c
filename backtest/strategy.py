"""Finding a strategy, checking its parameters and calling it safely.

A strategy is a module (``strategies/<name>.py`` or any ``.py`` file) with a
``PARAMS`` dict of defaults and a ``targets(bars, **params)`` function; see
``strategies/__init__.py``.  Everything that can go wrong on the user's side
becomes a one-line ``UserError``.
"""
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from .errors import UserError


@dataclass
class Strategy:
    """A loaded strategy: its name, defaults and target function."""

    name: str
    params: dict
    targets: object
    module: object = None  # the strategy's module, for its sweep hooks

    def resolve(self, overrides: dict | None) -> dict:
        """Defaults updated by ``overrides``; unknown names are an error."""
        out = dict(self.params)
        for key, value in (overrides or {}).items():
            if key not in self.params:
                known = ", ".join(self.params) or "no parameters"
                raise UserError(f"--param {key}: strategy {self.name} takes {known}")
            out[key] = coerce_param(key, value, self.params[key])
        return out

    def __call__(self, bars, params: dict) -> np.ndarray:
        """Targets for ``bars``: a float array of len(bars), finite or NaN."""
        try:
            raw = self.targets(bars, **params)
        except UserError:
            raise
        except Exception as exc:  # a user's code failing is a user error
            raise UserError(f"strategy {self.name} raised {type(exc).__name__}: {exc}") from None
        return check_targets(raw, len(bars), self.name, bars.index)


def coerce_param(key, value, default, flag="--param"):
    """Convert a parameter value (a string from the command line, or a
    number from Python) to the type of its default; floats must be finite."""
    kind = type(default)
    if isinstance(value, str):
        try:
            if kind is bool:
                if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError
                return value.lower() in ("1", "true", "yes", "on")
            value = kind(value)
        except ValueError:
            raise UserError(f"{flag} {key}={value}: expected {kind.__name__}") from None
    elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{flag} {key}={value!r}: expected {kind.__name__}")
    if isinstance(value, float) and not np.isfinite(value):
        raise UserError(f"{flag} {key}={value}: must be a finite number")
    return value


def check_targets(raw, n: int, name: str, index=None) -> np.ndarray:
    """Validate a strategy's output: 1-D, length n, numeric, finite or NaN."""
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"strategy {name} returned {type(raw).__name__}, not numbers") from None
    if arr.ndim != 1 or arr.shape[0] != n:
        raise UserError(f"strategy {name} returned shape {arr.shape}, expected ({n},): one target per bar")
    bad = np.flatnonzero(np.isinf(arr))
    if bad.size:
        i = int(bad[0])
        when = f" ({index[i]})" if index is not None else ""
        raise UserError(f"strategy {name}: target at row {i}{when} is {arr[i]}; targets must be finite (NaN holds)")
    return arr


def parse_params(pairs: list[str]) -> dict:
    """``["fast=10", "slow=50"]`` → ``{"fast": "10", "slow": "50"}``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param {pair}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def load_strategy(spec) -> Strategy:
    """A strategy from a name in ``strategies/``, a ``.py`` path, a module, a
    callable ``f(bars, **params)`` or a ready array of targets."""
    if isinstance(spec, Strategy):
        return spec
    if isinstance(spec, ModuleType):
        return _from_module(spec, spec.__name__.rsplit(".", 1)[-1])
    if callable(spec):
        defaults = {
            p.name: p.default
            for p in list(inspect.signature(spec).parameters.values())[1:]
            if p.default is not inspect.Parameter.empty
        }
        return Strategy(getattr(spec, "__name__", "function"), defaults, spec)
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text.endswith(".py") or "/" in text or "\\" in text:
            return _from_file(Path(text))
        try:
            module = importlib.import_module(f"strategies.{text}")
        except ModuleNotFoundError as exc:
            if exc.name not in ("strategies", f"strategies.{text}"):
                raise UserError(f"--strategy {text}: it imports a missing module {exc.name!r}") from None
            raise UserError(f"--strategy {text}: no such strategy (known: {', '.join(known_strategies())})") from None
        except Exception as exc:  # a bundled or user module failing on import is the user's to fix
            raise UserError(f"--strategy {text}: importing it raised {type(exc).__name__}: {exc}") from None
        return _from_module(module, text)
    if isinstance(spec, pd.Series):  # targets by time: aligned to the bars used
        return Strategy("targets", {}, lambda bars: _align(spec, bars.index))
    arr = np.asarray(spec)
    if arr.ndim == 1:
        return Strategy("targets", {}, lambda bars: arr)
    raise UserError(f"strategy: expected a name, a .py file, a function or an array, got {type(spec).__name__}")


def _align(series, index):
    if isinstance(series.index, pd.DatetimeIndex):
        idx = series.index.tz_localize("UTC") if series.index.tz is None else series.index
        out = pd.Series(series.to_numpy(), index=idx).reindex(index).to_numpy(np.float64)
        if np.isnan(out).all() and series.notna().any():
            raise UserError("strategy: the targets' timestamps match none of the bars")
        return out
    return series.to_numpy(np.float64)


def known_strategies() -> list[str]:
    import strategies

    folder = Path(strategies.__file__).parent
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def _from_file(path: Path) -> Strategy:
    if not path.is_file():
        raise UserError(f"--strategy {path}: file not found")
    spec = importlib.util.spec_from_file_location(f"user_strategy_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UserError(f"--strategy {path}: importing it raised {type(exc).__name__}: {exc}") from None
    return _from_module(module, path.stem)


def _from_module(module, name: str) -> Strategy:
    fn = getattr(module, "targets", None)
    if not callable(fn):
        raise UserError(f"--strategy {name}: the module has no targets(bars, **params) function")
    params = getattr(module, "PARAMS", {})
    if not isinstance(params, dict):
        raise UserError(f"--strategy {name}: PARAMS must be a dict of defaults")
    return Strategy(name, dict(params), fn, module)
