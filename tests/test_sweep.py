"""Sweeps: grids, rows equal to single runs, resume after a kill, Dask."""
from pathlib import Path

import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.errors import UserError
from backtest.strategy import load_strategy
from backtest.sweep import Progress, combinations, parse_grid, sweep

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
RANGE = {"start": "2020-01-01", "end": "2020-12-31"}
GRID = {"fast": [5, 10, 30], "slow": [20, 60], "leverage": [1.0, 3.0, 5.0]}


def test_parse_grid_ranges_include_stop_and_take_the_default_type():
    defaults = load_strategy("sma_cross").params
    grid = parse_grid(["fast=5:50:5", "slow=20,200", "leverage=1:2:0.5", "margin=cross-3x,isolated-10x"], defaults)
    assert grid["fast"] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert grid["slow"] == [20, 200]
    assert grid["leverage"] == [1.0, 1.5, 2.0]
    assert grid["margin"] == ["cross-3x", "isolated-10x"]


@pytest.mark.parametrize("spec, says", [
    ("fats=1:3:1", "fats"), ("fast=a:b:1", "fast"), ("fast=10:5:1", "START"), ("fast", "KEY="),
    ("margin=cross-99x", "cross-99x"), ("fast=5,,10", "empty value"), ("fast=5,10,", "empty value"),
    ("margin=cross-3x,,cross-5x", "empty value"),
])
def test_bad_grid_is_a_user_error(spec, says):
    with pytest.raises(UserError, match=says):
        parse_grid([spec], load_strategy("sma_cross").params)


def test_invalid_combinations_are_skipped_and_counted():
    combos, skipped = combinations(load_strategy("sma_cross"), {"fast": [10, 50], "slow": [20, 50]}, ["cross-3x"])
    assert [(c["fast"], c["slow"]) for c in combos] == [(10, 20), (10, 50)]
    assert skipped == 2


def test_rows_equal_single_runs_including_liquidated_ones(tmp_path):
    res = sweep(BTC, "sma_cross", GRID, out=tmp_path / "s", margin=["cross-3x", "isolated-10x"], **RANGE)
    table = res.table
    assert (len(table), res.skipped) == (3 * 2 * 3 * 2 - 6, 6)  # fast=30 > slow=20 is skipped
    liquidated = table[table["n_liquidations"] > 0]
    assert len(liquidated) > 0
    picks = pd.concat([liquidated.head(3), table[table["n_liquidations"] == 0].head(2)])
    for row in picks.to_dict("records"):
        one = backtest.run(BTC, "sma_cross", {k: row[k] for k in ("fast", "slow", "leverage")},
                           margin=row["margin"], **RANGE)
        for key, value in one.summary.items():
            assert row[key] == value, key
    assert pd.read_parquet(tmp_path / "s" / "sweep.parquet").equals(table)


def test_rsi_revert_sweeps_through_its_hooks_with_rows_equal_single_runs(tmp_path):
    """rsi_revert's RSI is computed once per period (indicator) and its
    targets in compiled code (fill_targets): every row is the single run's."""
    grid = {"period": [7, 14], "lower": [20.0, 30.0, 50.0], "upper": [70.0], "leverage": [2.0]}
    res = sweep(BTC, "rsi_revert", grid, out=tmp_path / "s", **RANGE)
    assert (len(res.table), res.skipped) == (4, 2)  # lower=50 is not below 50: skipped and counted
    for row in res.table.to_dict("records"):
        one = backtest.run(BTC, "rsi_revert", {k: row[k] for k in ("period", "lower", "upper", "leverage")},
                           **RANGE)
        assert one.summary["n_orders"] > 20  # it trades: the targets matter
        for key, value in one.summary.items():
            assert row[key] == value, key


def test_rsi_revert_targets_follow_its_rule():
    """Long below ``lower``, short above ``upper``, out when RSI crosses 50:
    the rule restated in plain Python on the same RSI."""
    import numpy as np

    from backtest.data import load_ohlcv
    from backtest.indicators import rsi

    bars = load_ohlcv(BTC, **RANGE)
    got = load_strategy("rsi_revert").module.targets(bars, 10, 25.0, 75.0, 1.5)
    want, pos = [], 0.0
    for v in rsi(bars["close"].to_numpy(np.float64), 10):
        if v != v:
            want.append(0.0)
            continue
        if pos == 0.0:
            pos = 1.5 if v < 25.0 else (-1.5 if v > 75.0 else 0.0)
        elif (pos > 0 and v >= 50.0) or (pos < 0 and v <= 50.0):
            pos = 0.0
        want.append(pos)
    assert np.array_equal(got, np.array(want)) and np.count_nonzero(np.diff(got)) > 50


class _KillAfter(Progress):
    def __init__(self, chunks):
        super().__init__(1)
        self.left = chunks

    def advance(self, n):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_killed_sweep_resumes_to_the_same_table(tmp_path):
    straight = sweep(BTC, "sma_cross", GRID, out=tmp_path / "a", chunk_size=2, **RANGE).table
    # the table is the chunks as saved (kept in memory, not read back): the same frame as the files give
    files = sorted((tmp_path / "a" / "chunks").glob("part-*.parquet"))
    pd.testing.assert_frame_equal(straight, pd.concat([pd.read_parquet(f) for f in files], ignore_index=True),
                                  check_exact=True)
    with pytest.raises(KeyboardInterrupt):
        sweep(BTC, "sma_cross", GRID, out=tmp_path / "b", chunk_size=2, workers=1, progress=_KillAfter(3), **RANGE)
    saved = sorted((tmp_path / "b" / "chunks").glob("part-*.parquet"))
    assert 3 <= len(saved) < 9 and not (tmp_path / "b" / "sweep.parquet").exists()
    resumed = sweep(BTC, "sma_cross", GRID, out=tmp_path / "b", chunk_size=2, resume=True, **RANGE)
    pd.testing.assert_frame_equal(resumed.table, straight)
    with pytest.raises(UserError, match="different sweep"):
        sweep(BTC, "sma_cross", {**GRID, "fast": [5]}, out=tmp_path / "b", chunk_size=2, resume=True, **RANGE)


def test_dask_local_cluster_gives_the_local_result(tmp_path):
    pytest.importorskip("dask.distributed")
    grid = {"fast": [5, 10], "slow": [20, 60], "leverage": [2.0, 4.0]}
    local = sweep(BTC, "sma_cross", grid, out=tmp_path / "l", chunk_size=3, **RANGE).table
    remote = sweep(BTC, "sma_cross", grid, out=tmp_path / "d", chunk_size=3, scheduler="local", **RANGE).table
    pd.testing.assert_frame_equal(local, remote)


def test_sweep_cli_writes_table_heatmap_and_leverage_plot(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["sweep", "--data", str(BTC), "--start", "2021-01-01", "--end", "2021-06-30", "--grid", "fast=5:15:5",
                 "--grid", "slow=20,40", "--grid", "leverage=1,3", "--out", str(out), "--rank", "total_return",
                 "--keep-equity", "2"])
    text = capsys.readouterr().out
    assert code == 0
    assert "12 combinations (0 skipped" in text and "total_return" in text
    for name in ("sweep.parquet", "heatmap.png", "leverage.png", "equity/rank-001.parquet", "equity/rank-002.parquet"):
        assert (out / name).stat().st_size > 0, name
    best = pd.read_parquet(out / "sweep.parquet").sort_values("total_return", ascending=False).iloc[0]
    kept = pd.read_parquet(out / "equity" / "rank-001.parquet")
    assert kept["equity"].iloc[-1] == best["final_equity"]


@pytest.mark.parametrize("flags, says", [
    (["--grid", "nope=1,2"], "nope"), (["--param", "fast=3"], "--grid"), (["--rank", "wat"], "wat"),
    (["--chunk-size", "0"], "--chunk-size"), (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
])
def test_sweep_bad_flags(tmp_path, capsys, monkeypatch, flags, says):
    import backtest.sweep as sweep_module

    monkeypatch.setattr(sweep_module, "CONNECT_TIMEOUT", "2s")  # (a refused address is retried until then)
    code = main(["sweep", "--data", str(BTC), "--start", "2021-01-01", "--end", "2021-01-31", "--grid", "fast=5,10",
                 "--out", str(tmp_path / "x"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err


def test_resume_refuses_other_data_and_keeps_its_chunk_size(tmp_path):
    frame = backtest.load_ohlcv(BTC, **RANGE)
    sweep(frame, "sma_cross", GRID, out=tmp_path / "s", chunk_size=4)
    other = frame.copy()
    other[["open", "high", "low", "close"]] *= 1.5  # another market, same range
    with pytest.raises(UserError, match="different sweep"):
        sweep(other, "sma_cross", GRID, out=tmp_path / "s", resume=True)
    for part in sorted((tmp_path / "s" / "chunks").glob("part-*.parquet"))[:2]:
        part.unlink()
    again = sweep(frame, "sma_cross", GRID, out=tmp_path / "s", resume=True, workers=1)  # default size differs
    assert len(again.table) == 15  # 18 less fast=30 > slow=20
    pd.testing.assert_frame_equal(again.table, sweep(frame, "sma_cross", GRID, out=tmp_path / "t").table)


def test_a_sweep_begun_with_the_old_blake2b_fingerprint_resumes(tmp_path):
    """A folder written before the fingerprint became SHA-256 (its manifest holds BLAKE2b's 32 hex digits
    and an id made with them) resumes: the legacy hash is taken again for it, and only for it."""
    import hashlib
    import json

    import numpy as np

    frame = backtest.load_ohlcv(BTC, **RANGE)
    out = tmp_path / "s"
    straight = sweep(frame, "sma_cross", GRID, out=out, chunk_size=4).table
    manifest = json.loads((out / "sweep.json").read_text())
    assert len(manifest["bars"][3]) == 64  # SHA-256 now
    old = hashlib.blake2b(digest_size=16)
    old.update(frame.index.asi8.tobytes())
    for col in ("open", "high", "low", "close"):
        old.update(frame[col].to_numpy(np.float64).tobytes())
    manifest["bars"][3] = old.hexdigest()
    del manifest["id"], manifest["chunk_size"]
    manifest["id"] = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]
    manifest["chunk_size"] = 4
    (out / "sweep.json").write_text(json.dumps(manifest))
    (out / "sweep.parquet").unlink()
    for part in sorted((out / "chunks").glob("part-*.parquet"))[1:]:
        part.unlink()
    resumed = sweep(frame, "sma_cross", GRID, out=out, resume=True)
    pd.testing.assert_frame_equal(resumed.table, straight, check_exact=True)
    assert json.loads((out / "sweep.json").read_text())["id"] == manifest["id"]
    other = frame.copy()
    other[["open", "high", "low", "close"]] *= 1.01  # the same span, other prices: the legacy hash tells them apart too
    with pytest.raises(UserError, match="different sweep"):
        sweep(other, "sma_cross", GRID, out=out, resume=True)


def test_chunk_files_are_the_bytes_pandas_writes(tmp_path):
    """``_atomic_parquet`` writes through pyarrow itself: the same file as ``DataFrame.to_parquet``."""
    res = sweep(BTC, "sma_cross", {"fast": [5, 10], "slow": [20], "leverage": [1.0, 3.0]}, out=tmp_path / "s",
                **RANGE)
    res.table.to_parquet(tmp_path / "pandas.parquet", index=False)
    assert (tmp_path / "s" / "sweep.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
    assert (tmp_path / "s" / "chunks" / "part-00000.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()


def test_chunk_writes_hide_the_time_zone_warning_pandas_hides(tmp_path, monkeypatch):
    """pyarrow < 26 warns on time-zone-aware columns; ``to_parquet`` hides it, and so does the chunk writer
    (the warning raised here as such a pyarrow would, under an error filter)."""
    import types
    import warnings

    import pyarrow as pa

    import backtest.sweep as sweep_module

    def from_pandas(df, **kw):
        warnings.warn("Series.values returning an ndarray that drops timezone information is deprecated",
                      DeprecationWarning)
        return pa.Table.from_pandas(df, **kw)

    monkeypatch.setattr(sweep_module, "pa", types.SimpleNamespace(Table=types.SimpleNamespace(from_pandas=from_pandas)))
    frame = pd.DataFrame({"x": [1.0], "start": pd.to_datetime([0], unit="s", utc=True)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep_module._atomic_parquet(frame, tmp_path / "t.parquet")
        with pytest.raises(DeprecationWarning):  # (the stand-in does warn)
            from_pandas(frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)


@pytest.mark.parametrize("spec", ["leverage=inf", "leverage=1,nan", "leverage=1:inf:1"])
def test_grid_values_must_be_finite(spec):
    with pytest.raises(UserError, match="leverage"):
        parse_grid([spec], load_strategy("sma_cross").params)


def test_cli_sweep_on_a_local_dask_cluster(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    code = main(["sweep", "--data", str(BTC), "--start", "2021-01-01", "--end", "2021-02-28", "--grid", "fast=5,10",
                 "--grid", "slow=30", "--scheduler", "local", "--out", str(tmp_path / "d")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(pd.read_parquet(tmp_path / "d" / "sweep.parquet")) == 2


def test_bad_heatmap_is_refused_before_the_sweep_runs(tmp_path, capsys):
    code = main(["sweep", "--data", str(BTC), "--start", "2021-01-01", "--end", "2021-01-31", "--grid", "fast=5,10",
                 "--heatmap", "fast,nope", "--out", str(tmp_path / "h")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--heatmap" in err
    assert not (tmp_path / "h" / "chunks").exists()


@pytest.mark.parametrize("repay", [dict(auto_repay=False), dict(auto_repay=False, repay_on_flat=True)])
def test_repay_settings_and_margin_file_pass_through(tmp_path, repay):
    example = ROOT / "data" / "profiles-example.toml"
    grid = {"fast": [5, 10], "slow": [60], "leverage": [3.0]}
    res = sweep(BTC, "sma_cross", grid, out=tmp_path / "s", margin_file=example, **repay, **RANGE)
    table = res.table
    assert sorted(set(table["margin"])) == ["cautious-4x", "cheap-liquidation", "pro-8x"]  # the file's profiles
    for row in table.to_dict("records"):
        one = backtest.run(BTC, "sma_cross", {k: row[k] for k in ("fast", "slow", "leverage")}, margin=row["margin"],
                           margin_file=example, **repay, **RANGE)
        for key, value in one.summary.items():
            if key not in ("interest_while_flat", "fees_while_flat"):  # run-only keys (they need the trades)
                assert row[key] == value, key
    default = sweep(BTC, "sma_cross", grid, out=tmp_path / "d", margin="cautious-4x", margin_file=example,
                    **RANGE).table
    assert (default["interest_paid"] != table[table["margin"] == "cautious-4x"]["interest_paid"].values).any()


def test_a_sweep_counts_the_trades_a_run_lists_with_auto_repay_off(tmp_path):
    """Base interest left running while flat (auto-repay off) moves the position with no fill: no trade, so the
    fill that grows it opens one. A sweep's kernel counts trades as trades.csv lists them (it counted 148 here)."""
    kw = dict(margin="cross-3x", auto_repay=False, start="2024-01-01")
    one = backtest.run(BTC, "rsi_revert", {"leverage": 3}, **kw)
    row = sweep(BTC, "rsi_revert", {"leverage": [3.0]}, out=tmp_path / "s", progress=False, **kw).table.iloc[0]
    assert row["n_trades"] == one.summary["n_trades"] == len(one.trades) == 304


def test_a_fill_of_nothing_opens_no_trade_in_the_table_or_the_count():
    """A fill of quantity 0 that turns a drift's sign (base interest owed while flat; float noise of netting)
    opens no trade: trades.csv's walk and the kernels' count (intrabar.trade_step) take one rule, so the
    trade is the buy's, at bar 2 (the walk opened it at the fill of nothing, bar 1, before)."""
    import numpy as np

    from backtest.intrabar import trade_step
    from backtest.records import SIGNAL, order_dt
    from backtest.trades import trip_walk

    orders = np.zeros(2, order_dt)
    for k, (bar, q, before, after) in enumerate([(1, 0.0, -1e-9, 1e-9), (2, 1.0, 1e-9, 1.0 + 1e-9)]):
        for field, value in zip(("bar", "side", "kind", "quantity", "price", "position_before", "position"),
                                (bar, 1, SIGNAL, q, 100.0, before, after)):
            orders[field][k] = value
    times = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    position = np.array([-1e-9, 1e-9, 1.0 + 1e-9, 1.0 + 1e-9])
    for fills, entries in ((orders[:1], []), (orders, [2])):
        table = trip_walk(fills, times, np.full(4, 100.0), position, np.zeros(4), "BTCUSDT").table
        count, is_open = 0, False
        for o in fills:
            opens, is_open = trade_step(is_open, o["position_before"], o["position"], o["quantity"])
            count += opens
        assert table.shape[1] == count == len(entries)
        assert table[0].tolist() == entries  # (row 0: the entry bar)


def test_a_parameter_named_like_a_metric_keeps_its_column(tmp_path):
    """hold's exposure is also a summary metric (time in the market): the
    grid axis keeps its name and values, the metric moves to metric_exposure."""
    res = sweep(BTC, "hold", {"exposure": [1.0, 4.0]}, out=tmp_path / "s", margin="cross-5x", **RANGE)
    table = res.table
    assert table["exposure"].tolist() == [1.0, 4.0]
    single = backtest.run(BTC, strategy="hold", params={"exposure": 4.0}, margin="cross-5x", **RANGE)
    assert table["metric_exposure"].iloc[1] == single.summary["exposure"]
    assert table["final_equity"].iloc[1] == single.summary["final_equity"]


def test_a_write_off_counts_apart_in_a_sweep_row_as_in_run(tmp_path):
    # long 3x, then flat with the quote loan left running (auto-repay off); a rate spike at 06:00
    # makes one hour's interest exceed the cash: nothing to sell, the debt is written off
    strat = tmp_path / "spike.py"
    strat.write_text("import numpy as np\nPARAMS = {'x': 3.0}\n\n\ndef targets(bars, x):\n"
                     "    t = np.full(len(bars), np.nan)\n    t[0] = x\n    t[2] = 0.0\n    return t\n")
    rates = tmp_path / "rates.csv"
    rates.write_text("timestamp,asset,daily_rate\n2023-12-31 00:00,USDT,0.0\n2024-01-01 06:00,USDT,1000.0\n")
    idx = pd.date_range("2024-01-01", periods=12, freq="1h", tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": 100.0, "high": 100.0, "low": 100.0, "close": 100.0, "volume": 1.0}, index=idx)
    kw = dict(symbol="BTCUSDT", margin="cross-3x", auto_repay=False, rates={"BTC": 0.0}, rate_history=rates, fee=0.0)
    one = backtest.run(bars, str(strat), **kw)
    assert (one.summary["n_liquidations"], one.summary["n_write_offs"]) == (0, 1)
    assert one.orders["kind"].tolist() == ["signal", "signal", "write_off"] and one.liquidations.empty
    row = sweep(bars, str(strat), {"x": [3.0]}, out=tmp_path / "s", progress=False, **kw).table.iloc[0]
    assert (row["n_liquidations"], row["n_write_offs"]) == (0, 1)


def test_default_chunk_size():
    """Chunks: 4 a thread once each is worth ~20 M bar-steps; below, one
    chunk the local threads share, or the same number for every Dask worker
    (each file costs ~4 ms); at most MAX_CHUNK (256) a chunk."""
    from backtest.sweep import default_chunk_size

    assert default_chunk_size(174, 73_265, 2) == 174  # the README grid: 12.7 M bar-steps, one chunk
    assert default_chunk_size(174, 73_265, 2, shared=False) == 87  # on a Dask cluster: one a worker
    assert default_chunk_size(174, 73_265, 1) == 174
    assert default_chunk_size(600, 10_000, 2) == 200  # 6 M bar-steps in chunks of at most 256, even
    assert default_chunk_size(1_000, 100_000, 2) == 250  # 100 M: two a thread
    assert default_chunk_size(1_000, 1_000_000, 2) == 31  # bench --sweep: ~16 a thread, each ≥ 20 M bar-steps
    assert default_chunk_size(100_000, 73_265, 2) == 64  # a big grid: at most 64 a chunk
    assert default_chunk_size(3, 10, 4) == 3
    assert default_chunk_size(3, 10, 4, shared=False) == 1
    for n, bars, threads in ((174, 73_265, 2), (1_000, 100_000, 2), (7, 500_000, 3)):
        size = default_chunk_size(n, bars, threads, shared=False)
        assert (-(-n // size)) % threads == 0 or size == 1 or -(-n // size) >= 4 * threads


def test_a_heatmap_of_one_axis_against_itself_is_refused(tmp_path, capsys):
    """(helper-73: ``--heatmap fast,fast`` drew a diagonal) before the sweep runs, and by ``backtest report``."""
    flags = ["--data", str(BTC), "--start", "2021-01-01", "--end", "2021-01-31", "--grid", "fast=5,10", "--grid",
             "slow=30,40"]
    assert main(["sweep", *flags, "--heatmap", "fast,fast", "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two different grid axes" in err and not (tmp_path / "h").exists()
    assert main(["sweep", *flags, "--out", str(tmp_path / "s")]) == 0
    before = (tmp_path / "s" / "heatmap.png").read_bytes()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "s"), "--heatmap", "slow,slow"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two different grid axes" in err
    assert (tmp_path / "s" / "heatmap.png").read_bytes() == before
