"""Pair trade on momentum: long the stronger symbol, short the weaker.

A strategy for several symbols (``MULTI = True``): ``targets`` gets
``{symbol: bars}`` and returns one target column per symbol.  Each symbol's
return over the last ``lookback`` bars is compared on the common time grid
(each symbol valued at its last close); the best gets ``+leverage``, the
worst ``−leverage``, any others 0.  The ranking changes only when the new
leader is ahead by more than ``band`` (so two symbols moving together do not
flip the pair every hour); flat during the warm-up.  Run it with two
``--data`` files, e.g. in one ``cross-3x`` account, where the long and the
short share the collateral (and a crash of either can liquidate both).
"""
import numpy as np
import pandas as pd

MULTI = True
PARAMS = {"lookback": 720, "band": 0.05, "leverage": 1.0}


def targets(bars, lookback, band, leverage):
    if lookback < 1 or band < 0:
        raise ValueError(f"need lookback ≥ 1 and band ≥ 0, got {lookback}, {band}")
    close = pd.DataFrame({sym: b["close"] for sym, b in bars.items()}).sort_index().ffill()
    m = (close / close.shift(lookback) - 1.0).to_numpy()
    out = np.zeros(m.shape)
    best = worst = -1
    for i in range(m.shape[0]):
        row = m[i]
        if np.isnan(row).any():
            continue
        b, w = int(np.argmax(row)), int(np.argmin(row))
        if best < 0 or row[b] > row[best] + band:
            best = b
        if worst < 0 or row[w] < row[worst] - band:
            worst = w
        if best != worst:
            out[i, best] = leverage
            out[i, worst] = -leverage
    return pd.DataFrame(out, index=close.index, columns=close.columns)
