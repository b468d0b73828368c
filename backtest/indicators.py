"""Indicators strategies share, compiled, NaN during their warm-up.

Each is computed once per parameter value; a sweep reuses the array for
every combination that shares the value.
"""
import numpy as np
from numba import njit

from ._numba_cache import configure

configure()  # numba's cache folder, set before any @njit here is defined


@njit(cache=True, nogil=True)  # (nogil: a sweep computes its averages on every thread)
def sma(x, n):
    """Simple moving average of the last ``n`` values (NaN for the first n−1).
    (``np.empty`` and NaN written here, not ``np.full``: compiling NumPy's
    ``full`` cost a first run 0.15 s.)"""
    out = np.empty(x.shape[0])
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
        if i >= n:
            s -= x[i - n]
        out[i] = s / n if i >= n - 1 else np.nan
    return out


@njit(cache=True, nogil=True)
def rsi(x, n):
    """Wilder's relative strength index over ``n`` bars (NaN for the first n)."""
    out = np.empty(x.shape[0])
    if x.shape[0] > 0:
        out[0] = np.nan
    gain = 0.0
    loss = 0.0
    for i in range(1, x.shape[0]):
        d = x[i] - x[i - 1]
        up = d if d > 0.0 else 0.0
        down = -d if d < 0.0 else 0.0
        if i <= n:
            gain += up / n
            loss += down / n
        else:
            gain = (gain * (n - 1) + up) / n
            loss = (loss * (n - 1) + down) / n
        out[i] = np.nan if i < n else (100.0 if loss == 0.0 else 100.0 - 100.0 / (1.0 + gain / loss))
    return out
