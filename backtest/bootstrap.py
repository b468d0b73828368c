"""Synthetic price paths: a stationary block bootstrap of whole bars.

Each source bar ``i`` (from the second on) is kept as its open, high, low
and close relative to the close before it, so a path made of them keeps the
shape of real bars: wicks, gaps at the open, the close-to-close move.  A
path of ``n`` bars draws bar indices in blocks (Politis & Romano's
stationary bootstrap): the first at random, each next one the bar after the
previous, except that with probability ``1 / mean_block`` a new block starts
at a random bar; blocks run on circularly past the last bar.  Prices are
chained from ``start_price`` (the source's last close: the paths are "the
next ``horizon`` from here"), so a valid source bar gives a valid synthetic
bar (``low ≤ open, close ≤ high``: the same positive factor scales all
four; the close, chained by a cumulative product, is kept inside the
bar's range to the last bit).  Path ``k`` of seed ``s`` draws from ``numpy.random.default_rng([s,
k])``: the same paths whatever the chunking or the number of threads.
"""
import numpy as np
import pandas as pd


class BlockBootstrap:
    """The source's relative bars and the synthetic dates of its paths."""

    def __init__(self, bars: pd.DataFrame, n_bars: int, mean_block: float, seed: int, spacing: int):
        o, h, lo, c = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
        prev = c[:-1]
        self.rel = np.vstack([o[1:] / prev, h[1:] / prev, lo[1:] / prev, c[1:] / prev])
        self.volume = bars["volume"].to_numpy(np.float64)[1:]
        self.n_bars, self.p_new, self.seed = int(n_bars), 1.0 / float(mean_block), int(seed)
        self.start_price = float(c[-1])
        last = int(bars.index[-1].value // 10**9)
        self.seconds = last + spacing * np.arange(1, self.n_bars + 1, dtype=np.int64)  # after the source's last bar
        self.index = pd.DatetimeIndex(pd.to_datetime(self.seconds, unit="s", utc=True), name="timestamp")

    def indices(self, k: int) -> np.ndarray:
        """Path ``k``'s source bars (indices into ``rel``)."""
        rng = np.random.default_rng([self.seed, int(k)])
        n_src, n = self.rel.shape[1], self.n_bars
        new = rng.random(n) < self.p_new
        new[0] = True
        starts = rng.integers(0, n_src, n)
        pos = np.arange(n)
        last = np.maximum.accumulate(np.where(new, pos, 0))  # where the current block began
        return (starts[last] + pos - last) % n_src

    def path(self, k: int) -> tuple:
        """Path ``k`` as (open, high, low, close, volume) arrays."""
        idx = self.indices(k)
        ro, rh, rl, rc = self.rel[:, idx]
        close = self.start_price * np.cumprod(rc)
        prev = np.empty_like(close)
        prev[0] = self.start_price
        prev[1:] = close[:-1]
        # the chained close can differ from prev · rc in the last bit: keep the bar valid
        return prev * ro, np.maximum(prev * rh, close), np.minimum(prev * rl, close), close, self.volume[idx]

    def frame(self, k: int) -> pd.DataFrame:
        """Path ``k`` as bars (what a strategy's ``targets`` is given)."""
        o, h, lo, c, v = self.path(k)
        return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": v}, index=self.index)
