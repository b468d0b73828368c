"""``np.median`` of bar spacings without sorting them.

Bars come on a grid: nearly every spacing is the same value, and then that
value is the median.  Counting the spacings below and equal to a candidate
proves it (one pass, no copy: ~0.5 ms for 1M bars) where ``np.median``
partitions a copy of ``np.diff`` (~5 ms); anything else falls back to
``np.median``.
"""
import numpy as np
from numba import njit

from ._numba_cache import configure

configure()  # numba's cache folder, set before any @njit here is defined


def spacing_median(ts: np.ndarray):
    """``np.median(np.diff(ts))`` of an int64 array of ≥ 2 values, the same
    value, if every spacing is positive; else ``None``."""
    n = ts.shape[0] - 1
    v = ts[n // 2 + 1] - ts[n // 2]  # a candidate: on a grid, almost any spacing is the median
    below, equal, positive = _count(ts, v)
    if positive < n:
        return None
    # the sorted spacings' middle one(s) (one for odd n) all equal v: np.median's mean of them is v
    if below <= (n - 1) // 2 and n // 2 < below + equal:
        return np.float64(v)
    return np.median(np.diff(ts))


@njit(cache=True)
def _count(ts, v):
    below = equal = positive = 0
    for i in range(1, ts.shape[0]):
        d = ts[i] - ts[i - 1]
        below += d < v
        equal += d == v
        positive += d > 0
    return below, equal, positive
