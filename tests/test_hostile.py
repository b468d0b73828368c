"""The hostile-input battery: what a new user (or a careless script) throws
at marginbt.

Every case is a mistake in the data, a flag, a strategy, a grid, an import,
an output path or a Python call.  Each must end with exit code 2 (the CLI)
or the documented exception type (the API: ``ValueError`` /
``TypeError`` subclasses), one line on stderr (or one line of message)
naming the culprit, no traceback, and a good result folder written before
(passed as ``--out`` wherever a command takes one) byte for byte as it was.

One good folder and small files (300 hourly bars cut from the bundled BTC
data) are made once per module; the CLI runs in-process (``backtest.cli.main``).
"""
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import backtest
from backtest.cli import main
from backtest.data.parquet import write_ohlcv
from backtest.errors import UserError, UserTypeError

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
ETH = ROOT / "data" / "ETHUSDT-1h.parquet"

STRATEGIES = {
    "raises.py": "PARAMS = {}\ndef targets(bars):\n    raise ValueError('no signal today')\n",
    "exits.py": "import sys\nPARAMS = {}\ndef targets(bars):\n    sys.exit(3)\n",
    "interrupts.py": "PARAMS = {}\ndef targets(bars):\n    raise KeyboardInterrupt\n",
    "syntax.py": "PARAMS = {}\ndef targets(bars)\n    return 1\n",
    "imports.py": "import not_a_module_anywhere\nPARAMS = {}\ndef targets(bars):\n    return bars.close * 0\n",
    "exit_on_import.py": "import sys\nsys.exit('bye')\n",
    "short.py": "PARAMS = {}\ndef targets(bars):\n    return [1.0, 2.0]\n",
    "infinite.py": "import numpy as np\nPARAMS = {}\ndef targets(bars):\n    return np.full(len(bars), np.inf)\n",
    "notargets.py": "PARAMS = {}\ndef signals(bars):\n    return 1\n",
    "badparams.py": "PARAMS = [1, 2]\ndef targets(bars):\n    return bars.close * 0\n",
    "badkey.py": "PARAMS = {}\ndef targets(bars):\n    return {'target': bars.close * 0, 'stop': 0.1}\n",
}


def digest(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones too) → sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    bars = backtest.load_ohlcv(BTC, start="2024-01-01").iloc[:300]
    eth = backtest.load_ohlcv(ETH, start="2024-01-01").iloc[:300]
    data = write_ohlcv(bars, d / "BTCUSDT-1h.parquet", symbol="BTCUSDT", timeframe="1h")
    write_ohlcv(eth, d / "ETHUSDT-1h.parquet", symbol="ETHUSDT", timeframe="1h")
    far = bars.copy()
    far[["open", "high", "low", "close"]] *= 0.05  # another market's prices under a BTC name
    write_ohlcv(far, d / "BTCUSDT_PERP-1h-mark.parquet", symbol="BTCUSDT_PERP", timeframe="1h")
    write_ohlcv(eth, d / "ETHUSDT-1m.parquet", symbol="ETHUSDT", timeframe="1m")
    (d / "notparquet.parquet").write_text("timestamp,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n")
    (d / "truncated-1h.parquet").write_bytes(data.read_bytes()[:3000])
    (d / "empty-1h.parquet").write_bytes(b"")
    table = pq.read_table(data).replace_schema_metadata({})
    pq.write_table(table, d / "mydata.parquet")  # no symbol anywhere
    pq.write_table(table.drop(["close"]), d / "BTCUSDT-noclose.parquet")

    def variant(name, change):
        df = bars.reset_index()
        change(df)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), d / name)

    variant("BTCUSDT-nan.parquet", lambda df: df.__setitem__("close", df["close"].where(df.index != 7)))
    variant("BTCUSDT-highlow.parquet", lambda df: df.__setitem__("high", df["high"].where(df.index != 9, 1.0)))
    variant("BTCUSDT-dupes.parquet", lambda df: df.__setitem__("timestamp", df["timestamp"].where(
        df.index != 11, df["timestamp"].shift(1))))
    (d / "folder_without_data").mkdir()
    (d / "notes").mkdir()
    (d / "notes" / "notes.txt").write_text("my notes")
    (d / "afile.txt").write_text("not a folder")
    for name, text in STRATEGIES.items():
        (d / name).write_text(text)
    (d / "mmr5.toml").write_text("[profiles.x]\nmode = \"cross\"\nmax_leverage = 5\nliquidation_ml = 1.0\nliquidation_fee = 0.02\n"
                                 "mmr = 5\n")
    (d / "mmr_half.toml").write_text("[profiles.x]\nmode = \"cross\"\nmax_leverage = 5\nliquidation_ml = 1.0\n"
                                     "liquidation_fee = 0.02\nmmr = 0.5\n")
    good = d / "good"
    assert main(["run", "--data", str(data), "--out", str(good), "--strategy", "sma_cross",
                 "--param", "fast=5", "--param", "slow=20"]) == 0
    broken = d / "broken"
    assert main(["run", "--data", str(data), "--out", str(broken), "--no-report"]) == 0
    (broken / "summary.json").write_text("{not json")
    cut = d / "cut"
    assert main(["run", "--data", str(data), "--out", str(cut), "--no-report"]) == 0
    (cut / "equity.parquet").write_bytes((cut / "equity.parquet").read_bytes()[:500])
    return {"dir": d, "data": data, "good": good, "before": digest(good)}


def fill(argv, w):
    return [a.format(d=w["dir"], data=w["data"], good=w["good"], btc=BTC) for a in argv]


RUN = ["run", "--data", "{data}", "--out", "{good}"]
SWEEP = ["sweep", "--data", "{data}", "--out", "{good}"]

CLI_CASES = [
    # data
    (["run", "--data", "{d}/missing.parquet", "--out", "{good}"], "missing.parquet"),
    (["run", "--data", "{d}/notparquet.parquet", "--out", "{good}"], "not a Parquet file"),
    (["run", "--data", "{d}/truncated-1h.parquet", "--out", "{good}"], "truncated or corrupt"),
    (["run", "--data", "{d}/empty-1h.parquet", "--out", "{good}"], "empty"),
    (["run", "--data", "{d}/folder_without_data", "--out", "{good}"], "folder without .parquet"),
    (["run", "--data", "{d}/mydata.parquet", "--out", "{good}"], "--symbol"),
    (["run", "--data", "{d}/BTCUSDT-noclose.parquet", "--out", "{good}"], "'close'"),
    (["run", "--data", "{d}/BTCUSDT-nan.parquet", "--out", "{good}"], "row 7"),
    (["run", "--data", "{d}/BTCUSDT-highlow.parquet", "--out", "{good}"], "row 9"),
    (["run", "--data", "{d}/BTCUSDT-dupes.parquet", "--out", "{good}"], "row 11"),
    (RUN + ["--start", "2030-01-01"], "BTCUSDT-1h.parquet"),
    (RUN + ["--end", "2010-01-01"], "BTCUSDT-1h.parquet"),
    (RUN + ["--start", "yesterday-ish"], "yesterday-ish"),
    (RUN + ["--mark", "{d}/ETHUSDT-1h.parquet"], "ETHUSDT-1h.parquet"),
    (RUN + ["--mark", "{d}/BTCUSDT_PERP-1h-mark.parquet"], "0.05×"),
    (RUN + ["--detail", "{d}/ETHUSDT-1m.parquet"], "ETHUSDT-1m.parquet"),
    (["run", "--data", "{data}", "--data", "{data}", "--out", "{good}"], "given twice"),
    (RUN + ["--rates", "{d}/missing.csv"], "--rates"),
    # flags
    (RUN + ["--capital", "-1"], "--capital"),
    (RUN + ["--capital", "lots"], "--capital"),
    (RUN + ["--fee", "1.5"], "--fee"),
    (RUN + ["--slippage", "-0.1"], "--slippage"),
    (RUN + ["--rate", "USDT=cheap"], "--rate USDT=cheap"),
    (RUN + ["--rate", "ETH=0.1"], "--rate ETH"),
    (RUN + ["--liquidation", "maybe"], "--liquidation"),
    (RUN + ["--path", "sideways"], "--path"),
    (RUN + ["--stop-loss", "2"], "--stop-loss"),
    (RUN + ["--take-profit", "-1"], "--take-profit"),
    (RUN + ["--trailing-stop", "1"], "--trailing-stop"),
    (RUN + ["--rebalance", "-1"], "--rebalance"),
    (RUN + ["--margin", "cross-99x"], "cross-99x"),
    (RUN + ["--margin-file", "{d}/missing.toml"], "--margin-file"),
    (RUN + ["--margin-file", "{d}/mmr5.toml"], "mmr"),
    (RUN + ["--margin-file", "{d}/mmr_half.toml"], "mmr"),
    (RUN + ["--repay-on-flat"], "--repay-on-flat"),
    (RUN + ["--allocation", "BTCUSDT=1"], "--allocation"),
    (RUN + ["--capitl", "5"], "--capitl"),
    (RUN + ["--symbol", "FOO"], "--symbol FOO"),
    (RUN + ["--detail", "{d}/ETHUSDT-1m.parquet", "--mark", "{data}"], "--detail"),
    # strategies
    (RUN + ["--strategy", "nope"], "nope"),
    (RUN + ["--strategy", "{d}/missing.py"], "missing.py"),
    (RUN + ["--strategy", "{d}/raises.py"], "no signal today"),
    (RUN + ["--strategy", "{d}/exits.py"], "sys.exit(3)"),
    (RUN + ["--strategy", "{d}/interrupts.py"], "KeyboardInterrupt"),
    (RUN + ["--strategy", "{d}/syntax.py"], "SyntaxError"),
    (RUN + ["--strategy", "{d}/imports.py"], "not_a_module_anywhere"),
    (RUN + ["--strategy", "{d}/exit_on_import.py"], "exit_on_import"),
    (RUN + ["--strategy", "{d}/short.py"], "one target per bar"),
    (RUN + ["--strategy", "{d}/infinite.py"], "finite"),
    (RUN + ["--strategy", "{d}/notargets.py"], "targets("),
    (RUN + ["--strategy", "{d}/badparams.py"], "PARAMS"),
    (RUN + ["--strategy", "{d}/badkey.py"], "'stop'"),
    (RUN + ["--param", "fats=3"], "fats"),
    (RUN + ["--param", "fast=quick"], "fast=quick"),
    (RUN + ["--param", "fast"], "KEY=VALUE"),
    # grids
    (SWEEP + ["--grid", "nope=1,2"], "nope"),
    (SWEEP + ["--grid", "fast=1:100000000:1"], "--max-combos"),
    (SWEEP + ["--grid", "fast=1:300:1", "--grid", "slow=1:300:1", "--grid", "leverage=1:5:0.25"], "--max-combos"),
    (SWEEP + ["--grid", "fast=10:5:1"], "START"),
    (SWEEP + ["--grid", "fast=a:b:1"], "fast=a:b:1"),
    (SWEEP + ["--grid", "fast"], "KEY="),
    (SWEEP + ["--grid", "leverage=inf"], "leverage"),
    (SWEEP + ["--grid", "fast=5,10", "--max-combos", "0"], "--max-combos"),
    (SWEEP + ["--grid", "fast=5,10", "--rank", "wat"], "wat"),
    (SWEEP + ["--grid", "fast=5,10", "--heatmap", "a,b"], "--heatmap"),
    (SWEEP + ["--grid", "fast=5,10", "--chunk-size", "0"], "--chunk-size"),
    (SWEEP + ["--grid", "fast=5,10", "--workers", "0"], "--workers"),
    (SWEEP + ["--param", "fast=5"], "--grid"),
    (SWEEP + ["--data", "{d}/ETHUSDT-1h.parquet", "--grid", "fast=5,10"], "--data"),
    (SWEEP + ["--grid", "fast=5,10", "--grid", "slow=20"], "holds a run's result"),
    (SWEEP + ["--grid", "margin=cross-99x"], "cross-99x"),
    (SWEEP + ["--grid", "fast=5,10", "--grid", "fast=20"], "fast given twice"),  # (the last won unseen)
    (["run", "--data", "{data}", "--param", "fast=10", "--param", "fast=50"], "fast given twice"),
    (["run", "--data", "{data}", "--rate", "USDT=0.1", "--rate", "usdt=0.0002"], "USDT given twice"),
    # output paths and result folders
    (["run", "--data", "{data}", "--out", "{d}/afile.txt"], "is a file"),
    (["run", "--data", "{data}", "--out", "{d}/notes"], "holds other files"),
    (["run", "--data", "{data}", "--out", ""], "--out: empty"),
    (["run", "--data", "{data}", "--transfer", "2024-01-10=1e308"], "at most 1e+15 either way"),
    (["run", "--data", "{data}", "--out", "{d}/afile.txt/sub"], "afile.txt"),
    (["report", "{d}/no_such_result"], "no_such_result"),
    (["report", "{d}/broken"], "summary.json"),
    (["report", "{d}/cut"], "equity.parquet"),
    (["report", "{d}/afile.txt"], "afile.txt"),
    (["report", "{d}/notes"], "summary.json"),
    # data tools, imports, bench
    (["data", "check", "{d}/missing.parquet"], "missing.parquet"),
    (["data", "check", "{d}/folder_without_data"], "folder without .parquet"),
    (["data", "import", "{d}/notparquet.parquet"], "--out"),
    (["data", "import", "{d}/missing.csv", "--out", "{d}/x.parquet"], "missing.csv"),
    (["bench", "--bars", "10"], "--bars"),
    (["frobnicate"], "frobnicate"),
    (["sweep", "--reserve", "100"], "backtest sweep: unrecognized arguments: --reserve"),  # (named the command)
    (["risk", "--data", "{data}", "--method", "bootstrap", "--every", "3d"], "--every: a --method windows flag"),
    (["risk", "--data", "{data}", "--paths", "10"], "--paths: a --method bootstrap flag"),
]


@pytest.mark.parametrize("argv, culprit", CLI_CASES, ids=[" ".join(a[3:] if a[0] in ("run", "sweep") else a)[:60]
                                                         for a, _ in CLI_CASES])
def test_cli_refuses_with_one_line(world, capsys, argv, culprit):
    argv = fill(argv, world)
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert culprit in lines[0], lines[0]
    assert digest(world["good"]) == world["before"]  # the good result folder is byte for byte as it was


def _run(w, **kw):
    return lambda: backtest.run(w["data"], "sma_cross", **kw)


API_CASES = [
    ("bars", lambda w: lambda: backtest.run([1, 2, 3]), TypeError, "bars=[1, 2, 3]"),
    ("capital str", lambda w: _run(w, capital="1000"), TypeError, "capital='1000'"),
    ("capital -1", lambda w: _run(w, capital=-1), ValueError, "capital=-1"),
    ("rates str", lambda w: _run(w, rates="USDT=0.1"), TypeError, "rates='USDT=0.1'"),
    ("rates value", lambda w: _run(w, rates={"USDT": "high"}), TypeError, "rates['USDT']"),
    ("fee numpy", lambda w: _run(w, fee=np.float64(2.0)), ValueError, "fee=2.0"),
    ("strategy int", lambda w: lambda: backtest.run(w["data"], 5), TypeError, "strategy=5"),
    ("flag str", lambda w: _run(w, stop_on_liquidation="yes"), TypeError, "stop_on_liquidation='yes'"),
    ("start int", lambda w: _run(w, start=12345), TypeError, "start=12345"),
    ("start late", lambda w: _run(w, start="2030-01-01"), ValueError, "BTCUSDT-1h.parquet"),
    ("liquidation", lambda w: _run(w, liquidation="maybe"), ValueError, "liquidation=maybe"),
    ("symbol int", lambda w: _run(w, symbol=123), TypeError, "symbol=123"),
    ("mark list", lambda w: _run(w, mark=[1.0]), TypeError, "mark=[1.0]"),
    ("profile mmr", lambda w: _run(w, margin=backtest.Profile("x", 5.0, None, 1.0, 0.02, mmr=5.0)), ValueError,
     "mmr"),
    ("params list", lambda w: lambda: backtest.run(w["data"], "sma_cross", [5, 20]), TypeError, "params="),
    ("param type", lambda w: lambda: backtest.run(w["data"], "sma_cross", {"fast": 2.5}), ValueError, "fast"),
    ("stop loss", lambda w: _run(w, stop_loss=1.5), ValueError, "stop_loss=1.5"),
    ("multi data", lambda w: lambda: backtest.run_multi(str(w["data"])), TypeError, "data="),
    ("multi allocation", lambda w: lambda: backtest.run_multi([w["data"], w["dir"] / "ETHUSDT-1h.parquet"],
                                                              allocation=0.5), TypeError, "allocation=0.5"),
    ("multi capital", lambda w: lambda: backtest.run_multi([w["data"], w["dir"] / "ETHUSDT-1h.parquet"],
                                                           capital=0), ValueError, "capital=0"),
    ("sweep grid", lambda w: _sweep(w, grid={"fast": 5}), TypeError, "grid['fast']"),
    ("sweep workers", lambda w: _sweep(w, workers="2"), TypeError, "workers='2'"),
    ("sweep max", lambda w: _sweep(w, max_combos=0), ValueError, "max_combos=0"),
    ("sweep huge", lambda w: _sweep(w, grid={"fast": list(range(2000)), "slow": list(range(2000))}), ValueError,
     "max_combos"),
    ("sweep into result", lambda w: _sweep(w, out=w["good"]), ValueError, "out="),
]


def _sweep(w, **kw):
    from backtest.sweep import sweep

    kw = {"grid": {"fast": [5, 10]}, "out": w["dir"] / "api-sweep", "progress": False, **kw}
    return lambda: sweep(w["data"], "sma_cross", **kw)


@pytest.mark.parametrize("name, call, kind, culprit", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses_with_the_arguments_own_name(world, capsys, name, call, kind, culprit):
    with pytest.raises(kind) as info:
        call(world)()
    exc = info.value
    assert isinstance(exc, UserError) and isinstance(exc, ValueError)
    assert isinstance(exc, UserTypeError) == (kind is TypeError)
    text = str(exc)
    assert len(text.splitlines()) == 1 and culprit in text, text
    assert "--" not in text.split(":")[0]  # the API's own names, not the CLI's flags
    assert capsys.readouterr().err == ""
    assert digest(world["good"]) == world["before"]


def test_the_battery_has_sixty_cases():
    assert len(CLI_CASES) + len(API_CASES) >= 60


def test_numpy_scalars_are_the_numbers_they_hold(world):
    res = backtest.run(world["data"], "sma_cross", {"fast": np.int64(5), "slow": np.int32(20),
                                                    "leverage": np.int64(2)},
                       capital=np.float32(5000), fee=np.float64(0.001), stop_on_liquidation=np.bool_(False))
    assert res.settings["params"] == {"fast": 5, "slow": 20, "leverage": 2.0}
    assert type(res.settings["params"]["leverage"]) is float and res.settings["capital"] == 5000.0


def test_a_real_ctrl_c_inside_a_strategy_still_interrupts(world):
    import signal

    def targets(bars):
        signal.raise_signal(signal.SIGINT)  # the user's Ctrl-C, arriving while the strategy runs
        return np.zeros(len(bars))

    # (Python's own handler, also when pytest was started with SIGINT ignored, as a shell's background job is)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            backtest.run(world["data"], targets)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_broken_pipe_is_no_traceback(world, capfd):
    """``backtest data check FOLDER | head`` closes the pipe early."""
    r, w = os.pipe()
    os.close(r)
    saved = os.dup(1)
    os.dup2(w, 1)
    try:
        code = main(["data", "check", str(world["dir"] / "BTCUSDT-1h.parquet")])
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(w)
    assert code == 1 or code == 0
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("make, says", [
    (lambda b: pd.Series(np.linspace(-1, 1, len(b)), index=b.index).iloc[::-1], "not the bars'"),  # reversed
    (lambda b: pd.Series(np.ones(len(b)), index=b.index).shift(freq="5h"), "not the bars'"),  # shifted times
    (lambda b: pd.Series(np.ones(len(b) - 1), index=b.index[1:]), "not the bars'"),  # a bar short
    (lambda b: np.ones(len(b)) + 1j, "not numbers"),
    (lambda b: ["1.0"] * len(b), "not numbers"),
    (lambda b: pd.Series(["1"] * len(b), index=b.index), "not numbers"),
    (lambda b: np.array([np.datetime64("2021-01-01")] * len(b)), "not numbers"),
    (lambda b: {"target": np.ones(len(b)), "limit": pd.Series(b["close"].to_numpy(), index=b.index[::-1])},
     "limit indexed by times that are not the bars'"),
    (lambda b: pd.Series(np.ones(len(b)), index=b.index.tz_localize(None) + pd.Timedelta("1h")), "not the bars'"),
])
def test_a_strategys_values_not_one_number_per_bar_in_its_order_are_refused(make, says):
    """A pandas result whose timestamps are not the bars' was read by position (reversed or shifted targets
    ran silently, helper-73's fuzzing); strings, complex numbers and times were parsed or cast."""
    bars = backtest.load_ohlcv(BTC, start="2021-01-01", end="2021-01-10")
    with pytest.raises(UserError, match=says):
        backtest.run(bars, lambda bars: make(bars))


def test_a_strategys_series_on_the_bars_times_or_by_position_is_its_array():
    bars = backtest.load_ohlcv(BTC, start="2021-01-01", end="2021-01-10")
    values = np.where(np.arange(len(bars)) % 40 < 20, 2.0, -1.0)
    want = backtest.run(bars, values).summary
    for given in (pd.Series(values, index=bars.index), pd.Series(values), list(values),
                  pd.Series(values, index=bars.index.tz_localize(None)),  # naive times are UTC, as the bars'
                  pd.Series(values, index=bars.index.tz_convert("America/New_York")),  # the same instants
                  pd.Series(values, index=bars.index.as_unit("ms")), values.astype(object)):
        assert backtest.run(bars, lambda bars, g=given: g).summary == want
    # nullable booleans and numbers: NA is NaN (hold), as a float array's NaN (review, helper-74)
    held = np.where(np.arange(len(bars)) % 7 == 3, np.nan, values)
    want = backtest.run(bars, held).summary
    assert backtest.run(bars, lambda bars: pd.Series(held, dtype="Float64")).summary == want
    flags = pd.array([True, None, False] * (len(bars) // 3) + [True] * (len(bars) % 3), dtype="boolean")
    assert backtest.run(bars, lambda bars: pd.Series(flags)).summary == backtest.run(
        bars, pd.Series(flags).to_numpy(dtype=float, na_value=np.nan)).summary
    assert backtest.run(bars, lambda bars: values > 0).summary == backtest.run(bars, (values > 0) * 1.0).summary


def test_a_mark_price_series_is_not_traded(tmp_path, capsys):
    """(helper-73) Its volume is 0 and it has no market: as ``--data``, alone or in a folder beside the bars, it
    traded as a symbol of its own (``BTCUSDT_PERP`` on cross-3x)."""
    mark = ROOT / "data" / "BTCUSDT_PERP-1h-mark.parquet"
    folder = tmp_path / "both"
    folder.mkdir()
    for f in (BTC, mark):
        (folder / f.name).write_bytes(f.read_bytes())
    named = []  # the names the project gives mark series elsewhere (a dated test file, the README's example)
    for name in ("BTCUSDT_PERP-1h-mark-2021-05.parquet", "BTCUSDT-mark-1h.parquet"):
        named.append(tmp_path / name)
        named[-1].write_bytes(mark.read_bytes())
    for data in (mark, folder, *named):
        code = main(["run", "--data", str(data), "--start", "2021-01-01", "--end", "2021-01-05", "--no-report",
                     "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "a mark-price series" in err and "--mark" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="a mark-price series"):
        backtest.run(mark, "hold", start="2021-01-01", end="2021-01-05")
    assert backtest.run(BTC, "hold", start="2021-01-01", end="2021-01-05", mark=mark).summary["bars"] > 0


def _one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_a_strategy_of_several_symbols_with_one_is_refused(tmp_path, capsys):
    """pair_trade (``MULTI = True``) with one ``--data`` was handed one symbol's bars as if they were a
    ``{symbol: bars}`` dict: ``strategy pair_trade raised KeyError: 'close'``."""
    for cmd in (["run", "--no-report"], ["sweep"]):
        line = _one_error_line(capsys, [*cmd, "--strategy", "pair_trade", "--data", str(BTC),
                                        "--start", "2024-01-01", "--end", "2024-03-01", "--out", str(tmp_path / "o")])
        assert "pair_trade trades several symbols" in line and "two or more --data" in line
    assert not (tmp_path / "o").exists()
    bars = backtest.load_ohlcv(BTC, start="2024-01-01", end="2024-03-01")
    with pytest.raises(UserError, match="trades several symbols"):
        backtest.run(bars, "pair_trade")
    two = backtest.run_multi({"BTCUSDT": bars, "ETHUSDT": backtest.load_ohlcv(ETH, start="2024-01-01",
                                                                              end="2024-03-01")}, "pair_trade",
                             {"lookback": 48})
    assert two.summary["n_orders"] > 0  # (with two it trades)


def test_perpetual_bars_on_a_spot_margin_profile_are_said(tmp_path, capsys):
    """(helper-73) ``BTCUSDT_PERP`` on cross-3x traded the perpetual's last prices as spot margin, its mark and
    funding files beside it unused, and nothing said so.  A sweep comparing the venues on one market does it on
    purpose (tests/test_perps_runs.py): the run's summary says it, as it says a perp run charged no funding."""
    perp, eth = ROOT / "data" / "BTCUSDT_PERP-1h.parquet", ROOT / "data" / "ETHUSDT-1h.parquet"
    span = ["--start", "2024-01-01", "--end", "2024-02-01", "--no-report"]
    said = "a perpetual's prices on spot margin, its mark and funding files not used"

    def summary_line(*argv):
        assert main(["run", *argv, *span, "--out", str(tmp_path / str(len(list(tmp_path.iterdir()))))]) == 0
        return next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("symbol / profile"))

    assert f"(BTCUSDT_PERP: {said})" in summary_line("--data", str(perp), "--margin", "cross-3x")
    assert f"(BTCUSDT_PERP: {said})" in summary_line("--data", str(perp), "--data", str(eth), "--margin",
                                                     "isolated-3x")
    for argv in (["--data", str(perp), "--margin", "cross-3x", "--symbol", "BTCUSDT"],  # (the pair named: meant)
                 ["--data", str(perp), "--margin", "usdm-cross-5x"], ["--data", str(BTC), "--margin", "cross-3x"]):
        assert said not in summary_line(*argv)




def test_second_fuzzing_round_refusals(tmp_path, capsys):
    """(helper-75) Values taken silently, or tracebacks, each now one line naming the argument or flag."""
    bars = backtest.load_ohlcv(BTC, start="2024-01-01", end="2024-03-01")
    eth = backtest.load_ohlcv(ETH, start="2024-01-01", end="2024-03-01")
    # a target far beyond any leverage: its capped orders were taken for float noise, 0 trades and a flat equity
    with pytest.raises(UserError, match=r"target at row 49 .* is 1e\+20; a target is a multiple of equity, at most "
                                        r"1e\+09"):
        backtest.run(bars, "sma_cross", {"slow": 50, "leverage": 1e20})
    assert backtest.run(bars, "sma_cross", {"slow": 50, "leverage": 1e9}).summary["n_trades"] > 0
    # a Python grid's NaN and True for a whole number (the CLI refuses both; a flag's True and False are taken),
    # an unknown rank without a walk-forward, a perpetual's metric on a grid of none
    for grid, says in (({"fast": [10], "slow": [50], "leverage": [float("nan")]}, "grid leverage=nan: must be a "
                                                                                  "finite number"),
                       ({"fast": [True], "slow": [50]}, "grid fast=True: expected int")):
        with pytest.raises(UserError, match=re.escape(says)):
            backtest.sweep(bars, "sma_cross", grid, out=tmp_path / "s", progress=False)
    for rank, says in (("bogus", "rank=bogus: not a metric"), ("funding_paid", "rank=funding_paid: a perpetual's "
                                                                                 "metric, and no profile")):
        with pytest.raises(UserError, match=says):
            backtest.sweep(bars, "sma_cross", {"fast": [10], "slow": [50]}, out=tmp_path / "s", rank=rank,
                           progress=False)
        with pytest.raises(UserError, match=says):
            backtest.sweep(bars, "sma_cross", {"fast": [10], "slow": [50]}, out=tmp_path / "w", rank=rank,
                           walk_forward="train=20d,test=10d", progress=False)
    assert not (tmp_path / "s").exists() and not (tmp_path / "w").exists()
    flag = tmp_path / "flagged.py"
    flag.write_text("import numpy as np\nPARAMS = {'short': False}\n\n\ndef targets(bars, short):\n"
                    "    return np.full(len(bars), -1.0 if short else 1.0)\n")
    both = backtest.sweep(bars, str(flag), {"short": [True, False]}, out=tmp_path / "f", progress=False).table
    assert sorted(both["short"].tolist()) == [False, True]
    # an empty allocation; a list of profiles where one profile or a mapping is taken; no bars at all
    with pytest.raises(UserError, match="allocation: empty"):
        backtest.run_multi({"BTCUSDT": bars, "ETHUSDT": eth}, "hold", margin="isolated-3x", allocation="")
    with pytest.raises(TypeError, match=r"margin=\['cross-3x'\]: expected a profile name, 'SYMBOL=PROFILE"):
        backtest.run_multi({"BTCUSDT": bars, "ETHUSDT": eth}, "hold", margin=["cross-3x"])
    with pytest.raises(TypeError, match="bars=None: expected a Parquet path or a DataFrame"):
        backtest.Backtest(None, "hold")
    bt = backtest.Backtest(bars, "hold")
    bt.run()
    with pytest.raises(TypeError, match=r"path=5: expected a .png path or a file opened for writing bytes, got int"):
        bt.plot(5)


def test_second_fuzzing_round_cli(tmp_path, capsys):
    """(helper-75) The same on the command line: one line, exit 2, nothing written."""
    span = ["--start", "2024-01-01", "--end", "2024-03-01"]
    good = tmp_path / "good.csv"
    good.write_text("time,open,high,low,close,volume\n2024-01-01 00:00,1,2,0.5,1.5,1\n"
                    "2024-01-01 01:00,1,2,0.5,1.5,1\n")
    for flag in ("--symbol", "--tz", "--time-format"):
        line = _one_error_line(capsys, ["data", "import", str(good), "--out", str(tmp_path / "x.parquet"), flag, ""])
        assert line == f"error: {flag}: empty; give a value or leave the flag out"
    line = _one_error_line(capsys, ["data", "import-funding", str(ROOT / "data" / "BTCUSDT_PERP-funding.parquet"),
                                    "--out", str(tmp_path / "f.parquet"), "--symbol", " "])
    assert line == "error: --symbol: empty; give a value or leave the flag out"
    assert not (tmp_path / "x.parquet").exists()
    line = _one_error_line(capsys, ["sweep", "--data", str(BTC), *span, "--grid", "margin=cross-3x,nope",
                                    "--out", str(tmp_path / "s")])
    assert line.startswith("error: --grid margin=cross-3x,nope: unknown profile 'nope'")
    assert main(["sweep", "--data", str(BTC), *span, "--grid", "fast=10", "--grid", "slow=50", "--grid",
                 "margin=cross-3x,cross-3x", "--out", str(tmp_path / "s")]) == 0
    assert len(pd.read_parquet(tmp_path / "s" / "sweep.parquet")) == 1  # (a name twice: once, as fast=10,10)
    assert main(["run", "--data", str(BTC), *span, "--no-report", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    for folder, flag in ((tmp_path / "r", ["--rank", "sharpe"]), (tmp_path / "r", ["--heatmap", "fast,slow"])):
        line = _one_error_line(capsys, ["report", str(folder), *flag])
        assert f"{flag[0]} {flag[1]}: not for the run" in line
    equity = tmp_path / "r" / "equity.parquet"
    pd.read_parquet(equity).iloc[:0].to_parquet(equity)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    line = _one_error_line(capsys, ["report", str(tmp_path / "r")])
    assert line == f"error: {equity}: no rows; not a table marginbt wrote, or damaged"
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before


def test_an_import_of_bars_closer_than_their_timeframe_says_so(tmp_path, capsys):
    """(helper-75) Hourly bars with gaps every other hour have a median spacing of 2h: written as 2h unsaid."""
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("time,open,high,low,close,volume\n" + "".join(
        f"2024-01-01 {h:02d}:00,1,2,0.5,1.5,1\n" for h in (0, 1, 3, 5, 7)))
    assert main(["data", "import", str(gappy), "--symbol", "BTCUSDT", "--out", str(tmp_path / "g.parquet")]) == 0
    assert "1 bar closer than 2h to the bar before (first at 2024-01-01 01:00 UTC)" in capsys.readouterr().out
    assert main(["data", "import", str(gappy), "--symbol", "BTCUSDT", "--timeframe", "1h",
                 "--out", str(tmp_path / "h.parquet")]) == 0
    assert "closer than" not in capsys.readouterr().out
    monthly = tmp_path / "monthly.csv"  # (February is shorter than the 30 days a month counts as a length)
    monthly.write_text("time,open,high,low,close,volume\n" + "".join(
        f"2023-{m:02d}-01,1,2,0.5,1.5,1\n" for m in range(1, 7)))
    assert main(["data", "import", str(monthly), "--symbol", "BTCUSDT", "--out", str(tmp_path / "m.parquet")]) == 0
    out = capsys.readouterr().out
    assert "BTCUSDT 1M" in out and "closer than" not in out


def test_a_damaged_walk_forward_table_is_named_so(tmp_path):
    """(helper-75) A garbage walkforward.csv said ``--rank sharpe: not in …walkforward.csv (it has sharpe)``."""
    from backtest.walkforward import redraw

    (tmp_path / "walkforward.json").write_text('{"rank": "sharpe"}')
    (tmp_path / "walkforward.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match=r"--rank sharpe: no column oos_sharpe in .*walkforward.csv \(no oos_ column: "
                                        r"not a table marginbt wrote, or damaged\)"):
        redraw(tmp_path)
    (tmp_path / "walkforward.csv").write_text("oos_calmar,oos_total_return\n1,2\n")
    with pytest.raises(UserError, match=r"\(it has calmar, total_return\)"):
        redraw(tmp_path)


def test_third_fuzzing_round(tmp_path, capsys):
    """(helper-77) A trader's moves and a strategy's orders: values taken silently or wrapped, and a traceback."""
    bars = backtest.load_ohlcv(BTC, start="2024-01-01", end="2024-03-01")
    n = len(bars)

    def limit_order(expiry, **more):
        def strategy(bars):
            target = np.where(np.arange(n) >= 10, 2.0, 0.0)
            limit = np.full(n, np.nan)
            limit[10] = bars["close"].iloc[10] * 0.97
            return {"target": target, "limit": limit, "expiry": expiry, **more}
        return strategy

    # an expiry past int64's range wrapped to a cancel after one bar (2**63 - 10), or raised OverflowError (10**30)
    standing = backtest.run(bars, limit_order(10**15)).summary  # (the most bars allowed: it stands)
    assert standing["n_cancelled"] == 0 and standing["n_orders"] > 0
    for expiry in (2**63 - 10, 10**30):
        with pytest.raises(UserError, match=r"expiry \d+ must be a whole number of bars from 1 to 1e\+15"):
            backtest.run(bars, limit_order(expiry))
    with pytest.raises(UserError, match="stop_loss '0.05' must be a fraction"):
        backtest.run(bars, limit_order(5, stop_loss="0.05"))
    # a move's amount or setting of the wrong type was taken (True deposited 1.0, '5000' reserved 5000)
    for kwargs, kind, says in ((dict(reserve=True), TypeError, "reserve=True: expected a number, got bool"),
                               (dict(reserve="5000"), TypeError, "reserve='5000': expected a number"),
                               (dict(reserve={"BTCUSDT": 100}), TypeError, "reserve={'BTCUSDT': 100}: expected a"),
                               (dict(keep_ml="1.25"), TypeError, "keep_ml='1.25': expected a number"),
                               (dict(reserve=500.0, top_up=5), TypeError, "top_up=5: expected 'ml=X'"),
                               (dict(transfers={"2024-01-15": True}), UserError, "True is not a number"),
                               (dict(transfers={None: 1000}), UserError, "None is not a date"),
                               (dict(transfers={5: 1000}), UserError, "5 is not a date"),
                               (dict(transfers=["=5"]), UserError, "'' is not a date")):
        with pytest.raises(kind, match=re.escape(says)):
            backtest.run(bars, "hold", {"exposure": 2}, **kwargs)
    assert backtest.run(bars, "hold", {"exposure": 2}, transfers={"2024-01-15": 1000}).summary[
        "final_equity"] > backtest.run(bars, "hold", {"exposure": 2}).summary["final_equity"]
    # a flag of one value given twice took the last one
    for flag, a, b in (("--capital", "5000", "6000"), ("--keep-ml", "1.2", "1.3"), ("--top-up", "ml=2", "amount=5")):
        line = _one_error_line(capsys, ["run", "--data", str(BTC), "--reserve", "100", flag, a, flag, b,
                                        "--no-report", "--out", str(tmp_path / "o")])
        assert line == f"error: {flag}: given twice; give it once"
    assert not (tmp_path / "o").exists()
