"""The liquidation price per bar (``equity.parquet``'s ``liquidation_price``
and ``liquidation_distance``, docs/model-choices.md "Liquidation price").

``rules.liquidation_price`` on the balances at each close, recovered from
what the kernels already write per bar (equity, debt, position, and the
base owed when they keep it): no extra kernel work.
"""
import numpy as np
from numba import njit

from .rules import liquidation_price

NO_ROW = np.empty(0)


@njit(cache=True)
def _columns(position, base_owed, equity, debt, close, mlr, price, distance):
    """One pass over the bars into ``price`` and ``distance`` (no
    temporaries: each 1M-bar array NumPy would make costs fresh pages).
    Without ``base_owed`` (empty) auto-repay was on, and a symbol's base is
    then held (long) or owed (short), never both."""
    n = position.shape[0]
    kept = base_owed.shape[0] > 0
    for i in range(n):
        p = np.nan
        side = 0
        if debt[i] > 0.0:
            c = close[i]
            owed = base_owed[i] if kept else max(-position[i], 0.0)
            held = position[i] + owed
            # the rest of the account as at the close: equity + debt = its assets
            p, side = liquidation_price(held, equity[i] + debt[i] - held * c, owed, debt[i] - owed * c, mlr)
        if side == 0:
            price[i] = np.nan
            distance[i] = np.nan
        else:
            price[i] = p
            distance[i] = side * (close[i] / p - 1.0)


def liquidation_columns(position, equity, debt, close, mlr, base_owed=None):
    """``(liquidation_price, liquidation_distance)`` per bar of one symbol:
    the price of the symbol at which its account's margin level (assets /
    debt) falls to ``mlr``, its base held and owed (``position`` net;
    ``base_owed``, principal + interest, when the kernel kept it) moving
    with that price, the rest of the account (quote balances, other symbols
    at their close) as it is at the close (``equity`` and ``debt`` of the
    account at ``close``).  NaN where the account owes nothing or no
    positive price triggers.  The distance is ``close / price − 1`` for a
    long-like account (a falling price liquidates), ``1 − close / price``
    for a short-like one: positive while safe."""
    rows = (position, NO_ROW if base_owed is None else base_owed, equity, debt, close)
    # contiguous float64 rows: one compiled version serves every caller; the outputs NumPy's
    # (huge pages: an array numba allocates faults in 4 kB pages, 3 ms more per 1M bars)
    out = tuple(np.empty((2, len(position))))  # one block: fresh pages fault faster than in two
    _columns(*(np.ascontiguousarray(r, dtype=np.float64) for r in rows), float(mlr), *out)
    return out
