"""`backtest data check`: each planted fault is found and its row named."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.data import check_file, check_ohlcv, load_ohlcv
from backtest.data.cli import main as data_main

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"


@pytest.fixture(scope="module")
def clean():
    # 2022-01-01 .. : no gaps in the bundled file for 500 hours
    return load_ohlcv(BTC, start="2022-01-01").iloc[:500]


def write_raw(path, df):
    t = pa.Table.from_pandas(df.reset_index(), preserve_index=False)
    pq.write_table(t, path)
    return path


def plant(df, fault):
    df = df.copy()
    if fault == "gap":  # rows 100..102 removed: row 100 is now the 103rd bar
        return df.drop(df.index[100:103])
    if fault == "duplicate":  # copy of row 200 inserted as row 201
        return pd.concat([df.iloc[:201], df.iloc[200:201], df.iloc[201:]])
    if fault == "out-of-order":  # rows 300 and 301 swapped
        order = list(range(len(df)))
        order[300], order[301] = 301, 300
        return df.iloc[order]
    if fault == "high<low":
        df.iloc[50, df.columns.get_loc("high")] = df["low"].iloc[50] - 1.0
        return df
    if fault == "nan":
        df.iloc[60, df.columns.get_loc("close")] = np.nan
        return df
    if fault == "wick":
        df.iloc[70, df.columns.get_loc("low")] = df["low"].iloc[70] * 0.5
        return df
    if fault == "zero-volume":
        df.iloc[80:84, df.columns.get_loc("volume")] = 0.0
        return df
    raise AssertionError(fault)


def run_check(tmp_path, df, *extra):
    p = write_raw(tmp_path / "BTCUSDT-1h-test.parquet", df)
    return p, data_main(["data", "check", str(p), *extra])


def test_clean_file_exits_0(tmp_path, clean, capsys):
    p, code = run_check(tmp_path, clean)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "BTCUSDT 1h · 500 bars · 2022-01-01 00:00 → 2022-01-21 19:00 UTC" in out
    assert "0 error(s), 0 warning(s): clean" in out


@pytest.mark.parametrize("fault,code,kind,needle", [
    ("gap", 1, "gaps", "2022-01-05 03:00 → 2022-01-05 07:00 UTC: 3 bar(s) missing before row 100"),
    ("duplicate", 2, "duplicate", "row 201 (2022-01-09 08:00 UTC): same timestamp as row 200"),
    ("out-of-order", 2, "out-of-order", "row 301 (2022-01-13 12:00 UTC): before row 300 (2022-01-13 13:00 UTC)"),
    ("high<low", 2, "high<low", "row 50 (2022-01-03 02:00 UTC): high "),
    ("nan", 2, "nan:close", "row 60 (2022-01-03 12:00 UTC): close is nan"),
    ("wick", 1, "outlier-wick", "row 70 (2022-01-03 22:00 UTC): low "),
    ("zero-volume", 1, "zero-volume", "row 80 to row 83 (2022-01-04 08:00 → 2022-01-04 11:00 UTC): 4 bar(s) with volume 0"),
])
def test_each_planted_fault_found_and_row_named(tmp_path, clean, capsys, fault, code, kind, needle):
    p, got = run_check(tmp_path, plant(clean, fault))
    out = capsys.readouterr().out
    assert got == code, out
    assert f" {kind}: " in out
    assert needle in out
    rep = check_file(p)[0]
    also = {"high<low": ["high<body"]}.get(kind, [])  # high < low also breaks high >= max(o, c)
    assert [f.kind for f in rep.findings] == [kind, *also]


def test_all_faults_in_one_file(tmp_path, clean, capsys):
    df = clean
    for fault in ("high<low", "nan", "wick", "gap"):
        df = plant(df, fault)
    # duplicate / out-of-order after the gap removed 3 rows (positions shift by 3)
    df = plant(df, "duplicate")
    df = plant(df, "out-of-order")
    p, code = run_check(tmp_path, df, "--json")
    assert code == 2
    rep = json.loads(capsys.readouterr().out)[0]
    kinds = {f["kind"]: f for f in rep["findings"]}
    assert set(kinds) >= {"gaps", "duplicate", "out-of-order", "high<low", "nan:close", "outlier-wick"}
    assert kinds["high<low"]["rows"] == [50]
    assert kinds["nan:close"]["rows"] == [60]
    assert kinds["outlier-wick"]["rows"] == [70]
    assert kinds["duplicate"]["rows"] == [201]
    assert kinds["out-of-order"]["rows"] == [301]
    assert rep["exit_code"] == 2 and rep["gaps"][0][2] == 3


def test_wick_threshold_flag(tmp_path, clean, capsys):
    df = clean.copy()
    df.iloc[70, df.columns.get_loc("low")] *= 0.97  # a 3 % poke below the neighbours
    p = write_raw(tmp_path / "w.parquet", df)
    assert data_main(["data", "check", str(p)]) == 0
    assert data_main(["data", "check", str(p), "--wick-k", "3"]) == 1
    assert "row 70" in capsys.readouterr().out


def test_bundled_file_has_only_warnings():
    rep = check_file(BTC)[0]
    assert rep.exit_code == 1 and not rep.errors
    gaps = next(f for f in rep.findings if f.kind == "gaps")
    assert gaps.count == 27 and "122 bars missing" in gaps.summary
    assert sum(g[2] for g in rep.gaps) == 122
    zv = next(f for f in rep.findings if f.kind == "zero-volume")
    assert zv.count == 3


def test_check_dataframe_and_offgrid_and_timeframe(clean):
    rep = check_ohlcv(clean)
    assert rep.exit_code == 0 and rep.timeframe == "1h"
    df = clean.copy()
    idx = df.index.to_numpy().copy()
    idx[10] = idx[10] + np.timedelta64(30, "m")
    df.index = pd.DatetimeIndex(idx, name="timestamp")
    rep = check_ohlcv(df)
    off = next(f for f in rep.findings if f.kind == "off-grid")
    assert off.rows == [10] and "not on the 1h grid" in off.summary
    df = clean.copy()
    df.attrs["timeframe"] = "4h"
    rep = check_ohlcv(df)
    assert rep.findings[0].kind == "timeframe" and "says 4h" in rep.findings[0].summary


def test_check_csv_and_structural_errors(tmp_path, capsys):
    p = tmp_path / "x.csv"
    p.write_text("timestamp,open,high,low,close,volume\n"
                 "1577836800000,1,2,0.5,1.5,1\n1577840400000,1,0.9,0.5,1.5,1\n")
    assert data_main(["data", "check", str(p)]) == 2
    out = capsys.readouterr().out
    assert "line 3 (2020-01-01 01:00 UTC): high 0.9 < max(open, close) 1.5" in out
    assert data_main(["data", "check", str(tmp_path / "missing.parquet")]) == 2
    assert "missing.parquet: file not found" in capsys.readouterr().err
    q = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"timestamp": [1, 2], "open": [1.0, 1.0], "high": [1.0, 1.0],
                             "low": [1.0, 1.0], "close": [1.0, 1.0], "volume": [1.0, 1.0]}), q)
    assert data_main(["data", "check", str(q)]) == 2
    assert "column 'timestamp': type int64 is not a timestamp" in capsys.readouterr().err
