"""The run's return sums do not depend on where numba compiled them: the
last, partial block is summed in bar order (no fastmath), so a first run on
a cold cache and the next ones agree to the bit (they did not: the Sharpe
ratio of the README's default run differed in its last digit)."""
import numpy as np

from backtest import kernel


def _in_bar_order(block, m, sums):
    s_r, s_r2, s_n = sums
    for k in range(1, m + 1):
        p = block[k - 1]
        r = block[k] / p - 1.0 if p > 0.0 else 0.0
        n = min(r, 0.0)
        s_r += r
        s_r2 += r * r
        s_n += n * n
    return s_r, s_r2, s_n


def test_the_last_block_is_summed_in_bar_order_to_the_bit():
    rng = np.random.default_rng(3)
    for m in (1, 7, 8, 9, 31, 63):
        block = np.empty(kernel.RETURN_BLOCK + 1 + 24)
        block[: m + 1] = 1_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, m + 1)))
        block[m // 2] = 0.0  # a bar of zero equity: the next return counts 0
        sums = (0.123456789, 0.0314159, 0.00271828)
        assert kernel._add_returns(block, m, *sums) == _in_bar_order(block, m, sums)
