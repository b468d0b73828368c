"""A wiped-out account (every balance 0, no money coming) ends its run at
once (``kernel._zero_tail``): what it reports must be what stepping every
remaining bar gives: equity 0 to the end, no order, and the return sums of
bars of zero equity."""
import math

import numpy as np
import pytest

from tests.test_engine import NAN, make_bars, run


def _wiggle(n, p0, seed):
    rng = np.random.default_rng(seed)
    rows = []
    p = p0
    for _ in range(n):
        c = p * (1.0 + rng.normal(0.0, 0.01))
        rows.append((p, max(p, c) * 1.002, min(p, c) * 0.998, c))
        p = c
    return rows, p


def _from_equity(eq, capital, ppy):
    """Sharpe and Sortino from the per-bar equity: a bar's return counts 0
    after a bar of zero equity (written from docs, not the kernel)."""
    prev = np.concatenate([[capital], eq[:-1]])
    safe = np.where(prev > 0.0, prev, 1.0)
    r = np.where(prev > 0.0, eq / safe - 1.0, 0.0)
    n = len(r)
    mean = r.sum() / n
    sd = math.sqrt(max((np.sum(r * r) - n * mean * mean) / (n - 1), 0.0))
    down = math.sqrt(np.sum(np.minimum(r, 0.0) ** 2) / n)
    return mean / sd * math.sqrt(ppy), mean / down * math.sqrt(ppy)


@pytest.mark.parametrize("before", [10, 70])
@pytest.mark.parametrize("after", [0, 1, 5, 52, 53, 54, 55, 200, 1000])
def test_a_gap_through_everything_ends_the_run_as_stepping_would(before, after):
    head, p = _wiggle(before, 100.0, before)
    tail, _ = _wiggle(after, 0.3 * p, after + 1)
    crash = (0.3 * p, 0.3 * p * 1.01, 0.3 * p * 0.99, 0.3 * p)  # a 3x long loses more than it has: bad debt
    bars = make_bars(head + [crash] + tail)
    n = len(bars)
    targets = np.full(n, NAN)
    targets[0] = 3.0
    targets[before + 2:] = np.where(np.arange(n - before - 2) % 2 == 0, -1.0, 2.0)  # orders that find no money
    res = run(bars, targets, margin="cross-3x")
    eq = res.equity
    assert res.summary["n_liquidations"] == 1 and res.summary["bad_debt"] > 0.0
    assert (eq["equity"].iloc[before:] == 0.0).all() and (eq["position"].iloc[before:] == 0.0).all()
    assert (eq["debt"].iloc[before:] == 0.0).all()
    assert res.summary["n_orders"] == 2  # the entry and the liquidation: nothing trades after
    sharpe, sortino = _from_equity(eq["equity"].to_numpy(), 10_000.0, 24 * 365)
    assert res.summary["sharpe"] == pytest.approx(sharpe, rel=1e-12)
    assert res.summary["sortino"] == pytest.approx(sortino, rel=1e-12)
    assert res.summary["max_drawdown"] == -1.0 and res.summary["exposure"] == pytest.approx((before - 1) / n)  # filled at bar 1
