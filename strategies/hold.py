"""Buy (or short) once and hold: the simplest leveraged bet.

``exposure`` is the target from the first bar on: +3 is long three times
equity, -2 short twice equity.  The position is entered at the second bar's
open and then left alone, so its exposure drifts with the price and it can
be liquidated (add ``--rebalance F`` to trade back to the target).
"""
import numpy as np

PARAMS = {"exposure": 1.0}


def targets(bars, exposure):
    return np.full(len(bars), float(exposure))
