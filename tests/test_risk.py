"""The risk lab: windows equal single runs, the bootstrap is reproducible
and keeps the bars' shape, the statistics are the formulas, bad input is
one line."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.bootstrap import BlockBootstrap
from backtest.cli import main
from backtest.errors import UserError
from backtest.riskstats import combination_stats, expected_shortfall, wilson
from test_sweep_safety import _StopAfter

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
ETH = ROOT / "data" / "ETHUSDT-1h.parquet"
QUIET = dict(progress=False)


def _check_against_run(row, strategy, params, margin):
    one = backtest.run(BTC, strategy, params, margin=margin, start=row["start"], end=row["end"])
    s = one.summary
    assert pd.Timestamp(s["start"]) == row["start"] and pd.Timestamp(s["end"]) == row["end"]
    assert row["final_equity"] == s["final_equity"]
    assert row["n_liquidations"] == s["n_liquidations"]
    assert row["fees_paid"] == s["fees_paid"]
    assert row["interest_paid"] == s["interest_paid"]
    assert row["max_drawdown"] == s["max_drawdown"]
    assert row["liquidated"] == (s["n_liquidations"] > 0)
    if s["n_liquidations"]:
        assert row["first_liquidation"] == one.liquidations["time"].iloc[0]
    else:
        assert pd.isna(row["first_liquidation"])


def test_windows_paths_equal_backtest_run_over_the_same_span(tmp_path):
    res = backtest.risk(BTC, "hold", {"exposure": [1.0, 3.0, 5.0]}, margin="cross-5x", horizon="30d", every="5d",
                        start="2021-01-01", end="2021-12-31", out=tmp_path / "r", **QUIET)
    table = res.table
    assert len(table) == 3 * table["path"].nunique() and table["path"].nunique() == 68  # starts on days 0, 5, ..., 335
    p = res.stats.set_index("exposure")["p_liquidation"]
    assert p[1.0] == 0 and p[3.0] <= p[5.0] and p[5.0] > 0
    liquidated = table[table["liquidated"]]
    sample = pd.concat([liquidated.iloc[[0, len(liquidated) // 2, -1]], table[~table["liquidated"]].iloc[[0, 40, -1]]])
    for row in sample.to_dict("records"):
        _check_against_run(row, "hold", {"exposure": row["exposure"]}, row["margin"])
    # the last window ends within the data; every window is 30 days of hourly bars at most
    assert (table["end"] - table["start"]).max() <= pd.Timedelta(days=30)
    assert table["end"].max() <= pd.Timestamp("2021-12-31 23:00", tz="UTC")


def test_a_strategy_with_warm_up_computes_its_targets_on_the_window_only(tmp_path):
    res = backtest.risk(BTC, "sma_cross", {"fast": [10], "slow": [50], "leverage": [3.0]}, margin="cross-3x",
                        horizon="20d", every="30d", start="2022-01-01", end="2022-12-31", out=tmp_path / "s", **QUIET)
    assert res.table["n_liquidations"].sum() >= 0 and len(res.table) == 12
    for row in res.table.iloc[[0, 5, 11]].to_dict("records"):
        _check_against_run(row, "sma_cross", {"fast": 10, "slow": 50, "leverage": 3.0}, "cross-3x")


def test_the_done_when_command(tmp_path, capsys):
    out = tmp_path / "done"
    code = main(["risk", "--strategy", "hold", "--grid", "exposure=1,2,3,5", "--margin", "cross-5x", "--horizon",
                 "30d", "--every", "1d", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    stats = pd.DataFrame(json.loads((out / "risk.json").read_text())["stats"]).set_index("exposure")
    assert (stats["n_paths"] > 2900).all()
    p = stats["p_liquidation"]
    assert p[1.0] == 0.0 and p.is_monotonic_increasing and p[5.0] > p[2.0] > 0
    table = pd.read_parquet(out / "risk.parquet")
    assert len(table) == 4 * stats["n_paths"].iloc[0]
    for name in ("frontier.png", "fan.png", "report.pdf", "fan.parquet"):
        assert (out / name).stat().st_size > 1000, name
    assert "P(liq)" in text


def test_wilson_interval_is_the_hand_computed_one():
    # 7 of 100: p = 0.07, z = 1.959964, z² = 3.841459; centre (0.07 + z²/200) / (1 + z²/100) = 0.0859072,
    # half z / (1 + z²/100) · sqrt(0.07·0.93/100 + z²/40000) = 0.0515879: [0.0343193, 0.1374951]
    low, high = wilson(7, 100)
    assert abs(low - 0.0343193) < 1e-6 and abs(high - 0.1374951) < 1e-6
    # 0 of n: the upper end is z² / (n + z²)
    assert wilson(0, 3028) == (0.0, pytest.approx(3.841459 / (3028 + 3.841459), rel=1e-6))
    assert wilson(10, 10)[1] == 1.0


def test_quantiles_shortfall_and_loss_probability():
    equity = np.arange(1.0, 102.0) * 100  # 100 .. 10,100
    rows = pd.DataFrame({"final_equity": equity, "return": equity / 5000 - 1, "liquidated": equity < 1000})
    st = combination_stats(rows, 5000.0)
    assert st["n_paths"] == 101 and st["n_liquidated"] == 9
    assert st["equity_q05"] == 600.0 and st["equity_q50"] == 5100.0 and st["equity_q95"] == 9600.0
    assert st["equity_q25"] == 2600.0 and st["equity_q75"] == 7600.0
    assert st["p_loss"] == 49 / 101  # 100 .. 4,900 are below the capital
    # the worst ceil(5 % of 101) = 6 returns: equity 100 .. 600
    assert st["expected_shortfall_5"] == pytest.approx(np.mean(np.arange(1, 7) * 100 / 5000 - 1))
    assert expected_shortfall(np.array([0.3, -0.2, 0.1])) == -0.2


def test_bootstrap_bars_are_valid_and_keep_the_source_moves():
    bars = backtest.load_ohlcv(BTC)
    boot = BlockBootstrap(bars, 720, 24.0, seed=7, spacing=3600)
    c = bars["close"].to_numpy()
    source = np.mean(np.abs(c[1:] / c[:-1] - 1))
    moves = []
    for k in range(300):
        o, h, lo, cl, _ = boot.path(k)
        assert (lo <= o).all() and (lo <= cl).all() and (o <= h).all() and (cl <= h).all() and (lo > 0).all()
        prev = np.concatenate(([boot.start_price], cl[:-1]))
        moves.append(np.abs(cl / prev - 1))
    assert abs(np.mean(moves) / source - 1) < 0.05
    assert boot.start_price == c[-1] and boot.seconds[0] == bars.index[-1].value // 10**9 + 3600
    # blocks: consecutive source bars except where a new block starts (about one bar in 24)
    idx = boot.indices(3)
    assert 0.02 < np.mean(np.diff(idx) != 1) < 0.07
    assert (boot.indices(3) == idx).all() and not (boot.indices(4) == idx).all()


def _digest(folder):
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in ("risk.parquet", "fan.parquet")}


def test_bootstrap_is_reproducible_whatever_the_chunks_and_seeds_agree(tmp_path):
    common = dict(method="bootstrap", paths=300, horizon="30d", block="24h", margin="cross-5x", **QUIET)
    grid = {"exposure": [2.0, 5.0]}
    a = backtest.risk(BTC, "hold", grid, seed=1, out=tmp_path / "a", **common)
    backtest.risk(BTC, "hold", grid, seed=1, out=tmp_path / "b", chunk_size=7, workers=1, **common)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert json.loads((tmp_path / "a" / "risk.json").read_text())["stats"] == \
        json.loads((tmp_path / "b" / "risk.json").read_text())["stats"]
    c = backtest.risk(BTC, "hold", grid, seed=2, out=tmp_path / "c", **common)
    assert not a.table["final_equity"].equals(c.table["final_equity"])
    for x, y in zip(a.stats.to_dict("records"), c.stats.to_dict("records")):
        assert y["p_liquidation_low"] <= x["p_liquidation"] <= y["p_liquidation_high"]
        assert x["p_liquidation_low"] <= y["p_liquidation"] <= x["p_liquidation_high"]
    assert a.stats["p_liquidation"].iloc[1] > 0.05  # 5x on 30-day paths: something to compare


def test_an_interrupted_risk_run_resumes_to_the_same_result_and_is_never_overwritten_silently(tmp_path, capsys):
    common = dict(method="bootstrap", paths=60, horizon="10d", margin="cross-3x", seed=3, chunk_size=10)
    grid = {"exposure": [1.0, 3.0]}
    straight = backtest.risk(BTC, "hold", grid, out=tmp_path / "a", progress=False, **common)
    with pytest.raises(KeyboardInterrupt):
        backtest.risk(BTC, "hold", grid, out=tmp_path / "b", workers=1, progress=_StopAfter(2), **common)
    assert not (tmp_path / "b" / "risk.parquet").exists() and len(list((tmp_path / "b" / "chunks").glob("*"))) >= 2
    with pytest.raises(UserError, match="--resume|resume"):
        backtest.risk(BTC, "hold", grid, out=tmp_path / "b", progress=False, **common)
    resumed = backtest.risk(BTC, "hold", grid, out=tmp_path / "b", resume=True, progress=False, **common)
    pd.testing.assert_frame_equal(resumed.table, straight.table)
    before = _digest(tmp_path / "b")
    code = main(["risk", "--strategy", "hold", "--grid", "exposure=1,3", "--method", "bootstrap", "--paths", "60",
                 "--horizon", "10d", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and _digest(tmp_path / "b") == before
    # backtest report redraws the pictures and the PDF
    for name in ("frontier.png", "fan.png", "report.pdf"):
        (tmp_path / "b" / name).unlink()
    assert main(["report", str(tmp_path / "b")]) == 0
    for name in ("frontier.png", "fan.png", "report.pdf"):
        assert (tmp_path / "b" / name).stat().st_size > 1000


def test_a_risk_run_begun_before_2026_12_08_resumes_to_the_same_result(tmp_path):
    """Chunks written before the fan samples became one list column hold them as 101 columns (NaN on the paths
    not kept), and their manifest a BLAKE2b fingerprint: such a folder, interrupted, resumes with the new chunks
    beside the old ones to the table, statistics and fan of a straight run."""
    from backtest.risklab import FAN, FAN_COLUMN

    common = dict(method="bootstrap", paths=60, horizon="10d", margin="cross-3x", seed=3, chunk_size=10)
    grid = {"exposure": [1.0, 3.0]}
    straight = backtest.risk(BTC, "hold", grid, out=tmp_path / "a", progress=False, **common)
    out = tmp_path / "b"
    backtest.risk(BTC, "hold", grid, out=out, progress=False, **common)
    parts = sorted((out / "chunks").glob("part-*.parquet"))
    assert len(parts) == 6
    for part in parts[:3]:  # the old layout: a column a step
        chunk = pd.read_parquet(part)
        fans = chunk.pop(FAN_COLUMN)
        wide = np.full((len(chunk), len(FAN)), np.nan)
        for i, f in enumerate(fans):
            if f is not None:
                wide[i] = f
        pd.concat([chunk, pd.DataFrame(wide, columns=FAN)], axis=1).to_parquet(part, index=False)
    for part in parts[3:5]:
        part.unlink()
    manifest = json.loads((out / "risk.json").read_text())
    bars = backtest.load_ohlcv(BTC)
    old = hashlib.blake2b(digest_size=16)
    old.update(bars.index.asi8.tobytes())
    for col in ("open", "high", "low", "close"):
        old.update(bars[col].to_numpy(np.float64).tobytes())
    manifest["bars"][3] = old.hexdigest()
    for key in ("id", "chunk_size", "stats"):
        manifest.pop(key)
    manifest["id"] = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]
    manifest["chunk_size"] = 10
    (out / "risk.json").write_text(json.dumps(manifest))
    for name in ("risk.parquet", "fan.parquet"):
        (out / name).unlink()
    resumed = backtest.risk(BTC, "hold", grid, out=out, resume=True, progress=False, **common)
    pd.testing.assert_frame_equal(resumed.table, straight.table, check_exact=True)
    pd.testing.assert_frame_equal(resumed.stats, straight.stats, check_exact=True)
    pd.testing.assert_frame_equal(resumed.fan, straight.fan, check_exact=True)
    assert FAN_COLUMN in pd.read_parquet(parts[3]).columns and FAN[0] in pd.read_parquet(parts[0]).columns


@pytest.mark.parametrize("flags, says", [
    (["--horizon", "0d"], "--horizon 0d"), (["--every", "abc"], "--every abc"),
    (["--horizon", "9999d"], "longer than the data"), (["--method", "bootstrap", "--paths", "0"], "--paths 0"),
    (["--method", "bootstrap", "--block", "0h"], "--block 0h"), (["--method", "bootstrap", "--block", "10m"], "--block"),
    (["--method", "foo"], "--method foo"), (["--data", str(BTC), "--data", str(ETH)], "one file"),
    (["--method", "bootstrap", "--mark", str(BTC)], "--mark"), (["--param", "exposure=2"], "--grid"),
    (["--grid", "nope=1,2"], "nope"), (["--seed", "-1", "--method", "bootstrap"], "--seed -1"),
])
def test_bad_risk_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, says):
    code = main(["risk", "--strategy", "hold", "--grid", "exposure=1,2", "--start", "2021-01-01", "--end",
                 "2021-03-31", "--out", str(tmp_path / "x"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "x").exists()


def test_bad_risk_arguments_from_python():
    with pytest.raises(UserError, match="horizon=0d"):
        backtest.risk(BTC, "hold", horizon="0d", **QUIET)
    with pytest.raises(TypeError, match="paths"):
        backtest.risk(BTC, "hold", method="bootstrap", paths="10", **QUIET)
    with pytest.raises(TypeError, match="nope"):
        backtest.risk(BTC, "hold", nope=1, **QUIET)
    with pytest.raises(ValueError, match="method"):
        backtest.risk(BTC, "hold", method="windowz", **QUIET)
    # the other method's arguments, given from Python, are refused as the CLI refuses its flags (even at their
    # defaults' values: they are given)
    with pytest.raises(UserError, match="every: a method windows flag; this run is method bootstrap"):
        backtest.risk(BTC, "hold", method="bootstrap", every="3d", **QUIET)
    with pytest.raises(UserError, match="seed: a method bootstrap flag"):
        backtest.risk(BTC, "hold", seed=0, **QUIET)


def test_a_window_per_start_bar_and_no_stride_under_a_bar(tmp_path, capsys):
    """(helper-75) Two stride starts in one gap of the data both started at the bar after it: the same path
    counted twice (122 times on the bundled hourly bars with ``--every 1h``), and ``--every 30m`` on hourly
    bars counted every window twice, its confidence interval falsely narrow."""
    from backtest.spans import windows

    hour, length = 3600, 5 * 3600
    seconds = np.array([0, 1, 2, 3, 10, 11, 12, 13, 14, 15, 30, 31, 32], dtype=np.int64) * hour
    starts, ends = windows(seconds, length, hour)
    want = {}  # written from the rule: each stride start's first bar at or after it; a bar's nearest start wins
    for t in range(int(seconds[0]), int(seconds[-1]) + hour - length + 1, hour):
        s, e = int(np.searchsorted(seconds, t)), int(np.searchsorted(seconds, t + length))
        if e - s >= 2:
            want[s] = e
    assert list(zip(starts.tolist(), ends.tolist())) == sorted(want.items())
    assert (4, 9) in want.items()  # (the bar after the gap at 10 h: its window 10-14 h, not the 10-11 h of 6 h's start)
    assert len(set(starts.tolist())) == len(starts) < len(range(0, 33 * hour - length + 1, hour))
    code = main(["risk", "--data", str(BTC), "--start", "2024-01-01", "--end", "2024-03-01", "--strategy", "hold",
                 "--horizon", "7d", "--every", "30m", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: --every 30m: shorter than one bar (3600 s)"]
    assert not (tmp_path / "r").exists()


def test_the_default_stride_on_bars_coarser_than_a_day_is_one_bar(tmp_path):
    """(helper-76) On weekly bars the default ``--every`` of a day was refused as shorter than a bar, naming a
    flag the user never gave; a stride given that short still is."""
    daily = backtest.load_ohlcv(BTC, start="2021-01-01", end="2022-12-31")
    weekly = daily.resample("7D").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                       "volume": "sum"}).dropna()
    res = backtest.risk(weekly, "hold", {"exposure": [1.0]}, horizon="56d", symbol="BTCUSDT", out=tmp_path / "r",
                        progress=False)
    assert res.table["path"].nunique() == len(weekly) - 8 + 1  # (a window a bar: every start with 8 bars after)
    with pytest.raises(UserError, match="every=3d: shorter than one bar"):
        backtest.risk(weekly, "hold", {"exposure": [1.0]}, horizon="56d", every="3d", symbol="BTCUSDT",
                      out=tmp_path / "s", progress=False)


def test_a_resumed_risk_run_says_what_it_ran(tmp_path, capsys):
    """(helper-75) ``--resume`` of a finished run printed "55 path runs in 1.1 s" as if it had run them."""
    argv = ["risk", "--data", str(BTC), "--start", "2024-01-01", "--end", "2024-03-01", "--strategy", "hold",
            "--grid", "exposure=1,2", "--horizon", "7d", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    n = len(pd.read_parquet(tmp_path / "r" / "risk.parquet"))
    assert f"\n{n:,} path runs in " in first and "finished before" not in first
    assert main([*argv, "--resume"]) == 0
    again = capsys.readouterr().out
    assert "\n0 path runs in " in again and f" s ({n:,} finished before: --resume)\n" in again
