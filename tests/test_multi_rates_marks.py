"""Several symbols with rate histories (``--rates``) and mark series
(``--mark SYMBOL=FILE``): hand-computed runs in one cross account and in two
isolated accounts, isolated accounts equal to one-symbol runs with the same
history and marks, and the CLI's forms and refusals."""
import json

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.multi import run_multi
from test_multi import NO_COSTS, T0, H, bars, flat, random_bars, random_targets

RATE_FILE = pd.DataFrame({
    "timestamp": pd.to_datetime(["2024-03-01 00:00", "2024-03-01 02:30", "2024-03-01 03:45",
                                 "2024-02-29 23:00", "2024-03-01 03:00"], utc=True),
    "asset": ["USDT", "USDT", "USDT", "ETH", "ETH"],
    # hourly 0.0001, 0.0002 (in force from 03:00), 0.0003 (from 04:00); ETH 0.0002, then 0.0001 from 03:00
    "daily_rate": [0.0024, 0.0048, 0.0072, 0.0048, 0.0024],
})
FREE = dict(fee=0.0, slippage=0.0)


def test_rate_history_in_one_cross_account():
    btc, eth = bars([flat(20_000.0)] * 5), bars([flat(2_000.0)] * 5)
    tg = pd.DataFrame({"BTCUSDT": [2.0] * 5, "ETHUSDT": [-0.5] * 5}, index=btc.index)
    res = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, tg, margin="cross-3x", capital=10_000.0, rates={"BTC": 0.0},
                    rate_history=RATE_FILE, **FREE)
    # 01:00, BTC first: 1 BTC for 10,000 own + 10,000 borrowed, charged 10,000 × 0.0001 = 1 USDT at once.
    # ETH: equity 9,999 → sell 0.5 × 9,999 / 2,000 = 2.49975 ETH (borrowed, 2.49975 × 0.0002 =
    # 0.00049995 ETH); its 4,999.5 repay the 1 USDT of interest, then principal: 5,001.5 USDT owed.
    o = res.orders
    assert o["quantity"].tolist() == pytest.approx([1.0, 2.49975], rel=1e-12)
    assert o["interest"].tolist() == pytest.approx([1.0, 0.00049995 * 2_000.0], rel=1e-12)
    # each whole hour at the rate in force then: the USDT row of 02:30 counts from 03:00, 03:45 from 04:00
    usdt = [1.0, 5_001.5 * 0.0001, 5_001.5 * 0.0002, 5_001.5 * 0.0003]  # 01:00 (the borrow), 02:00, 03:00, 04:00
    eth_ = [0.00049995, 0.00049995, 0.00024998, 0.00024998]  # 2.49975 × 0.0002, then × 0.0001 rounded up
    assert res.summary["interest_paid_USDT"] == pytest.approx(sum(usdt), rel=1e-12)  # 4.0009
    assert res.summary["interest_paid_ETH"] == pytest.approx(sum(eth_), rel=1e-12)  # 0.00149986
    assert res.summary["interest_paid_BTC"] == 0.0
    paid = np.cumsum([0.0] + [u + e * 2_000.0 for u, e in zip(usdt, eth_)])
    assert res.equity["interest_paid"].to_numpy() == pytest.approx(paid, rel=1e-12)
    assert res.equity["debt_cross"].iloc[-1] == pytest.approx(
        5_001.5 + sum(usdt[1:]) + (2.49975 + sum(eth_)) * 2_000.0, rel=1e-12)
    assert res.settings["rate_history"] == "table"


def test_rate_history_in_two_isolated_accounts_with_a_missing_bar():
    btc = bars([flat(20_000.0)] * 5).drop(T0 + 3 * H)  # no BTC bar at 03:00: its account charges 03:00 at 04:00
    eth = bars([flat(2_000.0)] * 5)
    tg = pd.DataFrame({"BTCUSDT": [2.0] * 5, "ETHUSDT": [-1.0] * 5}, index=eth.index)
    res = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, tg, margin="isolated-3x", capital=10_000.0,
                    rate_history=RATE_FILE, **FREE)
    # BTC account: 0.5 BTC, 5,000 USDT borrowed: 0.5 at 01:00 and 02:00, 03:00 at its rate (1.0, charged
    # in step 1 at 04:00), 04:00 at its own (1.5): 3.5 USDT, not 0.5 + 0.5 + 1.5 + 1.5
    # ETH account: 2.5 ETH sold short: 0.0005 at 01:00 and 02:00, 0.00025 at 03:00 and 04:00
    assert res.summary["interest_paid_USDT"] == pytest.approx(3.5, rel=1e-12)
    assert res.summary["interest_paid_ETH"] == pytest.approx(0.0015, rel=1e-12)
    assert res.summary["final_equity_BTCUSDT"] == pytest.approx(10_000.0 - 5_000.0 - 3.5, rel=1e-12)
    assert res.summary["final_equity_ETHUSDT"] == pytest.approx(10_000.0 - 2.5015 * 2_000.0, rel=1e-12)
    assert res.equity["interest_paid"].to_numpy() == pytest.approx(
        np.cumsum([0.0, 0.5 + 1.0, 0.5 + 1.0, 0.5, 1.0 + 1.5 + 0.5]), rel=1e-12)


def test_rate_history_refusals():
    data = {"BTCUSDT": bars([flat(20_000.0)] * 3), "ETHUSDT": bars([flat(2_000.0)] * 3)}
    with pytest.raises(backtest.UserError, match="rates ETH: also in"):
        run_multi(data, "hold", rates={"ETH": 0.001}, rate_history=RATE_FILE)
    late = RATE_FILE.assign(timestamp=RATE_FILE["timestamp"] + pd.Timedelta(hours=2))
    with pytest.raises(backtest.UserError, match="first rate is at"):
        run_multi(data, "hold", rate_history=late)


# BTC never moves; ETH trades down to 1,500 in bar 2 while its mark falls to 800.
BTC = bars([flat(20_000.0)] * 4)
ETH = bars([flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 1_500.0, 1_600.0), flat(1_600.0)])
ETH_MARK = bars([flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 800.0, 900.0)])  # no mark bar 3
TARGETS = pd.DataFrame({"BTCUSDT": [1.0] * 4, "ETHUSDT": [1.5] * 4}, index=BTC.index)


def test_a_mark_below_the_level_liquidates_a_cross_account_filled_in_the_traded_range():
    data = {"BTCUSDT": BTC, "ETHUSDT": ETH}
    plain = run_multi(data, TARGETS, margin="cross-3x", capital=10_000.0, **NO_COSTS)
    assert plain.summary["n_liquidations"] == 0 and len(plain.margin_calls) == 0  # the traded low 1,500 is safe
    res = run_multi(data, TARGETS, margin="cross-3x", capital=10_000.0, mark={"BTCUSDT": BTC, "ethusdt": ETH_MARK},
                    **NO_COSTS)
    # 0.5 BTC (own quote) and 7.5 ETH (15,000 borrowed).  The joint path on the marks, BTC's flat:
    # f0 = 10,000 + 15,000 − 1.1 × 15,000 = 8,500, g = 7.5 × (800 − 2,000) = −9,000: θ = 17/18, ETH's
    # mark 2,000 − θ·1,200 = 2,600/3, A = 16,500 = 1.1 × 15,000, fee 2 % of it = 330.  ETH fills at its
    # mark clamped into its traded bar [1,500, 2,000]: 1,500; BTC at 20,000.  The cut at the fills:
    # λ = (1.5 × (15,000 + 330) − 21,250) / (21,250 × 0.5) = 1,745 / 10,625.
    liq = res.liquidations.set_index("symbol")
    assert len(liq) == 2 and liq["event"].nunique() == 1 and (liq["side"] == "sell").all()
    lam = 1_745.0 / 10_625.0
    assert liq.loc["ETHUSDT", "trigger_price"] == pytest.approx(2_600.0 / 3.0, rel=1e-12)
    assert liq.loc["ETHUSDT", "fill_price"] == 1_500.0
    assert liq.loc["BTCUSDT", "trigger_price"] == 20_000.0 and liq.loc["BTCUSDT", "fill_price"] == 20_000.0
    assert liq["quantity"].to_numpy() == pytest.approx([0.5 * lam, 7.5 * lam], rel=1e-12)
    first = liq.iloc[0]
    assert first["theta"] == pytest.approx(17.0 / 18.0, rel=1e-12) and not first["gap"]
    assert first["margin_level"] == pytest.approx(1.1, rel=1e-12) and first["fee"] == pytest.approx(330.0, rel=1e-12)
    assert first["equity_before"] == pytest.approx(1_500.0, rel=1e-9)
    # 21,250·λ − 330 = 3,160 repays quote: 11,840 owed against 21,250·(1 − λ) = 17,760 at the fills (ML 1.5)
    assert first["equity_after"] == pytest.approx(5_920.0, rel=1e-9)
    bar2 = res.equity.iloc[2]
    assert bar2["debt_cross"] == pytest.approx(11_840.0, rel=1e-9)
    assert bar2["equity"] == pytest.approx((1 - lam) * (0.5 * 20_000.0 + 7.5 * 1_600.0) - 11_840.0, rel=1e-9)
    # the margin call at the marks' adverse extremes (before the liquidation): 16,000 / 15,000
    assert res.margin_calls["margin_level"].tolist() == pytest.approx([16.0 / 15.0], rel=1e-12)
    assert res.summary["mark_missing_bars_ETHUSDT"] == 1 and res.summary["mark_missing_bars_BTCUSDT"] == 0
    assert res.settings["mark"] == {"BTCUSDT": "bars", "ETHUSDT": "bars"}


def test_marks_in_two_isolated_accounts_gap_and_intrabar():
    btc = bars([flat(20_000.0)] * 3 + [(12_000.0, 12_300.0, 11_900.0, 12_100.0), flat(12_100.0)])
    btc_mark = bars([flat(20_000.0)] * 2 + [(11_700.0, 12_000.0, 11_650.0, 11_900.0), flat(12_100.0)],
                    start=T0 + H)  # no mark bar 0
    eth = bars([flat(2_000.0)] * 2 + [(2_000.0, 2_000.0, 800.0, 900.0)] + [flat(900.0)] * 2)
    eth_mark = bars([flat(2_000.0)] * 2 + [(2_000.0, 2_000.0, 700.0, 880.0)] + [flat(900.0)] * 2)
    tg = pd.DataFrame({"BTCUSDT": [2.0] * 5, "ETHUSDT": [1.5] * 5}, index=btc.index)
    data = {"BTCUSDT": btc, "ETHUSDT": eth}
    assert run_multi(data, tg, margin="isolated-3x", **NO_COSTS).summary["n_liquidations"] == 0  # traded: safe
    res = run_multi(data, tg, margin="isolated-3x", mark={"BTCUSDT": btc_mark, "ETHUSDT": eth_mark}, **NO_COSTS)
    liq = res.liquidations
    assert liq["account"].tolist() == ["ETHUSDT", "BTCUSDT"]
    eth_l, btc_l = liq.iloc[0], liq.iloc[1]
    # ETH, 5,000: 3.75 ETH with 2,500 borrowed; liquidation price 1.18 × 2,500 / 3.75 = 786.67, which the
    # mark low 700 passes and the traded low 800 does not: trigger 786.67, fill clamped to 800; fee 2 % of
    # 2,950 = 59; sold (1.5 × 2,559 − 3.75 × 800) / (800 × 0.5) = 2.09625 ETH, 1,618 repaying: 882 owed
    assert eth_l["trigger_price"] == pytest.approx(1.18 * 2_500.0 / 3.75, rel=1e-12)
    assert eth_l["fill_price"] == 800.0 and not eth_l["gap"]
    assert eth_l["fee"] == pytest.approx(59.0, rel=1e-12) and eth_l["quantity"] == pytest.approx(2.09625, rel=1e-12)
    assert eth_l["margin_level"] == pytest.approx(1.18, rel=1e-12)
    assert eth_l["equity_before"] == pytest.approx(450.0, rel=1e-9)
    assert eth_l["equity_after"] == pytest.approx(1.65375 * 800.0 - 882.0, rel=1e-9)
    # BTC, 5,000: 0.5 BTC with 5,000 borrowed, liquidation price 11,800.  Bar 3's mark opens at 11,700
    # (the traded open, 12,000, and low, 11,900, stay above): a gap liquidation at the mark open, filled at
    # the traded open; fee 2 % of 5,850 = 117; sold (1.5 × 5,117 − 6,000) / 6,000 = 0.27925 BTC
    assert btc_l["trigger_price"] == 11_700.0 and btc_l["fill_price"] == 12_000.0 and btc_l["gap"]
    assert btc_l["fee"] == pytest.approx(117.0, rel=1e-12) and btc_l["quantity"] == pytest.approx(0.27925, rel=1e-12)
    assert btc_l["margin_level"] == pytest.approx(1.17, rel=1e-12)
    assert btc_l["equity_after"] == pytest.approx(0.22075 * 12_000.0 - 1_766.0, rel=1e-9)
    assert res.equity["debt_BTCUSDT"].iloc[3] == pytest.approx(1_766.0, rel=1e-9)
    # the ETH account's margin call at the mark low (state before the liquidation): 3.75 × 700 / 2,500
    calls = res.margin_calls
    assert calls["account"].tolist() == ["ETHUSDT"] and calls["margin_level"].iloc[0] == pytest.approx(1.05)
    assert res.summary["mark_missing_bars_BTCUSDT"] == 1 and res.summary["mark_missing_bars_ETHUSDT"] == 0


@pytest.mark.parametrize("liquidation", ["partial", "full"])
def test_isolated_accounts_with_history_and_marks_equal_one_symbol_runs(liquidation):
    b1 = random_bars(1, 400, drop=0.1)
    b2 = random_bars(2, 360, start=T0 + 40 * H, drop=0.2)
    rng = np.random.default_rng(9)
    m1 = b1.mul(np.exp(rng.normal(0.0, 0.01, (len(b1), 1)))).assign(volume=1.0).iloc[::3]  # a third of the bars
    m1["high"] = m1[["open", "high", "close"]].max(axis=1)
    m1["low"] = m1[["open", "low", "close"]].min(axis=1)
    t1, t2 = random_targets(3, b1.index), random_targets(4, b2.index)
    hours = pd.date_range(T0 - 2 * H, periods=420, freq="90min")
    history = pd.DataFrame({"timestamp": list(hours) * 2, "asset": ["USDT"] * 420 + ["ETH"] * 420,
                            "daily_rate": rng.choice([0.0, 0.001, 0.01, 0.05], 840)})
    settings = dict(fee=0.001, slippage=0.0005, liquidation=liquidation, rebalance=0.2, rate_history=history)
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, pd.DataFrame({"BTCUSDT": t1, "ETHUSDT": t2}),
                      margin="BTCUSDT=isolated-10x,ETHUSDT=isolated-3x", allocation="BTCUSDT=0.7,ETHUSDT=0.3",
                      capital=10_000.0, rates={"BTC": 0.03}, mark={"BTCUSDT": m1}, **settings)
    assert multi.summary["n_liquidations"] > 0 and multi.summary["mark_missing_bars_BTCUSDT"] > 0
    for sym, b, t, prof, cap, extra in (("BTCUSDT", b1, t1, "isolated-10x", 7_000.0, dict(rates={"BTC": 0.03},
                                                                                        mark=m1)),
                                        ("ETHUSDT", b2, t2, "isolated-3x", 3_000.0, {})):
        one = backtest.run(b, t.to_numpy(), margin=prof, capital=cap, symbol=sym, **settings, **extra)
        mine = multi.equity.loc[b.index]
        for col, other in (("equity", "equity"), ("position", "position"), ("debt", "debt")):
            assert (mine[f"{col}_{sym}"].to_numpy() == one.equity[other].to_numpy()).all(), col
        orders = multi.orders[multi.orders["symbol"] == sym].reset_index(drop=True)
        assert orders["quantity"].tolist() == one.orders["quantity"].tolist()
        liqs = multi.liquidations[multi.liquidations["account"] == sym].reset_index(drop=True)
        assert liqs["fill_price"].tolist() == one.liquidations["fill_price"].tolist()
        assert liqs["trigger_price"].tolist() == one.liquidations["trigger_price"].tolist()
        if "mark" in extra:
            assert multi.summary[f"mark_missing_bars_{sym}"] == one.summary["mark_missing_bars"]
    assert multi.summary["interest_paid_ETH"] > 0.0  # the history's ETH rows are in force


def test_python_mark_forms():
    data = {"BTCUSDT": BTC, "ETHUSDT": ETH}
    with pytest.raises(TypeError, match="mark=.*expected a dict"):
        run_multi(data, TARGETS, mark=ETH_MARK)
    with pytest.raises(backtest.UserError, match="mark=XRPUSDT: not a symbol of this run"):
        run_multi(data, TARGETS, mark={"XRPUSDT": ETH_MARK})
    with pytest.raises(TypeError, match=r"mark\['ETHUSDT'\]"):
        run_multi(data, TARGETS, mark={"ETHUSDT": 3})


@pytest.fixture
def marked_files(tmp_path):
    """Two symbols' bars and a mark file for each (the traded bars, a little off)."""
    paths = {}
    for sym, seed in (("BTCUSDT", 1), ("ETHUSDT", 2)):
        df = random_bars(seed, 300)
        data = tmp_path / f"{sym}-1h.parquet"
        df.reset_index().to_parquet(data, index=False)
        mark = tmp_path / f"{sym}-1h-mark.parquet"
        (df.iloc[5:] * [1.001, 1.001, 1.001, 1.001, 1.0]).reset_index().to_parquet(mark, index=False)
        paths[sym] = (str(data), str(mark))
    return paths


def test_cli_marks_per_symbol_and_a_rate_file(marked_files, tmp_path, capsys):
    rates = tmp_path / "rates.csv"
    RATE_FILE.assign(timestamp=pd.Timestamp("2024-01-01", tz="UTC")).iloc[[0, 3]].to_csv(rates, index=False)
    (btc, btc_mark), (eth, eth_mark) = marked_files["BTCUSDT"], marked_files["ETHUSDT"]
    out = tmp_path / "out"
    code = main(["run", "--data", btc, "--data", eth, "--margin", "cross-5x", "--strategy", "pair_trade",
                 "--param", "lookback=24", "--mark", f"BTCUSDT={btc_mark}", "--mark", f"ethusdt={eth_mark}",
                 "--rates", str(rates), "--out", str(out), "--no-report"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mark_missing_bars_BTCUSDT"] == 5 and summary["mark_missing_bars_ETHUSDT"] == 5
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["mark"] == {"BTCUSDT": btc_mark, "ETHUSDT": eth_mark}
    assert settings["rate_history"] == str(rates)


@pytest.mark.parametrize("marks, message", [
    (["{btc_mark}"], "with several symbols name the symbol, --mark SYMBOL=FILE"),
    (["=x.parquet"], "--mark =x.parquet: expected SYMBOL=FILE"),
    (["BTCUSDT="], "--mark BTCUSDT=: expected SYMBOL=FILE"),
    (["BTCUSDT={btc_mark}", "btcusdt={btc_mark}"], "--mark BTCUSDT: given twice"),
    (["XRPUSDT={btc_mark}"], "--mark XRPUSDT: not a symbol of this run (BTCUSDT, ETHUSDT)"),
    (["BTCUSDT={eth_mark}"], "symbol ETHUSDT"),  # another market's file, named
    (["BTCUSDT=nope.parquet"], "nope.parquet"),
])
def test_cli_bad_marks_are_one_line(marked_files, tmp_path, capsys, marks, message):
    btc, btc_mark = marked_files["BTCUSDT"]
    eth, eth_mark = marked_files["ETHUSDT"]
    flags = [x for m in marks for x in ("--mark", m.format(btc_mark=btc_mark, eth_mark=eth_mark))]
    code = main(["run", "--data", btc, "--data", eth, *flags, "--out", str(tmp_path / "o"), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    if message == "symbol ETHUSDT":
        assert eth_mark in err and "BTCUSDT" in err  # names the file, and the market it is not


def test_cli_one_symbol_takes_one_mark(marked_files, tmp_path, capsys):
    btc, btc_mark = marked_files["BTCUSDT"]
    code = main(["run", "--data", btc, "--mark", btc_mark, "--mark", btc_mark, "--no-report",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--mark: given 2 times" in err and len(err.strip().splitlines()) == 1
    assert main(["run", "--data", btc, "--mark", btc_mark, "--no-report", "--out", str(tmp_path / "o")]) == 0
