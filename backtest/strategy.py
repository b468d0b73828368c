"""Finding a strategy, checking its parameters and calling it safely.

A strategy is a module (``strategies/<name>.py`` or any ``.py`` file) with a
``PARAMS`` dict of defaults and a ``targets(bars, **params)`` function; see
``strategies/__init__.py``.  Everything that can go wrong on the user's side
becomes a one-line ``UserError``.

``targets`` returns one target exposure per bar, or a dict with the targets
under ``"target"`` and the orders the strategy attaches to them
(docs/model-choices.md "Limit orders", "Levels from a strategy"):

- ``"limit"``: a limit price per bar (NaN = market): a new target decided at
  that bar is a limit order at that price, placed at the next open;
- ``"expiry"``: how many bars a limit order stands before it is cancelled
  (an int ≥ 1, default 1);
- ``"stop_loss"``, ``"take_profit"``: a fraction in (0, 1) of the entry
  price (replacing ``--stop-loss`` / ``--take-profit``), or a price per bar
  (NaN = the fraction's level) in force during the next bar;
- ``"trailing_stop"``: a fraction in (0, 1) of the best price (replacing
  ``--trailing-stop``);
- ``"borrow"``, ``"repay"``: manual loans, ``{asset: amount per bar}`` (the
  asset by name; NaN or 0 = none; ``repay`` may be +inf: all owed), done at
  the next open (docs/model-choices.md "Manual loans").
"""
import importlib
import importlib.util
import inspect
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from .errors import UserError
from .strategy_names import known_strategies


NONE = np.empty(0)  # "not given" for a per-bar array the kernel takes
NONE.flags.writeable = False  # (the kernel takes its inputs read-only: inputs.read_only)
ORDER_KEYS = ("target", "limit", "expiry", "stop_loss", "take_profit", "trailing_stop", "borrow", "repay")


@dataclass
class Orders:
    """A strategy's output, checked: targets per bar and the orders attached."""

    target: np.ndarray
    limit: np.ndarray = field(default_factory=lambda: NONE)  # price per bar (NaN = market); empty: none
    expiry: int = 1
    stop_loss: np.ndarray = field(default_factory=lambda: NONE)  # price per bar (NaN = the fraction); empty: none
    take_profit: np.ndarray = field(default_factory=lambda: NONE)
    fractions: dict = field(default_factory=dict)  # stop_loss / take_profit / trailing_stop the strategy sets
    loans: dict = field(default_factory=dict)  # {("borrow" | "repay", asset): amounts per bar}

    def kernel_args(self) -> tuple:
        """``limit, expiry, sl_price, tp_price`` of ``kernel.simulate``."""
        return self.limit, np.int64(self.expiry), self.stop_loss, self.take_profit


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
        return self.orders(bars, params).target

    def check_one_symbol(self):
        """A strategy of several symbols (``MULTI = True``) is refused on one symbol's bars (it would be
        handed them as if they were ``{symbol: bars}``)."""
        if getattr(self.module, "MULTI", False):
            raise UserError(f"strategy {self.name} trades several symbols at once (MULTI = True): give it two or "
                            "more --data files (backtest.run_multi)")

    def orders(self, bars, params: dict) -> Orders:
        """Targets and the orders attached to them, checked."""
        self.check_one_symbol()
        raw = call_user(self.targets, f"strategy {self.name}", bars, **params)
        return check_orders(raw, len(bars), self.name, bars.index)


def call_user(fn, who, *args, **kwargs):
    """Call a user's code; whatever it raises is its error, one line naming
    ``who``: also ``SystemExit`` (``sys.exit(3)`` in a strategy ends no run)
    and a ``KeyboardInterrupt`` it raises itself.  A real Ctrl-C (SIGINT)
    while it runs still interrupts: on the main thread the signal is
    watched for the duration of the call."""
    hit = []
    watch = threading.current_thread() is threading.main_thread()
    if watch:
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            hit.append(signum)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main interpreter: nothing to watch
            watch = False
    try:
        return fn(*args, **kwargs)
    except UserError:
        raise
    except KeyboardInterrupt:
        if hit:
            raise
        raise UserError(f"{who} raised KeyboardInterrupt (a strategy may not stop the run; return targets "
                        "or raise an exception with a message)") from None
    except SystemExit as exc:
        raise UserError(f"{who} called sys.exit({exc.code!r}) (a strategy may not end the program; raise an "
                        "exception with a message instead)") from None
    except Exception as exc:  # a user's code failing is a user error
        raise UserError(f"{who} raised {type(exc).__name__}: {one_line(exc)}") from None
    finally:
        if watch:
            signal.signal(signal.SIGINT, previous)


def one_line(exc) -> str:
    """An exception's message on one line (the first non-empty one)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else "(no message)"


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
    elif kind is float and isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)):
        value = float(value)  # numpy scalars are the numbers they hold
    elif kind is int and isinstance(value, np.integer):
        value = int(value)
    elif kind is bool and isinstance(value, np.bool_):
        value = bool(value)
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{flag} {key}={value!r}: expected {kind.__name__}")
    if isinstance(value, float) and not np.isfinite(value):
        raise UserError(f"{flag} {key}={value}: must be a finite number")
    return value


def _numbers(raw, name: str, what: str, index):
    """``raw`` as float64, or one line: a pandas object indexed by instants
    that are not the bars' (its values would be taken in its own order:
    reversed or shifted targets ran silently; naive times are UTC, as the
    bars'), strings, complex numbers or times (NumPy would parse, drop the
    imaginary part or count nanoseconds)."""
    own = getattr(raw, "index", None)
    if index is not None and isinstance(own, pd.DatetimeIndex):
        at = _first_other_time(own, index)
        if at is not None:
            got = str(own[at]) if at < len(own) else "none"
            want = str(index[at]) if at < len(index) else "none"
            raise UserError(f"strategy {name} returned {what} indexed by times that are not the bars' (row {at}: "
                            f"{got}, the bar's {want}); return one value per bar, in the bars' order")
    try:
        if isinstance(getattr(raw, "dtype", None), pd.api.extensions.ExtensionDtype) and (
                pd.api.types.is_bool_dtype(raw.dtype) or pd.api.types.is_numeric_dtype(raw.dtype)):
            return raw.to_numpy(dtype=np.float64, na_value=np.nan)  # (nullable booleans and numbers: NA is NaN)
        arr = np.asarray(raw)
        if arr.dtype.kind in "USVcMm" or (arr.dtype.kind == "O" and pd.api.types.infer_dtype(arr.ravel(), skipna=True)
                                          in NOT_NUMBERS):
            raise TypeError
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"strategy {name} returned {what} as {type(raw).__name__} of {_kind(raw)}, not numbers"
                        ) from None


# what pandas calls an object array that holds no numbers (NumPy would parse strings, drop imaginary parts)
NOT_NUMBERS = ("string", "bytes", "mixed", "complex", "datetime", "datetime64", "date", "time", "timedelta",
               "timedelta64", "period", "interval", "categorical")


def _first_other_time(own: pd.DatetimeIndex, index) -> int | None:
    """The first row where ``own``'s instants differ from the bars' ``index``
    (naive times taken as UTC), or None where they are the same."""
    if own.equals(index):
        return None
    mine = (own.tz_localize("UTC") if own.tz is None else own.tz_convert("UTC")).as_unit("ns").asi8
    bars = pd.DatetimeIndex(index).as_unit("ns").asi8
    n = min(len(mine), len(bars))
    differ = np.flatnonzero(mine[:n] != bars[:n])
    if differ.size:
        return int(differ[0])
    return None if len(mine) == len(bars) else n


def _kind(raw) -> str:
    dtype = getattr(raw, "dtype", None)
    return f"dtype {dtype}" if dtype is not None else "mixed values"


MAX_EXPIRY = 10**15  # bars a limit order may stand (any more than the data's: it never expires)
# a target is a multiple of equity; far beyond any venue's leverage a capped order was taken for float noise
# (``account._trade_to``: nothing traded where the cap is below 1e-12 of the target), so none is that large
MAX_TARGET = 1e9


def check_targets(raw, n: int, name: str, index=None) -> np.ndarray:
    """Validate a strategy's output: 1-D, length n, numeric, finite or NaN, at most ``MAX_TARGET`` in size."""
    arr = _numbers(raw, name, "its targets", index)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise UserError(f"strategy {name} returned shape {arr.shape}, expected ({n},): one target per bar")
    hi, lo = (np.fmax.reduce(arr), np.fmin.reduce(arr)) if arr.size else (0.0, 0.0)  # (all NaN: NaN)
    if abs(hi) > MAX_TARGET or abs(lo) > MAX_TARGET:
        i = int((np.abs(arr) > MAX_TARGET).argmax())  # (the row looked for only then; fmax/fmin allocate nothing)
        when = f" ({index[i]})" if index is not None else ""
        if np.isinf(arr[i]):
            raise UserError(f"strategy {name}: target at row {i}{when} is {arr[i]}; targets must be finite (NaN holds)")
        raise UserError(f"strategy {name}: target at row {i}{when} is {arr[i]:g}; a target is a multiple of equity, "
                        f"at most {MAX_TARGET:g} in size (a profile caps it at its leverage)")
    return arr


def check_orders(raw, n: int, name: str, index=None) -> Orders:
    """Validate a strategy's output: an array of targets, or a dict of
    ``ORDER_KEYS`` (see the module docstring)."""
    if not isinstance(raw, dict):
        return Orders(check_targets(raw, n, name, index))
    unknown = sorted(set(raw) - set(ORDER_KEYS))
    if unknown:
        raise UserError(f"strategy {name} returned key {unknown[0]!r}; known: {', '.join(ORDER_KEYS)}")
    if "target" not in raw:
        raise UserError(f"strategy {name} returned a dict without 'target'")
    out = Orders(check_targets(raw["target"], n, name, index))
    if raw.get("limit") is not None:
        out.limit = _prices(raw["limit"], n, name, "limit", index)
    if raw.get("expiry") is not None:
        e = raw["expiry"]
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not 1 <= e <= MAX_EXPIRY:
            # (the kernel counts bars in int64: 2**63 − 10 wrapped to a cancel after one bar, 10**30 a traceback)
            raise UserError(f"strategy {name}: expiry {e!r} must be a whole number of bars from 1 to {MAX_EXPIRY:.0e} "
                            "(more bars than the data has: it never expires)")
        out.expiry = int(e)
    for key in ("stop_loss", "take_profit", "trailing_stop"):
        v = raw.get(key)
        if v is None:
            continue
        if np.ndim(v) == 0:
            if isinstance(v, (str, bytes, bool, np.bool_)):  # ("0.05" ran as 0.05: numbers only, as the levels)
                raise UserError(f"strategy {name}: {key} {v!r} must be a fraction in (0, 1) or one price per bar")
            try:
                f = float(v)
            except (TypeError, ValueError):
                f = float("nan")
            if not 0.0 < f < 1.0:
                raise UserError(f"strategy {name}: {key} {v!r} must be a fraction in (0, 1) or one price per bar")
            out.fractions[key] = f
        elif key == "trailing_stop":
            raise UserError(f"strategy {name}: trailing_stop must be a fraction in (0, 1), not per bar")
        else:
            setattr(out, key, _prices(v, n, name, key, index))
    for key in ("borrow", "repay"):
        v = raw.get(key)
        if v is None:
            continue
        if not isinstance(v, dict):
            raise UserError(f"strategy {name}: {key} must be a dict {{asset: amounts per bar}}, "
                            f"not {type(v).__name__}")
        for asset, amounts in v.items():
            out.loans[(key, str(asset))] = _amounts(amounts, n, name, f"{key}[{asset!r}]", index, key == "repay")
    return out


def _amounts(raw, n, name, key, index, all_ok):
    """A per-bar amount array: ≥ 0 or NaN (``all_ok``: +inf too, all owed)."""
    rule = "≥ 0 or +inf (all owed)" if all_ok else "finite and ≥ 0"
    return _per_bar(raw, n, name, key, index, "amount",
                    lambda a: np.isnan(a) | (a >= 0) & (np.isfinite(a) | (all_ok & (a == np.inf))),
                    f"amounts must be {rule} (NaN = none)")


def _prices(raw, n, name, key, index):
    """A per-bar price array: positive or NaN; all-NaN is "none" (empty)."""
    arr = _per_bar(raw, n, name, key, index, "price", lambda a: np.isnan(a) | (np.isfinite(a) & (a > 0)),
                   "prices must be > 0 (NaN = none)")
    return arr if not np.isnan(arr).all() else NONE


def _per_bar(raw, n, name, key, index, unit, good, rule):
    """A strategy's per-bar array ``key``: numbers, one ``unit`` per bar,
    ``good`` (a mask of the array) everywhere, else one line naming the
    first bad row and the ``rule``."""
    arr = _numbers(raw, name, key, index)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise UserError(f"strategy {name}: {key} has shape {arr.shape}, expected ({n},): one {unit} per bar")
    bad = np.flatnonzero(~good(arr))
    if bad.size:
        i = int(bad[0])
        when = f" ({index[i]})" if index is not None else ""
        raise UserError(f"strategy {name}: {key} at row {i}{when} is {arr[i]}; {rule}")
    return arr


def parse_params(pairs: list[str]) -> dict:
    """``["fast=10", "slow=50"]`` → ``{"fast": "10", "slow": "50"}``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param {pair}: expected KEY=VALUE")
        if key.strip() in out:  # (the last one would win unseen)
            raise UserError(f"--param {pair}: {key.strip()} given twice")
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
        except (Exception, SystemExit) as exc:  # a bundled or user module failing on import is the user's to fix
            raise UserError(f"--strategy {text}: importing it raised {type(exc).__name__}: {one_line(exc)}") from None
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


def _from_file(path: Path) -> Strategy:
    if not path.is_file():
        raise UserError(f"--strategy {path}: file not found")
    spec = importlib.util.spec_from_file_location(f"user_strategy_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    call_user(spec.loader.exec_module, f"--strategy {path}: importing it", module)
    return _from_module(module, path.stem)


def _from_module(module, name: str) -> Strategy:
    fn = getattr(module, "targets", None)
    if not callable(fn):
        raise UserError(f"--strategy {name}: the module has no targets(bars, **params) function")
    params = getattr(module, "PARAMS", {})
    if not isinstance(params, dict):
        raise UserError(f"--strategy {name}: PARAMS must be a dict of defaults")
    return Strategy(name, dict(params), fn, module)
