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

configure()  # numba's cache folder, set before any @njit here is defined


def bar_columns(equity, position, debt, close, orders):
    """``(exposure, assets_ml, fees_paid, ambiguous)`` per bar: position
    value / equity (0 without equity), (equity + debt) / debt (inf without
    debt), the cumulative fees of the fills that are no liquidation, and
    whether the path order inside the bar decided a fill there."""
    n = len(close)
    cols = *np.empty((3, n)), np.empty(n, dtype=bool)  # one block: fresh pages fault faster than in three
    rows = (np.ascontiguousarray(a, dtype=np.float64) for a in (equity, position, debt, close))
    fills = (np.ascontiguousarray(orders["bar"], dtype=np.int64), np.ascontiguousarray(orders["fee"], dtype=np.float64),
             np.ascontiguousarray(orders["kind"] != LIQUIDATION), np.ascontiguousarray(orders["ambiguous"]))
    _fill(*rows, *fills, *cols)
    return cols


@njit(cache=True, error_model="numpy")
def _fill(equity, position, debt, close, bar, fee, trading, ambiguous_fill, exposure, assets_ml, fees, ambiguous):
    for i in range(close.shape[0]):
        exposure[i] = position[i] * close[i] / equity[i] if equity[i] > 0 else 0.0
        assets_ml[i] = (equity[i] + debt[i]) / debt[i] if debt[i] > 0 else np.inf
        fees[i] = 0.0
        ambiguous[i] = False
    for k in range(bar.shape[0]):  # a bar's fees in the fills' order, then to date: the sums as np.bincount/cumsum
        if trading[k]:
            fees[bar[k]] += fee[k]
        if ambiguous_fill[k]:
            ambiguous[bar[k]] = True
    total = 0.0
    for i in range(close.shape[0]):
        total = fees[i] if i == 0 else total + fees[i]  # the sum in a register: no store-to-load wait per bar
        fees[i] = total
