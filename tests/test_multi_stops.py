"""Stops in a cross account holding several symbols: the joint walk of
docs/model-choices.md "Stops on a joint path" on real data (its rules
against the independent reference: tests/test_differential_multi_stops.py).
"""
import json

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from backtest.multi import run_multi
from test_books import assert_books_balance
from test_multi_single_accounts import hourly

CRASH = ("2021-05-10", "2021-05-25")  # BTC and ETH both fell ~40 % on May 19


def pair(start, end):
    return {s: hourly(s, start, end) for s in ("BTCUSDT", "ETHUSDT")}


def test_levels_never_reached_change_nothing_liquidations_included():
    """Stops on but out of reach: the walk's first leg is the joint path,
    so the run equals the run without stops bit for bit, its liquidations
    (the crash liquidates the 4x hold) included."""
    data = pair(*CRASH)
    kw = dict(margin="cross-5x", capital=10_000.0, slippage=0.001)
    plain = run_multi(data, "hold", {"exposure": 4.0}, **kw)
    far = run_multi(data, "hold", {"exposure": 4.0}, stop_loss=0.99, trailing_stop=0.99, take_profit=0.99, **kw)
    assert plain.summary["n_liquidations"] > 0
    for table in ("equity", "orders", "liquidations", "margin_calls", "trades"):
        pd.testing.assert_frame_equal(getattr(far, table), getattr(plain, table), check_exact=True)


def test_a_stop_loss_fires_at_its_level_before_the_crash_liquidates():
    """A 4x long hold with a 5 % stop-loss: each symbol is sold at its own
    level entry·0.95 (less slippage) on the crash, and the account is never
    liquidated; its books balance."""
    data = pair(*CRASH)
    slip = 0.001
    res = run_multi(data, "hold", {"exposure": 2.0}, margin="cross-5x", capital=10_000.0, slippage=slip,
                    stop_loss=0.05)
    o = res.orders
    entries = o[o["kind"] == "signal"].set_index("symbol")["price"]
    stops = o[o["kind"] == "stop_loss"].set_index("symbol")
    assert sorted(stops.index) == ["BTCUSDT", "ETHUSDT"] and res.summary["n_liquidations"] == 0
    for sym in stops.index:
        level = entries[sym] * 0.95
        bar = data[sym].loc[stops.loc[sym, "time"]]
        trigger = min(level, bar["open"])  # at the open when the bar gaps below the level
        assert stops.loc[sym, "price"] == pytest.approx(trigger * (1 - slip), rel=1e-12)
        assert stops.loc[sym, "side"] == "sell" and stops.loc[sym, "position"] == 0.0
        before = data[sym].loc[:stops.loc[sym, "time"]].iloc[:-1]
        assert (before["low"] > level).all()  # no earlier bar reached it
    assert (res.equity[["position_BTCUSDT", "position_ETHUSDT"]].iloc[-1] == 0.0).all()  # suspended: no re-entry
    assert_books_balance(res, 10_000.0)


def test_take_profit_and_trailing_stop_fire_in_path_order():
    """On a bar whose range reaches both a symbol's stop-loss and its
    take-profit the joint walk goes to the position's adverse extreme
    first: the stop-loss wins.  A year of sma_cross at 3x, no slippage, so
    every stop fills on its bar at its level (or the open beyond it)."""
    data = pair("2022-01-01", "2023-01-01")
    kw = dict(margin="cross-5x")
    res = run_multi(data, "sma_cross", {"leverage": 3.0}, stop_loss=0.02, take_profit=0.02, **kw)
    assert {"stop_loss", "take_profit"} <= set(res.orders["kind"])
    both = 0
    for sym, o in res.orders.groupby("symbol"):
        o = o.reset_index(drop=True)
        for k in range(1, len(o)):
            row, prev = o.loc[k], o.loc[k - 1]
            if row["kind"] not in ("stop_loss", "take_profit"):
                continue
            assert prev["kind"] == "signal" and row["time"] >= prev["time"]  # opened by a signal (its bar too)
            d = 1.0 if row["side"] == "sell" else -1.0
            entry, bar = prev["price"], data[sym].loc[row["time"]]
            sl, tp = entry * (1 - d * 0.02), entry * (1 + d * 0.02)
            reach_sl = bar["low"] <= sl if d > 0 else bar["high"] >= sl
            reach_tp = bar["high"] >= tp if d > 0 else bar["low"] <= tp
            assert reach_sl or reach_tp
            if reach_sl:
                both += reach_tp
                trigger = min(sl, bar["open"]) if d > 0 else max(sl, bar["open"])
                assert row["kind"] == "stop_loss" and row["price"] == pytest.approx(trigger, rel=1e-12)
            else:
                trigger = max(tp, bar["open"]) if d > 0 else min(tp, bar["open"])
                assert row["kind"] == "take_profit" and row["price"] == pytest.approx(trigger, rel=1e-12)
    assert both > 0  # a bar where the order on the path decided it
    trail = run_multi(data, "sma_cross", {"leverage": 3.0}, trailing_stop=0.02, **kw)
    assert "trailing_stop" in set(trail.orders["kind"])
    assert_books_balance(res, 10_000.0)
    assert_books_balance(trail, 10_000.0)


def test_the_path_setting_changes_nothing_with_stops():
    data = pair("2022-05-01", "2022-07-01")
    kw = dict(margin="cross-3x", stop_loss=0.03, take_profit=0.05, trailing_stop=0.03)
    heur = run_multi(data, "sma_cross", {"leverage": 2.0}, **kw)
    pess = run_multi(data, "sma_cross", {"leverage": 2.0}, path="pessimistic", **kw)
    assert (heur.orders["kind"] != "signal").sum() > 5
    pd.testing.assert_frame_equal(pess.equity, heur.equity, check_exact=True)
    pd.testing.assert_frame_equal(pess.orders, heur.orders, check_exact=True)


def test_cli_runs_stops_in_a_cross_account_of_two_symbols(tmp_path, capsys):
    paths = []
    for sym, b in pair("2022-05-01", "2022-07-01").items():
        b.to_parquet(tmp_path / f"{sym}-1h.parquet")
        paths += ["--data", str(tmp_path / f"{sym}-1h.parquet")]
    out = tmp_path / "run"
    assert main(["run", *paths, "--margin", "cross-3x", "--param", "leverage=2", "--stop-loss", "0.03",
                 "--take-profit", "0.05", "--no-report", "--out", str(out)]) == 0
    orders = pd.read_csv(out / "orders.csv")
    assert {"stop_loss", "take_profit"} <= set(orders["kind"])
    settings = json.loads((out / "run.json").read_text())
    assert settings["settings"]["stop_loss"] == 0.03 and settings["settings"]["take_profit"] == 0.05
    # with a mark series for one of them (its own traded bars: the run does not change)
    assert main(["run", *paths, "--margin", "cross-3x", "--param", "leverage=2", "--stop-loss", "0.03",
                 "--take-profit", "0.05", "--mark", f"BTCUSDT={tmp_path / 'BTCUSDT-1h.parquet'}", "--no-report",
                 "--out", str(tmp_path / "m")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "m" / "orders.csv"), orders, check_exact=True)
    assert np.isfinite(pd.read_parquet(out / "equity.parquet")["equity"]).all()
