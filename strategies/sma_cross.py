"""Moving-average crossover, long above and short below.

Long ``leverage`` times equity while the fast average of the close is above
the slow one, short ``leverage`` times equity while it is below, flat during
the warm-up.  A short on a 3x profile is capped at 2x (spec §3).

The sweep hooks (``GRID``, ``valid``, ``indicator``, ``fill_targets``) let
``backtest sweep`` compute each moving average once per window and derive
every combination's targets inside compiled code.
"""
import numpy as np
from numba import njit

from backtest.indicators import sma

PARAMS = {"fast": 20, "slow": 100, "leverage": 1.5}
GRID = {"fast": [5, 10, 20, 40], "slow": [50, 100, 200], "leverage": [1.0, 2.0, 3.0]}


def valid(fast, slow, leverage):
    """Combinations a sweep skips (and counts): the fast window must be shorter."""
    return 0 < fast < slow


def indicator(bars, name, value):
    """The array a parameter value stands for, or None for a plain number."""
    if name in ("fast", "slow"):
        return sma(bars["close"].to_numpy(np.float64), int(value))
    return None


@njit(cache=True, nogil=True)
def fill_targets(out, bank, rows, scalars):
    """Targets into ``out`` from the fast and slow averages (rows ``rows`` of
    ``bank``, in PARAMS order) and the leverage (``scalars``)."""
    lev = scalars[0]
    fast, slow = bank[rows[0]], bank[rows[1]]
    for i in range(out.shape[0]):
        f, s = fast[i], slow[i]
        if s != s or f != f:
            out[i] = 0.0
        else:
            out[i] = lev if f > s else -lev


def targets(bars, fast, slow, leverage):
    if not valid(fast, slow, leverage):
        raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
    out = np.empty(len(bars))
    bank = np.vstack([indicator(bars, "fast", fast), indicator(bars, "slow", slow)])
    fill_targets(out, bank, np.array([0, 1]), np.array([float(leverage)]))
    return out
