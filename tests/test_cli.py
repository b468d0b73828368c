"""The CLI contract: files written, and every bad input one line + exit 2."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
SHORT = ["--start", "2023-01-01", "--end", "2023-02-28", "--no-report"]


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def expect_error(capsys, *argv, says):
    code, out, err = cli(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in ([says] if isinstance(says, str) else says):
        assert word in lines[0], lines[0]


@pytest.fixture
def bars():
    df = pd.read_parquet(BTC).iloc[:500].reset_index(drop=True)
    return df


def write(tmp_path, df, name="BTCUSDT-1h.parquet"):
    path = tmp_path / name
    df.to_parquet(path, index=False)
    return path


def test_run_writes_every_output(capsys, tmp_path):
    out = tmp_path / "run"
    code, text, err = cli(capsys, "run", "--data", BTC, "--out", out, *SHORT, "--param", "fast=5", "--param", "slow=30")
    assert code == 0, err
    assert "final equity" in text and "liquidations" in text
    for name in ("summary.json", "run.json", "equity.parquet", "trades.csv", "orders.csv", "liquidations.csv",
                 "margin_calls.csv", "equity.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bars"] == 59 * 24 and summary["start"].startswith("2023-01-01")
    eq = pd.read_parquet(out / "equity.parquet")
    assert {"timestamp", "equity", "margin_level", "position", "debt", "interest_paid"} <= set(eq.columns)
    trades = pd.read_csv(out / "trades.csv")
    assert list(trades.columns) == ["symbol", "side", "entry_time", "entry_price", "exit_time", "exit_price",
                                    "quantity", "fees", "interest", "interest_base", "interest_quote", "pnl",
                                    "exit_reason"]
    assert list(pd.read_csv(out / "liquidations.csv").columns) == [
        "time", "symbol", "trigger_price", "fill_price", "margin_level", "fee", "equity_before",
        "equity_after", "bad_debt", "quantity", "gap"]
    assert list(pd.read_csv(out / "margin_calls.csv").columns) == ["time", "symbol", "margin_level"]
    assert summary["n_trades"] == len(trades)


def test_console_script_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "backtest", "run", "--data", BTC, "--out", tmp_path / "r", *SHORT],
                        capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "backtest", "run", "--margin", "cross-99x"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "cross-99x" in bad.stderr


def test_missing_file(capsys, tmp_path):
    expect_error(capsys, "run", "--data", tmp_path / "nope.parquet", says="nope.parquet")


def test_not_parquet(capsys, tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("timestamp,open\n1,2\n")
    expect_error(capsys, "run", "--data", path, says="x.parquet")


def test_misnamed_column(capsys, tmp_path, bars):
    expect_error(capsys, "run", "--data", write(tmp_path, bars.rename(columns={"close": "Close"})), *SHORT[4:],
                 says=["close"])


@pytest.mark.parametrize(
    "column, row, value, says",
    [
        ("close", 17, np.nan, ["close", "17"]),
        ("low", 40, 1e9, ["40"]),  # high < low
        ("open", 3, -5.0, ["open", "3"]),
    ],
)
def test_bad_values_name_column_and_row(capsys, tmp_path, bars, column, row, value, says):
    bars.loc[row, column] = value
    expect_error(capsys, "run", "--data", write(tmp_path, bars), "--no-report", says=says)


def test_duplicate_timestamp(capsys, tmp_path, bars):
    bars.loc[10, "timestamp"] = bars.loc[9, "timestamp"]
    expect_error(capsys, "run", "--data", write(tmp_path, bars), "--no-report", says=["timestamp", "10"])


def test_timestamps_out_of_order(capsys, tmp_path, bars):
    bars.loc[[20, 21], "timestamp"] = bars.loc[[21, 20], "timestamp"].to_numpy()
    expect_error(capsys, "run", "--data", write(tmp_path, bars), "--no-report", says=["timestamp", "21"])


def test_naive_timestamps_are_taken_as_utc(capsys, tmp_path, bars):
    bars["timestamp"] = bars["timestamp"].dt.tz_localize(None)
    code, out, err = cli(capsys, "run", "--data", write(tmp_path, bars), "--out", tmp_path / "o", "--no-report")
    assert code == 0, err
    eq = pd.read_parquet(tmp_path / "o" / "equity.parquet")
    assert str(eq["timestamp"].dt.tz) == "UTC"
    assert eq["timestamp"].iloc[0] == pd.Timestamp("2018-01-01 00:00", tz="UTC")


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--margin", "cross-7x"], ["--margin", "cross-7x"]),
        (["--fee", "-0.001"], "--fee"),
        (["--fee", "abc"], "--fee"),
        (["--slippage", "1.5"], "--slippage"),
        (["--capital", "0"], "--capital"),
        (["--rate", "USDT=-0.1"], ["--rate", "USDT"]),
        (["--rate", "USDT"], "--rate"),
        (["--rebalance", "-1"], "--rebalance"),
        (["--liquidation", "some"], "--liquidation"),
        (["--param", "fats=3"], ["--param fats", "fast, slow, leverage"]),
        (["--param", "fast=abc"], ["--param fast=abc", "int"]),
        (["--param", "fast"], "--param"),
        (["--strategy", "no_such"], ["no_such", "sma_cross"]),
        (["--strategy", "missing.py"], "missing.py"),
        (["--param", "fast=50", "--param", "slow=10"], ["sma_cross", "fast < slow"]),
        (["--start", "2023-03-01", "--end", "2023-01-01"], ["--start", "after end"]),
        (["--start", "2031-01-01"], ["BTCUSDT-1h.parquet", "no bars", "2031-01-01", "covers"]),
        (["--end", "2010-01-01"], ["no bars", "2010-01-01", "covers"]),
        (["--start", "yesterday-ish"], "--start"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_flags(capsys, flags, says):
    expect_error(capsys, "run", "--data", BTC, "--no-report", *flags, says=says)


@pytest.mark.parametrize(
    "body, says",
    [
        ("def targets(bars):\n    raise RuntimeError('boom')\n", ["raised RuntimeError", "boom"]),
        ("def targets(bars):\n    return [1.0, 2.0]\n", ["shape", "one target per bar"]),
        ("import numpy as np\ndef targets(bars):\n    t = np.zeros(len(bars))\n    t[7] = np.inf\n    return t\n",
         ["row 7", "finite"]),
        ("def targets(bars):\n    return 'abc'\n", ["strategy"]),
        ("PARAMS = {}\n", "targets"),
        ("import not_a_module_anywhere\n", "not_a_module_anywhere"),
    ],
)
def test_bad_strategy_files(capsys, tmp_path, body, says):
    path = tmp_path / "mine.py"
    path.write_text(body)
    expect_error(capsys, "run", "--data", BTC, *SHORT, "--strategy", path, says=says)


def test_user_strategy_file_runs(capsys, tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\nPARAMS = {'x': 1.5}\ndef targets(bars, x):\n    return np.full(len(bars), x)\n")
    code, out, err = cli(capsys, "run", "--data", BTC, *SHORT, "--strategy", path, "--param", "x=2",
                         "--out", tmp_path / "o")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "run.json").read_text())["settings"]["params"] == {"x": 2.0}


def test_nan_targets_are_fine(capsys, tmp_path):
    path = tmp_path / "nans.py"
    path.write_text("import numpy as np\ndef targets(bars):\n    return np.full(len(bars), np.nan)\n")
    code, out, err = cli(capsys, "run", "--data", BTC, *SHORT, "--strategy", path, "--out", tmp_path / "o")
    assert code == 0, err


def test_unwritable_out(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    expect_error(capsys, "run", "--data", BTC, *SHORT, "--out", blocker / "sub", says=["--out", "cannot write"])


def test_target_above_the_profile_is_capped_not_an_error(capsys, tmp_path):
    code, out, err = cli(capsys, "run", "--data", BTC, *SHORT, "--strategy", "hold", "--param", "exposure=8",
                         "--out", tmp_path / "o")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["n_capped"] == 1


def test_named_strategy_failing_on_import(capsys, tmp_path, monkeypatch):
    import strategies

    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    monkeypatch.setattr(strategies, "__path__", [*strategies.__path__, str(tmp_path)])
    expect_error(capsys, "run", "--data", BTC, *SHORT, "--strategy", "broken", says=["broken", "ZeroDivisionError"])


@pytest.mark.parametrize("flags, says", [
    (["--param", "leverage=nan"], ["leverage=nan", "finite"]),
    (["--rate", "ETH=0.001"], ["--rate ETH", "BTC and USDT"]),
])
def test_more_bad_values(capsys, flags, says):
    expect_error(capsys, "run", "--data", BTC, *SHORT, *flags, says=says)


def test_symbol_flag_names_the_pair(capsys, tmp_path):
    plain = tmp_path / "prices.parquet"
    pd.read_parquet(BTC).iloc[:300].to_parquet(plain, index=False)
    expect_error(capsys, "run", "--data", plain, "--no-report", says="quote asset")
    code, out, err = cli(capsys, "run", "--data", plain, "--no-report", "--symbol", "ETHUSDT", "--out", tmp_path / "o")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "run.json").read_text())["settings"]["rates"] == {"ETH": 0.0002, "USDT": 0.0002}


def test_damaged_result_folder(capsys, tmp_path):
    code, _, err = cli(capsys, "run", "--data", BTC, *SHORT, "--out", tmp_path / "r")
    assert code == 0, err
    (tmp_path / "r" / "run.json").write_text("{}")
    expect_error(capsys, "report", tmp_path / "r", says=["not a complete result folder", "profile"])


def test_help_loads_no_numba_and_import_backtest_defers_pandas_too():
    # `backtest --help` answers before numba and matplotlib load (issue 16: < 1 s;
    # the data commands' parser still loads pandas), and `import backtest` defers
    # both to first use
    import subprocess
    import sys

    code = ("import sys, runpy\n"
            "sys.argv = ['backtest', '--help']\n"
            "try:\n    runpy.run_module('backtest', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('numba', 'matplotlib') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "usage: backtest" in out.stdout and "HEAVY []" in out.stdout, out.stdout[-500:] + out.stderr[-500:]
    lazy = subprocess.run([sys.executable, "-c", "import sys, backtest; print(sorted(m for m in ('pandas', 'numba') "
                                               "if m in sys.modules)); print(backtest.PROFILES['cross-3x'].name)"],
                          capture_output=True, text=True, timeout=120)
    assert lazy.stdout.split("\n")[:2] == ["[]", "cross-3x"], lazy.stdout + lazy.stderr


def test_a_run_with_no_fill_says_what_to_check(tmp_path, capsys):
    code, out, _ = cli(capsys, "run", "--data", BTC, "--strategy", "sma_cross", "--param", "slow=1000000",
                       "--out", tmp_path / "r", *SHORT)
    assert code == 0
    line = next(x for x in out.splitlines() if x.lstrip().startswith("trades"))
    assert "0  (no fill on these bars: check the strategy's parameters" in line, line
    code, out, _ = cli(capsys, "run", "--data", BTC, "--out", tmp_path / "s", *SHORT)
    line = next(x for x in out.splitlines() if x.lstrip().startswith("trades"))
    assert "no fill" not in line, line
