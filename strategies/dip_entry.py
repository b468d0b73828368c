"""Moving-average trend with limit entries and its own stops: the orders a
strategy can attach to its targets (see ``backtest/strategy.py``).

Long ``leverage`` while the close is above its ``window``-bar average, flat
below. Each new target is a limit order ``offset`` under the close (a buy
on a dip; the exit is a limit the same distance above), standing
``expiry`` bars; an entry unfilled by then is cancelled and waits for the
next signal. A long's stop-loss is the average itself, given as a price
each bar (it follows the average up and down).
"""
import numpy as np

from backtest.indicators import sma

PARAMS = {"window": 50, "offset": 0.005, "expiry": 6, "leverage": 2.0}


def targets(bars, window, offset, expiry, leverage):
    close = bars["close"].to_numpy(np.float64)
    avg = sma(close, int(window))
    up = close > avg  # NaN (warm-up) compares False: flat
    target = np.where(up, float(leverage), 0.0)
    limit = np.where(up, close * (1.0 - offset), close * (1.0 + offset))
    return {"target": target, "limit": limit, "expiry": int(expiry), "stop_loss": avg}
