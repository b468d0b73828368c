"""Time helpers: epoch numbers to nanoseconds, range bounds, display.

All timestamps inside ``backtest.data`` are ``int64`` nanoseconds since the
Unix epoch, UTC; a missing timestamp is ``NAT`` (the int64 minimum, which is
what numpy and pandas use for ``NaT``).
"""

from __future__ import annotations

import datetime as _dt
import re

import numpy as np
import pandas as pd

from backtest.errors import UserError

NAT = np.iinfo(np.int64).min
NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MAX = float(np.iinfo(np.int64).max)

# Magnitude rule for epoch numbers (per value): below 1e11 seconds, below
# 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.  Every
# instant from 1973 to 5138 has exactly one reading under this rule, and it
# is the rule Binance's archive needs (ms before 2025, µs after).
_LIMITS = (1e11, 1e14, 1e17)


def epoch_unit_factor(values: np.ndarray) -> np.ndarray:
    """Per-value nanoseconds-per-unit by the magnitude rule."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    f = np.full(a.shape, 1, dtype=np.int64)
    f[a < _LIMITS[2]] = NS["us"]
    f[a < _LIMITS[1]] = NS["ms"]
    f[a < _LIMITS[0]] = NS["s"]
    return f


def epoch_to_ns(values, unit: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Convert epoch numbers to int64 ns.

    ``unit`` is ``"auto"`` (magnitude rule per value) or one of s, ms, us,
    ns.  Returns ``(ns, bad)`` where ``bad`` marks values that are missing,
    not finite, or out of the datetime64[ns] range (their ns is ``NAT``).
    """
    v = np.asarray(values)
    if v.dtype.kind == "f":
        finite = np.isfinite(v)
    else:
        v = v.astype(np.int64, copy=False)
        finite = np.ones(v.shape, dtype=bool)
    if unit == "auto":
        factor = epoch_unit_factor(np.where(finite, v, 0))
    else:
        factor = np.full(v.shape, NS[unit], dtype=np.int64)
    approx = np.where(finite, v, 0).astype(np.float64) * factor
    ok = finite & (np.abs(approx) < _INT64_MAX * 0.999)
    if v.dtype.kind == "f":
        whole = np.where(ok, np.floor(np.where(ok, v, 0)), 0)
        frac = np.where(ok, v, 0) - whole
        ns = whole.astype(np.int64) * factor + np.rint(frac * factor).astype(np.int64)
    else:
        ns = np.where(ok, v, 0) * factor
    ns = np.where(ok, ns, NAT).astype(np.int64)
    return ns, ~ok


def fmt_ts(ns) -> str:
    """``2020-01-01 17:00 UTC`` (seconds and fractions only when non-zero)."""
    ns = int(ns)
    if ns == NAT:
        return "NaT"
    s = str(np.datetime64(ns, "ns"))  # 2020-01-01T17:00:00.000000000
    date, clock = s.split("T")
    hms, frac = clock.split(".")
    frac = frac.rstrip("0")
    if frac:
        hms = f"{hms}.{frac}"
    elif hms.endswith(":00"):
        hms = hms[:-3]
    return f"{date} {hms} UTC"


def fmt_ts_short(ns) -> str:
    """``fmt_ts`` without the trailing `` UTC``."""
    return fmt_ts(ns).removesuffix(" UTC")


_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def to_utc_ns(value, what: str = "time") -> int:
    """A str / datetime / pandas Timestamp / numpy datetime64 as UTC ns.

    Naive values are taken as UTC; aware values are converted.
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{what} {value!r} is not a date/time ({exc})") from None
    if ts is pd.NaT:
        raise UserError(f"{what} {value!r} is not a date/time")
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    else:
        ts = ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _is_date_only(value) -> bool:
    if isinstance(value, _dt.datetime) or isinstance(value, pd.Timestamp):
        return False
    if isinstance(value, _dt.date):
        return True
    return isinstance(value, str) and bool(_DATE_ONLY.match(value))


def range_bounds(start=None, end=None) -> tuple[int | None, int | None]:
    """``(lo, hi)`` in ns, both inclusive (``None`` = unbounded).

    A ``start`` given as a bare date means that day's 00:00 UTC.  An ``end``
    given as a bare date (``"2024-03-31"`` or a ``datetime.date``) means the
    whole day: everything before the next day's 00:00.  Any other ``end`` is
    an inclusive instant.
    """
    lo = None if start is None else to_utc_ns(start, "start")
    hi = None
    if end is not None:
        hi = to_utc_ns(end, "end")
        if _is_date_only(end):
            hi += 86_400 * NS["s"] - 1
    if lo is not None and hi is not None and lo > hi:
        raise UserError(f"start {fmt_ts(lo)} is after end {fmt_ts(hi)}")
    return lo, hi


def describe_range(lo: int | None, hi: int | None) -> str:
    a = "the beginning" if lo is None else fmt_ts(lo)
    b = "the end" if hi is None else fmt_ts(hi)
    return f"{a} to {b}"
