"""Stops, take-profits, trailing stops and the path inside a bar, on
hand-built bars (issue 4's "Done when"); each case also runs through the
reference model and must agree with it (``test_differential.compare``)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.sweep import sweep
from backtest.cli import main
from test_differential import BASE, DAY, compare, run_both

ROOT = Path(__file__).resolve().parent.parent
NO_COSTS = dict(fee=0.0, slippage=0.0, rate_base_daily=0.0, rate_quote_daily=0.0)


def flat(p):
    return (p, p, p, p)


def both(rows, targets, **kw):
    """Kernel and reference on hourly bars; they must agree; the kernel's result."""
    sc = dict(BASE, **NO_COSTS)
    sc.update(kw)
    ts = [DAY + 3600 * i for i in range(len(rows))]
    o, h, lo, c = (list(col) for col in zip(*rows))
    ref, res, bars = run_both(ts, o, h, lo, c, targets, sc)
    compare(ref, res, bars, dict(sc, rows=rows, targets=targets))
    return res


def forced(res):
    return [(str(t)[11:16], k, round(p, 6)) for t, k, p in zip(res.orders["time"], res.orders["kind"],
                                                                 res.orders["price"]) if k != "signal"]


def test_a_stop_above_the_liquidation_price_exits_at_the_stop():
    # 3x long from 100 (cross-3x): liquidation near 73.3; the stop at 90 is met first on the way down
    res = both([flat(100.0), (100.0, 101.0, 70.0, 75.0), flat(75.0)], [3.0] * 3, stop_loss=0.1)
    assert forced(res) == [("01:00", "stop_loss", 90.0)]
    assert res.summary["n_liquidations"] == 0
    assert res.trades["exit_reason"].tolist() == ["stop_loss"]
    assert res.trades["exit_price"].iloc[0] == pytest.approx(90.0)
    # without the stop the same bar liquidates
    assert both([flat(100.0), (100.0, 101.0, 70.0, 75.0), flat(75.0)], [3.0] * 3).summary["n_liquidations"] > 0


def test_a_stop_below_the_liquidation_price_is_too_late():
    res = both([flat(100.0), (100.0, 101.0, 60.0, 65.0), flat(65.0)], [3.0] * 3, stop_loss=0.35)
    assert res.orders["kind"].tolist()[1] == "liquidation"


def test_gapped_through_both_fills_at_the_open():
    rows = [flat(100.0), flat(100.0), (60.0, 61.0, 59.0, 60.0), flat(60.0)]
    res = both(rows, [3.0] * 4, stop_loss=0.1)
    (liq,) = res.liquidations.itertuples()
    assert liq.trigger_price == 60.0 and liq.gap  # the open, not either level
    assert "stop_loss" not in res.orders["kind"].tolist()


def test_gapped_through_the_stop_only_fills_at_the_open():
    rows = [flat(100.0), flat(100.0), (85.0, 86.0, 84.0, 85.0), flat(85.0)]
    res = both(rows, [3.0] * 4, stop_loss=0.1)
    assert forced(res) == [("02:00", "stop_loss", 85.0)]


@pytest.mark.parametrize("close, path, kind", [
    (103.0, "ohlc-heuristic", "stop_loss"),      # closes up: open → low → high
    (97.0, "ohlc-heuristic", "take_profit"),     # closes down: open → high → low
    (97.0, "pessimistic", "stop_loss"),          # the adverse extreme first: flipped
    (103.0, "pessimistic", "stop_loss"),
])
def test_stop_and_take_profit_in_one_bar_follow_the_path_and_are_ambiguous(close, path, kind):
    rows = [flat(100.0), (100.0, 106.0, 94.0, close), flat(close)]
    res = both(rows, [1.0] * 3, stop_loss=0.05, take_profit=0.05, path=path)
    assert [k for _, k, _ in forced(res)] == [kind]
    assert res.trades["exit_reason"].tolist() == [kind]
    assert res.summary["ambiguous_bars"] == 1
    assert res.equity["ambiguous"].tolist() == [False, True, False]


def test_short_stop_and_take_profit_pessimistic_takes_the_high_first():
    rows = [flat(100.0), (100.0, 106.0, 94.0, 103.0), flat(103.0)]
    heuristic = both(rows, [-1.0] * 3, stop_loss=0.05, take_profit=0.05)
    pessimistic = both(rows, [-1.0] * 3, stop_loss=0.05, take_profit=0.05, path="pessimistic")
    assert [k for _, k, _ in forced(heuristic)] == ["take_profit"]  # low first on an up bar: 95 for the short
    assert [k for _, k, _ in forced(pessimistic)] == ["stop_loss"]


def test_trailing_stop_follows_the_best_price():
    rows = [flat(100.0), (100.0, 120.0, 100.0, 115.0), (115.0, 116.0, 100.0, 105.0), flat(105.0)]
    res = both(rows, [1.0] * 4, trailing_stop=0.1)
    assert forced(res) == [("02:00", "trailing_stop", 108.0)]  # 10 % below the best, 120


def test_forced_exit_stays_closed_until_the_target_changes():
    rows = [flat(100.0), (100.0, 100.0, 94.0, 96.0), flat(96.0), flat(96.0), flat(96.0), flat(96.0)]
    res = both(rows, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0], stop_loss=0.05, rebalance=0.01)
    assert res.equity["position"].tolist()[1:4] == [0.0, 0.0, 0.0]
    assert res.equity["position"].iloc[4] > 0  # the new target of bar 3, at bar 4's open


def test_entry_is_the_average_of_the_fills():
    # 1x at 100, then 2x at 110: the stop is 10 % under the average entry (105), not
    # under the first fill (90) or the last (99)
    rows = [flat(100.0), flat(100.0), flat(110.0), (110.0, 110.0, 94.0, 100.0), flat(100.0)]
    res = both(rows, [1.0, 2.0, 2.0, 2.0, 2.0], stop_loss=0.1)
    buys = res.orders[res.orders["kind"] == "signal"]
    q = buys["quantity"].to_numpy()
    entry = (100.0 * q[0] + 110.0 * q[1]) / q.sum()
    assert forced(res) == [("03:00", "stop_loss", round(entry * 0.9, 6))]


def test_sweep_rows_equal_single_runs_with_stops(tmp_path):
    btc = ROOT / "data" / "BTCUSDT-1h.parquet"
    kw = dict(start="2021-01-01", end="2021-03-31", stop_loss=0.03, take_profit=0.06, trailing_stop=0.05,
              path="pessimistic")
    res = sweep(btc, "sma_cross", {"fast": [5, 10], "slow": [30]}, out=tmp_path / "s", **kw)
    for row in res.table.to_dict("records"):
        one = backtest.run(btc, "sma_cross", {"fast": row["fast"], "slow": row["slow"]}, **kw)
        assert one.summary["ambiguous_bars"] > 0 or one.summary["n_trades"] > 0
        for key, value in one.summary.items():
            assert row[key] == value, key


def test_bound_prints_both_paths(capsys, tmp_path):
    code = main(["run", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--stop-loss", "0.01",
                 "--take-profit", "0.01", "--no-report", "--out", str(tmp_path / "r"), "--bound"])
    out = capsys.readouterr().out
    assert code == 0
    (heuristic,) = [line for line in out.splitlines() if line.strip().startswith("ohlc-heuristic")]
    (pessimistic,) = [line for line in out.splitlines() if line.strip().startswith("pessimistic")]
    assert "range" in out and heuristic.split()[3] != pessimistic.split()[3]  # the final equities differ
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["ambiguous_bars"] > 0
    assert "ambiguous" in pd.read_parquet(tmp_path / "r" / "equity.parquet").columns


@pytest.mark.parametrize("flags, says", [
    (["--stop-loss", "-0.1"], "--stop-loss"),
    (["--stop-loss", "1"], "--stop-loss"),
    (["--take-profit", "1.5"], "--take-profit"),
    (["--trailing-stop", "nan"], "--trailing-stop"),
    (["--path", "optimistic"], "--path optimistic"),
])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bad_stop_flags_are_one_line_and_exit_2(capsys, tmp_path, flags, says, command):
    code = main([command, "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--out", str(tmp_path / "x"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_stops_off_change_nothing():
    bars = backtest.load_ohlcv(str(ROOT / "data" / "BTCUSDT-1h.parquet"), start="2022-01-01", end="2022-02-01")
    a = backtest.run(bars, "sma_cross")
    b = backtest.run(bars, "sma_cross", path="pessimistic")
    assert a.summary == b.summary and a.summary["ambiguous_bars"] == 0
    assert not np.any(a.equity["ambiguous"])


MARK = ROOT / "tests" / "fixtures" / "BTCUSDT_PERP-1h-mark-2021-05.parquet"  # perp mark, 6 bars cut out


def test_mark_file_checks_liquidation_and_counts_missing_bars(capsys, tmp_path):
    flags = ["run", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--strategy", "hold", "--param",
             "exposure=3", "--start", "2021-05-15", "--end", "2021-05-24", "--no-report"]
    assert main([*flags, "--mark", str(MARK), "--out", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["mark_missing_bars"] == 6 and summary["n_liquidations"] >= 1
    # a mark that dips 10 % below the traded lows liquidates earlier than the trade prices would
    bars = backtest.load_ohlcv(ROOT / "data" / "BTCUSDT-1h.parquet", start="2021-05-15", end="2021-05-24")
    low_mark = bars.copy()
    low_mark["low"] *= 0.9
    plain = backtest.run(bars, "hold", {"exposure": 3.0})
    marked = backtest.run(bars, "hold", {"exposure": 3.0}, mark=low_mark)
    assert marked.liquidations["time"].iloc[0] < plain.liquidations["time"].iloc[0]
    first = marked.liquidations.iloc[0]
    t = first["time"]
    assert bars.loc[t, "low"] <= first["fill_price"] <= bars.loc[t, "high"]  # filled where the market traded
    assert marked.summary["mark_missing_bars"] == 0


@pytest.mark.parametrize("extra, says", [
    (["--mark", "nope.parquet"], "nope.parquet"),
    (["--mark", str(MARK), "--start", "2020-01-01", "--end", "2020-02-01"], "overlaps"),
])
def test_bad_mark_is_one_line_and_exit_2(capsys, tmp_path, extra, says):
    code = main(["run", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--out", str(tmp_path / "x"),
                 "--no-report", *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_sweep_with_a_mark_equals_single_runs(tmp_path):
    btc = ROOT / "data" / "BTCUSDT-1h.parquet"
    grid = {"fast": [5], "slow": [30], "leverage": [2.0, 3.0]}
    bars = backtest.load_ohlcv(btc, start="2021-05-15", end="2021-05-24")
    low_mark = bars.copy()
    low_mark["low"] *= 0.7  # liquidates where the traded bars would not
    low_mark["high"] *= 1.3
    plain = sweep(bars, "sma_cross", grid, out=tmp_path / "p")
    for k, (mark, missing) in enumerate(((MARK, 6), (low_mark, 0))):
        res = sweep(bars, "sma_cross", grid, out=tmp_path / f"s{k}", mark=mark)  # a folder each: never replaced
        assert (res.table["mark_missing_bars"] == missing).all()
        for row in res.table.to_dict("records"):
            one = backtest.run(bars, "sma_cross", {k: row[k] for k in grid}, mark=mark)
            for key, value in one.summary.items():
                assert row[key] == value, key
    assert res.table["n_liquidations"].sum() > plain.table["n_liquidations"].sum()
    assert "mark_missing_bars" not in plain.table


@pytest.mark.parametrize("extra, says", [
    (["--mark", "nope.parquet"], "nope.parquet"),
    (["--mark", str(MARK), "--start", "2020-01-01", "--end", "2020-02-01"], "overlaps"),
])
def test_bad_sweep_mark_is_one_line_and_exit_2(capsys, tmp_path, extra, says):
    code = main(["sweep", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--out", str(tmp_path / "x"),
                 "--strategy", "hold", "--grid", "exposure=1,2", *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err


def test_stop_on_liquidation_does_not_stop_the_run_after_a_stop_exit():
    """--stop-on-liquidation stops the run at a liquidation, not at a
    stop-loss exit (spec §5, docs/model-choices.md "Decision"): after the
    stop fills the strategy's next target trades as without the setting."""
    kw = dict(margin="cross-3x", start="2022-05-01", end="2022-07-01", stop_loss=0.02,
              params={"leverage": 2.0})
    on = backtest.run(ROOT / "data" / "BTCUSDT-1h.parquet", "sma_cross", stop_on_liquidation=True, **kw)
    off = backtest.run(ROOT / "data" / "BTCUSDT-1h.parquet", "sma_cross", **kw)
    kinds = on.orders["kind"].tolist()
    assert "stop_loss" in kinds and kinds.index("stop_loss") < len(kinds) - 1  # orders after the first stop
    assert on.summary["n_liquidations"] == 0
    pd.testing.assert_frame_equal(on.orders, off.orders, check_exact=True)
