"""RSI mean reversion: trades often, in both directions.

Long ``leverage`` when RSI falls below ``lower``, short when it rises above
``upper``; each position is closed when RSI crosses back through 50.
"""
import numpy as np
from numba import njit

from backtest.indicators import rsi

PARAMS = {"period": 14, "lower": 30.0, "upper": 70.0, "leverage": 2.0}


@njit(cache=True)
def _positions(r, lower, upper, leverage):
    out = np.zeros(r.shape[0])
    pos = 0.0
    for i in range(r.shape[0]):
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
    return out


def targets(bars, period, lower, upper, leverage):
    if not 0 < lower < 50 < upper < 100:
        raise ValueError(f"need 0 < lower < 50 < upper < 100, got {lower}, {upper}")
    close = bars["close"].to_numpy(np.float64)
    return _positions(rsi(close, int(period)), float(lower), float(upper), float(leverage))
