"""Limit orders and a strategy's own stop levels on hand-built bars, with
hand-computed numbers (docs/model-choices.md "Limit orders", "Levels from a
strategy"); each case also runs through the reference model and must agree
with it (``test_differential.compare``)."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from test_differential import BASE, DAY, compare, run_both

ROOT = Path(__file__).resolve().parent.parent
NAN = math.nan
NO_COSTS = dict(fee=0.0, slippage=0.0, rate_base_daily=0.0, rate_quote_daily=0.0, round_interest=True)


def flat(p):
    return (p, p, p, p)


def both(rows, targets, limit=None, expiry=1, sl=None, tp=None, **kw):
    """Kernel and reference on hourly bars from 00:00; they must agree; the kernel's result and the reference's."""
    sc = dict(BASE, **NO_COSTS)
    sc.update(kw, expiry=expiry, orders=(limit, sl, tp))
    ts = [DAY + 3600 * i for i in range(len(rows))]
    o, h, lo, c = (list(col) for col in zip(*rows))
    ref, res, bars = run_both(ts, o, h, lo, c, targets, sc)
    compare(ref, res, bars, dict(sc, rows=rows, targets=targets))
    return res, ref


def kinds(res):
    return [(int(b), k, round(p, 9)) for b, k, p in zip(res.orders["time"].dt.hour, res.orders["kind"],
                                                          res.orders["price"])]


# 10,000 USDT on cross-3x, quote at 0.0024/day = 0.0001/hour: a 2x long at a 90 limit
# needs 20,000 USDT, 10,000 of it borrowed when the order is placed at bar 1's open
PLACE = dict(rate_quote_daily=0.0024)
Q = 20_000.0 / 90.0  # base the order buys: 2 × equity at the limit price


def test_borrowing_and_interest_start_at_placement_and_it_fills_through_the_limit():
    rows = [flat(100.0), (100.0, 101.0, 95.0, 100.0), (100.0, 100.0, 91.0, 99.0), (99.0, 99.0, 85.0, 95.0),
            flat(95.0)]
    res, ref = both(rows, [2.0] * 5, limit=[90.0] + [NAN] * 4, expiry=5, **PLACE)
    eq = res.equity
    # bar 1: placed, 10,000 borrowed and held; its first hour (1.0) charged at once; nothing bought
    assert eq["position"].iloc[1] == 0.0
    assert eq["interest_paid"].iloc[1] == pytest.approx(1.0, abs=1e-12)
    assert eq["debt"].iloc[1] == pytest.approx(10_001.0, rel=1e-12)
    assert eq["equity"].iloc[1] == pytest.approx(9_999.0, rel=1e-12)
    assert eq["margin_level"].iloc[1] == pytest.approx(20_000.0 / 10_001.0, rel=1e-12)  # held and owed
    # bar 2 (00:02 is a whole hour): the standing loan pays its hour; the low 91 misses the limit
    assert eq["interest_paid"].iloc[2] == pytest.approx(2.0, abs=1e-12)
    assert eq["position"].iloc[2] == 0.0
    # bar 3: another hour, then the bar (closing down: open → high → low) trades through 90
    assert eq["interest_paid"].iloc[3] == pytest.approx(3.0, abs=1e-12)
    assert kinds(res) == [(3, "limit", 90.0)]
    fill = res.orders.iloc[0]
    assert fill["quantity"] == pytest.approx(Q, rel=1e-12) and fill["side"] == "buy"
    assert fill["interest"] == pytest.approx(1.0, abs=1e-12)  # the placement's borrow charge
    assert eq["position"].iloc[3] == pytest.approx(Q, rel=1e-12)
    assert eq["equity"].iloc[3] == pytest.approx(Q * 95.0 - 10_003.0, rel=1e-12)
    assert res.summary["n_cancelled"] == 0 and res.summary["n_orders"] == 1
    assert res.trades["entry_price"].tolist() == [pytest.approx(90.0)]


def test_a_better_open_fills_at_the_open():
    rows = [flat(100.0), (100.0, 101.0, 95.0, 100.0), (88.0, 89.0, 87.0, 88.0), flat(88.0)]
    res, ref = both(rows, [2.0] * 4, limit=[90.0] + [NAN] * 3, expiry=3, **PLACE)
    assert kinds(res) == [(2, "limit", 88.0)]
    # the quantity was fixed at placement; buying it at 88 leaves quote unspent
    assert res.orders["quantity"].iloc[0] == pytest.approx(Q, rel=1e-12)
    assert res.equity["position"].iloc[2] == pytest.approx(Q, rel=1e-12)
    assert res.equity["debt"].iloc[2] == pytest.approx(10_002.0, rel=1e-12)  # two hours charged
    assert res.equity["equity"].iloc[2] == pytest.approx(Q * 88.0 + (20_000.0 - Q * 88.0) - 10_002.0, rel=1e-12)


def test_placed_where_the_open_is_already_better_fills_at_once():
    rows = [flat(100.0), (85.0, 86.0, 84.0, 85.0), flat(85.0)]
    res, ref = both(rows, [2.0] * 3, limit=[90.0, NAN, NAN], **PLACE)
    assert kinds(res) == [(1, "limit", 85.0)]


def test_an_unfilled_order_expires_and_its_loan_is_repaid():
    rows = [flat(100.0), (100.0, 101.0, 95.0, 100.0), (100.0, 100.0, 91.0, 99.0), (99.0, 99.0, 91.0, 95.0),
            (95.0, 96.0, 80.0, 90.0)]
    res, ref = both(rows, [2.0] * 5, limit=[90.0] + [NAN] * 4, expiry=2, **PLACE)
    eq = res.equity
    assert res.summary["n_cancelled"] == 1 and len(res.orders) == 0  # bar 4's low 80 comes too late
    # cancelled at bar 3's open (its two bars 1 and 2 are up): the 10,000 principal is repaid
    # before the 00:03 boundary, which so charges nothing; the 2.0 charged stays owed
    assert eq["interest_paid"].iloc[3] == pytest.approx(2.0, abs=1e-12)
    assert eq["debt"].iloc[3] == pytest.approx(2.0, abs=1e-12)
    assert eq["equity"].iloc[3] == pytest.approx(9_998.0, rel=1e-12)
    assert eq["interest_paid"].iloc[4] == pytest.approx(2.0, abs=1e-12)  # interest does not grow on interest


def test_a_new_target_replaces_the_standing_order():
    rows = [flat(100.0), (100.0, 101.0, 95.0, 100.0), (100.0, 100.0, 91.0, 99.0), (99.0, 99.0, 85.0, 95.0)]
    res, ref = both(rows, [2.0, 1.0, 1.0, 1.0], limit=[90.0] + [NAN] * 3, expiry=10, **PLACE)
    # bar 1's new target (1x, market) cancels the limit at bar 2's open and buys there
    assert res.summary["n_cancelled"] == 1
    assert kinds(res) == [(2, "signal", 100.0)]
    assert res.equity["interest_paid"].iloc[-1] == pytest.approx(1.0, abs=1e-12)


def test_a_liquidation_cancels_the_order_first():
    # 2x long at 100 (200 base, 10,000 owed); then target 2.5 at a 95 limit: 63.16 base more,
    # 6,000 USDT borrowed and held. Bar 3 gaps to 55: liquidated at the open; the order is
    # cancelled first (the 6,000 repaid), so the liquidation sees 200 base against 10,000
    rows = [flat(100.0), flat(100.0), (100.0, 100.0, 96.0, 100.0), (55.0, 56.0, 54.0, 55.0), flat(55.0)]
    res, ref = both(rows, [2.0, 2.5, 2.5, 2.5, 2.5], limit=[NAN, 95.0, NAN, NAN, NAN], expiry=5)
    assert res.equity["debt"].iloc[2] == pytest.approx(16_000.0, rel=1e-12)
    assert res.summary["n_cancelled"] == 1
    assert [k for _, k, _ in kinds(res)] == ["signal", "liquidation"]
    liq = res.liquidations.iloc[0]
    assert liq["gap"] and liq["trigger_price"] == 55.0
    assert liq["margin_level"] == pytest.approx(11_000.0 / 10_000.0, rel=1e-12)  # not 17,000 / 16,000
    assert liq["fee"] == pytest.approx(220.0, rel=1e-12)
    assert liq["quantity"] == pytest.approx((1.5 * 10_220.0 - 11_000.0) / 27.5, rel=1e-12)
    assert liq["equity_after"] == pytest.approx(780.0, rel=1e-9)


def test_a_stop_cancels_the_order_and_a_filled_order_gets_stops():
    # long 1x at 100 with a 5 % stop; a new target 2 at a 90 limit; the bar falls to 94:
    # the stop (95) fires first and cancels the order
    rows = [flat(100.0), flat(100.0), (100.0, 100.0, 94.0, 96.0), (96.0, 96.0, 80.0, 85.0)]
    res, ref = both(rows, [1.0, 2.0, 2.0, 2.0], limit=[NAN, 90.0, NAN, NAN], expiry=5, stop_loss=0.05)
    assert [k for _, k, _ in kinds(res)] == ["signal", "stop_loss"] and res.summary["n_cancelled"] == 1
    # from flat: the limit fills at 90, then the bar goes on down to the new position's stop (85.5)
    rows = [flat(100.0), (100.0, 100.0, 80.0, 82.0), flat(82.0)]
    res, ref = both(rows, [1.0, 1.0, 1.0], limit=[90.0, NAN, NAN], stop_loss=0.05)
    assert kinds(res) == [(1, "limit", 90.0), (1, "stop_loss", 85.5)]
    assert res.trades["exit_reason"].tolist() == ["stop_loss"]


def test_a_short_entry_at_a_sell_limit_borrows_base_at_placement():
    rows = [flat(100.0), (100.0, 104.0, 99.0, 101.0), (101.0, 106.0, 100.0, 104.0), flat(104.0)]
    res, ref = both(rows, [-1.0] * 4, limit=[105.0, NAN, NAN, NAN], expiry=3, rate_base_daily=0.0024)
    q = 10_000.0 / 105.0
    # bar 1: q base borrowed (and held), its hour charged in base: 1e-4 × q, valued at the open
    assert res.equity["interest_paid"].iloc[1] == pytest.approx(math.ceil(q * 1e-4 * 1e8) / 1e8 * 100.0, rel=1e-9)
    assert res.equity["position"].iloc[1] == pytest.approx(-math.ceil(q * 1e-4 * 1e8) / 1e8, rel=1e-9)
    assert kinds(res) == [(2, "limit", 105.0)]  # bar 2 rises through 105
    assert res.orders["side"].iloc[0] == "sell" and res.orders["quantity"].iloc[0] == pytest.approx(q, rel=1e-12)


def test_no_rebalancing_while_an_order_stands():
    rows = [flat(100.0), flat(100.0), flat(100.0), flat(100.0)]
    res, ref = both(rows, [1.0] * 4, limit=[90.0, NAN, NAN, NAN], expiry=10, rebalance=0.01)
    assert len(res.orders) == 0 and res.summary["n_cancelled"] == 0


# ------------------------------------------------------------------ levels
def test_strategy_stop_price_replaces_the_fraction():
    rows = [flat(100.0), flat(100.0), (100.0, 100.0, 90.0, 95.0), flat(95.0)]
    # the price given at bar 1 (97) is in force in bar 2; the 5 % fraction (95) is not used
    res, ref = both(rows, [1.0] * 4, sl=[NAN, 97.0, NAN, NAN], stop_loss=0.05)
    assert kinds(res)[1:] == [(2, "stop_loss", 97.0)]
    # without it, the fraction's level
    res, ref = both(rows, [1.0] * 4, sl=[NAN, NAN, NAN, NAN], stop_loss=0.05)
    assert kinds(res)[1:] == [(2, "stop_loss", 95.0)]


def test_strategy_take_profit_price_on_a_short_and_its_ambiguity():
    rows = [flat(100.0), flat(100.0), (100.0, 104.0, 92.0, 103.0), flat(103.0)]
    # a short: take-profit at 93 below, stop at 103.5 above; a bar closing up goes low first
    res, ref = both(rows, [-1.0] * 4, sl=[NAN, 103.5, NAN, NAN], tp=[NAN, 93.0, NAN, NAN])
    assert kinds(res)[1:] == [(2, "take_profit", 93.0)]
    assert res.summary["ambiguous_bars"] == 1


def test_strategy_fractions_take_precedence(tmp_path):
    bars = backtest.load_ohlcv(ROOT / "data" / "BTCUSDT-1h.parquet", start="2021-05-10", end="2021-05-25")
    tg = np.full(len(bars), 2.0)

    def strat(b):
        return {"target": tg, "stop_loss": 0.03}

    a = backtest.run(bars, strat, stop_loss=0.2)
    b = backtest.run(bars, tg, stop_loss=0.03)
    assert a.summary == b.summary and a.settings["stop_loss"] == 0.03
    assert "stop_loss" in a.orders["kind"].tolist()


# --------------------------------------------------------------- bad input
BAD = {
    "limit_negative": ('{"target": t, "limit": np.full(len(bars), -1.0)}', "limit at row 0"),
    "limit_shape": ('{"target": t, "limit": np.ones(3)}', "limit has shape"),
    "expiry_zero": ('{"target": t, "limit": bars["close"].to_numpy(), "expiry": 0}', "expiry 0"),
    "expiry_float": ('{"target": t, "expiry": 1.5}', "expiry 1.5"),
    "unknown_key": ('{"target": t, "limits": t}', "'limits'"),
    "no_target": ('{"limit": t}', "without 'target'"),
    "fraction": ('{"target": t, "stop_loss": 1.5}', "stop_loss 1.5"),
    "trailing_array": ('{"target": t, "trailing_stop": t}', "trailing_stop must be"),
    "tp_inf": ('{"target": t, "take_profit": np.full(len(bars), np.inf)}', "take_profit at row 0"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_strategy_orders_are_one_line_and_exit_2(capsys, tmp_path, name):
    body, says = BAD[name]
    path = tmp_path / f"{name}.py"
    path.write_text("import numpy as np\nPARAMS = {}\n\n\ndef targets(bars):\n"
                    f"    t = np.full(len(bars), 1.0)\n    return {body}\n")
    code = main(["run", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--strategy", str(path),
                 "--start", "2021-01-01", "--end", "2021-01-05", "--no-report", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_mark_with_stops_liquidates_on_the_mark_and_stops_on_the_trades():
    # 3x long at 100 (liquidation near 73.3); bar 2 trades down to 88 (the 10 % stop at 90 is hit)
    # while its mark dips to 70: on the shared path the mark reaches 73.3 at θ = 0.9 of its move,
    # the trades reach 90 at θ = 10/12: the stop first
    rows = [flat(100.0), flat(100.0), (100.0, 100.0, 88.0, 95.0), flat(95.0)]
    mark = ([100.0, 100.0, 100.0, 95.0], [100.0, 100.0, 100.0, 95.0], [100.0, 100.0, 70.0, 95.0],
            [100.0, 100.0, 95.0, 95.0])
    res, ref = both(rows, [3.0] * 4, stop_loss=0.1, mark=mark)
    assert [k for _, k, _ in kinds(res)] == ["signal", "stop_loss"] and res.summary["n_liquidations"] == 0
    # a mark dipping to 50 reaches the liquidation level first (θ ≈ 0.53): liquidated, at the
    # mark's trigger clamped into the traded range
    mark = (mark[0], mark[1], [100.0, 100.0, 50.0, 95.0], mark[3])
    res, ref = both(rows, [3.0] * 4, stop_loss=0.1, mark=mark)
    assert [k for _, k, _ in kinds(res)][:2] == ["signal", "liquidation"]
    liq = res.liquidations.iloc[0]
    assert liq["trigger_price"] < 88.0 and liq["fill_price"] == 88.0


def test_mark_with_a_limit_order(tmp_path):
    bars = backtest.load_ohlcv(ROOT / "data" / "BTCUSDT-1h.parquet", start="2021-05-15", end="2021-05-24")

    def strat(b):
        return {"target": np.full(len(b), 3.0), "limit": b["close"].to_numpy() * 0.99, "expiry": 48}

    low_mark = bars.copy()
    low_mark["low"] *= 0.8
    res = backtest.run(bars, strat, mark=low_mark)
    plain = backtest.run(bars, strat)
    assert res.orders["kind"].tolist()[0] == "limit" and res.summary["mark_missing_bars"] == 0
    assert res.summary["n_liquidations"] > plain.summary["n_liquidations"]


def test_bundled_dip_entry_from_the_cli(capsys, tmp_path):
    code = main(["run", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--strategy", "dip_entry",
                 "--start", "2021-01-01", "--end", "2021-06-30", "--no-report", "--out", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert code == 0
    orders = pd.read_csv(tmp_path / "d" / "orders.csv")
    assert {"limit", "stop_loss"} <= set(orders["kind"])
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["n_cancelled"] > 0 and f"limit orders cancelled  {summary['n_cancelled']}" in out


def test_sweep_rows_with_limit_orders_equal_single_runs(tmp_path):
    from backtest.sweep import sweep

    btc = ROOT / "data" / "BTCUSDT-1h.parquet"
    kw = dict(start="2021-03-01", end="2021-04-30", take_profit=0.05)
    res = sweep(btc, "dip_entry", {"offset": [0.002, 0.01], "expiry": [1, 12]}, out=tmp_path / "s", **kw)
    assert len(res.table) == 4 and (res.table["n_cancelled"] > 0).all()
    for row in res.table.to_dict("records"):
        one = backtest.run(btc, "dip_entry", {"offset": row["offset"], "expiry": row["expiry"]}, **kw)
        for key, value in one.summary.items():
            if key not in ("interest_while_flat", "fees_while_flat"):  # run-only keys (they need the trades)
                assert row[key] == value, key


@pytest.mark.parametrize("strategy, params", [("hold", {"exposure": 3.0}), ("dip_entry", {"leverage": 3.0})])
def test_a_mark_equal_to_the_trades_changes_nothing(strategy, params):
    # the two-path walk (θ along each leg) must order events as the one-path walk (by price)
    btc = ROOT / "data" / "BTCUSDT-1h.parquet"
    kw = dict(start="2021-04-01", end="2021-07-31", stop_loss=0.5, take_profit=0.5)  # liquidation comes first
    a = backtest.run(btc, strategy, params, **kw)
    b = backtest.run(btc, strategy, params, mark=btc, **kw)
    assert a.summary["n_liquidations"] + a.summary["n_trades"] > 1
    assert {k: v for k, v in b.summary.items() if k != "mark_missing_bars"} == a.summary
    pd.testing.assert_frame_equal(a.orders, b.orders)


def test_a_liquidation_inside_the_bar_cancels_the_order():
    # 3x long at 100 (liquidation at 73.33); target 1 with a sell limit at 110 stands;
    # the bar falls to 70 (closing down: open → high 101 → low): liquidated at 73.33, order cancelled
    rows = [flat(100.0), flat(100.0), (100.0, 101.0, 70.0, 72.0), (72.0, 120.0, 72.0, 115.0)]
    res, ref = both(rows, [3.0, 1.0, 1.0, 1.0], limit=[NAN, 110.0, NAN, NAN], expiry=5)
    assert [k for _, k, _ in kinds(res)][:2] == ["signal", "liquidation"]
    assert res.liquidations["trigger_price"].iloc[0] == pytest.approx(22_000.0 / 300.0, rel=1e-12)
    assert res.summary["n_cancelled"] == 1 and "limit" not in res.orders["kind"].tolist()  # not at 110 in bar 3


def test_detail_with_limit_orders_runs_from_the_cli(capsys, tmp_path):
    # refused until 2026-12-06; tests/test_detail.py has the fills against the minute run
    path = tmp_path / "lim.py"
    path.write_text("import numpy as np\nPARAMS = {}\n\n\ndef targets(bars):\n"
                    "    x = np.where(np.arange(len(bars)) % 6 < 3, 1.0, -1.0)\n"
                    "    return {'target': x, 'limit': bars['close'].to_numpy() * np.where(x > 0, 0.998, 1.002)}\n")
    code = main(["run", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--strategy", str(path), "--detail",
                 str(ROOT / "data" / "BTCUSDT-1m-2025-06-16.parquet"), "--start", "2025-06-16", "--end", "2025-06-18",
                 "--no-report", "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["detail_bars"] == 72 and summary["detail_missing_bars"] == 0
    assert summary["n_cancelled"] > 0 and summary["n_orders"] > summary["n_cancelled"]


def test_a_profiles_max_borrow_caps_the_borrow_at_placement():
    # the 2x long at a 90 limit needs 10,000 USDT borrowed; the profile lets 4,000 be owed
    rows = [flat(100.0), (100.0, 101.0, 95.0, 100.0), (100.0, 100.0, 89.0, 95.0), flat(95.0)]
    res, ref = both(rows, [2.0] * 4, limit=[90.0] + [NAN] * 3, expiry=5, max_borrow="USDT", borrow_frac=0.4,
                    **PLACE)
    eq = res.equity
    assert eq["debt"].iloc[1] == pytest.approx(4_000.0 + 0.4, rel=1e-12)  # 4,000 and its hour at 1e-4
    assert kinds(res) == [(2, "limit", 90.0)]
    fill = res.orders.iloc[0]
    assert fill["quantity"] == pytest.approx(14_000.0 / 90.0, rel=1e-12) and bool(fill["capped"])
    assert res.summary["n_capped"] == 1


def test_a_sell_limit_borrows_base_only_up_to_the_max_borrow():
    # 10,000 / 105 = 95.2 BTC to sell, none held; the profile lets 50 BTC (5,000 at the first open) be owed
    rows = [flat(100.0), (100.0, 104.0, 99.0, 101.0), (101.0, 106.0, 100.0, 104.0), flat(104.0)]
    res, ref = both(rows, [-1.0] * 4, limit=[105.0, NAN, NAN, NAN], expiry=3, max_borrow="BTC", borrow_frac=0.5)
    assert kinds(res) == [(2, "limit", 105.0)]
    assert res.orders["quantity"].iloc[0] == pytest.approx(50.0, rel=1e-12) and bool(res.orders["capped"].iloc[0])
    assert res.equity["position"].iloc[3] == pytest.approx(-50.0, rel=1e-12)


LIMIT_STRATEGY = ("import numpy as np\nPARAMS = {}\n\n\ndef targets(bars):\n"
                  "    return {'target': np.full(len(bars), 1.0), 'limit': bars['close'].to_numpy() * 0.99}\n")


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_limit_orders_with_auto_repay_off_are_refused(capsys, tmp_path, command):
    path = tmp_path / "lim.py"
    path.write_text(LIMIT_STRATEGY)
    code = main([command, "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--strategy", str(path),
                 "--no-auto-repay", "--start", "2025-06-16", "--end", "2025-06-18", "--out", str(tmp_path / "o")]
                + (["--no-report"] if command == "run" else []))
    err = capsys.readouterr().err
    assert code == 2 and "--no-auto-repay" in err and "limit" in err and len(err.strip().splitlines()) == 1, err


def test_a_sell_limit_placed_while_flat_charges_its_placement_once():
    """A sell limit placed while flat borrows its base at placement; the
    charge is base owed while flat (a drift of the position), which the
    short the fill opens takes over at the fill's price and the flat books
    value.  The trade's own interest is then only what came after: the
    placement charge counted in both read 399.01 + 200.00 against 498.02 paid
    (helper-65's review).  In base units trades + drift = the BTC charged."""
    idx = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC", name="timestamp")
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 102, 100, 101)] + [(101, 101, 101, 101)] * 3
    bars = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float).assign(volume=1.0)
    given = {"target": np.array([-1.0] + [np.nan] * 5), "limit": np.array([101.0] + [np.nan] * 5), "expiry": 3}
    res = backtest.run(bars, lambda _b: given, symbol="BTCUSDT", margin="cross-3x", fee=0.0,
                       rates={"BTC": 0.24, "USDT": 0.0})
    (fill,) = res.orders.itertuples()
    assert fill.kind == "limit" and fill.position_before < 0.0 and fill.interest > 0.0  # charged at placement
    (trade,) = res.trades.itertuples()
    drift = -fill.position_before  # the placement's charge and the hour after it, owed while flat
    assert trade.interest_base + drift == pytest.approx(res.summary["interest_paid_BTC"], rel=1e-12)
    assert trade.interest_base == pytest.approx(3 * 0.01 * fill.quantity, rel=1e-9)  # the three hours it was open
    s = res.summary
    assert s["final_equity"] - 10_000.0 == pytest.approx(trade.pnl - s["interest_while_flat"], abs=1e-9)
