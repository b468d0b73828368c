"""Inputs that would make garbage are refused (another market's --mark or
--detail), messages name the culprit (never an exception's class name), and
a first run says it compiles; --help shows names and defaults."""
import re
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest import _numba_cache
from backtest.cli import build_parser, main
from backtest.data.parquet import write_ohlcv

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
ETH = ROOT / "data" / "ETHUSDT-1h.parquet"
MINUTES = ROOT / "data" / "BTCUSDT-1m-2025-06-16.parquet"
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Invalid)\b")


def one_line_error(capsys, argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_another_symbols_mark_file_is_refused_naming_both_files(capsys, tmp_path):
    """The issue's case: ETHUSDT prices as the mark of a BTCUSDT run made
    12,005 liquidations of quantity 0.  Now one line, both files named."""
    line = one_line_error(capsys, ["run", "--data", BTC, "--mark", ETH, "--out", tmp_path / "o"])
    assert str(ETH) in line and str(BTC) in line and "--mark" in line


def test_a_mark_series_far_from_the_traded_prices_is_refused(tmp_path):
    bars = backtest.load_ohlcv(BTC, start="2024-01-01", end="2024-01-31")
    near, far = bars.copy(), bars.copy()
    near[["open", "high", "low", "close"]] *= 1.05
    far[["open", "high", "low", "close"]] *= 1.3
    assert backtest.run(bars, "hold", mark=near).summary["mark_missing_bars"] == 0  # within the band: fine
    with pytest.raises(backtest.UserError, match=r"mark=mark: its prices are 1.3× those of bars .*BTCUSDT-1h.parquet"):
        backtest.run(bars, "hold", mark=far)
    renamed = write_ohlcv(far, tmp_path / "BTCUSDT_PERP-1h-mark.parquet", symbol="BTCUSDT_PERP", timeframe="1h")
    with pytest.raises(backtest.UserError, match=re.escape(str(renamed))):
        backtest.run(BTC, "hold", start="2024-01-01", end="2024-01-31", mark=renamed)


def test_a_detail_file_of_other_prices_is_refused(tmp_path):
    fine = backtest.load_ohlcv(MINUTES)
    fine[["open", "high", "low", "close"]] *= 2.0
    path = write_ohlcv(fine, tmp_path / "BTCUSDT-1m.parquet", symbol="BTCUSDT", timeframe="1m")
    with pytest.raises(backtest.UserError, match=r"detail=.*BTCUSDT-1m.parquet: its prices are 2× those of bars .*BTCUSDT-1h.parquet"):
        backtest.run(BTC, "hold", start="2025-06-16", end="2025-06-22", detail=path)
    ok = backtest.run(BTC, "hold", start="2025-06-16", end="2025-06-22", detail=MINUTES)
    assert ok.summary["detail_bars"] > 0


def test_report_errors_name_the_file_never_an_exception(capsys, tmp_path):
    out = tmp_path / "r"
    assert main(["run", "--data", str(BTC), "--start", "2024-01-01", "--end", "2024-01-10", "--out", str(out),
                 "--no-report"]) == 0
    capsys.readouterr()
    originals = {p.name: p.read_bytes() for p in out.iterdir()}
    for name, damage in (("summary.json", b"[1, 2"), ("run.json", b"{}"), ("equity.parquet", b"PAR1 short"),
                         ("trades.csv", b"\xff\xfe\x00garbage"), ("orders.csv", b"")):
        (out / name).write_bytes(damage)
        line = one_line_error(capsys, ["report", out])
        assert name in line and not EXCEPTION_NAME.search(line), line
        (out / name).write_bytes(originals[name])
    (out / "margin_calls.csv").unlink()
    assert "margin_calls.csv" in one_line_error(capsys, ["report", out])


def test_data_check_takes_a_folder(capsys, tmp_path):
    for src in (BTC, ETH):
        write_ohlcv(backtest.load_ohlcv(src, start="2024-01-01", end="2024-01-05"), tmp_path / src.name)
    code = main(["data", "check", str(tmp_path)])
    out = capsys.readouterr().out
    assert code in (0, 1) and "BTCUSDT-1h.parquet" in out and "ETHUSDT-1h.parquet" in out


# ------------------------------------------------------------- first run
def test_a_cold_cache_says_it_compiles_once(tmp_path, monkeypatch, capsys):
    import numba

    bars = backtest.load_ohlcv(BTC, start="2024-01-01", end="2024-01-02")
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))  # an empty cache folder: cold
    monkeypatch.setattr(_numba_cache, "_announced", [])
    assert _numba_cache.cold()
    # the bar checks' helper compiles first in a fresh process: still cold until the kernel is cached
    (tmp_path / "data_x").mkdir()
    (tmp_path / "data_x" / "clean.clean-16.py311.nbi").write_bytes(b"")
    assert _numba_cache.cold()
    backtest.run(bars, "hold")
    backtest.run(bars, "hold")
    assert capsys.readouterr().err.count("compiling the kernels, once: ~") == 1
    monkeypatch.setattr(_numba_cache, "_announced", [])
    (tmp_path / "backtest_x").mkdir()
    (tmp_path / "backtest_x" / "kernel._loop-1.py311.nbi").write_bytes(b"")
    backtest.run(bars, "hold")
    assert not _numba_cache.cold() and capsys.readouterr().err == ""


def test_run_help_lists_profiles_strategies_and_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in backtest.PROFILES:
        assert name in text.replace("- ", "-"), name
    for name in ("hold", "sma_cross", "rsi_revert", "dip_entry", "pair_trade"):
        assert name in text, name
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("run", "sweep"):
        p = sub.choices[command]
        formatter = p._get_formatter()
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert "default" in formatter._get_help_string(action), (command, action.option_strings)


def test_numpy_arrays_of_targets_and_numpy_params_work():
    bars = backtest.load_ohlcv(BTC, start="2024-01-01", end="2024-01-10")
    res = backtest.run(bars, np.full(len(bars), np.float32(1.0)), capital=np.int64(1000))
    assert res.settings["capital"] == 1000.0 and res.summary["n_trades"] == 1
