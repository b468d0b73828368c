"""Importing Binance archive, freqtrade, ccxt and generic files (issues 2 and 7)."""

import gzip
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from backtest.data import import_ohlcv, load_ohlcv, write_ohlcv
from backtest.data.binance import kline_time_ns
from backtest.data.cli import main as data_main
from backtest.errors import DataError, UserError

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
          "taker_buy_volume,taker_buy_quote_volume,ignore")


@pytest.fixture(scope="module")
def btc():
    return load_ohlcv(BTC)


def ms_or_us(ts_ns, unit):
    return ts_ns // (10**6 if unit == "ms" else 10**3)


def binance_lines(df, unit="ms", header=False, unit_from=None):
    """Kline CSV text as data.binance.vision writes it (``unit_from``: a
    timestamp from which on times are µs, as in the 2025+ spot files)."""
    ns = df.index.as_unit("ns").asi8
    step = int(pd.Timedelta(df.attrs.get("timeframe", "1h")).value)
    if unit_from is not None:
        us = ns >= pd.Timestamp(unit_from, tz="UTC").value
    else:
        us = np.full(ns.shape, unit == "us")
    div = np.where(us, 10**3, 10**6)
    t = (ns // div).tolist()
    close = ((ns + step) // div - 1).tolist()
    cols = [df[c].tolist() for c in ("open", "high", "low", "close", "volume")]
    out = [HEADER] if header else []
    for i, (a, z, o, h, lo, c, v) in enumerate(zip(t, close, *cols)):
        out.append(f"{a},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{v!r},{z},{v * c!r},{i},0.1,0.2,0")
    return "\n".join(out) + "\n"


def freqtrade_json(df):
    ms = (df.index.as_unit("ns").asi8 // 10**6).tolist()
    return json.dumps([[t, *row] for t, row in zip(ms, df.to_numpy().tolist())])


def same(a, b):
    assert a.index.equals(b.index)
    assert str(a.index.dtype) == "datetime64[ns, UTC]"
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        assert np.array_equal(a[c].to_numpy(), b[c].to_numpy()), c


# ---- Done when: round trips of the bundled BTCUSDT-1h -------------------------

@pytest.mark.parametrize("unit", ["ms", "us"])
def test_round_trip_binance_csv(tmp_path, btc, unit):
    p = tmp_path / "BTCUSDT-1h-all.csv"
    p.write_text(binance_lines(btc, unit))
    got = import_ohlcv(p)
    same(got, btc)
    assert got.attrs["symbol"] == "BTCUSDT" and got.attrs["timeframe"] == "1h"
    out = write_ohlcv(got, tmp_path / "out.parquet")
    same(load_ohlcv(out), btc)


def test_round_trip_freqtrade_json(tmp_path, btc):
    p = tmp_path / "BTC_USDT-1h.json"
    p.write_text(freqtrade_json(btc))
    got = import_ohlcv(p)
    same(got, btc)
    assert got.attrs["format"] == "freqtrade" and got.attrs["symbol"] == "BTCUSDT"
    gz = tmp_path / "BTC_USDT-1h.json.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    same(import_ohlcv(gz), btc)


def test_round_trip_freqtrade_feather(tmp_path, btc):
    p = tmp_path / "BTC_USDT-1h.feather"
    t = btc.reset_index().rename(columns={"timestamp": "date"})
    t["date"] = t["date"].astype("datetime64[ms, UTC]")
    feather.write_feather(t, p)
    got = import_ohlcv(p)
    same(got, btc)
    assert (got.attrs["symbol"], got.attrs["timeframe"]) == ("BTCUSDT", "1h")


def test_round_trip_ccxt_json_and_csv(tmp_path, btc):
    p = tmp_path / "binance_btcusdt_1h.json"
    ms = (btc.index.as_unit("ns").asi8 // 10**6).tolist()
    rows = [[t, *r] for t, r in zip(ms, btc.to_numpy().tolist())]
    p.write_text(json.dumps(rows, indent=1))  # whitespace between rows
    same(import_ohlcv(p, fmt="ccxt", symbol="BTCUSDT"), btc)
    c = tmp_path / "ohlcv.csv"
    c.write_text("timestamp,open,high,low,close,volume\n"
                 + "\n".join(",".join(repr(x) for x in r) for r in rows) + "\n")
    same(import_ohlcv(c), btc)
    c.write_text("\n".join(",".join(repr(x) for x in r) for r in rows) + "\n")  # headerless
    got = import_ohlcv(c)
    same(got, btc)
    assert got.attrs["format"] == "ccxt"


# ---- Binance specifics ----------------------------------------------------------

def test_e15_microsecond_timestamp(tmp_path):
    assert kline_time_ns([1735689600000000])[0] == pd.Timestamp("2025-01-01 00:00", tz="UTC").value
    assert kline_time_ns([1735693199999999])[0] == pd.Timestamp(
        "2025-01-01 00:59:59.999999", tz="UTC").value
    assert kline_time_ns([1735689600000])[0] == pd.Timestamp("2025-01-01", tz="UTC").value  # ms
    p = tmp_path / "BTCUSDT-1h-2025-01-01.csv"
    p.write_text("1735689600000000,93576.00000000,94509.42000000,93489.03000000,94401.14000000,"
                 "755.99010000,1735693199999999,71163622.9,132218,392.1,36908455.8,0\n")
    df = import_ohlcv(p)
    assert df.index[0] == pd.Timestamp("2025-01-01 00:00", tz="UTC")
    assert df.iloc[0].tolist() == [93576.0, 94509.42, 93489.03, 94401.14, 755.9901]
    assert df.attrs["timeframe"] == "1h"


def test_ms_and_us_in_one_file_and_in_two_files(tmp_path, btc):
    mixed = tmp_path / "BTCUSDT-1h-mixed.csv"
    mixed.write_text(binance_lines(btc, unit_from="2025-01-01"))
    text = mixed.read_text().splitlines()
    assert len(text[0].split(",")[0]) == 13 and len(text[-1].split(",")[0]) == 16
    got = import_ohlcv(mixed)
    same(got, btc)
    assert any("ms and us" in n for n in got.attrs["notes"])
    old, new = btc.loc[:"2024-12-31"], btc.loc["2025-01-01":]
    a, b = tmp_path / "BTCUSDT-1h-old.csv", tmp_path / "BTCUSDT-1h-new.csv"
    a.write_text(binance_lines(old, "ms"))
    b.write_text(binance_lines(new, "us"))
    same(import_ohlcv([b, a], fmt="binance"), btc)  # order of arguments does not matter


def test_zip_and_header_row(tmp_path, btc):
    part = btc.loc["2024-01"]
    z = tmp_path / "BTCUSDT-1h-2024-01.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-1h-2024-01.csv", binance_lines(part, "ms", header=True))
    got = import_ohlcv(z)
    same(got, part)
    assert got.attrs["format"] == "binance" and got.attrs["symbol"] == "BTCUSDT"
    # checksum file next to it is verified
    (tmp_path / "BTCUSDT-1h-2024-01.zip.CHECKSUM").write_text(
        f"{hashlib.sha256(z.read_bytes()).hexdigest()}  BTCUSDT-1h-2024-01.zip\n")
    same(import_ohlcv(z), part)
    (tmp_path / "BTCUSDT-1h-2024-01.zip.CHECKSUM").write_text("0" * 64 + "  x.zip\n")
    with pytest.raises(DataError, match="does not match BTCUSDT-1h-2024-01.zip.CHECKSUM"):
        import_ohlcv(z)


def test_directory_of_monthly_zips_with_overlaps(tmp_path, btc):
    d = tmp_path / "monthly"
    d.mkdir()
    span = btc.loc["2024-01-01":"2025-03-31"]
    months = sorted(set(span.index.strftime("%Y-%m")))
    overlap = 0
    for m in months:
        start = pd.Timestamp(m + "-01", tz="UTC")
        part = span.loc[start - pd.Timedelta(hours=5): start + pd.offsets.MonthBegin(1) - pd.Timedelta(hours=1)]
        overlap += int((part.index < start).sum())
        unit = "us" if m >= "2025-01" else "ms"
        with zipfile.ZipFile(d / f"BTCUSDT-1h-{m}.zip", "w") as zf:
            zf.writestr(f"BTCUSDT-1h-{m}.csv", binance_lines(part, unit))
    (d / "BTCUSDT-1h-2024-01.zip.CHECKSUM").write_text(
        hashlib.sha256((d / "BTCUSDT-1h-2024-01.zip").read_bytes()).hexdigest() + "  x\n")
    got = import_ohlcv(d, fmt="binance")
    same(got, span)
    assert got.attrs["duplicates_dropped"] == overlap > 0
    assert len(got.attrs["sources"]) == len(months)


def test_conflicting_duplicate_across_files(tmp_path, btc):
    part = btc.loc["2024-01-01":"2024-01-03"]
    a = tmp_path / "BTCUSDT-1h-a.csv"
    b = tmp_path / "BTCUSDT-1h-b.csv"
    a.write_text(binance_lines(part.iloc[:30]))
    changed = part.iloc[25:].copy()
    changed.iloc[2, changed.columns.get_loc("close")] += 1.0  # row 27 of the span, line 3 of b
    b.write_text(binance_lines(changed))
    with pytest.raises(DataError) as e:
        import_ohlcv([a, b])
    msg = str(e.value)
    assert f"{a} line 28" in msg and f"{b} line 3" in msg and "2024-01-02 03:00 UTC" in msg
    assert "different values (close" in msg


@pytest.mark.parametrize("text,needle", [
    ("1,2,3\n", "line 1: expected 12 columns of a Binance kline file, found 3"),
    (HEADER + "\n", "only a header row"),
    ("", "empty file"),
])
def test_binance_bad_layout(tmp_path, text, needle):
    p = tmp_path / "BTCUSDT-1h-bad.csv"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        import_ohlcv(p, fmt="binance")
    assert str(p) in str(e.value) and needle in str(e.value)


def test_binance_bad_rows_name_file_column_line(tmp_path, btc):
    lines = binance_lines(btc.iloc[:10], header=True).splitlines()
    f = lines[5].split(",")
    f[2], f[3] = f[3], f[2]  # high < low on data line 5 (file line 6)
    lines[5] = ",".join(f)
    p = tmp_path / "BTCUSDT-1h-x.csv"
    p.write_text("\n".join(lines) + "\n")
    msg = str(pytest.raises(DataError, import_ohlcv, p).value)
    assert msg.startswith(f"{p}: column 'high': line 6 (2018-01-01 04:00 UTC) high ")
    lines = binance_lines(btc.iloc[:10]).splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[4], "abc", 1)
    p.write_text("\n".join(lines) + "\n")
    msg = str(pytest.raises(DataError, import_ohlcv, p).value)
    assert msg == f"{p}: column 'close': line 4: 'abc' is not a number"
    lines = binance_lines(btc.iloc[:10]).splitlines()
    lines[7] = ",".join(lines[7].split(",")[:11])
    p.write_text("\n".join(lines) + "\n")
    msg = str(pytest.raises(DataError, import_ohlcv, p).value)
    assert msg == f"{p}: line 8: expected 12 columns, found 11"
    lines = binance_lines(btc.iloc[:10]).splitlines()
    f = lines[2].split(",")
    f[6] = str(int(f[0]) - 1)
    lines[2] = ",".join(f)
    p.write_text("\n".join(lines) + "\n")
    msg = str(pytest.raises(DataError, import_ohlcv, p).value)
    assert "column 'close_time': line 3" in msg and "not after open time" in msg


def test_binance_duplicate_inside_one_file_is_an_error(tmp_path, btc):
    lines = binance_lines(btc.iloc[:10]).splitlines()
    lines.insert(4, lines[3])
    p = tmp_path / "BTCUSDT-1h-d.csv"
    p.write_text("\n".join(lines) + "\n")
    msg = str(pytest.raises(DataError, import_ohlcv, p).value)
    assert "column 'timestamp': line 5 (2018-01-01 03:00 UTC) duplicates the timestamp of line 4" in msg


def test_different_symbols_refused(tmp_path, btc):
    a, b = tmp_path / "BTCUSDT-1h-x.csv", tmp_path / "ETHUSDT-1h-x.csv"
    a.write_text(binance_lines(btc.iloc[:5]))
    b.write_text(binance_lines(btc.iloc[5:10]))
    with pytest.raises(DataError, match="different symbols: BTCUSDT .*ETHUSDT"):
        import_ohlcv([a, b])
    assert import_ohlcv([a, b], symbol="BTCUSDT").attrs["symbol"] == "BTCUSDT"


# ---- generic CSV, column mapping --------------------------------------------------

def test_generic_csv_with_mapping(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text("Date;Open;High;Low;Close;Vol\n"
                 "2020-01-01T01:00:00+01:00;1;2;0.5;1.5;10\n"
                 "2020-01-01T02:00:00+01:00;1.5;2;1.4;1.7;11\n")
    df = import_ohlcv(p, columns="time=Date,volume=Vol", symbol="ABCUSDT")
    assert list(df.index) == [pd.Timestamp("2020-01-01 00:00", tz="UTC"),
                              pd.Timestamp("2020-01-01 01:00", tz="UTC")]
    assert df["volume"].tolist() == [10.0, 11.0] and df.attrs["symbol"] == "ABCUSDT"
    p.write_text("when,o,h,l,c\n01/02/2020 10:00,1,2,0.5,1.5\n01/02/2020 11:00,1,2,0.5,1.5\n")
    df = import_ohlcv(p, columns="time=when", tz="America/New_York")
    assert df.index[0] == pd.Timestamp("2020-01-02 15:00", tz="UTC")
    assert df["volume"].tolist() == [0.0, 0.0]
    assert any("no volume column" in n for n in df.attrs["notes"])


def test_generic_csv_errors(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text("Day,Open,High,Low,Close,Volume\n2020-01-01,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match="missing column\\(s\\) for time; found 'Day', 'Open'"):
        import_ohlcv(p)
    with pytest.raises(DataError, match="--columns time=Datum: no column 'Datum'"):
        import_ohlcv(p, columns="time=Datum")
    with pytest.raises(UserError, match="unknown field 'price'"):
        import_ohlcv(p, columns="price=Close")
    p.write_text("Day,Open,High,Low,Close,Volume\n2020-01-01,1,2,0.5,1.5,1\nnot a date,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match="column 'Day': line 3: 'not a date' is not a date/time"):
        import_ohlcv(p, columns="time=Day")
    p.write_text("Day,Open,High,Low,Close,Volume\n2020-01-01,1,2,0.5,1.5,1\n2020-01-02,1,2,0.5,1.5,x\n")
    with pytest.raises(DataError, match="column 'Volume': line 3: 'x' is not a number"):
        import_ohlcv(p, columns="time=Day")
    p.write_text("Day,Open,High,Low,Close,Volume\n2020-01-01,1,2,0.5,1.5,1\n2020-01-02,1,2,1.6,1.5,1\n")
    with pytest.raises(DataError, match="column 'Low': line 3 \\(2020-01-02 00:00 UTC\\) low 1.6"):
        import_ohlcv(p, columns="time=Day")


def test_a_time_format_applies_where_the_csv_reader_reads_times_itself(tmp_path):
    """``--time-format`` was ignored where pyarrow's CSV reader had parsed ISO 8601 times or dates itself: a
    format that did not fit went unsaid, and one that did was not the one applied."""
    p = tmp_path / "export.csv"
    p.write_text("time,open,high,low,close,volume\n2020-01-02 03:00:00,1,2,0.5,1.5,1\n"
                 "2020-01-02 04:00:00,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match="column 'time': line 2: '2020-01-02 03:00:00' is not a date/time in "
                                        "--time-format '%d/%m/%Y %H:%M'"):
        import_ohlcv(p, time_format="%d/%m/%Y %H:%M", symbol="ABCUSDT")
    fits = import_ohlcv(p, time_format="%Y-%m-%d %H:%M:%S", symbol="ABCUSDT")
    assert list(fits.index) == list(import_ohlcv(p, symbol="ABCUSDT").index)
    p.write_text("time,open,high,low,close,volume\n2020-02-01,1,2,0.5,1.5,1\n2020-03-01,1,2,0.5,1.5,1\n")
    assert import_ohlcv(p, symbol="ABCUSDT").index[0] == pd.Timestamp("2020-02-01", tz="UTC")  # (ISO: 1 Feb)
    day_first = import_ohlcv(p, time_format="%Y-%d-%m", symbol="ABCUSDT")  # (as the user says: 2 Jan, 3 Jan)
    assert list(day_first.index) == [pd.Timestamp("2020-01-02", tz="UTC"), pd.Timestamp("2020-01-03", tz="UTC")]


def test_missing_and_unreadable_sources(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        import_ohlcv(tmp_path / "nope.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="directory holds no data files"):
        import_ohlcv(tmp_path / "empty")
    j = tmp_path / "x.json"
    j.write_text("[[1, 2, 3]]")
    with pytest.raises(DataError, match="rows have 3 values"):
        import_ohlcv(j)
    j.write_text('[[1577836800000, 1, 2, 0.5, 1.5, 1], [1577840400000, 1, 2, "?", 1.5]]')
    with pytest.raises(DataError, match="row 1: expected a list of 6 values"):
        import_ohlcv(j)
    with pytest.raises(UserError, match="--format 'xls'"):
        import_ohlcv(j, fmt="xls")


# ---- output file ------------------------------------------------------------------

def test_written_parquet_matches_bundled_schema(tmp_path, btc):
    p = tmp_path / "BTCUSDT-1h-all.csv"
    p.write_text(binance_lines(btc.iloc[:100]))
    out = tmp_path / "sub" / "X.parquet"
    assert data_main(["data", "import-binance", str(p), "--out", str(out)]) == 0
    got_schema = pq.read_schema(out)
    want = pq.read_schema(BTC)
    assert [(f.name, f.type) for f in got_schema] == [(f.name, f.type) for f in want]
    assert got_schema.metadata[b"symbol"] == b"BTCUSDT"
    assert got_schema.metadata[b"timeframe"] == b"1h"
    same(pd.read_parquet(out).set_index("timestamp"), btc.iloc[:100])
    same(load_ohlcv(out), btc.iloc[:100])


def test_unwritable_out(tmp_path, btc):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create directory"):
        write_ohlcv(btc.iloc[:3], blocker / "x.parquet")


def test_parquet_and_feather_generic_tables(tmp_path, btc):
    t = btc.iloc[:50].reset_index().rename(columns={"timestamp": "Time", "close": "Close"})
    t["Time"] = t["Time"].astype("int64") // 10**6
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), tmp_path / "any.parquet")
    same(import_ohlcv(tmp_path / "any.parquet"), btc.iloc[:50])


def test_ccxt_json_variants(tmp_path):
    p = tmp_path / "dump.json"
    p.write_text(json.dumps({"BTC/USDT": [[1577836800000, 1, 2, 0.5, 1.5, 1],
                                          [1577840400000, 1, 2, 0.5, 1.5, 2]]}))
    df = import_ohlcv(p)
    assert df.attrs["symbol"] == "BTCUSDT" and df["volume"].tolist() == [1.0, 2.0]
    p.write_text(json.dumps([{"timestamp": "2020-01-01T00:00:00Z", "open": 1, "high": 2,
                              "low": 0.5, "close": 1.5, "volume": 3}]))
    df = import_ohlcv(p)
    assert df.index[0] == pd.Timestamp("2020-01-01", tz="UTC") and df["close"].tolist() == [1.5]
