"""Timeframes ("1m", "4h", "1d", "1w", "1M") and bar-grid arithmetic.

Fixed timeframes are a whole number of seconds, minutes, hours, days or
weeks.  ``M`` is the calendar month (Binance writes it ``1mo``; freqtrade
``1M``).  Bars of fixed timeframes sit on the grid counted from the Unix
epoch, except weeks, which start on Monday 00:00 UTC as Binance's do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from backtest.errors import UserError

_UNIT_NS = {
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
_MONDAY_NS = 4 * 86_400_000_000_000  # 1970-01-05, the first Monday
_TF = re.compile(r"^(\d+)(s|m|h|d|w|M|mo|min)$")


@dataclass(frozen=True)
class Timeframe:
    n: int
    unit: str  # s m h d w M

    @property
    def months(self) -> bool:
        return self.unit == "M"

    @property
    def ns(self) -> int:
        """Length in ns (months: 30 days, for rough comparisons only)."""
        if self.months:
            return self.n * 30 * _UNIT_NS["d"]
        return self.n * _UNIT_NS[self.unit]

    def __str__(self) -> str:
        return f"{self.n}{self.unit}"

    def bucket(self, ts: np.ndarray) -> np.ndarray:
        """Index of the bar of this timeframe holding each timestamp."""
        if self.months:
            m = ts.view("M8[ns]").astype("M8[M]").astype(np.int64)
            return m // self.n
        origin = _MONDAY_NS if self.unit == "w" else 0
        return (ts - origin) // self.ns

    def bucket_start(self, b: np.ndarray) -> np.ndarray:
        if self.months:
            return (np.asarray(b) * self.n).astype("M8[M]").astype("M8[ns]").astype(np.int64)
        origin = _MONDAY_NS if self.unit == "w" else 0
        return np.asarray(b) * self.ns + origin

    def on_grid(self, ts: np.ndarray) -> np.ndarray:
        return self.bucket_start(self.bucket(ts)) == ts


def parse_timeframe(text: str, what: str = "timeframe") -> Timeframe:
    """``"4h"`` → ``Timeframe(4, "h")``; ``1mo``/``1M`` are calendar months."""
    m = _TF.match(str(text).strip())
    if not m or int(m.group(1)) <= 0:
        raise UserError(
            f"{what} {text!r} is not a timeframe (use e.g. 1m, 5m, 1h, 4h, 1d, 1w, 1M)"
        )
    n, unit = int(m.group(1)), m.group(2)
    unit = {"mo": "M", "min": "m"}.get(unit, unit)
    return normalize(Timeframe(n, unit))


def normalize(tf: Timeframe) -> Timeframe:
    """Largest unit that divides exactly: 60m → 1h, 24h → 1d, 7d → 1w."""
    if tf.months:
        return tf
    ns = tf.ns
    for unit in ("w", "d", "h", "m", "s"):
        if ns % _UNIT_NS[unit] == 0:
            return Timeframe(ns // _UNIT_NS[unit], unit)
    return tf


def timeframe_from_ns(step: int) -> Timeframe | None:
    """The timeframe of a bar spacing in ns (None if not whole seconds)."""
    step = int(step)
    if step <= 0:
        return None
    if 28 * _UNIT_NS["d"] <= step <= 31 * _UNIT_NS["d"]:
        return Timeframe(1, "M")
    if step % _UNIT_NS["s"]:
        return None
    return normalize(Timeframe(step // _UNIT_NS["s"], "s"))


def median_step(ts: np.ndarray) -> int | None:
    """Median of the positive spacings between consecutive valid timestamps."""
    from backtest.medians import spacing_median  # compiled: numba loads on first use, not with `backtest --help`

    ts = np.asarray(ts, dtype=np.int64)
    if ts.size < 2:
        return None
    step = spacing_median(ts)  # not None: increasing, so only the first can be NaT; else nothing to drop
    if step is not None and ts[0] != np.iinfo(np.int64).min:
        return int(step)
    ts = ts[ts != np.iinfo(np.int64).min]
    if ts.size < 2:
        return None
    d = np.diff(ts)
    d = d[d > 0]
    if d.size == 0:
        return None
    return int(np.median(d))


def infer_timeframe(ts: np.ndarray) -> str | None:
    step = median_step(ts)
    tf = None if step is None else timeframe_from_ns(step)
    return None if tf is None else str(tf)
