"""Finer bars on a joint path (docs/model-choices.md "Finer bars on a joint
path"): a cross account holding several symbols, ``--detail SYMBOL=FILE``
for each of them.

The rule says a sub-step is run "as if the sub-bars were the bar", so a
1-hour run with 1-minute detail must give the fills of the same account run
on the 1-minute bars themselves, with each hour's targets set on the hour's
last minute (the orders then come at the same opens; only the margin calls
and the per-bar statistics differ).  That second run takes another path
through the engine (the plain joint path or walk on minute bars, its quiet
runs), so the two checking each other is a real test; the independent
reference is ``test_differential_multi_detail.py``'s.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.data import load_ohlcv, write_ohlcv
from backtest.errors import UserError

DATA = Path(__file__).resolve().parent.parent / "data"
WEEK = ("2025-06-16", "2025-06-22 23:00")  # the bundled 1-minute week under the 1-hour files
HOURLY = {s: str(DATA / f"{s}-1h.parquet") for s in ("BTCUSDT", "ETHUSDT")}
MINUTES = {s: str(DATA / f"{s}-1m-2025-06-16.parquet") for s in ("BTCUSDT", "ETHUSDT")}
# a cross profile whose liquidation level is near its initial one, so the week's moves liquidate
TIGHT = """[profiles.tight-3x]
mode = "cross"
max_leverage = 3
margin_call_ml = 1.45
liquidation_ml = 1.4
liquidation_fee = 0.02
"""


def _targets(hours, plan):
    """Ready targets on the hours: ``plan`` = {symbol: [(hour number, target), ...]}."""
    out = pd.DataFrame(np.nan, index=hours, columns=list(plan))
    for sym, steps in plan.items():
        for h, x in steps:
            out.iloc[h, out.columns.get_loc(sym)] = x
    return out


def _pair(tmp_path, plan, margin, **kw):
    """The 1-hour run with 1-minute detail, and the 1-minute run with the
    hour's targets on its last minute."""
    hours = load_ohlcv(HOURLY["BTCUSDT"], pd.Timestamp(WEEK[0], tz="UTC"), pd.Timestamp(WEEK[1], tz="UTC")).index
    targets = _targets(hours, plan)
    if margin == "tight-3x":
        (tmp_path / "p.toml").write_text(TIGHT)
        kw["margin_file"] = tmp_path / "p.toml"
    hourly = backtest.run_multi(HOURLY, targets, margin=margin, start=WEEK[0], end=WEEK[1], detail=MINUTES, **kw)
    late = targets.copy()
    late.index = late.index + pd.Timedelta(minutes=59)
    minute = backtest.run_multi(MINUTES, late, margin=margin, **kw)
    return hourly, minute


def _fills(res):
    o = res.orders
    return o[["symbol", "side", "quantity", "price", "kind"]].reset_index(drop=True)


def _assert_same_run(hourly, minute):
    assert hourly.summary["detail_bars_BTCUSDT"] == hourly.summary["detail_bars_ETHUSDT"] == 168
    assert hourly.summary["detail_missing_bars"] == 0
    pd.testing.assert_frame_equal(_fills(hourly), _fills(minute))
    # each fill in the hour it happened in
    assert (hourly.orders["time"] == minute.orders["time"].dt.floor("h")).all()
    cols = ["symbol", "fill_price", "quantity", "fee", "bad_debt", "equity_after"]
    pd.testing.assert_frame_equal(hourly.liquidations[cols].reset_index(drop=True),
                                  minute.liquidations[cols].reset_index(drop=True))
    at_hour_closes = minute.equity["equity"].to_numpy()[59::60]
    assert np.array_equal(hourly.equity["equity"].to_numpy(), at_hour_closes)
    assert hourly.summary["final_equity"] == minute.summary["final_equity"]


@pytest.mark.parametrize("stops", [dict(stop_loss=0.01), dict(trailing_stop=0.006, take_profit=0.012)])
def test_stops_fire_where_the_minute_run_fires_them(tmp_path, stops):
    plan = {"BTCUSDT": [(0, 1.5), (30, -1.0), (70, 2.0), (120, -1.5)],
            "ETHUSDT": [(0, -1.0), (20, 1.5), (90, -2.0), (140, 1.0)]}
    hourly, minute = _pair(tmp_path, plan, "cross-3x", **stops)
    _assert_same_run(hourly, minute)
    kinds = set(hourly.orders["kind"])
    assert kinds & {"stop_loss", "trailing_stop", "take_profit"}, kinds
    # without the finer bars the joint walk takes every symbol to its adverse extreme first: a take-profit
    # and a trailing level both in reach in one hour fire in another order (a stop-loss alone fires at its
    # level either way)
    plain = backtest.run_multi(HOURLY, _targets(hourly.equity.index, plan), margin="cross-3x", start=WEEK[0],
                               end=WEEK[1], **stops)
    assert _fills(plain).equals(_fills(hourly)) == ("stop_loss" in stops)


def test_liquidations_happen_where_the_minute_run_has_them(tmp_path):
    plan = {"BTCUSDT": [(0, 1.0)], "ETHUSDT": [(0, 2.0)]}  # margin level 1.5 at the start, 1.4 liquidates
    hourly, minute = _pair(tmp_path, plan, "tight-3x")
    _assert_same_run(hourly, minute)
    liq = hourly.liquidations
    assert len(liq) >= 2 and set(liq["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    # theta: the sub-step (the minute) the liquidation happened in, plus where on its path
    minute_of = (minute.liquidations["time"] - minute.liquidations["time"].dt.floor("h")).dt.seconds // 60
    assert np.array_equal(np.floor(liq["theta"].to_numpy()), minute_of.to_numpy())


def _hourly_limits(o, c, expiry):
    """Long 1.5 after an up hour, short 1.5 after a down one, each entered by
    a limit order 0.1 % through the hour's close."""
    x = 1.5 * np.sign(c - o)
    return {"target": x, "limit": np.where(x > 0.0, c * 0.999, c * 1.001), "expiry": expiry}


def _on_hours(bars):
    return _hourly_limits(bars["open"].to_numpy(), bars["close"].to_numpy(), 2)


def _on_minutes(bars):
    """``_on_hours`` on the hours the minutes make, set on each hour's last
    minute (NaN elsewhere), the order standing 2 · 60 minutes."""
    hour = bars.index.floor("h")
    first = np.flatnonzero(np.r_[True, hour[1:] != hour[:-1]])
    last = np.r_[first[1:] - 1, len(bars) - 1]
    out = _hourly_limits(bars["open"].to_numpy()[first], bars["close"].to_numpy()[last], 120)
    for key in ("target", "limit"):
        full = np.full(len(bars), np.nan)
        full[last] = out[key]
        out[key] = full
    return out


@pytest.mark.parametrize("kw", [dict(), dict(take_profit=0.004, stop_loss=0.006)])
def test_limit_orders_fill_where_the_minute_run_fills_them(kw):
    # refused until 2026-12-06: each standing order is one more level of its symbol in every minute's joint walk
    hourly = backtest.run_multi(HOURLY, _on_hours, margin="cross-3x", start=WEEK[0], end=WEEK[1], detail=MINUTES,
                                **kw)
    minute = backtest.run_multi(MINUTES, _on_minutes, margin="cross-3x", **kw)
    _assert_same_run(hourly, minute)
    kinds = hourly.orders["kind"].value_counts()
    assert kinds["limit"] > 50 and hourly.summary["n_cancelled"] > 20, kinds
    assert hourly.summary["n_cancelled"] == minute.summary["n_cancelled"]
    if kw:
        assert kinds["take_profit"] > 0 and kinds["stop_loss"] > 0, kinds


def test_theta_orders_a_bars_liquidations_whether_or_not_an_order_stands():
    """BTC 2.5x long falls 100 → 80 → 65 → 30 over bar 2's quarters; ETH has
    a buy limit at 1 standing (never filled) or a market order.  The first
    liquidation cancels the order, so the bar's later quarters take the
    joint path: their theta stays on the walk's scale (3j + …), so sorting
    by theta keeps the events' order (docs "Finer bars on a joint path")."""
    index = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC", name="timestamp")

    def frame(rows, idx=index):
        return pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float).assign(volume=1.0)

    btc = [(100, 100, 100, 100)] * 2 + [(100, 100, 30, 30)] + [(30, 30, 30, 30)] * 2
    eth = [(10, 10, 10, 10)] * 5
    crash = [(100, 100, 100, 100), (100, 100, 80, 80), (80, 80, 65, 65), (65, 65, 30, 30)]
    fine = {}
    for sym, rows in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        quarters = [crash[q] if sym == "BTCUSDT" and i == 2 else rows[i] for i in range(5) for q in range(4)]
        fine[sym] = frame(quarters, pd.DatetimeIndex([t + pd.Timedelta(minutes=15 * q) for t in index
                                                       for q in range(4)], name="timestamp"))
        fine[sym].attrs.update(symbol=sym, timeframe="15m")
    once = np.array([1.0] + [np.nan] * 4)

    def strategy(limit):
        def f(bars):
            if bars["close"].iloc[0] == 100.0:
                return {"target": 2.5 * once}
            return {"target": 0.01 * once, **({"limit": once, "expiry": 4} if limit else {})}
        return f

    runs = [backtest.run_multi({"BTCUSDT": frame(btc), "ETHUSDT": frame(eth)}, strategy(limit), margin="cross-3x",
                               fee=0.0, rates={"BTC": 0.0, "ETH": 0.0, "USDT": 0.0}, detail=fine)
            for limit in (False, True)]
    market, limited = (r.liquidations.drop_duplicates("event")["theta"].to_numpy() for r in runs)
    assert len(market) == len(limited) >= 3 and runs[1].summary["n_cancelled"] == 1
    assert np.all(np.diff(limited) > 0) and np.all(np.diff(market) > 0)
    # the same quarter each: j + θ without a walk, 3j + … once an order made the bar's sub-steps walk (ETH's
    # bought 0.01 in the market run: the thetas inside the quarters differ a little)
    assert list(np.floor(market)) == list(np.floor(limited / 3.0)) == [2.0, 3.0, 3.0]


def test_a_bar_without_detail_is_run_as_without_and_counted(tmp_path):
    """The week's detail under a run one day longer: the last day's bars
    have none, are run as without detail, and those where a stop or the
    liquidation was in reach are counted."""
    kw = dict(margin="cross-3x", stop_loss=0.01, start=WEEK[0], end="2025-06-23 23:00")
    hours = load_ohlcv(HOURLY["BTCUSDT"], pd.Timestamp(kw["start"], tz="UTC"),
                       pd.Timestamp(kw["end"], tz="UTC")).index
    targets = _targets(hours, {"BTCUSDT": [(0, 1.5), (170, -2.0)], "ETHUSDT": [(0, -1.0), (175, 2.0)]})
    fine = backtest.run_multi(HOURLY, targets, detail=MINUTES, **kw)
    plain = backtest.run_multi(HOURLY, targets, **kw)
    assert fine.summary["detail_bars_BTCUSDT"] == 168
    last_day = fine.orders["time"] >= pd.Timestamp("2025-06-23", tz="UTC")
    late_plain = plain.orders[plain.orders["time"] >= pd.Timestamp("2025-06-23", tz="UTC")]
    stops_late = fine.orders[last_day & (fine.orders["kind"] == "stop_loss")]
    assert len(stops_late) >= 1
    assert fine.summary["detail_missing_bars"] >= len(stops_late["time"].unique())
    # the last day starts from the state the week left; where both runs hold the same there, they agree
    assert fine.summary["detail_missing_bars"] <= 24 and "detail_missing_bars" not in plain.summary
    assert len(late_plain) >= 1


def test_refused_unless_every_symbol_of_the_account_has_finer_bars(tmp_path, capsys):
    with pytest.raises(UserError, match="ETHUSDT: missing; a cross account holding several symbols") as e:
        backtest.run_multi(HOURLY, "hold", margin="cross-3x", start=WEEK[0], end=WEEK[1],
                           detail={"BTCUSDT": MINUTES["BTCUSDT"]})
    assert "\n" not in str(e.value)
    # one timeframe for the account's symbols: 5-minute bars beside 1-minute ones are refused
    eth = load_ohlcv(MINUTES["ETHUSDT"])
    five = eth.resample("5min").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                     "volume": "sum"})
    write_ohlcv(five, tmp_path / "ETHUSDT-5m.parquet", symbol="ETHUSDT", timeframe="5m")
    with pytest.raises(UserError, match="ETHUSDT: 12 sub-bars under its 1h bars, BTCUSDT: 60 under 1h; .*same spans"):
        backtest.run_multi(HOURLY, "hold", margin="cross-3x", start=WEEK[0], end=WEEK[1],
                           detail={"BTCUSDT": MINUTES["BTCUSDT"], "ETHUSDT": tmp_path / "ETHUSDT-5m.parquet"})
    args = ["run", "--data", HOURLY["BTCUSDT"], "--data", HOURLY["ETHUSDT"], "--margin", "cross-3x", "--start",
            WEEK[0], "--end", WEEK[1], "--no-report", "--out", str(tmp_path / "x"),
            "--detail", f"BTCUSDT={MINUTES['BTCUSDT']}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--detail ETHUSDT: missing" in err
    assert not (tmp_path / "x").exists()
    # a cross perp account: refused naming the symbol, before asking for the other symbol's file
    perp = ["run", "--data", str(DATA / "BTCUSDT_PERP-1h.parquet"), "--data", str(DATA / "ETHUSDT_PERP-1h.parquet"),
            "--margin", "usdm-cross-5x", "--no-report", "--out", str(tmp_path / "y"),
            "--detail", f"BTCUSDT_PERP={MINUTES['BTCUSDT']}"]
    assert main(perp) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--detail BTCUSDT_PERP: not on the perpetual-futures venue" in err
    assert not (tmp_path / "y").exists()


def test_cli_takes_a_file_per_symbol(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--data", HOURLY["BTCUSDT"], "--data", HOURLY["ETHUSDT"], "--margin", "cross-3x",
            "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8", "--param", "leverage=3",
            "--stop-loss", "0.01", "--start", WEEK[0], "--end", WEEK[1], "--no-report", "--out", str(out)]
    for sym, path in MINUTES.items():
        args += ["--detail", f"{sym}={path}"]
    assert main(args) == 0
    assert "finer bars        BTCUSDT 168, ETHUSDT 168 bars covered; 0 with a level" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detail_bars_BTCUSDT"] == summary["detail_bars_ETHUSDT"] == 168
    assert summary["detail_missing_bars"] == 0
    settings = json.loads((out / "run.json").read_text())
    assert set(settings["settings"]["detail"]) == {"BTCUSDT", "ETHUSDT"}
    same = backtest.run_multi(HOURLY, "sma_cross", {"fast": 3, "slow": 8, "leverage": 3}, margin="cross-3x",
                              stop_loss=0.01, start=WEEK[0], end=WEEK[1], detail=MINUTES)
    assert summary["final_equity"] == pytest.approx(same.summary["final_equity"], rel=0, abs=1e-9)


def _halves(jump_at, n=60):
    """BTC at 100 (98 from the second half of hour ``jump_at`` on) and ETH at 50, flat half-hours: the hourly
    bars, their 30-minute sub-bars."""
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    hours = pd.date_range(t0, periods=n, freq="h", name="timestamp")
    halves = pd.date_range(t0, periods=2 * n, freq="30min", name="timestamp")
    out = ({}, {})
    btc = np.where(np.arange(2 * n) > 2 * jump_at, 98.0, 100.0)
    for sym, p in (("BTCUSDT", btc), ("ETHUSDT", np.full(2 * n, 50.0))):
        sub = pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": 1.0}, index=halves)
        hour = pd.DataFrame({"open": p[0::2], "high": np.maximum(p[0::2], p[1::2]),
                             "low": np.minimum(p[0::2], p[1::2]), "close": p[1::2], "volume": 1.0}, index=hours)
        sub.attrs.update(symbol=sym, timeframe="30m")
        hour.attrs.update(symbol=sym, timeframe="1h")
        out[0][sym], out[1][sym] = hour, sub
    return out


@pytest.mark.parametrize("stops", [{}, dict(stop_loss=0.5)])
def test_the_first_sub_step_keeps_the_bars_rule_at_its_open(stops):
    """An hour's interest at the open takes the account to the level while
    its first sub-bar stays put (g = 0): the bar's rule checks nothing there
    (step 2 checked those opens before the interest), as the run on the
    half-hour bars does, and the next sub-bar's open is checked (that run's
    step 2), so a drop there is where the liquidation fills; with stops the
    walk's second leg takes it at the first open, in both runs."""
    kw = dict(margin="cross-5x", fee=0.0, rates={"BTC": 0.0, "ETH": 0.0, "USDT": 0.2}, **stops)

    def runs(jump_at):
        hours, halves = _halves(jump_at)
        idx = hours["BTCUSDT"].index
        plan = pd.DataFrame({"BTCUSDT": [4.0] + [np.nan] * (len(idx) - 1), "ETHUSDT": np.nan}, index=idx)
        late = pd.DataFrame(np.nan, index=halves["BTCUSDT"].index, columns=plan.columns)
        late.iloc[1] = plan.iloc[0].to_numpy()
        return backtest.run_multi(hours, plan, detail=halves, **kw), backtest.run_multi(halves, late, **kw)

    fine, half = runs(10**6)  # flat: the interest alone takes it to the level
    hour = half.liquidations["time"].iloc[0].floor("h")
    fine, half = runs(int((hour - fine.equity.index[0]) / pd.Timedelta("1h")))  # 98 from its second half on
    a, b = fine.liquidations.iloc[0], half.liquidations.iloc[0]
    assert (a["time"], b["time"].floor("h")) == (hour, hour)
    assert (a["fill_price"], a["quantity"], a["gap"]) == (b["fill_price"], b["quantity"], b["gap"])
    assert a["fill_price"] == (100.0 if stops else 98.0)
    per_step = 3.0 if stops else 1.0
    assert a["theta"] == b["theta"] + per_step * (b["time"].minute // 30)
    assert fine.summary["final_equity"] == half.summary["final_equity"]


def test_the_console_row_of_finer_bars_only_with_them(tmp_path, capsys):
    one = ["run", "--data", HOURLY["BTCUSDT"], "--start", WEEK[0], "--end", WEEK[1], "--no-report"]
    assert main([*one, "--out", str(tmp_path / "a")]) == 0
    assert "finer bars" not in capsys.readouterr().out
    assert main([*one, "--detail", MINUTES["BTCUSDT"], "--out", str(tmp_path / "b")]) == 0
    assert "finer bars        168 bars covered" in capsys.readouterr().out
    two = ["run", "--data", HOURLY["BTCUSDT"], "--data", HOURLY["ETHUSDT"], "--start", WEEK[0], "--end", WEEK[1],
           "--no-report", "--out", str(tmp_path / "c")]
    assert main(two) == 0
    assert "finer bars" not in capsys.readouterr().out


def test_a_refused_frame_of_finer_bars_is_named_by_its_symbol():
    far = load_ohlcv(MINUTES["ETHUSDT"])
    far.index = far.index - pd.Timedelta(days=400)  # outside the run
    with pytest.raises(UserError, match="detail=ETHUSDT: no bar inside the data's range") as e:
        backtest.run_multi(HOURLY, "hold", margin="cross-3x", start=WEEK[0], end=WEEK[1],
                           detail={"BTCUSDT": MINUTES["BTCUSDT"], "ETHUSDT": far})
    assert "\n" not in str(e.value)
