"""Min/max decimation: draw a 70,000-bar line with a few thousand points.

A line drawn into ``columns`` pixel columns can only show, per column, the
lowest and the highest value it passes through.  Keeping exactly those two
points of every column (in time order), plus the first and the last point,
draws the same picture as the full series: no spike and no drawdown is lost.
"""
import numpy as np


def decimate(x, y, columns: int) -> np.ndarray:
    """Indices of the points of ``(x, y)`` to draw in ``columns`` columns.

    ``x`` must be non-decreasing (times).  For each column of the x range the
    first minimum and the first maximum of ``y`` are kept, and the first
    non-finite value (so a NaN gap still breaks the line); the first and last
    points are always kept.  Returns sorted indices; a series that already
    fits (``len <= 2·columns + 2``) or whose x is not sorted is kept whole.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    columns = max(int(columns), 1)
    if n <= 2 * columns + 2:
        return np.arange(n)
    span = x[-1] - x[0]
    if not (span > 0.0) or np.any(np.diff(x) < 0.0):
        return np.arange(n)
    col = ((x - x[0]) * (columns / span)).astype(np.int64)
    np.minimum(col, columns - 1, out=col)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    seg = np.repeat(np.arange(starts.shape[0]), np.diff(np.r_[starts, n]))
    finite = np.isfinite(y)
    low = np.where(finite, y, np.inf)
    high = np.where(finite, y, -np.inf)
    is_min = finite & (low == np.minimum.reduceat(low, starts)[seg])
    is_max = finite & (high == np.maximum.reduceat(high, starts)[seg])
    keep = np.zeros(n, dtype=bool)
    for mask in (is_min, is_max, ~finite):
        idx = np.flatnonzero(mask)
        if idx.shape[0]:
            keep[idx[np.r_[True, seg[idx[1:]] != seg[idx[:-1]]]]] = True
    keep[0] = keep[-1] = True
    return np.flatnonzero(keep)


def envelope(x, low, high, columns: int):
    """Per column: its first x, the lowest ``low`` and the highest ``high``.

    Used for the bars' wick range behind the price line (a band, not a line,
    so the extremes of each column are what it needs).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n <= 2 * columns + 2 or not (x[-1] > x[0]):
        return x, np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    col = ((x - x[0]) * (columns / (x[-1] - x[0]))).astype(np.int64)
    np.minimum(col, columns - 1, out=col)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    lo = np.minimum.reduceat(np.asarray(low, dtype=np.float64), starts)
    hi = np.maximum.reduceat(np.asarray(high, dtype=np.float64), starts)
    return x[starts], lo, hi
