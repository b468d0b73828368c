"""The shortcuts run() takes agree with what they stand for."""
import numpy as np

from backtest.data.bars import make_bars
from backtest.data.times import NAT
from backtest.data.clean import clean
from backtest.data.validate import rule_masks
from backtest.medians import spacing_median


def test_clean_is_no_rule_broken():
    rng = np.random.default_rng(3)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 2.0, 3.0])
    for _ in range(3000):
        n = int(rng.integers(1, 6))
        cols = [np.where(rng.random(n) < 0.2, rng.choice(specials, n), rng.choice([1.0, 2.0, 3.0], n))
                for _ in range(5)]
        ts = np.cumsum(rng.choice([0, 1, 1, 1, -1], n)).astype(np.int64)
        ts[rng.random(n) < 0.05] = NAT
        b = make_bars(ts, *cols)
        broken = any(mask.any() for _, _, mask, _ in rule_masks(b))
        assert clean(b.ts, b.open, b.high, b.low, b.close, b.volume) == (not broken), (ts, cols)


def test_spacing_median_is_numpy_median():
    rng = np.random.default_rng(5)
    for _ in range(20000):
        d = rng.choice([-1, 0, 1, 2, 2, 3, 60, 60, 60, 120], size=int(rng.integers(1, 12)))
        ts = np.cumsum(np.r_[1000, d]).astype(np.int64)
        got, want = spacing_median(ts), np.median(np.diff(ts))
        if (d > 0).all():
            assert got == want and type(got) is type(want), d
        else:
            assert got is None, d
