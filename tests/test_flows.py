"""The trader's own moves through ``backtest.run`` (docs/model-choices.md
"Transfers and a reserve"): top-ups at the margin-call price, deposits and
withdrawals, the safety buffer's deleverage orders, checked against closed
forms on crafted bars; the bundled
March 2020 runs of the issue; bad input as one line and exit 2.

Crafted account: cross-3x (initial ML 1.5, call 1.3, liquidation 1.1), no
fee, rate or slippage; a 2.5x long of 10,000 at 100 holds 250 BTC against a
quote loan of 15,000, so ML(P) = 250·P / D and the call price is 1.3·D/250.
With auto-repay a top-up repays the loan: lifting ML at P to X takes
T = D − 250·P/X.
"""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from backtest.cli import main
from backtest.errors import UserError, UserTypeError

ROOT = Path(__file__).resolve().parents[1]
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
T0 = pd.Timestamp("2024-01-01", tz="UTC")
FLAT = dict(margin="cross-3x", capital=10_000.0, fee=0.0, slippage=0.0, rates={"BTC": 0.0, "USDT": 0.0},
            round_interest=False, symbol="BTCUSDT")


def bars(rows):
    """Hourly bars from (open, high, low, close) rows."""
    o, h, lo, c = (np.array(col, float) for col in zip(*rows))
    idx = pd.date_range(T0, periods=len(rows), freq="1h", name="timestamp")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1.0}, index=idx)


def long_then(low, n_after=1, exposure=2.5):
    """Flat at 100, a 2.5x long bought at bar 1's open, bar 1 falling to ``low``."""
    rows = [(100, 100, 100, 100), (100, 100, low, 90)] + [(90, 90, 90, 90)] * n_after
    return bars(rows), np.array([exposure] + [np.nan] * (len(rows) - 1))


def test_top_ups_lift_the_margin_level_at_each_call_price():
    b, tg = long_then(60.0)
    r = backtest.run(b, tg, reserve=10_000.0, top_up="ml=1.5", **FLAT)
    t = r.transfers
    # D = 15,000: call at 1.3·15,000/250 = 78, T = 15,000 − 250·78/1.5 = 2,000 (D → 13,000);
    # then 1.3·13,000/250 = 67.6, T = 13,000 − 250·67.6/1.5 = 1,733.33…; the next, 58.5867, below the low 60
    assert list(t["reason"]) == ["top-up", "top-up"]
    assert t["price"].tolist() == pytest.approx([78.0, 67.6], rel=1e-12)
    assert t["amount"].tolist() == pytest.approx([2_000.0, 13_000.0 - 250 * 67.6 / 1.5], rel=1e-12)
    assert t["margin_level_before"].tolist() == pytest.approx([1.3, 1.3], rel=1e-12)
    assert t["margin_level_after"].tolist() == pytest.approx([1.5, 1.5], rel=1e-12)
    s = r.summary
    assert s["n_top_ups"] == 2 and s["n_liquidations"] == 0
    assert s["reserve_left"] == pytest.approx(10_000.0 - t["amount"].sum(), rel=1e-12)
    assert r.equity["reserve"].iloc[-1] == pytest.approx(s["reserve_left"], rel=1e-12)
    assert r.equity["debt"].iloc[1] == pytest.approx(15_000.0 - t["amount"].sum(), rel=1e-12)  # the loan repaid


def test_top_ups_of_a_fixed_amount_follow_the_falling_bar():
    b, tg = long_then(60.0)
    r = backtest.run(b, tg, reserve=10_000.0, top_up="amount=1000", **FLAT)
    # each 1,000 repays the loan: the call price 1.3·D/250 at D = 15,000, 14,000, 13,000, 12,000 (then 57.2 < 60)
    assert r.transfers["price"].tolist() == pytest.approx([78.0, 72.8, 67.6, 62.4], rel=1e-12)
    assert r.transfers["amount"].tolist() == [1_000.0] * 4


def test_a_reserve_too_small_leaves_the_liquidation_at_the_topped_up_price():
    b, tg = long_then(40.0)
    r = backtest.run(b, tg, reserve=2_500.0, top_up="ml=1.5", **FLAT)
    t = r.transfers
    # 2,000 at 78, then the 500 left at 67.6 (capped): D = 12,500, liquidation at 1.1·12,500/250 = 55
    assert t["amount"].tolist() == pytest.approx([2_000.0, 500.0], rel=1e-12)
    assert t["capped"].tolist() == [False, True] and r.summary["reserve_left"] == 0.0
    liq = r.liquidations
    assert liq["trigger_price"].iloc[0] == pytest.approx(55.0, rel=1e-12)  # (a second partial one follows to 40)


def test_a_deposit_moves_the_liquidation_price_by_the_closed_form():
    rows = [(100, 100, 100, 100), (100, 100, 95, 100), (100, 100, 99, 100), (100, 100, 99, 100)]
    b = bars(rows)
    tg = np.array([2.5, np.nan, np.nan, np.nan])
    r = backtest.run(b, tg, transfers={str(b.index[2]): 1_000.0}, **FLAT)
    lp = r.equity["liquidation_price"]
    # spec §5 with hq = 0: LP = 1.1·D/B; the deposit repays 1,000 of the 15,000 loan at bar 2's open
    assert lp.iloc[1] == pytest.approx(1.1 * 15_000 / 250, rel=1e-12)
    assert lp.iloc[2] == pytest.approx(1.1 * 14_000 / 250, rel=1e-12)
    assert r.equity["net_transfers"].tolist() == [0.0, 0.0, 1_000.0, 1_000.0]
    assert r.summary["profit"] == pytest.approx(r.summary["final_equity"] - 10_000.0 - 1_000.0, abs=1e-9)


def test_a_withdrawal_is_capped_at_the_initial_margin_level():
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 100, 100)]
    b = bars(rows)
    tg = np.array([-1.0, np.nan, np.nan])  # a 1x short: sells 100 BTC, hq = 20,000 against 100 BTC owed
    r = backtest.run(b, tg, transfers=[f"{b.index[2]}=-8000"], **FLAT)
    t = r.transfers
    # at 100: A = 20,000, D = 10,000: what may leave keeps A/D at 1.5: 20,000 − 1.5·10,000 = 5,000
    assert t["reason"].tolist() == ["withdrawal"] and bool(t["capped"].iloc[0])
    assert t["amount"].iloc[0] == pytest.approx(-5_000.0, rel=1e-12)
    assert t["margin_level_after"].iloc[0] == pytest.approx(1.5, rel=1e-12)
    assert r.summary["net_transfers"] == pytest.approx(-5_000.0, rel=1e-12)


def test_deposits_are_not_returns():
    b = bars([(100, 100, 100, 100)] * 4)
    r = backtest.run(b, np.zeros(4), transfers={str(b.index[1]): 5_000.0, str(b.index[2]): -2_000.0}, **FLAT)
    s = r.summary
    assert r.equity["equity"].tolist() == [10_000.0, 15_000.0, 13_000.0, 13_000.0]
    assert s["total_return"] == 0.0 and s["max_drawdown"] == 0.0 and s["profit"] == 0.0


def test_the_buffer_deleverages_back_to_the_initial_level_at_each_touch():
    b, tg = long_then(60.0)
    r = backtest.run(b, tg, keep_ml=1.25, **FLAT)
    d = r.orders[r.orders["kind"] == "deleverage"]
    # ML = 250·P/15,000 meets 1.25 at P = 75: sell s with (250 − s)·75 / (15,000 − 75·s) = 1.5: s = 100
    # (D → 7,500); then 1.25·7,500/150 = 62.5: s = (1.5·7,500 − 150·62.5)/(1.5·62.5 − 62.5) = 60 (D → 3,750);
    # the next, 1.25·3,750/90 = 52.08, lies below the low 60
    assert d["price"].tolist() == pytest.approx([75.0, 62.5], rel=1e-12)
    assert d["quantity"].tolist() == pytest.approx([100.0, 60.0], rel=1e-12)
    assert (d["side"] == "sell").all() and r.summary["n_liquidations"] == 0
    assert r.equity["position"].iloc[1] == pytest.approx(90.0, rel=1e-12)
    assert r.equity["debt"].iloc[1] == pytest.approx(3_750.0, rel=1e-12)


def test_the_buffer_pays_the_trading_fee_and_slippage_not_a_liquidation_fee():
    b, tg = long_then(70.0)
    r = backtest.run(b, tg, keep_ml=1.25, **dict(FLAT, fee=0.001, slippage=0.001))
    d = r.orders[r.orders["kind"] == "deleverage"].iloc[0]
    o = r.orders.iloc[0]  # the buy: fee in base, so 2.5·10,000/(100·1.001)/(1 − 0.001)·… is what it bought
    b0 = o["position"]
    debt0 = o["quantity"] * o["price"] - 10_000.0  # the quote borrowed
    pk = 1.25 * debt0 / b0
    pf = pk * (1 - 0.001)
    s = (1.5 * debt0 - b0 * pk) / (1.5 * pf * (1 - 0.001) - pk)
    assert d["price"] == pytest.approx(pf, rel=1e-12) and d["quantity"] == pytest.approx(s, rel=1e-12)
    assert d["fee"] == pytest.approx(s * pf * 0.001, rel=1e-12)
    assert r.summary["liquidation_fees"] == 0.0


def test_a_buy_back_that_spends_all_the_quote_is_liquidated_in_its_bar():
    """A short whose hour's interest at an open drops ML below 1: the buffer's buy-back there is cut to the
    quote held, leaving base owed and nothing held (ML 0 at every price, a liquidation price ≤ 0 that used
    to mean "none"); step 5 writes it off at that open, not at the next bar's (equity never below 0).

    cross-3x, BTC at 120 %/hour, flat at 100: the short is capped where ML = 1.5 with its borrow charge,
    q = 10,000 / (1.5·2.2·100 − 100) = 43.478…, hq = 14,347.83, owed 2.2·q = 95.652; bar 2's charge 1.2·q
    owes 147.826 (ML 0.97); the buffer (1.2) at the open buys back hq/100 = 143.478, 4.348 owed with
    nothing held: written off at 100 (bad debt 434.78)."""
    b = bars([(100, 100, 100, 100)] * 4)
    tg = np.array([-2.0, np.nan, np.nan, np.nan])
    r = backtest.run(b, tg, keep_ml=1.2, **dict(FLAT, rates={"BTC": 24 * 1.2, "USDT": 0.0}))
    q = 10_000.0 / (1.5 * 2.2 * 100.0 - 100.0)
    left = 2.2 * q + 1.2 * q - (10_000.0 + 100.0 * q) / 100.0
    d = r.orders[r.orders["kind"] == "deleverage"]
    assert len(d) == 1 and bool(d["capped"].iloc[0]) and d["time"].iloc[0] == b.index[2]
    liq = r.liquidations
    assert len(liq) == 1 and liq["time"].iloc[0] == b.index[2]  # in the bar of the buy-back (was: bar 3's gap)
    assert liq["trigger_price"].iloc[0] == 100.0 and liq["margin_level"].iloc[0] == 0.0
    assert liq["bad_debt"].iloc[0] == pytest.approx(100.0 * left, rel=1e-9)
    assert r.equity["equity"].min() == 0.0 and r.equity["equity"].iloc[2] == 0.0
    assert r.summary["bad_debt"] == pytest.approx(100.0 * left, rel=1e-9)


def _march(**kw):
    return backtest.run(BTC, "hold", {"exposure": 3}, margin="cross-3x", start="2020-03-01", end="2020-03-20", **kw)


def test_march_2020_with_and_without_a_reserve():
    assert _march().summary["n_liquidations"] >= 1
    saved = _march(reserve=20_000.0, top_up="ml=1.5")
    s, t = saved.summary, saved.transfers
    assert s["n_liquidations"] == 0 and s["n_top_ups"] == len(t) >= 1
    assert (t["reason"] == "top-up").all()
    assert t["margin_level_before"].to_numpy() == pytest.approx(1.3, rel=1e-9)  # each at the margin-call line
    assert t["margin_level_after"].to_numpy() == pytest.approx(1.5, rel=1e-9)
    bars_ = saved.bars.set_index(saved.equity.index) if "timestamp" in saved.bars else saved.bars
    for _, row in t.iterrows():  # inside the bar it happened in, between its low and its open
        bar = bars_.loc[row["time"]]
        assert bar["low"] <= row["price"] <= bar["open"]
    buffered = _march(keep_ml=1.25)
    d = buffered.orders[buffered.orders["kind"] == "deleverage"]
    assert buffered.summary["n_liquidations"] == 0 and len(d) >= 2 and buffered.summary["liquidation_fees"] == 0.0
    assert buffered.summary["final_equity"] > _march().summary["final_equity"]  # cheaper than 2 % liquidations
    short = _march(reserve=5_000.0, top_up="ml=1.5")
    assert short.summary["reserve_left"] == 0.0 and short.summary["n_liquidations"] >= 1
    assert short.transfers["capped"].iloc[-1]  # the last top-up took what was left
    for r in (saved, short):  # the books
        assert r.trades["pnl"].sum() == pytest.approx(r.summary["profit"], abs=1e-6)


@pytest.mark.parametrize("argv, words", [
    (["--transfer", "2019-01-01=5000"], "outside the data"),
    (["--transfer", "2020-03-10=lots"], "is not a number"),
    (["--transfer", "2020-03-10"], "expected DATE=AMOUNT"),
    (["--top-up", "ml=1.5"], "needs --reserve"),
    (["--reserve", "1000", "--top-up", "ml=1.2"], "above the margin-call level"),
    (["--reserve", "1000", "--top-up", "half"], "expected ml=X"),
    (["--reserve", "-5"], "--reserve"),
    (["--reserve", "1000", "--stop-loss", "0.05"], "not combined with --stop-loss"),
    (["--reserve", "1000", "--data", str(ROOT / "data" / "ETHUSDT-1h.parquet")], "each account keeps its own reserve, SYMBOL=AMOUNT"),
    (["--keep-ml", "1.1"], "between the liquidation level"),
    (["--keep-ml", "1.5"], "between the liquidation level"),
    (["--keep-ml", "1.25", "--no-auto-repay"], "not with --no-auto-repay"),
    (["--keep-ml", "1.25", "--take-profit", "0.1"], "not combined with --take-profit"),
])
def test_bad_moves_are_one_line_and_exit_2(argv, words, capsys, tmp_path):
    code = main(["run", "--data", str(BTC), "--strategy", "hold", "--start", "2020-03-01", "--end", "2020-03-20",
                 "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "x").exists()


def test_python_bad_moves_raise_value_errors():
    b, tg = long_then(60.0)
    with pytest.raises(UserError, match="not a number"):
        backtest.run(b, tg, transfers={str(b.index[1]): "x"}, **FLAT)
    with pytest.raises(ValueError, match="needs --reserve"):
        backtest.run(b, tg, top_up="ml=2", **FLAT)
    assert math.isfinite(backtest.run(b, tg, reserve=1.0, **FLAT).summary["reserve_left"])
    for number in (5, 5.0, np.array(5)):  # (helper-73: a bare TypeError, "'int' object is not iterable")
        with pytest.raises(UserTypeError, match="transfers=.*5.*: expected"):
            backtest.run(b, tg, transfers=number, **FLAT)


def test_perp_top_ups_restore_the_initial_margin():
    r = backtest.run(ROOT / "data" / "BTCUSDT_PERP-1h.parquet", "hold", {"exposure": 3}, margin="usdm-isolated-10x",
                     start="2021-05-18", end="2021-05-25", reserve=3_000.0)
    t = r.transfers
    assert len(t) >= 1 and (t["reason"] == "top-up").all()
    assert t["margin_level_before"].to_numpy() == pytest.approx(1.25, rel=1e-9)  # the 80 % margin-ratio line
    full = t[~t["capped"]]
    # lifted to the initial margin: MB = |N|·P/10, so the health is 1/(10·mmr) = 25 on the 0.4 % tier
    assert full["margin_level_after"].to_numpy() == pytest.approx(25.0, rel=1e-9)


def test_a_perp_buffer_reduces_back_to_the_initial_margin_at_the_buffer_health():
    """Cross perp 10x, a 4x long of 10,000 at 100: N = 400, MB(P) = 400·P − 30,000, MM = 0.4 %·400·P (tier 1,
    no fee or funding); h(P) = MB / MM = 3 at Pk = 30,000 / (400 − 3·1.6); reduced by r = (N·Pk/10 − MB) /
    (Pk/10) to N' = 10·MB/Pk; the next touch, Pk' = (N'·Pk − MB) / (N' − 3·0.004·N'), is below the low."""
    b, tg = bars([(100, 100, 100, 100), (100, 100, 70, 72), (72, 72, 72, 72)]), np.array([4.0, np.nan, np.nan])
    r = backtest.run(b, tg, margin="usdm-cross-10x", capital=10_000.0, fee=0.0, slippage=0.0, funding_rate=0.0,
                     symbol="BTCUSDT", keep_ml=3.0)
    pk = 30_000.0 / (400.0 - 3.0 * 1.6)
    mb = 400.0 * pk - 30_000.0
    d = r.orders[r.orders["kind"] == "deleverage"]
    assert len(d) == 1 and d["side"].iloc[0] == "sell"
    assert d["price"].iloc[0] == pytest.approx(pk, rel=1e-12)
    assert d["quantity"].iloc[0] == pytest.approx((400.0 * pk / 10.0 - mb) / (pk / 10.0), rel=1e-12)
    n1 = 10.0 * mb / pk
    assert r.equity["position"].iloc[1] == pytest.approx(n1, rel=1e-12)
    assert (n1 * pk - mb) / (n1 - 3.0 * 0.004 * n1) < 70.0  # no second touch in the bar
    assert r.summary["n_liquidations"] == 0
    with pytest.raises(UserError, match="not on an isolated perp"):
        backtest.run(b, tg, margin="usdm-isolated-10x", funding_rate=0.0, symbol="BTCUSDT", keep_ml=3.0)
    with pytest.raises(UserError, match="must be above the liquidation health"):
        backtest.run(b, tg, margin="usdm-cross-10x", funding_rate=0.0, symbol="BTCUSDT", keep_ml=0.9)


def test_the_reports_drawdown_is_the_wealth_index_the_summary_takes():
    from backtest.report.common import prepare

    r = _march(reserve=20_000.0, top_up="ml=1.5", transfers=["2020-03-05=3000", "2020-03-18=-2000"])
    run = prepare(r)
    assert float(np.nanmin(run.drawdown)) == pytest.approx(r.summary["max_drawdown"] * 100.0, rel=1e-9)
    plain = _march()
    assert float(np.nanmin(prepare(plain).drawdown)) == pytest.approx(plain.summary["max_drawdown"] * 100.0,
                                                                      rel=1e-9)
