"""Auto-repay off (``--no-auto-repay``) and ``--repay-on-flat``: hand-computed
runs through the kernel and the reference model, the borrow caps without
repayment, and the flags' bad input."""
import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import account
from backtest.cli import main
from backtest.rules import max_buy, max_sell
from reference import simulate

T0 = 1_600_041_600 + 5 * 3600  # a whole hour
RATE = 0.0024  # per day: 0.0001 per hour, so each hour on 10,000 costs exactly 1


def _bars(n, price=100.0):
    index = pd.DatetimeIndex(pd.to_datetime([(T0 + 3600 * i) * 10**9 for i in range(n)], utc=True),
                             name="timestamp")
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1.0}, index=index)


def _both(targets, base_rate=0.0, quote_rate=0.0, **kw):
    bars = _bars(len(targets))
    res = backtest.run(bars, np.array(targets, dtype=float), margin="cross-3x", capital=10_000.0, fee=0.0,
                       rates={"BTC": base_rate, "USDT": quote_rate}, symbol="BTCUSDT", round_interest=False, **kw)
    ts = [T0 + 3600 * i for i in range(len(targets))]
    col = [100.0] * len(targets)
    ref = simulate(ts, col, col, col, col, targets, profile="cross-3x", capital=10_000.0, fee=0.0, slippage=0.0,
                   rate_base_daily=base_rate, rate_quote_daily=quote_rate, round_interest=False, **kw)
    np.testing.assert_allclose(res.equity["equity"], ref["equity"], rtol=1e-12)
    np.testing.assert_allclose(res.equity["interest_paid"], ref["interest_paid"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.equity["position"], ref["position"], rtol=1e-12, atol=1e-12)
    return res


LONG = [2.0, 2.0, 0.0, 0.0, 0.0, 0.0]  # buy 200 at bar 1 (10,000 borrowed), sell all at bar 3


def test_long_closed_keeps_its_quote_loan_until_the_end():
    res = _both(LONG, quote_rate=RATE, auto_repay=False)
    # borrow charge at bar 1, then one hour at bars 2, 3 (the loan outlives the sale), 4 and 5
    assert list(res.equity["interest_paid"]) == pytest.approx([0, 1, 2, 3, 4, 5], abs=1e-9)
    assert list(res.equity["position"]) == [0, 200, 200, 0, 0, 0]
    assert res.equity["debt"].iloc[-1] == pytest.approx(10_005.0, rel=1e-12)  # 10,000 + 5 interest owed
    assert res.summary["final_equity"] == pytest.approx(9_995.0, rel=1e-12)
    assert res.summary["interest_paid"] == pytest.approx(5.0, rel=1e-12)
    (trade,) = res.trades.itertuples()
    # the trade: its borrow hour and the charge at bar 2; bar 3's came after its exit fill
    assert trade.interest == pytest.approx(2.0, rel=1e-12) and trade.pnl == pytest.approx(-2.0, rel=1e-12)
    assert trade.interest_quote == pytest.approx(2.0, rel=1e-12) and trade.interest_base == 0.0
    assert res.summary["interest_while_flat"] == pytest.approx(3.0, rel=1e-9)
    assert trade.pnl - res.summary["interest_while_flat"] == pytest.approx(res.summary["final_equity"] - 10_000.0)
    assert res.equity["interest_paid_quote"].iloc[-1] == pytest.approx(5.0, rel=1e-12)


def test_repay_on_flat_repays_at_the_flat_fill():
    res = _both(LONG, quote_rate=RATE, auto_repay=False, repay_on_flat=True)
    # repaid at bar 3's open before its boundary: 2 hours in all, as with auto-repay
    assert list(res.equity["interest_paid"]) == pytest.approx([0, 1, 2, 2, 2, 2], abs=1e-9)
    assert list(res.equity["debt"]) == pytest.approx([0, 10_001, 10_002, 0, 0, 0], abs=1e-9)
    assert res.summary["final_equity"] == pytest.approx(9_998.0, rel=1e-12)
    assert res.summary["interest_while_flat"] == pytest.approx(0.0, abs=1e-9)
    on = _both(LONG, quote_rate=RATE)
    assert on.summary["final_equity"] == pytest.approx(9_998.0, rel=1e-12)
    assert "interest_while_flat" not in on.summary


def test_short_closed_keeps_its_base_loan_and_its_interest_is_a_short():
    targets = [-1.0, -1.0, 0.0, 0.0, 0.0]  # sell 100 borrowed at bar 1, buy back 100.02 at bar 3
    res = _both(targets, base_rate=RATE, auto_repay=False)
    # 0.01 BTC an hour on the 100 BTC loan: bought back at bar 3, it goes on accruing
    assert list(res.equity["position"]) == pytest.approx([0, -100.01, -100.02, -0.01, -0.02], abs=1e-9)
    assert res.summary["final_equity"] == pytest.approx(9_996.0, rel=1e-12)
    assert res.summary["interest_paid_BTC"] == pytest.approx(0.04, rel=1e-9)
    assert len(res.trades) == 1 and res.trades["exit_reason"].iloc[0] == "signal"
    # the trade bought back its own two hours (0.02 BTC); three more ran on while flat
    assert res.trades["pnl"].iloc[0] == pytest.approx(-2.0, rel=1e-9)
    assert res.trades["interest_base"].iloc[0] == pytest.approx(0.02, rel=1e-9)
    assert res.summary["interest_while_flat"] == pytest.approx(2.0, rel=1e-9)
    flat = _both(targets, base_rate=RATE, auto_repay=False, repay_on_flat=True)
    assert list(flat.equity["position"]) == pytest.approx([0, -100.01, -100.02, 0, 0], abs=1e-12)
    assert flat.summary["final_equity"] == pytest.approx(9_998.0, rel=1e-12)


def test_next_trade_takes_over_the_drift_and_pnl_adds_up():
    # short, flat (the base loan runs on: −0.01 BTC an hour), short again, flat
    targets = [-1.0, -1.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0]
    res = _both(targets, base_rate=RATE, auto_repay=False)
    t = res.trades
    assert list(t["pnl"]) == pytest.approx([-2.0, -2.0], rel=1e-9)  # each its own two hours
    assert list(t["interest"]) == pytest.approx([2.0, 2.0], rel=1e-9)
    # bars 3 and 7 after the exit fills, and bar 4: three hours while flat
    assert res.summary["interest_while_flat"] == pytest.approx(3.0, rel=1e-9)
    assert res.summary["final_equity"] == pytest.approx(9_993.0, rel=1e-12)
    assert t["pnl"].sum() - res.summary["interest_while_flat"] == pytest.approx(-7.0, rel=1e-9)


def test_flip_keeps_both_loans_running():
    # long 1.5x (5,000 USDT borrowed), then short 1.5x: the sale repays nothing
    res = _both([1.5, -1.5, -1.5, -1.5], auto_repay=False)
    st_debt = res.equity["debt"].to_numpy()
    # bar 2: sold 300 BTC holding 150: 150 BTC borrowed (15,000) + the 5,000 USDT loan
    assert st_debt[2] == pytest.approx(20_000.0, rel=1e-12)
    on = _both([1.5, -1.5, -1.5, -1.5])
    assert on.equity["debt"].iloc[2] == pytest.approx(15_000.0, rel=1e-12)


def test_borrow_caps_without_repayment():
    m0, o = 1.5, 100.0
    # 10,000 USDT held against a 10,000 USDT loan (ML 2), no fee or interest: a buy may
    # reach assets 1.5 × debt: 100·q ≥ 1.5·(10,000 + 100·q − 20,000)... solved: q* = 300
    q, borrows = max_buy(0.0, 20_000.0, 0.0, 10_000.0, o, o, 0.0, 0.0, m0, False)
    assert borrows and q == pytest.approx(300.0, rel=1e-12)
    assert (q * o) / (10_000.0 + q * o - 20_000.0) == pytest.approx(m0, rel=1e-12)
    # with base owed the two caps differ: bought base repays it (on) or is held (off)
    on = max_buy(50.0, 20_000.0, 10.0, 10_000.0, o, o, 0.0, 0.0, m0, True)[0]
    off = max_buy(50.0, 20_000.0, 10.0, 10_000.0, o, o, 0.0, 0.0, m0, False)[0]
    assert on == pytest.approx((40 * 100 + 1.5 * 20_000 - 1.5 * 10_000) / 50, rel=1e-12)  # 380
    assert off == pytest.approx((35 * 100 + 1.5 * 20_000 - 1.5 * 10_000) / 50, rel=1e-12)  # 370
    # sell: 100 BTC held against 100 BTC owed, 10,000 USDT: q* = (10,000 + 1.5·100·100 − 1.5·100·100)/(0.5·100)
    q, borrows = max_sell(100.0, 10_000.0, 100.0, 0.0, o, o, 0.0, 0.0, m0, False)
    assert borrows and q == pytest.approx(200.0, rel=1e-12)
    # below the initial ML already: only what is held (no borrowing)
    q, borrows = max_buy(0.0, 10_000.0, 0.0, 9_000.0, o, o, 0.0, 0.0, m0, False)
    assert (q, borrows) == (100.0, False)


def test_a_buy_capped_to_its_cash_borrows_nothing():
    # q·P rounds a hair above hq: with no borrowing allowed it pays exactly hq
    st = np.zeros(6)
    st[account.HQ] = 0.7
    q = st[account.HQ] / 0.3
    assert q * 0.3 > 0.7
    assert account._buy(st, q, 0.3, 0.0, 0.01, True, False, False) == 0.0
    assert st[account.HQ] == 0.0 and st[account.PQ] == 0.0 and st[account.IQ] == 0.0


def test_repay_on_flat_needs_no_auto_repay(capsys):
    with pytest.raises(backtest.UserError, match=r"repay_on_flat=True: only with auto_repay=False"):
        backtest.run(_bars(3), np.zeros(3), symbol="BTCUSDT", repay_on_flat=True)
    assert main(["run", "--repay-on-flat", "--no-report", "--end", "2018-01-03"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--repay-on-flat" in err


def test_debt_per_asset_and_the_report_with_loans_running_on():
    from backtest.report.common import prepare
    from backtest.report.tables import settings_rows, summary_rows

    res = _both([1.5, -1.5, -1.5, -1.5], auto_repay=False)
    # bar 2: 150 BTC owed beside the 5,000 USDT loan
    assert list(res.equity["debt_base"]) == pytest.approx([0, 0, 150, 150], abs=1e-12)
    run = prepare(res)
    assert run.base_debt[2] == pytest.approx(15_000.0) and run.debt[2] - run.base_debt[2] == pytest.approx(5_000.0)
    assert ("auto-repay", "off: loans run on") in settings_rows(run)
    assert dict(summary_rows(run))["interest"].endswith("while flat)")
    assert "debt_base" not in _both([1.5, -1.5, -1.5, -1.5]).equity  # the default keeps its columns


def test_loans_left_running_while_flat_below_the_level_are_netted_in_their_bar():
    """Auto-repay off: a 2.9× long sold at a loss, its 1 % fee taking the
    flat account's ML (quote held / quote owed, the same at every price) from
    1.105 to 1.094, below cross-3x's 1.1.  Step 5 of that bar liquidates it
    at the open: the netting repays the loan, no fill, so no event, and the
    close reads no debt (it used to wait for the next bar's step 2, the
    close reading ML 1.094 with no event).  The reference model agrees."""
    prices = [100.0, 100.0, 73.5, 73.5, 73.5, 73.5]
    targets = [2.9, 2.9, 2.9, 0.0, 0.0, 0.0]
    bars = _bars(len(prices))
    for c in ("open", "high", "low", "close"):
        bars[c] = prices
    kw = dict(capital=10_000.0, fee=0.01, slippage=0.0, round_interest=False)
    res = backtest.run(bars, np.array(targets), margin="cross-3x", rates={"BTC": 0.0, "USDT": 0.0},
                       symbol="BTCUSDT", auto_repay=False, **kw)
    e = res.equity
    # sold at bar 4's open (the target of bar 3's close)
    assert e["position"].iloc[4] == 0.0 and e["debt"].iloc[4] == 0.0 and e["margin_level"].iloc[4] == np.inf
    assert e["debt"].iloc[3] > 0.0 and e["margin_level"].iloc[3] > 1.1  # the long itself was above the line
    assert len(res.liquidations) == 0 and res.summary["final_equity"] == pytest.approx(e["equity"].iloc[4])
    held, owed = e["position"].iloc[3], e["debt"].iloc[3]
    assert held * 73.5 / owed > 1.1 >= held * 73.5 * 0.99 / owed
    assert e["equity"].iloc[4] == pytest.approx(held * 73.5 * 0.99 - owed, rel=1e-12)
    ts = [T0 + 3600 * i for i in range(len(prices))]
    ref = simulate(ts, prices, prices, prices, prices, targets, profile="cross-3x", rate_base_daily=0.0,
                   rate_quote_daily=0.0, auto_repay=False, **kw)
    np.testing.assert_allclose(e["equity"], ref["equity"], rtol=1e-12)
    np.testing.assert_allclose(e["debt"], ref["debt"], rtol=1e-12, atol=1e-9)


def test_a_gap_liquidation_on_a_mark_series_starts_a_leftover_positions_best_at_the_traded_open():
    """Auto-repay off: a short's base loan left running grows a short of
    interest alone; the mark opens bar 8 at 130 beyond its level, the traded
    market at 135, where the gap liquidation fills and buys part of it back.
    The position it leaves starts its best price at the traded open 135
    (docs "Mark price", step 2), as the reference does: its 5 % trailing stop
    at 141.75 is out of the bar's reach (high 140).  The kernel started it at
    the mark open, 130, so its stop at 136.5 fired (final equity 969.46
    against the reference's 1,025.05; helper-67)."""
    o = [100.0] * 3 + [90.0] * 5 + [135.0, 134.0, 134.0]
    h = [100.0] * 3 + [90.0] * 5 + [140.0, 134.0, 134.0]
    lo = [100.0] * 3 + [90.0] * 5 + [134.0] * 3
    c = [100.0] * 3 + [90.0] * 5 + [134.0] * 3
    mo, mh, ml, mc = list(o), list(h), list(lo), list(c)
    mo[8], mh[8], ml[8], mc[8] = 130.0, 130.0, 125.0, 128.0
    targets = [-2.0] + [0.0] * 10
    bars = _bars(len(o))
    bars["open"], bars["high"], bars["low"], bars["close"] = o, h, lo, c
    mark = _bars(len(o))
    mark["open"], mark["high"], mark["low"], mark["close"] = mo, mh, ml, mc
    kw = dict(capital=10_000.0, fee=0.0, slippage=0.0, round_interest=False, auto_repay=False, trailing_stop=0.05)
    res = backtest.run(bars, np.array(targets), margin="cross-3x", rates={"BTC": 1.2, "USDT": 0.0},
                       symbol="BTCUSDT", mark=mark, **kw)
    ts = [T0 + 3600 * i for i in range(len(o))]
    ref = simulate(ts, o, h, lo, c, targets, profile="cross-3x", rate_base_daily=1.2, rate_quote_daily=0.0,
                   mark=(mo, mh, ml), **kw)
    assert res.orders["kind"].tolist() == ["signal", "signal", "liquidation"]  # no trailing stop after it
    (liq,) = res.liquidations.itertuples()
    assert liq.gap and liq.trigger_price == 130.0 and liq.fill_price == 135.0
    assert res.equity["position"].iloc[8] < 0.0  # the liquidation left a short (of interest owed)
    np.testing.assert_allclose(res.equity["equity"], ref["equity"], rtol=1e-12)
    np.testing.assert_allclose(res.equity["position"], ref["position"], rtol=1e-12, atol=1e-12)
