"""`backtest data ...` end to end: the main CLI in-process, and a few calls
through `python -m backtest` (exit codes, one-line errors on stderr)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.data import load_ohlcv

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"

def bt(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "backtest", "data", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def main(*args):
    from backtest.cli import main as cli_main

    return cli_main(["data", *map(str, args)])


def kline_csv(df, unit):
    div = 10**6 if unit == "ms" else 10**3
    lines = []
    for t, r in zip(df.index.as_unit("ns").asi8 // div, df.itertuples(index=False)):
        lines.append(f"{t},{r.open!r},{r.high!r},{r.low!r},{r.close!r},{r.volume!r},"
                     f"{t + 3_600_000_000_000 // div - 1},0,0,0,0,0")
    return "\n".join(lines) + "\n"


def test_import_binance_check_info_resample(tmp_path, capsys):
    hourly = load_ohlcv(BTC, start="2024-12-01", end="2025-01-31")
    old, new = hourly.loc[:"2024-12-31"], hourly.loc["2025-01-01":]
    z = tmp_path / "BTCUSDT-1h-2024-12.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("BTCUSDT-1h-2024-12.csv", kline_csv(old, "ms"))
    c = tmp_path / "BTCUSDT-1h-2025-01.csv"
    c.write_text(kline_csv(new, "us"))
    out = tmp_path / "X.parquet"
    r = bt("import-binance", z, c, "--out", out)  # ms ZIP + µs CSV in one call
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "BTCUSDT 1h, 1,488 bars" in r.stdout
    assert load_ohlcv(out).equals(hourly)

    assert main("import", "--format", "binance", z, c, "--out", tmp_path / "Y.parquet") == 0
    assert load_ohlcv(tmp_path / "Y.parquet").equals(hourly)
    # a --timeframe the bars contradict (helper-73: written as the file's, every run then warned)
    capsys.readouterr()
    (tmp_path / "w").mkdir()  # (not beside the inputs: the folder is imported below)
    assert main("import", "--format", "binance", z, c, "--timeframe", "4h", "--out", tmp_path / "w" / "W.parquet") == 2
    err = capsys.readouterr().err
    assert "--timeframe 4h: the bars are 1h apart" in err and err.count("\n") == 1
    assert not (tmp_path / "w" / "W.parquet").exists()
    assert main("import", "--format", "binance", z, c, "--timeframe", "1h", "--out", tmp_path / "w" / "W.parquet") == 0
    # a directory: each file's format detected on its own, repeated bars kept once
    assert main("import", tmp_path, "--out", tmp_path / "Z.parquet") == 0
    assert "2,976 duplicate bars across files dropped" in capsys.readouterr().out
    assert load_ohlcv(tmp_path / "Z.parquet").equals(hourly)
    # again into the same folder: the file being replaced is not read as one of the folder's inputs
    assert main("import", tmp_path, "--out", tmp_path / "Z.parquet") == 2
    assert "(it is one of the inputs)" in capsys.readouterr().err
    assert main("import", tmp_path, "--out", tmp_path / "Z.parquet", "--overwrite") == 0
    assert "2,976 duplicate bars across files dropped" in capsys.readouterr().out

    capsys.readouterr()
    assert main("check", out) == 0
    assert "0 error(s), 0 warning(s): clean" in capsys.readouterr().out

    assert main("info", out) == 0
    text = capsys.readouterr().out
    assert "bars        1,488: 2024-12-01 00:00 → 2025-01-31 23:00 UTC" in text
    assert "timeframe   1h (from metadata)" in text

    assert main("resample", out, "--to", "4h", "--out", tmp_path / "X4.parquet") == 0
    four = load_ohlcv(tmp_path / "X4.parquet")
    assert len(four) == 372 and four.attrs["timeframe"] == "4h"

    # an existing --out, the input itself above all, is replaced only with --overwrite
    capsys.readouterr()
    before = (tmp_path / "X4.parquet").read_bytes()
    assert main("resample", out, "--to", "1d", "--out", tmp_path / "X4.parquet") == 2
    assert "X4.parquet: exists; give --overwrite to replace it" in capsys.readouterr().err
    assert (tmp_path / "X4.parquet").read_bytes() == before
    assert main("resample", out, "--to", "1d", "--out", out) == 2
    err = capsys.readouterr().err  # (its own source is refused even with --overwrite, below: no dead end)
    assert "(it is one of the inputs)" in err and "--overwrite" not in err and load_ohlcv(out).equals(hourly)
    assert main("import-binance", z, "--out", out) == 2 and load_ohlcv(out).equals(hourly)
    assert main("resample", out, "--to", "1d", "--out", tmp_path / "X4.parquet", "--overwrite") == 0
    assert load_ohlcv(tmp_path / "X4.parquet").attrs["timeframe"] == "1d"
    # its own source even with --overwrite: the hourly bars could not be made again from the daily ones
    capsys.readouterr()
    before = out.read_bytes()
    assert main("resample", out, "--to", "1d", "--out", out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert "is the file being resampled" in err and err.count("\n") == 1 and out.read_bytes() == before
    # Parquet is written under a .parquet name only (in a .csv it would be read back as CSV)
    assert main("import-binance", z, "--out", tmp_path / "Y.csv") == 2
    assert "give it a .parquet name" in capsys.readouterr().err and not (tmp_path / "Y.csv").exists()


def test_check_exit_codes_and_errors(tmp_path, capsys):
    r = bt("check", BTC)
    assert r.returncode == 1 and "27 gaps, 122 bars missing" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n1577836800000,1,2,0.5,1.5,1\n"
                   "1577840400000,1,2,0.5,1.5,-1\n")
    assert main("check", bad) == 2
    assert "line 3 (2020-01-01 01:00 UTC): volume -1.0 < 0" in capsys.readouterr().out
    r = bt("import", bad, "--out", tmp_path / "o.parquet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"error: {bad}: column 'volume': line 3 (2020-01-01 01:00 UTC) "
                                "volume -1.0 < 0")
    assert main("check", tmp_path / "none.parquet") == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.parquet'}: file not found"
    assert main("import", bad, "--out", tmp_path / "o.parquet", "--format", "xls") == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main("resample", BTC, "--to", "7m", "--out", tmp_path / "r.parquet") == 2
    assert "--to 7m: not a whole multiple" in capsys.readouterr().err
    assert main("import", bad) == 2  # --out is required
    assert "--out" in capsys.readouterr().err


def test_a_sparse_file_keeps_the_timeframe_given(tmp_path, capsys):
    """(review, helper-74) 1-minute bars of a quiet pair miss most minutes (no trade, no candle): their median
    spacing is coarser than 1m, and --timeframe 1m is what names them; bars closer than --timeframe are refused."""
    rng = np.random.default_rng(3)
    minutes = np.sort(rng.choice(np.arange(3000), size=1100, replace=False))
    t = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(minutes, unit="min")
    c = 100 + np.cumsum(rng.normal(0, 0.1, len(t)))
    csv = tmp_path / "QUIETUSDT.csv"
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "open": c, "high": c + 0.2, "low": c - 0.2,
                  "close": c, "volume": 1.0}).to_csv(csv, index=False)
    assert main("import", csv, "--timeframe", "1m", "--out", tmp_path / "q.parquet") == 0
    assert load_ohlcv(tmp_path / "q.parquet").attrs["timeframe"] == "1m"
    capsys.readouterr()
    assert main("import", csv, "--timeframe", "1h", "--out", tmp_path / "h.parquet") == 2
    assert "--timeframe 1h: the bars are" in capsys.readouterr().err
