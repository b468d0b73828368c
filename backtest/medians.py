"""``np.median`` of bar spacings without sorting them.

Bars come on a grid: nearly every spacing is the same value, and then that
value is the median.  Counting the spacings below and equal to a candidate
proves it (two passes, ~1 ms for 1M bars) where ``np.median`` partitions a
copy (~4 ms); anything else falls back to ``np.median``.
"""
import numpy as np


def median(a: np.ndarray) -> np.float64:
    """``np.median(a)`` of a non-empty 1-d integer array, the same value."""
    n = a.shape[0]
    v = a[n // 2]  # a candidate: on a grid, almost any element is the median
    below = np.count_nonzero(a < v)
    # the sorted array's middle element(s) (one for odd n) all equal v: np.median's mean of them is v
    if below <= (n - 1) // 2 and n // 2 < below + np.count_nonzero(a == v):
        return np.float64(v)
    return np.median(a)
