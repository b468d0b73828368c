"""A strategy's limit orders in a cross account holding several symbols
(docs/model-choices.md "Limit orders in a cross account of several
symbols"): hand-computed numbers on simple bars (fee 0, rates 0), the
refusals, and the books on real data.  The independent reference's random
comparison is tests/test_differential_multi_limits.py."""
import numpy as np
import pandas as pd
import pytest

from backtest.errors import UserError
from backtest.multi import run_multi
from test_books import assert_books_balance
from test_multi_single_accounts import hourly

IDX = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC", name="timestamp")
NO_RATES = {"BTC": 0.0, "ETH": 0.0, "USDT": 0.0}
FLAT_ETH = [(10.0, 10.0, 10.0, 10.0)] * 6


def frame(rows):
    return pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=IDX, dtype=float).assign(volume=1.0)


def per_symbol(btc, eth):
    """A strategy returning ``btc`` for BTCUSDT's bars and ``eth`` for
    ETHUSDT's (told apart by their first close: 100 and 10)."""
    return lambda bars: btc if bars["close"].iloc[0] == 100.0 else eth


def run(btc_rows, strategy, eth_rows=FLAT_ETH, **kw):
    data = {"BTCUSDT": frame(btc_rows), "ETHUSDT": frame(eth_rows)}
    return run_multi(data, strategy, **{"margin": "cross-3x", "fee": 0.0, "rates": NO_RATES, **kw})


def once(x, n=6):
    return np.array([x] + [np.nan] * (n - 1))


def test_a_buy_fills_where_the_low_reaches_it_and_its_quote_stays_locked():
    # bar 1: BTC's buy limit at 96 for 2x is placed first (symbol order): E = 10,000, 208.33 BTC × 96 = 20,000,
    # 10,000 of it borrowed and held; ETH's market buy (1x, 1,000 ETH) may not spend that locked quote, so it
    # borrows its 10,000.  BTC (flat, so walked O → H → L → C) falls through 96 on leg 2: filled at 96, no fee
    btc = [(100, 100, 100, 100), (100, 101, 95, 99), (99, 99, 99, 99), (99, 99, 99, 99), (99, 99, 99, 99),
           (99, 99, 99, 99)]
    res = run(btc, per_symbol({"target": once(2.0), "limit": once(96.0), "expiry": 3}, {"target": once(1.0)}))
    o = res.orders
    assert o["kind"].tolist() == ["signal", "limit"] and o["symbol"].tolist() == ["ETHUSDT", "BTCUSDT"]
    assert o["quantity"].tolist() == pytest.approx([1_000.0, 20_000.0 / 96.0], rel=1e-12)
    assert o["price"].tolist() == [10.0, 96.0]
    e = res.equity
    assert e["debt"].iloc[1] == pytest.approx(20_000.0, rel=1e-12)
    assert e["equity"].iloc[1] == pytest.approx(10_000.0 + 20_000.0 / 96.0 * 3.0, rel=1e-12)  # bought at 96, close 99
    assert "n_cancelled" not in res.summary
    assert_books_balance(res, 10_000.0)


def test_an_order_not_reached_is_cancelled_after_its_bars_and_its_loan_repaid():
    # placed at bar 1 (borrowing 10,000 of the 20,000 it needs), stands bars 1 and 2 (expiry 2), cancelled at
    # bar 3's open: the borrowed quote goes back, nothing traded
    btc = [(100, 100, 100, 100)] * 6
    res = run(btc, per_symbol({"target": once(2.0), "limit": once(90.0), "expiry": 2}, {"target": once(0.0)}))
    assert len(res.orders) == 0
    assert res.summary["n_cancelled"] == 1
    assert res.equity["debt"].tolist() == pytest.approx([0.0, 10_000.0, 10_000.0, 0.0, 0.0, 0.0], abs=1e-9)
    assert res.equity["equity"].tolist() == pytest.approx([10_000.0] * 6, rel=1e-12)


def test_a_new_target_cancels_the_standing_order_first():
    # the buy at 90 stands; BTC's target changes at bar 2 to a market 1x: at bar 3's open the order is cancelled,
    # then the market order buys 100 BTC at 100
    btc = [(100, 100, 100, 100)] * 6
    target = np.array([2.0, np.nan, 1.0, np.nan, np.nan, np.nan])
    res = run(btc, per_symbol({"target": target, "limit": once(90.0), "expiry": 5}, {"target": once(0.0)}))
    assert res.summary["n_cancelled"] == 1
    assert res.orders["kind"].tolist() == ["signal"] and res.orders["quantity"].iloc[0] == pytest.approx(100.0)
    assert res.equity["debt"].iloc[-1] == pytest.approx(0.0, abs=1e-9)


def test_a_liquidation_cancels_the_standing_order_first():
    # ETH 3x long on cross-3x; BTC's buy at 50 stands (never reached).  ETH falls 40 % in bar 3: the account is
    # liquidated, BTC's order cancelled before it (counted), and BTC never trades
    eth = [(10, 10, 10, 10)] * 3 + [(10, 10, 6, 6)] + [(6, 6, 6, 6)] * 2
    btc = [(100, 100, 100, 100)] * 6
    res = run(btc, per_symbol({"target": once(1.0), "limit": once(50.0), "expiry": 5}, {"target": once(2.0)}),
              eth_rows=eth)
    assert res.summary["n_liquidations"] >= 1 and res.summary["n_cancelled"] == 1
    assert (res.orders["symbol"] == "BTCUSDT").sum() == 0
    assert_books_balance(res, 10_000.0)


def test_refused_with_auto_repay_off():
    btc = [(100, 100, 100, 100)] * 6
    strat = per_symbol({"target": once(2.0), "limit": once(90.0)}, {"target": once(1.0)})
    with pytest.raises(UserError, match="not combined with a strategy's limit orders"):
        run(btc, strat, auto_repay=False)


def test_a_cross_perp_account_of_two_symbols_takes_them():
    # refused until 2026-12-06 (docs "A cross perp account holding several symbols", *Limit orders*;
    # tests/test_differential_perps_cross.py checks them against the reference): a buy 0.5 % under each close,
    # standing 3 bars, on the bundled perps; a limit far below every price never fills and expires
    data = {s: hourly(s + "_PERP", "2024-01-01", "2024-01-08") for s in ("BTCUSDT", "ETHUSDT")}

    def dips(offset):
        def f(bars):
            c = bars["close"].to_numpy()
            x = np.where(np.arange(len(c)) % 24 < 12, 2.0, 0.0)
            return {"target": x, "limit": c * offset, "expiry": 3}
        return f

    res = run_multi(data, dips(0.995), margin="usdm-cross-5x")
    kinds = res.orders["kind"].value_counts()
    assert kinds["limit"] > 10 and res.summary["n_cancelled"] > 0, kinds
    assert set(res.orders["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    never = run_multi(data, dips(0.5), margin="usdm-cross-5x")
    assert len(never.orders) == 0 and never.summary["n_cancelled"] > 10
    assert never.summary["final_equity"] == 10_000.0  # nothing filled, nothing held: no funding either


def test_the_books_balance_with_limit_entries_on_real_data():
    # BTC and ETH in one cross-3x account, May 2021: every target change a limit 1 % inside the close,
    # expiry 3 bars; fees and interest on
    data = {s: hourly(s, "2021-05-01", "2021-06-10") for s in ("BTCUSDT", "ETHUSDT")}

    def strat(bars):
        c = bars["close"].to_numpy()
        fast, slow = pd.Series(c).rolling(5).mean().to_numpy(), pd.Series(c).rolling(20).mean().to_numpy()
        target = np.where(np.isnan(slow), np.nan, np.where(fast > slow, 2.5, -1.5))
        limit = np.where(fast > slow, c * 0.99, c * 1.01)
        return {"target": target, "limit": limit, "expiry": 3}

    res = run_multi(data, strat, margin="cross-3x", fee=0.001, slippage=0.0005)
    kinds = set(res.orders["kind"])
    assert "limit" in kinds and res.summary["n_cancelled"] > 0
    assert_books_balance(res, 10_000.0)
