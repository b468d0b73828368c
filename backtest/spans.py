"""Durations (``30d``, ``24h``) and the time windows cut from bars.

Used by the risk lab (a window per start on a stride) and the walk-forward
(training and test spans).  Windows are half-open in time, ``[start,
start + length)``, and given as bar index ranges, so a window's bars are
exactly those ``backtest run --start FIRST --end LAST`` keeps, with FIRST
and LAST its first and last bar's times.
"""
import re

import numpy as np

from .errors import UserError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text, flag: str) -> int:
    """``"30d"`` → seconds (units s, m, h, d, w); anything else, zero or
    negative is one line naming ``flag`` (``train=``: then no space)."""
    gap = "" if flag.endswith("=") else " "
    if isinstance(text, bool) or not isinstance(text, (str, int, float, np.integer, np.floating)):
        raise UserError(f"{flag}{gap}{text!r}: expected a duration like 30d, 24h or 90m")
    m = _DURATION.match(str(text)) if isinstance(text, str) else None
    if m is None:
        raise UserError(f"{flag}{gap}{text}: expected a duration like 30d, 24h or 90m (units s, m, h, d, w)")
    seconds = float(m.group(1)) * UNITS[m.group(2)]
    if not seconds >= 1:
        raise UserError(f"{flag}{gap}{text}: must be at least 1 second")
    return int(round(seconds))


def bar_spacing(seconds: np.ndarray) -> int:
    """The bars' usual spacing (median), in seconds."""
    if seconds.shape[0] < 2:
        raise UserError("--data: needs at least two bars")
    return int(np.median(np.diff(seconds)))


def check_fits(seconds: np.ndarray, length: int, flag: str, text) -> None:
    """Refuse a span longer than the data covers (first open to last close)."""
    covered = int(seconds[-1] - seconds[0]) + bar_spacing(seconds)
    if length > covered:
        raise UserError(f"{flag} {text}: longer than the data ({covered / 86400:,.1f} days)")


def windows(seconds: np.ndarray, length: int, every: int) -> tuple:
    """Every window of ``length`` seconds starting on the stride ``every``
    from the first bar, that ends within the data (its end ≤ the last bar's
    close): ``(starts, ends)``, bar indices, ``end`` exclusive.  A window
    whose stride start falls in a gap starts at the next bar, once: of the
    stride starts that reach one bar, the nearest (its window the horizon's
    span from the bar, the others shorter: before 2026-12-08 all ran, the
    start bar's path counted several times); windows with fewer than two
    bars are left out."""
    spacing = bar_spacing(seconds)
    t0, t_end = int(seconds[0]), int(seconds[-1]) + spacing
    times = np.arange(t0, t_end - length + 1, every, dtype=np.int64)
    starts = np.searchsorted(seconds, times, side="left")
    ends = np.searchsorted(seconds, times + length, side="left")
    keep = ends - starts >= 2
    starts, ends = starts[keep], ends[keep]
    last = np.ones(len(starts), dtype=bool)  # one window a start bar: the last stride start reaching it
    last[:-1] = starts[:-1] != starts[1:]
    return starts[last], ends[last]
