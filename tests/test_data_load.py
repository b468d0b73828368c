"""load_ohlcv / validate_ohlcv / find_gaps: spec §6, one-line errors."""

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.data import find_gaps, load_ohlcv, validate_ohlcv, write_ohlcv
from backtest.data.names import parse_name
from backtest.data.timeframes import parse_timeframe
from backtest.errors import DataError, UserError

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"


def frame(n=48, start="2020-01-01", freq="1h", tz="UTC"):
    idx = pd.date_range(start, periods=n, freq=freq, tz=tz, name="timestamp")
    return pd.DataFrame({"open": 100.0, "high": 102.0, "low": 99.0, "close": 101.0,
                         "volume": 1.0}, index=idx)


def write_raw(path, df, metadata=None):
    """Write without any validation (to plant faults)."""
    t = pa.Table.from_pandas(df.reset_index(), preserve_index=False)
    if metadata:
        t = t.replace_schema_metadata({**(t.schema.metadata or {}), **metadata})
    pq.write_table(t, path)
    return path


def err(fn, *a, **k):
    with pytest.raises(DataError) as e:
        fn(*a, **k)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# ---- the happy path ---------------------------------------------------------

def test_bundled_loads_with_canonical_schema():
    df = load_ohlcv(BTC)
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert all(df[c].dtype == np.float64 for c in df.columns)
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.name == "timestamp"
    assert str(df.index.dtype) == "datetime64[ns, UTC]"
    assert len(df) == 73_265
    assert df.index[0] == pd.Timestamp("2018-01-01 00:00", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2026-05-16 18:00", tz="UTC")
    assert df.attrs["symbol"] == "BTCUSDT" and df.attrs["timeframe"] == "1h"
    assert df.attrs["path"] == str(BTC)
    assert df.iloc[0].tolist() == [13715.65, 13715.65, 13400.01, 13529.01, df.volume.iloc[0]]


def test_start_end_range_and_whole_day_end():
    df = load_ohlcv(BTC, start="2020-03-01", end="2020-03-12")
    assert df.index[0] == pd.Timestamp("2020-03-01 00:00", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2020-03-12 23:00", tz="UTC")  # whole day
    df = load_ohlcv(BTC, start=pd.Timestamp("2020-03-01 05:00"), end="2020-03-12 10:00")
    assert df.index[0] == pd.Timestamp("2020-03-01 05:00", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2020-03-12 10:00", tz="UTC")  # inclusive instant
    df = load_ohlcv(BTC, end=dt.date(2018, 1, 1))
    assert len(df) == 24
    df = load_ohlcv(BTC, start="2020-03-01T00:00:00+02:00", end="2020-03-01 00:00")
    assert list(df.index) == [pd.Timestamp(f"2020-02-29 {h}:00", tz="UTC") for h in (22, 23)] + [
        pd.Timestamp("2020-03-01 00:00", tz="UTC")]


def test_range_read_prunes_row_groups(tmp_path):
    df = load_ohlcv(BTC)
    p = tmp_path / "BTCUSDT-1h.parquet"
    write_ohlcv(df, p)
    assert pq.ParquetFile(p).metadata.num_row_groups == 1
    t = pa.Table.from_pandas(df.reset_index(), preserve_index=False)
    pq.write_table(t, tmp_path / "small-groups.parquet", row_group_size=1000)
    part = load_ohlcv(tmp_path / "small-groups.parquet", start="2024-01-01", end="2024-01-31")
    assert part.equals(df.loc["2024-01-01":"2024-01-31"])


def test_symbol_and_timeframe_inference(tmp_path):
    df = frame(10, freq="4h")
    a = load_ohlcv(write_raw(tmp_path / "BTC_USDT-4h.parquet", df))
    assert (a.attrs["symbol"], a.attrs["timeframe"]) == ("BTCUSDT", "4h")
    b = load_ohlcv(write_raw(tmp_path / "mydata.parquet", df))
    assert (b.attrs["symbol"], b.attrs["timeframe"]) == ("MYDATA", "4h")  # from spacing
    c = load_ohlcv(write_raw(tmp_path / "BTC_USDT-4h-x.parquet", df,
                             {b"symbol": b"ETHUSDT", b"timeframe": b"4h"}))
    assert c.attrs["symbol"] == "ETHUSDT"  # metadata wins


@pytest.mark.parametrize("name,expected", [
    ("BTCUSDT-1h.parquet", ("BTCUSDT", "1h")),
    ("BTC_USDT-1h.feather", ("BTCUSDT", "1h")),
    ("BTC_USDT-5m.json.gz", ("BTCUSDT", "5m")),
    ("ETH_USDT_USDT-1h-futures.feather", ("ETHUSDT", "1h")),
    ("BTCUSDT_PERP-1h-mark.parquet", ("BTCUSDT_PERP", "1h")),
    ("BTCUSDT-1m-2025-01.zip", ("BTCUSDT", "1m")),
    ("BTCUSDT-1mo-2024-01.csv", ("BTCUSDT", "1M")),
    ("BTCUSDT-1d-2024-01-05.csv", ("BTCUSDT", "1d")),
    ("prices.csv", ("PRICES", None)),
])
def test_parse_name(name, expected):
    assert parse_name(name) == expected


def test_parse_timeframe():
    assert str(parse_timeframe("60m")) == "1h" and str(parse_timeframe("7d")) == "1w"
    assert str(parse_timeframe("1mo")) == "1M"
    with pytest.raises(UserError, match="not a timeframe"):
        parse_timeframe("4x")


def test_naive_is_utc_and_zones_converted(tmp_path):
    naive = frame(5, tz=None)
    a = load_ohlcv(write_raw(tmp_path / "naive.parquet", naive))
    assert a.index[0] == pd.Timestamp("2020-01-01 00:00", tz="UTC")
    berlin = frame(5, start="2020-01-01 01:00", tz="Europe/Berlin")
    b = load_ohlcv(write_raw(tmp_path / "berlin.parquet", berlin))
    assert str(b.index.dtype) == "datetime64[ns, UTC]"
    assert b.index[0] == pd.Timestamp("2020-01-01 00:00", tz="UTC")
    c = load_ohlcv(tmp_path / "berlin.parquet", start="2020-01-01 01:00")
    assert c.index[0] == pd.Timestamp("2020-01-01 01:00", tz="UTC")


def test_ms_unit_timestamps_and_int_prices_accepted(tmp_path):
    df = frame(5).reset_index()
    t = pa.table({"timestamp": pa.array(df.timestamp.astype("datetime64[ms, UTC]")),
                  "open": pa.array([100] * 5), "high": [102.0] * 5, "low": [99.0] * 5,
                  "close": [101.0] * 5, "volume": [1.0] * 5, "extra": ["x"] * 5})
    pq.write_table(t, tmp_path / "ms.parquet")
    out = load_ohlcv(tmp_path / "ms.parquet")
    assert out.equals(frame(5)) and list(out.columns) == ["open", "high", "low", "close", "volume"]


# ---- every bad input: DataError naming file, column, row --------------------

def test_missing_file(tmp_path):
    msg = err(load_ohlcv, tmp_path / "nope.parquet")
    assert "nope.parquet" in msg and "not found" in msg


def test_not_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_text("timestamp,open,high,low,close,volume\n2020-01-01,1,1,1,1,1\n")
    msg = err(load_ohlcv, p)
    assert str(p) in msg and "not a Parquet file" in msg and "text" in msg
    d = tmp_path / "dir.parquet"
    d.mkdir()
    assert "directory" in err(load_ohlcv, d)
    e = tmp_path / "empty.parquet"
    e.write_bytes(b"")
    assert "not a Parquet file" in err(load_ohlcv, e)


def test_missing_and_misnamed_columns(tmp_path):
    df = frame().drop(columns="volume")
    msg = err(load_ohlcv, write_raw(tmp_path / "a.parquet", df))
    assert "a.parquet" in msg and "missing column(s) 'volume'" in msg and "found 'timestamp', 'open'" in msg
    df = frame().rename(columns={"close": "Close"})
    msg = err(load_ohlcv, write_raw(tmp_path / "b.parquet", df))
    assert "'close'" in msg and "'Close'" in msg
    df = frame().reset_index().rename(columns={"timestamp": "date"}).set_index("date")
    msg = err(load_ohlcv, write_raw(tmp_path / "c.parquet", df))
    assert "missing column(s) 'timestamp'" in msg and "'date'" in msg and "backtest data import" in msg


def test_integer_timestamps_are_not_guessed(tmp_path):
    df = frame().reset_index()
    df["timestamp"] = df["timestamp"].astype("int64") // 10**6
    p = tmp_path / "ms.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p)
    msg = err(load_ohlcv, p)
    assert "ms.parquet" in msg and "column 'timestamp'" in msg and "int64 is not a timestamp" in msg


def test_string_prices_rejected(tmp_path):
    df = frame()
    df["open"] = df["open"].astype(str)
    msg = err(load_ohlcv, write_raw(tmp_path / "s.parquet", df))
    assert "column 'open'" in msg and "not numeric" in msg


def test_example_message_low_above_body(tmp_path):
    df = frame(48)
    df.iloc[17, df.columns.get_loc("low")] = 101.0
    df.iloc[17, df.columns.get_loc("open")] = 100.0
    df.iloc[17, df.columns.get_loc("close")] = 100.5
    p = write_raw(tmp_path / "x.parquet", df)
    assert err(load_ohlcv, p) == (
        f"{p}: column 'low': row 17 (2020-01-01 17:00 UTC) low 101.0 > min(open, close) 100.0")


@pytest.mark.parametrize("col,value,row,needle", [
    ("close", np.nan, 5, "column 'close': row 5 (2020-01-01 05:00 UTC) close is nan"),
    ("volume", np.inf, 6, "column 'volume': row 6 (2020-01-01 06:00 UTC) volume is inf"),
    ("open", 0.0, 7, "column 'open': row 7 (2020-01-01 07:00 UTC) open 0.0 <= 0"),
    ("low", -1.0, 8, "column 'low': row 8 (2020-01-01 08:00 UTC) low -1.0 <= 0"),
    ("volume", -0.5, 9, "column 'volume': row 9 (2020-01-01 09:00 UTC) volume -0.5 < 0"),
    ("high", 98.0, 10, "column 'high': row 10 (2020-01-01 10:00 UTC) high 98.0 < low 99.0"),
    ("high", 100.5, 11, "column 'high': row 11 (2020-01-01 11:00 UTC) high 100.5 < max(open, close) 101.0"),
    ("low", 100.5, 12, "column 'low': row 12 (2020-01-01 12:00 UTC) low 100.5 > min(open, close) 100.0"),
])
def test_bad_values(tmp_path, col, value, row, needle):
    df = frame()
    df.iloc[row, df.columns.get_loc(col)] = value
    p = write_raw(tmp_path / "bad.parquet", df)
    msg = err(load_ohlcv, p)
    assert msg == f"{p}: {needle}"
    # the same through validate_ohlcv, named by the source given
    msg2 = err(validate_ohlcv, df, "my bars")
    assert msg2 == f"my bars: {needle}"


def test_first_bad_row_wins_and_count(tmp_path):
    df = frame()
    df.iloc[30, df.columns.get_loc("close")] = np.nan
    df.iloc[20, df.columns.get_loc("high")] = 98.0
    df.iloc[40, df.columns.get_loc("high")] = 98.0
    msg = err(validate_ohlcv, df)
    assert "row 20 (2020-01-01 20:00 UTC) high 98.0 < low 99.0 (first of 2 bad rows)" in msg


def test_duplicate_and_decreasing_timestamps(tmp_path):
    df = frame().reset_index()
    df.loc[20, "timestamp"] = df.loc[19, "timestamp"]
    msg = err(load_ohlcv, write_raw(tmp_path / "dup.parquet", df.set_index("timestamp")))
    assert "dup.parquet: column 'timestamp': row 20 (2020-01-01 19:00 UTC) duplicates the timestamp of row 19" in msg
    df = frame().reset_index()
    df.loc[[30, 31], "timestamp"] = df.loc[[31, 30], "timestamp"].to_numpy()
    msg = err(load_ohlcv, write_raw(tmp_path / "ooo.parquet", df.set_index("timestamp")))
    assert ("ooo.parquet: column 'timestamp': row 31 (2020-01-02 06:00 UTC) is not after "
            "row 30 (2020-01-02 07:00 UTC)") in msg


def test_missing_timestamp(tmp_path):
    df = frame().reset_index()
    df.loc[3, "timestamp"] = pd.NaT
    msg = err(load_ohlcv, write_raw(tmp_path / "nat.parquet", df.set_index("timestamp")))
    assert "column 'timestamp': row 3 has no timestamp (NaT)" in msg


def test_empty_file_and_empty_range(tmp_path):
    p = write_raw(tmp_path / "empty.parquet", frame(0))
    msg = err(load_ohlcv, p)
    assert "empty.parquet" in msg and "no bars" in msg
    msg = err(load_ohlcv, BTC, start="2030-01-01", end="2030-02-01")
    assert ("no bars from 2030-01-01 00:00 UTC to 2030-02-01 23:59:59.999999999 UTC "
            "(the file covers 2018-01-01 00:00 UTC to 2026-05-16 18:00 UTC)") in msg
    with pytest.raises(UserError, match="start 2020-02-01 00:00 UTC is after end"):
        load_ohlcv(BTC, start="2020-02-01", end="2020-01-01")
    with pytest.raises(UserError, match="not a date"):
        load_ohlcv(BTC, start="yesterday-ish")


def test_range_read_names_the_file_row(tmp_path):
    df = frame(100)
    df.iloc[70, df.columns.get_loc("close")] = np.nan
    p = write_raw(tmp_path / "r.parquet", df)
    msg = err(load_ohlcv, p, start="2020-01-02 12:00")
    assert "column 'close': row 70 (2020-01-03 22:00 UTC)" in msg


# ---- validate_ohlcv on frames ----------------------------------------------

def test_validate_frame_forms():
    df = frame(10)
    out = validate_ohlcv(df)
    assert out.equals(df) and out is not df
    out2 = validate_ohlcv(df.reset_index())  # timestamp column
    assert out2.equals(df)
    naive = frame(10, tz=None)
    assert validate_ohlcv(naive).index.equals(df.index)
    tokyo = df.tz_convert("Asia/Tokyo")
    assert str(validate_ohlcv(tokyo).index.dtype) == "datetime64[ns, UTC]"
    ints = df.astype({"open": "int64"})
    assert validate_ohlcv(ints)["open"].dtype == np.float64
    us = df.copy()
    us.index = us.index.as_unit("us")
    assert str(validate_ohlcv(us).index.dtype) == "datetime64[ns, UTC]"
    df.attrs["symbol"] = "XYZ"
    assert validate_ohlcv(df).attrs["symbol"] == "XYZ"
    assert validate_ohlcv(df).attrs["timeframe"] == "1h"


def test_validate_frame_errors():
    df = frame(10).reset_index(drop=True)
    msg = err(validate_ohlcv, df, "bars")
    assert "bars: missing column(s) 'timestamp'" in msg and "RangeIndex" in msg
    df = frame(10).reset_index()
    df["timestamp"] = df["timestamp"].astype("int64") // 10**6
    msg = err(validate_ohlcv, df, "bars")
    assert "bars: column 'timestamp': type int64 is not a datetime" in msg
    df = frame(10).rename(columns=str.capitalize)
    msg = err(validate_ohlcv, df, "bars")
    assert "case-sensitive" in msg
    assert "not numeric" in err(validate_ohlcv, frame(3).assign(close="1"), "bars")


def test_validate_million_rows_fast():
    n = 1_000_000
    rng = np.random.default_rng(1)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    o = np.r_[100.0, c[:-1]]
    df = pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.001, "low": np.minimum(o, c) * 0.999,
                       "close": c, "volume": 1.0},
                      index=pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC"))
    validate_ohlcv(df)  # warm
    t = time.perf_counter()
    validate_ohlcv(df)
    assert time.perf_counter() - t < 1.0


# ---- gaps ---------------------------------------------------------------------

def test_find_gaps_bundled_matches_sources_md():
    gaps = find_gaps(load_ohlcv(BTC).index)
    assert len(gaps) == 27 and sum(g[2] for g in gaps) == 122
    assert gaps[0] == (pd.Timestamp("2018-01-04 03:00", tz="UTC"),
                       pd.Timestamp("2018-01-04 05:00", tz="UTC"), 1)
    assert max(gaps, key=lambda g: g[2]) == (pd.Timestamp("2018-02-08 00:00", tz="UTC"),
                                              pd.Timestamp("2018-02-09 10:00", tz="UTC"), 33)
    assert gaps[-1][0] == pd.Timestamp("2023-03-24 12:00", tz="UTC")


def test_find_gaps_small():
    idx = frame(10).index.delete([3, 4, 7])
    assert find_gaps(idx) == [
        (pd.Timestamp("2020-01-01 02:00", tz="UTC"), pd.Timestamp("2020-01-01 05:00", tz="UTC"), 2),
        (pd.Timestamp("2020-01-01 06:00", tz="UTC"), pd.Timestamp("2020-01-01 08:00", tz="UTC"), 1),
    ]
    assert find_gaps(frame(10).index) == []
    assert len(find_gaps(idx, step="30m")) == 6
    naive = pd.date_range("2020-01-01", periods=5, freq="D").delete(2)
    assert find_gaps(naive) == [(pd.Timestamp("2020-01-02", tz="UTC"), pd.Timestamp("2020-01-04", tz="UTC"), 1)]
