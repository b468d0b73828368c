"""The Python API's argument checks and names.

Messages inside marginbt name the command-line flag (``--capital -1: must
be > 0``): that is what a CLI user typed.  A Python user typed
``capital=-1``, so ``run``, ``run_multi`` and ``sweep`` (``api``) rename the
flags in any ``UserError`` they raise to the API's own argument names, unless
the CLI is calling (``cli_names``).  One place, so no message is written
twice.

Types are checked first (``check_args``): a value of the wrong type is a
``UserTypeError`` (a ``TypeError``) naming the argument and what it must be;
numpy scalars count as the numbers they are.
"""
import contextlib
import contextvars
import datetime
import functools
import numbers
import os
import re
from types import ModuleType

import numpy as np
import pandas as pd

from .errors import UserError, UserTypeError

_CLI = contextvars.ContextVar("marginbt_cli_names", default=False)

# flag → API name; a flag without a value becomes the setting it stands for
NAMES = {
    "--data": "bars", "--strategy": "strategy", "--param": "params", "--margin": "margin",
    "--margin-file": "margin_file", "--capital": "capital", "--fee": "fee", "--slippage": "slippage",
    "--rate": "rates", "--rates": "rate_history", "--liquidation": "liquidation", "--rebalance": "rebalance",
    "--start": "start", "--end": "end", "--symbol": "symbol", "--stop-loss": "stop_loss",
    "--take-profit": "take_profit", "--trailing-stop": "trailing_stop", "--path": "path", "--mark": "mark",
    "--detail": "detail", "--allocation": "allocation", "--out": "out", "--grid": "grid",
    "--chunk-size": "chunk_size", "--workers": "workers", "--scheduler": "scheduler", "--max-combos": "max_combos",
    "--stop-on-liquidation": "stop_on_liquidation=True", "--no-interest-rounding": "round_interest=False",
    "--no-auto-repay": "auto_repay=False", "--no-auto-borrow": "auto_borrow=False",
    "--repay-on-flat": "repay_on_flat=True", "--resume": "resume=True",
    "--overwrite": "overwrite=True", "--method": "method", "--horizon": "horizon", "--every": "every",
    "--paths": "paths", "--block": "block", "--seed": "seed", "--walk-forward": "walk_forward", "--rank": "rank",
    "--threads": "workers",
}
# flags whose value is a key of a mapping (``rates={"ETH": ...}``): "rates ETH: ..." rather than "rates=ETH"
KEYED = {"--rate", "--param", "--grid", "--allocation"}
_FLAG = re.compile(r"--[a-z][a-z-]*")
_LEAD = re.compile(r"^(--[a-z][a-z-]*)(?: ([^:]*?))?:(?=\s|$)")


@contextlib.contextmanager
def cli_names():
    """Within this block, errors keep the CLI's flag names (``backtest.cli``)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def api_message(message: str, renames=None) -> str:
    """A flag-named message in the API's names: ``--capital -1.0: must be > 0``
    → ``capital=-1.0: must be > 0``; other flags in it by name."""
    names = {**NAMES, **(renames or {})}

    def lead(m):
        flag, value = m.group(1), m.group(2)
        if flag not in names:
            return m.group(0)
        name = names[flag]
        if value is None or "=" in name:
            return f"{name}:" if value is None else f"{name} {value}:"
        return f"{name} {value}:" if flag in KEYED else f"{name}={value}:"

    message = _LEAD.sub(lead, message, count=1)
    return _FLAG.sub(lambda m: names.get(m.group(0), m.group(0)), message)


def api(**renames):
    """Decorate an API function: its ``UserError``s name the API's arguments
    (``renames`` maps flags that mean another argument there, e.g.
    ``{"--data": "data"}``), unless called from the CLI."""

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UserError as exc:
                if _CLI.get():
                    raise
                text = api_message(str(exc), renames)
                if text == str(exc):
                    raise
                raise type(exc)(text) from None
        return call

    return wrap


# ------------------------------------------------------------------ types
def _is_number(v) -> bool:
    return isinstance(v, (numbers.Real, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _type_error(name, value, expected):
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return UserTypeError(f"{name}={shown}: expected {expected}, got {type(value).__name__}")


def number(name, value):
    if not _is_number(value):
        raise _type_error(name, value, "a number")
    return float(value)


def flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise _type_error(name, value, "True or False")
    return bool(value)


def whole(name, value, low=1, optional=True):
    """A whole number ≥ ``low`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise _type_error(name, value, "a whole number")
    if value < low:
        raise UserError(f"{name}={value}: must be ≥ {low}")
    return int(value)


def _pathlike(v) -> bool:
    return isinstance(v, (str, os.PathLike))


def _time(v) -> bool:
    return v is None or isinstance(v, (str, datetime.date, datetime.datetime, pd.Timestamp, np.datetime64))


BARS_ARE = ("a Parquet path or a DataFrame of OHLCV bars (a UTC 'timestamp' index or column; "
            "open, high, low, close, volume)")


def bars_arg(name, value):
    if not (_pathlike(value) or isinstance(value, pd.DataFrame)):
        raise _type_error(name, value, BARS_ARE)


def strategy_arg(value):
    if not (_pathlike(value) or callable(value) or isinstance(value, (ModuleType, np.ndarray, list, tuple, pd.Series,
                                                                      pd.DataFrame, dict))):
        raise _type_error("strategy", value, "a strategy name, a .py path, a module, a function or an array of "
                                             "targets")


def mapping_of_numbers(name, value, example):
    if value is None:
        return
    if not isinstance(value, dict):
        raise _type_error(name, value, f"a dict, e.g. {example}")
    for key, v in value.items():
        if not isinstance(key, str):
            raise _type_error(f"{name} key", key, "a string")
        if not _is_number(v):
            raise _type_error(f"{name}[{key!r}]", v, "a number")


def optional(name, value, kinds, expected):
    if value is not None and not isinstance(value, kinds):
        raise _type_error(name, value, expected)


SETTINGS = ("capital", "fee", "slippage", "rebalance", "stop_loss", "take_profit", "trailing_stop")
FLAGS = ("round_interest", "stop_on_liquidation", "auto_repay", "repay_on_flat", "auto_borrow")


def check_args(args: dict):
    """The types of ``run`` / ``run_multi`` / ``sweep``'s arguments (``args``:
    the call's ``locals()``); values are checked where they are used."""
    from .profiles import Profile

    for name in SETTINGS:
        if name in args and not (name == "fee" and args[name] is None):  # (None: the venue's default fee)
            number(name, args[name])
    for name in ("funding_rate", "keep_ml"):
        if args.get(name) is not None:
            number(name, args[name])
    if "bars" in args and "reserve" in args:  # (one account: one amount; several symbols: per symbol)
        number("reserve", args["reserve"])
    optional("top_up", args.get("top_up"), str, "'ml=X' or 'amount=A'")
    for name in FLAGS + ("resume", "overwrite"):
        if name in args:
            flag(name, args[name])
    if "bars" in args:
        bars_arg("bars", args["bars"])
    if "data" in args:
        data = args["data"]
        items = data.values() if isinstance(data, dict) else data
        if isinstance(data, (str, os.PathLike, pd.DataFrame)) or not isinstance(data, (list, tuple, dict)):
            raise _type_error("data", data, "a list of Parquet paths or DataFrames, or a dict {symbol: bars}")
        for d in items:
            bars_arg("data item", d)
    if "strategy" in args:
        strategy_arg(args["strategy"])
    if args.get("params") is not None and not isinstance(args["params"], dict):
        raise _type_error("params", args["params"], "a dict of strategy parameters, e.g. {'fast': 10}")
    mapping_of_numbers("rates", args.get("rates"), "{'USDT': 0.0003}")
    margin = args.get("margin")
    if margin is not None and not isinstance(margin, (str, Profile, dict, list, tuple)):
        raise _type_error("margin", margin, "a profile name or a Profile")
    if isinstance(margin, (list, tuple)) and "grid" not in args:  # (a list is a sweep's or risk run's profiles)
        raise _type_error("margin", margin, "a profile name" + (", 'SYMBOL=PROFILE,...' or a dict {symbol: profile}"
                                                                 if "data" in args else " or a Profile"))
    if isinstance(margin, Profile):
        profile_arg(margin)
    for name in ("liquidation", "path"):
        if name in args and not isinstance(args[name], str):
            raise _type_error(name, args[name], "a string")
    optional("symbol", args.get("symbol"), str, "a pair like 'BTCUSDT'")
    optional("margin_file", args.get("margin_file"), (str, os.PathLike), "a path to a TOML file")
    for name in ("mark", "detail"):
        optional(name, args.get(name), (str, os.PathLike, pd.DataFrame), "a Parquet path or a DataFrame")
    optional("rate_history", args.get("rate_history"), (str, os.PathLike, pd.DataFrame, dict),
             "a CSV/Parquet path or a DataFrame")
    optional("allocation", args.get("allocation"), (str, dict), "a dict {account: fraction}")
    for name in ("start", "end"):
        if not _time(args.get(name)):
            raise _type_error(name, args[name], "a date or time (str, datetime or Timestamp)")
    if "out" in args and not _pathlike(args["out"]):
        raise _type_error("out", args["out"], "a folder path")
    grid = args.get("grid")
    if grid is not None:
        if not isinstance(grid, dict):
            raise _type_error("grid", grid, "a dict {parameter: [values]}, e.g. {'fast': [10, 20]}")
        for key, values in grid.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise _type_error(f"grid[{key!r}]", values, "a list of values")
    for name in ("chunk_size", "workers"):
        if name in args:
            whole(name, args[name])
    if "max_combos" in args:
        whole("max_combos", args["max_combos"], optional=False)
    optional("scheduler", args.get("scheduler"), str, "'local' or a Dask scheduler address")


def profile_arg(p):
    """A ``Profile`` built in Python: the ranges ``--margin-file`` enforces."""
    from .profiles import MODES, VENUES

    def bad(key, rule):
        return UserError(f"margin=Profile({p.name!r}): {key} {getattr(p, key)!r} {rule}")

    for key in ("max_leverage", "liquidation_ml", "liquidation_fee", "mmr"):
        if not _is_number(getattr(p, key)) or not np.isfinite(getattr(p, key)):
            raise _type_error(f"margin=Profile({p.name!r}).{key}", getattr(p, key), "a finite number")
    if p.mode not in MODES:
        raise bad("mode", f"must be one of {', '.join(MODES)}")
    if p.venue not in VENUES:
        raise bad("venue", f"is not a known venue ({', '.join(VENUES)})")
    if not p.max_leverage > 1.0:
        raise bad("max_leverage", "must be > 1")
    if not 0.0 <= p.mmr < 1.0:
        raise bad("mmr", "must be in [0, 1) (0: a classic profile)")
    if p.pro and p.isolated:
        raise bad("mode", "is isolated, but Cross Margin Pro (mmr) is a cross account")
    if not 0.0 <= p.liquidation_fee < 1.0:
        raise bad("liquidation_fee", "must be in [0, 1)")
    if not (p.liquidation_ml > 0.0 if p.pro else p.liquidation_ml >= 1.0):
        raise bad("liquidation_ml", f"must be {'> 0' if p.pro else '≥ 1'}")
    if not p.liquidation_ml < p.initial_ml:
        key = "mmr" if p.pro else "liquidation_ml"
        raise bad(key, f"leaves the initial margin level ({p.initial_ml:.6g}) not above liquidation_ml "
                       f"({p.liquidation_ml:g})")
