"""Stops with mark series in a cross account of several symbols
(docs/model-choices.md "Stops on a joint path", "With mark series"): the
stop levels on the traded joint path, the liquidation on the paired mark
path, its fills the marks at θ clamped into the traded bars.  Real data
(BTCUSDT and ETHUSDT, May 2021's crash); the rules against the independent
reference are in tests/test_differential_multi_stops.py
(``test_multi_stops_with_marks_match_reference``).
"""
import numpy as np
import pandas as pd
import pytest

from backtest.cli import main
from backtest.multi import run_multi
from test_books import assert_books_balance
from test_multi_single_accounts import hourly
from test_multi_strategy_levels import assert_same_run

SLIP = 0.001
KW = dict(margin="cross-5x", capital=10_000.0, slippage=SLIP, stop_loss=0.12)


def crash():
    data = {s: hourly(s, "2021-05-10", "2021-05-25") for s in ("BTCUSDT", "ETHUSDT")}
    k = np.arange(len(data["BTCUSDT"]))
    t = np.where(k % 12 == 0, 2.4 + 0.01 * ((k // 12) % 2), np.nan)  # 4.8x long, a new target twice a day
    return data, pd.DataFrame({"BTCUSDT": t, "ETHUSDT": t}, index=data["BTCUSDT"].index)


def test_marks_equal_to_the_traded_bars_change_nothing():
    """Both paths are then one: the same run bit for bit, its stop-loss exits
    and liquidations included."""
    data, targets = crash()
    plain = run_multi(data, targets, **KW)
    kinds = plain.orders["kind"].value_counts()
    assert kinds["stop_loss"] >= 10 and kinds["liquidation"] >= 2  # both kinds of event are in the run
    marked = run_multi(data, targets, mark={s: d.copy() for s, d in data.items()}, **KW)
    assert_same_run(plain, marked)
    assert marked.summary["mark_missing_bars_BTCUSDT"] == 0


def test_a_mark_dip_liquidates_and_fills_in_the_traded_range():
    """BTC's mark falls to half its traded low in one quiet bar of the run:
    the joint walk liquidates there on the marks, the traded path alone did
    not; each symbol fills at its mark at θ clamped into its traded bar (a
    sale: the clamped price less slippage), the stops before it unchanged."""
    data, targets = crash()
    plain = run_multi(data, targets, **KW)
    btc = data["BTCUSDT"]
    quiet = [t for t in btc.index[100:200] if t not in set(plain.orders["time"])]
    held = plain.equity.loc[quiet, "position_BTCUSDT"] > 0
    at = held[held].index[0]  # a bar where BTC is held and nothing happens in the plain run
    mark = {"BTCUSDT": btc.copy(), "ETHUSDT": data["ETHUSDT"].copy()}
    mark["BTCUSDT"].loc[at, "low"] = btc.loc[at, "low"] * 0.5
    res = run_multi(data, targets, mark=mark, **KW)
    liq = res.liquidations
    assert liq["time"].iloc[0] == at and not plain.liquidations["time"].eq(at).any()
    first = liq[liq["time"] == at]
    for _, row in first.iterrows():
        bar = data[row["symbol"]].loc[at]
        inside = min(max(row["trigger_price"], bar["low"]), bar["high"])
        assert row["side"] == "sell"
        assert row["fill_price"] == pytest.approx(inside * (1 - SLIP), rel=1e-12)
    b = first[first["symbol"] == "BTCUSDT"].iloc[0]
    assert b["trigger_price"] < btc.loc[at, "low"]  # the mark's level, below where BTC traded
    assert b["fill_price"] == pytest.approx(btc.loc[at, "low"] * (1 - SLIP), rel=1e-12)
    before = plain.orders[plain.orders["time"] < at].reset_index(drop=True)
    pd.testing.assert_frame_equal(res.orders[res.orders["time"] < at].reset_index(drop=True), before)
    assert_books_balance(res, 10_000.0)


def test_stops_fire_on_the_traded_path():
    """Marks with lows 5 % under the traded ones: more liquidations, but every
    stop-loss exit sells inside its traded bar (the mark does not trigger
    stops), at its level or the open when the open is already beyond."""
    data, targets = crash()
    mark = {s: d.assign(low=d["low"] * 0.95) for s, d in data.items()}
    res = run_multi(data, targets, mark=mark, **KW)
    plain = run_multi(data, targets, **KW)
    assert len(res.liquidations["event"].unique()) > len(plain.liquidations["event"].unique())
    stops = res.orders[res.orders["kind"] == "stop_loss"]
    assert len(stops) >= 5
    for _, o in stops.iterrows():
        bar = data[o["symbol"]].loc[o["time"]]
        trigger = o["price"] / (1 - SLIP)
        assert bar["low"] * (1 - 1e-12) <= trigger <= bar["open"] * (1 + 1e-12)
    assert_books_balance(res, 10_000.0)


def test_cli_takes_stops_with_a_mark_file(tmp_path, capsys):
    """The CLI's --mark SYMBOL=FILE beside --stop-loss gives the Python run's
    orders and liquidations (a BTC mark whose lows are 5 % deeper: more
    liquidations than without it)."""
    data = {s: hourly(s, "2021-05-10", "2021-05-25") for s in ("BTCUSDT", "ETHUSDT")}
    paths = []
    for sym, b in data.items():
        b.to_parquet(tmp_path / f"{sym}-1h.parquet")
        paths += ["--data", str(tmp_path / f"{sym}-1h.parquet")]
    mark = data["BTCUSDT"].assign(low=data["BTCUSDT"]["low"] * 0.95)
    mark.to_parquet(tmp_path / "BTCUSDT-mark-1h.parquet")
    flags = ["--margin", "cross-5x", "--strategy", "hold", "--param", "exposure=4", "--stop-loss", "0.3",
             "--slippage", "0.001"]
    assert main(["run", *paths, *flags, "--mark", f"BTCUSDT={tmp_path / 'BTCUSDT-mark-1h.parquet'}", "--no-report",
                 "--out", str(tmp_path / "o")]) == 0, capsys.readouterr().err
    api = run_multi(data, "hold", {"exposure": 4.0}, margin="cross-5x", stop_loss=0.3, slippage=0.001,
                    mark={"BTCUSDT": mark})
    plain = run_multi(data, "hold", {"exposure": 4.0}, margin="cross-5x", stop_loss=0.3, slippage=0.001)
    cli = pd.read_csv(tmp_path / "o" / "liquidations.csv")
    assert len(cli) == len(api.liquidations) > len(plain.liquidations)
    np.testing.assert_allclose(cli["trigger_price"], api.liquidations["trigger_price"], rtol=1e-12)
    assert len(pd.read_csv(tmp_path / "o" / "orders.csv")) == len(api.orders)
