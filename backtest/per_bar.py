"""The equity table's columns that follow from the kernel's rows: exposure,
margin level (assets / debt), fees paid to date and the ambiguous bars.

One compiled pass over the bars writing into NumPy's arrays: the NumPy
expressions it replaces made a fresh 1M-bar temporary per operation
(~11 ms of page faults and passes for the bench's million bars).
"""
import numpy as np
from numba import njit

from ._numba_cache import configure
from .records import LIQUIDATION
from .rules import margin_level

configure()  # numba's cache folder, set before any @njit here is defined


def bar_columns(equity, position, debt, close, orders):
    """``(exposure, assets_ml, fees_paid, ambiguous)`` per bar: position
    value / equity (0 without equity), (equity + debt) / debt (inf without
    debt), the cumulative fees of the fills that are no liquidation, and
    whether the path order inside the bar decided a fill there."""
    n = len(close)
    cols = *np.empty((3, n)), np.empty(n, dtype=bool)  # one block: fresh pages fault faster than in three
    rows = (np.ascontiguousarray(a, dtype=np.float64) for a in (equity, position, debt, close))
    by_bar = np.argsort(orders["bar"], kind="stable")  # a bar's fills keep their order: sums as np.bincount's
    fills = (np.ascontiguousarray(orders["bar"][by_bar], dtype=np.int64),
             np.ascontiguousarray(orders["fee"][by_bar], dtype=np.float64),
             np.ascontiguousarray(orders["kind"][by_bar] != LIQUIDATION),
             np.ascontiguousarray(orders["ambiguous"][by_bar]))
    _fill(*rows, *fills, *cols)
    return cols


@njit(cache=True, error_model="numpy")
def _fill(equity, position, debt, close, bar, fee, trading, ambiguous_fill, exposure, assets_ml, fees, ambiguous):
    """One pass over the bars, the fills sorted by bar: a bar's fees summed
    in the fills' order, then to date (np.bincount's and np.cumsum's sums)."""
    k, m = 0, bar.shape[0]
    total = 0.0
    for i in range(close.shape[0]):
        exposure[i] = position[i] * close[i] / equity[i] if equity[i] > 0 else 0.0
        assets_ml[i] = margin_level(equity[i] + debt[i], debt[i])
        paid = 0.0
        flagged = False
        while k < m and bar[k] == i:
            if trading[k]:
                paid += fee[k]
            flagged |= ambiguous_fill[k]
            k += 1
        total = paid if i == 0 else total + paid  # the sum in a register: no store-to-load wait per bar
        fees[i] = total
        ambiguous[i] = flagged
