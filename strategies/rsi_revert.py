"""RSI mean reversion: trades often, in both directions.

Long ``leverage`` when RSI falls below ``lower``, short when it rises above
``upper``; each position is closed when RSI crosses back through 50.

The sweep hooks (``GRID``, ``valid``, ``indicator``, ``fill_targets``) let
``backtest sweep`` compute the RSI once per period and derive every
combination's targets inside compiled code.
"""
import numpy as np
from numba import njit

from backtest.indicators import rsi

PARAMS = {"period": 14, "lower": 30.0, "upper": 70.0, "leverage": 2.0}
GRID = {"period": [7, 14, 28], "lower": [20.0, 30.0], "upper": [70.0, 80.0], "leverage": [1.0, 2.0]}


def valid(period, lower, upper, leverage):
    """Combinations a sweep skips (and counts): a period of a bar or more,
    thresholds on either side of 50."""
    return period >= 1 and 0 < lower < 50 < upper < 100


def indicator(bars, name, value):
    """The array a parameter value stands for (the RSI of a period), or None
    for a plain number."""
    if name == "period":
        return rsi(bars["close"].to_numpy(np.float64), int(value))
    return None


@njit(cache=True, nogil=True)
def fill_targets(out, bank, rows, scalars):
    """Targets into ``out`` from the RSI (row ``rows[0]`` of ``bank``) and
    ``lower``, ``upper``, ``leverage`` (``scalars``, in PARAMS order)."""
    r = bank[rows[0]]
    lower, upper, leverage = scalars[0], scalars[1], scalars[2]
    pos = 0.0
    for i in range(out.shape[0]):
        v = r[i]
        if v != v:  # warm-up
            out[i] = 0.0
            continue
        if pos == 0.0:
            if v < lower:
                pos = leverage
            elif v > upper:
                pos = -leverage
        elif (pos > 0.0 and v >= 50.0) or (pos < 0.0 and v <= 50.0):
            pos = 0.0
        out[i] = pos


def targets(bars, period, lower, upper, leverage):
    if not valid(period, lower, upper, leverage):
        raise ValueError(f"need period >= 1 and 0 < lower < 50 < upper < 100, got {period}, {lower}, {upper}")
    out = np.empty(len(bars))
    bank = indicator(bars, "period", period)[None, :]
    fill_targets(out, bank, np.array([0]), np.array([float(lower), float(upper), float(leverage)]))
    return out
