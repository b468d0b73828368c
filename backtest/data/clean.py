"""Whether bars break no rule of ``validate.rule_masks``: the prices in one
compiled pass (~1.3 ms for 1M bars where the 16 masks cost ~7 ms), the
times in NumPy (``ordered``: a frame's index is checked once, ``derived``):
a clean file, the common case, builds no masks; one that breaks a rule gets
its message from the masks.  Its own module: the data commands' parser imports
``validate`` and must not load numba (``backtest --help``)."""
import numpy as np
from numba import njit

from backtest._numba_cache import configure

from .times import NAT

configure()  # numba's cache folder, set before any @njit here is defined


def ordered(ts) -> bool:
    """True when the times (int64, any unit) have no missing time and
    increase: NaT is the least int64, so only the first could be one."""
    return ts.shape[0] == 0 or (ts[0] != NAT and bool(np.all(ts[1:] > ts[:-1])))


@njit(cache=True)
def clean(o, h, l, c, v):
    """True when no row's prices or volume break a rule.  The rules as
    comparisons NaN fails: 0 < low <= open, close <= high < inf makes every
    price finite and positive and high >= low; branch-free, so it
    vectorises."""
    ok = True
    for i in range(o.shape[0]):
        ok &= ((l[i] > 0.0) & (l[i] <= o[i]) & (l[i] <= c[i]) & (h[i] >= o[i]) & (h[i] >= c[i]) & (h[i] < np.inf)
               & (v[i] >= 0.0) & (v[i] < np.inf))
    return ok


def epoch_seconds(ts, per_second, seconds):
    """``seconds[i] = ts[i] // per_second`` (floor, as NumPy's); returns the
    first row less than a second after the row before, or -1.  NumPy, not
    compiled: ~0.9 ms for 1M bars against a compiled pass's ~0.6 ms, but
    compiling that pass cost a fresh environment's first run 0.23 s."""
    np.floor_divide(ts, per_second, out=seconds)
    late = np.flatnonzero(seconds[1:] <= seconds[:-1])
    return int(late[0]) + 1 if late.size else -1
