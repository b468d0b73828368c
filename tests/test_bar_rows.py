"""The kernel writes its account's log, not per-bar rows (backtest/bar_rows.py):
the rows made from the log agree with what the kernel itself counted on
every bar, the rows at a few bars are those of the full rows, and the
interest split read off the log rows is the per-bar split to the bit."""
import numpy as np
import pytest

from backtest import bar_rows, kernel
from backtest.bench import busy_targets, kernel_args, synthetic_bars
from backtest.engine import simulate_arrays
from backtest.settings import RunSettings
from backtest.profiles import get_profile
from backtest.trades import fill_bars, interest_by_asset

N = 30_000


def _run(auto_repay):
    bars = synthetic_bars(N, seed=3)
    args = list(kernel_args(bars, busy_targets(N, seed=5)))
    if not auto_repay:  # both loans may run at once: the kernel's four more rows per bar
        cfg, rates = args[-1]
        args[-1] = RunSettings(10_000.0, 0.001, 0.0002, auto_repay=False).kernel_config(
            get_profile("cross-3x"), (rates.h0, (rates.base, rates.quote)))
    rows, orders, _, _, stats = simulate_arrays(*args, quote_row=not auto_repay, per_bar=False)
    return rows, orders, dict(zip(kernel.STATS, stats.tolist())), args


@pytest.fixture(scope="module")
def auto_repay_run():
    return _run(True)


@pytest.fixture(scope="module", params=[True, False], ids=["auto-repay", "no-auto-repay"])
def run(request, auto_repay_run):
    return auto_repay_run if request.param else _run(False)


def test_the_log_is_a_row_where_the_state_changes_at_most_one_a_bar(run):
    rows, orders, _, _ = run
    bars = rows.log[: rows.n_log, bar_rows.BAR]
    assert bars[0] == 0 and np.all(np.diff(bars) > 0)
    assert set(orders["bar"]) <= set(bars.astype(int))  # every fill's bar has its row
    assert rows.n_log < N / 4  # one-minute bars: events and whole hours, not every bar


def test_rows_from_the_log_agree_with_what_the_kernel_counted_on_every_bar(run):
    rows, _, stats, _ = run
    out = rows.full()
    equity, position, debt = out[0], out[1], out[2]
    assert equity[-1] == stats["final_equity"]  # the kernel's last close, to the bit
    assert np.count_nonzero(position) == stats["n_exposed"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ml = np.where(debt > 0, (equity + debt) / debt, np.inf)
    assert ml.min() == pytest.approx(stats["min_margin_level"], rel=1e-12)
    peak = np.maximum.accumulate(equity)
    assert (equity / peak - 1.0).min() == pytest.approx(stats["max_drawdown"], rel=1e-12)


def test_rows_at_a_few_bars_are_the_full_rows_there(run):
    rows, orders, _, args = run
    rng = np.random.default_rng(1)
    at = np.unique(np.concatenate([rng.integers(0, N, 500), [0, N - 1], orders["bar"][:50]]))
    fresh = bar_rows.Rows(rows.log, rows.n_log, rows.close, rows.perp, rows.exact)
    taken = fresh.at(at)  # (made from the log: no full rows yet)
    assert fresh._full is None
    assert np.array_equal(taken, rows.full()[:, at])


def test_the_interest_split_off_the_log_rows_is_the_per_bar_split(auto_repay_run):
    """(Auto-repay off splits the kernel's own quote interest, per bar.)"""
    rows, orders, _, args = auto_repay_run
    out = rows.full()
    o = args[1]
    per_bar = interest_by_asset(out[4], orders, out[1], o)
    at = fill_bars(orders, N)
    bars, paid, position = rows.changes()
    sparse = interest_by_asset(paid, orders, position, o, at=at, bars=bars)
    assert per_bar[0][-1] > 0 and per_bar[1][-1] > 0  # both loans were charged
    for k in range(2):
        assert np.array_equal(sparse[k], per_bar[k][at])


def test_a_log_short_of_room_grows_and_gives_the_same_rows(monkeypatch):
    """A run that needs more log rows than it started with asks again (the
    kernel stops, returns incomplete, the buffers grow): the same rows,
    records and totals as with room for every bar."""
    rows, orders, stats, args = _run(True)
    assert bar_rows.room(N) == N and bar_rows.room(10 ** 8) == 25 * 10 ** 6
    monkeypatch.setattr(bar_rows, "room", lambda n: 16)
    small, orders2, _, _, stats2 = simulate_arrays(*args, per_bar=False)
    assert rows.n_log > 16 * 4  # it had to grow more than once
    assert small.log.shape[0] < N and small.n_log == rows.n_log and np.array_equal(small.full(), rows.full())
    assert np.array_equal(orders2, orders) and np.array_equal(stats2, np.array(list(stats.values())))


def test_a_perp_with_limit_orders_keeps_its_books():
    """Limit orders make a perp run take the rows of loans that outlive
    trades; its quote interest is the funding it paid, which the trades
    carry: trades' pnl less the flat costs is the equity change (found in
    review: the flat interest was minus the funding)."""
    from pathlib import Path

    import backtest

    data = Path(__file__).resolve().parent.parent / "data" / "BTCUSDT_PERP-1h.parquet"
    res = backtest.run(data, "dip_entry", margin="usdm-isolated-5x", start="2021-01-01", end="2021-12-31")
    s = res.summary
    assert len(res.trades) > 5 and s["interest_while_flat"] == 0.0
    change = s["final_equity"] - 10_000.0
    assert res.trades["pnl"].sum() - s["interest_while_flat"] - s["fees_while_flat"] == pytest.approx(change,
                                                                                                      abs=1e-6)


def test_rows_at_unsorted_bars_are_refused(auto_repay_run):
    rows = auto_repay_run[0]
    with pytest.raises(ValueError, match="sorted"):
        rows.at(np.array([5, 0]))
