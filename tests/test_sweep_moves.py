"""The trader's moves as sweep axes (issue 14 item 6; docs/model-choices.md
"Transfers and a reserve"): ``reserve``, ``top_up_ml`` and ``keep_ml`` in a
grid give, row for row, what ``backtest.run`` gives with the same settings;
bad axis values are one line before anything runs."""
import json
from pathlib import Path

import pandas as pd
import pytest

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from backtest.cli import main
from backtest.errors import UserError
from backtest.grid import iter_combinations
from backtest.strategy import load_strategy
from backtest.sweep import parse_grid, sweep

ROOT = Path(__file__).resolve().parents[1]
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
MARCH = dict(margin="cross-3x", start="2020-03-01", end="2020-03-20")
COMPARED = ("final_equity", "total_return", "max_drawdown", "sharpe", "n_liquidations", "n_orders", "interest_paid",
            "fees_paid")
MOVED = ("reserve_left", "n_top_ups", "topped_up", "profit")


def test_each_row_is_the_run_with_those_moves(tmp_path):
    grid = {"exposure": [3.0], "reserve": [0.0, 5_000.0, 20_000.0], "top_up_ml": [1.4, 1.5], "keep_ml": [0.0, 1.25]}
    res = sweep(str(BTC), "hold", grid, out=tmp_path / "s", progress=False, **MARCH)
    t = res.table
    assert len(t) == 12
    for _, row in t.iterrows():
        reserve, top, keep = row["reserve"], row["top_up_ml"], row["keep_ml"]
        one = backtest.run(str(BTC), "hold", {"exposure": 3.0}, reserve=reserve,
                           top_up=f"ml={top}" if reserve else None, keep_ml=keep or None, **MARCH)
        s = one.summary
        for k in COMPARED:
            assert row[k] == pytest.approx(s[k], rel=1e-12, abs=1e-12), (k, reserve, top, keep)
        for k in MOVED:
            want = s.get(k, 0.0 if k != "profit" else s["final_equity"] - 10_000.0)
            assert row[k] == pytest.approx(want, rel=1e-12, abs=1e-9), (k, reserve, top, keep)
    # the frontier of the issue: 20,000 kept aside survives March 2020 at 3x, 5,000 does not, nor does nothing
    by = t.set_index(["reserve", "top_up_ml", "keep_ml"])
    assert by.loc[(20_000.0, 1.5, 0.0), "n_liquidations"] == 0
    assert by.loc[(5_000.0, 1.5, 0.0), "n_liquidations"] == 1
    assert by.loc[(0.0, 1.5, 0.0), "n_liquidations"] == 2
    assert by.loc[(0.0, 1.5, 1.25), "n_liquidations"] == 0  # the buffer alone, at the cost of its sells


def test_the_strategys_rule_does_not_see_the_move_axes():
    strat = load_strategy("sma_cross")
    grid = {"fast": [10, 60], "slow": [50], "reserve": [0.0, 1_000.0]}
    skipped = [0]
    combos = list(iter_combinations(strat, grid, ["cross-3x"], skipped))
    assert skipped[0] == 2 and [c["reserve"] for c in combos] == [0.0, 1_000.0]  # fast 60 ≥ slow 50: both skipped


def test_the_cli_sweeps_the_moves_and_keeps_their_equity(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["sweep", "--strategy", "hold", "--grid", "exposure=3", "--grid", "reserve=0,20000",
                 "--grid", "keep_ml=0,1.25", "--start", "2020-03-01", "--end", "2020-03-20", "--out", str(out),
                 "--keep-equity", "4", "--rank", "final_equity"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "20,000" in printed and "2e+04" not in printed  # (the best rows' table: a reserve as an amount)
    table = pd.read_parquet(out / "sweep.parquet")
    assert sorted(table["reserve"]) == [0.0, 0.0, 20_000.0, 20_000.0]
    ranked = table.sort_values("final_equity", ascending=False)
    best = pd.read_parquet(out / "equity" / "rank-001.parquet")
    assert best["equity"].iloc[-1] == pytest.approx(ranked["final_equity"].iloc[0], rel=1e-12)
    assert "reserve" in best  # kept with its reserve, as the row was run
    assert json.loads((out / "sweep.json").read_text())


@pytest.mark.parametrize("argv, message", [
    (["--grid", "keep_ml=1.05"], "--keep-ml 1.05: must lie between the liquidation level"),
    (["--grid", "reserve=100", "--grid", "top_up_ml=1.2"], "--top-up ml=1.2: must be above the margin-call level"),
    (["--grid", "reserve=-5"], "--grid reserve=-5.0: a reserve is an amount ≥ 0"),
    (["--grid", "reserve=100", "--stop-loss", "0.05"], "--reserve: not combined with --stop-loss yet"),
])
def test_bad_move_axes_are_one_line(tmp_path, capsys, argv, message):
    code = main(["sweep", "--strategy", "hold", "--grid", "exposure=3", "--start", "2020-03-01", "--end",
                 "2020-03-05", "--out", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err, err


def test_move_axes_are_refused_where_not_swept(tmp_path, capsys):
    code = main(["sweep", "--strategy", "hold", "--grid", "exposure=3", "--grid", "reserve=0,1000",
                 "--walk-forward", "train=60d,test=30d", "--start", "2020-01-01", "--end", "2020-06-01",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "a move axis is swept by backtest sweep and risk only" in err and "\n" not in err
    with pytest.raises(UserError, match="both a parameter of the strategy and a move axis"):
        parse_grid(["reserve=1,2"], {"reserve": 1.0})


def _trailing(bars, fast=10):
    """hold 3x with the strategy's own trailing stop."""
    import numpy as np

    t = np.full(len(bars), np.nan)
    t[0] = 3.0
    return {"target": t, "trailing_stop": 0.02}


def test_a_strategys_own_stops_are_refused_with_moves_as_in_run(tmp_path):
    with pytest.raises(UserError, match="not combined with trailing_stop yet"):
        sweep(str(BTC), _trailing, {"fast": [10], "reserve": [1_000.0]}, out=tmp_path / "s", progress=False,
              **MARCH)
    with pytest.raises(UserError, match="not combined with trailing_stop yet"):
        backtest.run_multi([BTC, ROOT / "data" / "ETHUSDT-1h.parquet"], _trailing, margin="isolated-3x",
                           reserve={"BTCUSDT": 1_000.0}, start=MARCH["start"], end=MARCH["end"])


def test_sweep_columns_do_not_depend_on_the_grid_and_none_is_no_reserve(tmp_path):
    a = sweep(str(BTC), "hold", {"exposure": [3.0], "reserve": [None, 1_000.0]}, out=tmp_path / "a",
              progress=False, **MARCH).table
    b = sweep(str(BTC), "hold", {"exposure": [3.0], "keep_ml": [1.25]}, out=tmp_path / "b", progress=False,
              **MARCH).table
    assert "metric_reserve" not in a and "reserve" not in b
    assert [c for c in a.columns if c != "reserve"] == [c for c in b.columns if c != "keep_ml"]
    assert a["n_top_ups"].iloc[0] == 0 and a["reserve_left"].iloc[0] == 0.0
    with pytest.raises(UserError, match="a reserve is an amount ≥ 0"):
        sweep(str(BTC), "hold", {"reserve": ["lots"]}, out=tmp_path / "c", progress=False, **MARCH)


def test_a_default_sweep_records_what_it_always_did(tmp_path):
    """(its id unchanged: a sweep folder written before resumes).  Since 2026-12-08 the bars' fingerprint is
    SHA-256; with the BLAKE2b one of before in its place (what ``bars_entry`` takes again for a folder
    written before), the manifest gives the id it always did."""
    import hashlib

    import numpy as np

    sweep(str(BTC), "sma_cross", {"fast": [5, 10]}, start="2024-01-01", end="2024-02-01", out=tmp_path / "s",
          progress=False)
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert "auto_borrow" not in manifest["settings"]
    bars = backtest.load_ohlcv(BTC, start="2024-01-01", end="2024-02-01")
    data = b"".join([bars.index.asi8.tobytes(), *(bars[c].to_numpy(np.float64).tobytes()
                                                  for c in ("open", "high", "low", "close"))])
    assert manifest["bars"][3] == hashlib.sha256(data).hexdigest()
    manifest["bars"][3] = hashlib.blake2b(data, digest_size=16).hexdigest()
    legacy = {k: v for k, v in manifest.items() if k not in ("id", "chunk_size")}
    assert hashlib.sha256(json.dumps(legacy, sort_keys=True, default=str).encode()).hexdigest()[:16] == (
        "c96e9501b713043e")  # the id 2a9e3a7 gave this sweep


def test_backtest_sweep_is_the_function(tmp_path):
    """``backtest.sweep(...)`` is the surface's call, in a fresh interpreter and after ``backtest.sweep`` (the
    module) was imported."""
    import subprocess
    import sys

    grid = {"exposure": [1.0, 2.0]}
    a = backtest.sweep(str(BTC), "hold", grid, out=tmp_path / "a", progress=False, **MARCH).table
    code = ("import backtest, sys; r = backtest.sweep(sys.argv[1], 'hold', {'exposure': [1.0, 2.0]}, "
            "out=sys.argv[2], progress=False, margin='cross-3x', start='2020-03-01', end='2020-03-20'); "
            "print(len(r.table))")
    out = subprocess.run([sys.executable, "-c", code, str(BTC), str(tmp_path / "b")], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "2" and len(a) == 2 and "sweep" in backtest.__all__


def test_risk_takes_the_move_axes_path_for_path_as_run(tmp_path):
    """P(liquidation) by reserve over 10-day windows of March 2020; each path is the run of that window."""
    r = backtest.risk(str(BTC), "hold", {"exposure": [3.0], "reserve": [0.0, 5_000.0, 20_000.0]}, margin="cross-3x",
                      method="windows", horizon="10d", every="5d", start="2020-02-25", end="2020-03-31",
                      out=tmp_path / "r", progress=False)
    p = r.stats.set_index("reserve")["p_liquidation"]
    assert p[0.0] == pytest.approx(2 / 6) and p[5_000.0] == pytest.approx(2 / 6) and p[20_000.0] == 0.0
    t = r.table
    for _, row in t[t["path"] == 2].iterrows():
        one = backtest.run(str(BTC), "hold", {"exposure": 3.0}, margin="cross-3x", start=row["start"].isoformat(),
                           end=row["end"].isoformat(), reserve=row["reserve"])
        assert row["final_equity"] == pytest.approx(one.summary["final_equity"], rel=1e-12)
        assert row["n_liquidations"] == one.summary["n_liquidations"]
        assert row["reserve_left"] == pytest.approx(one.summary.get("reserve_left", 0.0), abs=1e-9)
