"""Funding rates (Binance fundingRate archive, REST) and mark-price klines
into marginbt Parquet: `backtest data import-funding`, `load_funding`, and
`backtest data import` of a markPriceKlines file."""

import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backtest.cli import main as cli_main
from backtest.data import import_funding, import_ohlcv, load_funding, load_ohlcv, write_funding
from backtest.data.cli import main as data_main
from backtest.errors import DataError

HEADER = "calc_time,funding_interval_hours,last_funding_rate"
H8 = 8 * 3_600_000
T0 = 1_620_000_000_000  # 2021-05-03 00:00:00 UTC, ms
SHARED = Path(__file__).resolve().parents[1] / "data" / "BTCUSDT_PERP-funding.parquet"  # (shipped with the project)


def main(*args):
    return cli_main(["data", *map(str, args)])


def archive_csv(rows, header=True):
    """rows: (ms, interval, rate) as data.binance.vision writes them."""
    lines = [HEADER] if header else []
    lines += [f"{t},{h},{r}" for t, h, r in rows]
    return "\n".join(lines) + "\n"


def expected(ms_rates):
    return pd.DataFrame({
        "timestamp": pd.to_datetime([t for t, _ in ms_rates], unit="ms", utc=True).as_unit("ns"),
        "funding_rate": np.array([r for _, r in ms_rates], dtype=np.float64),
    })


def read_written(path):
    df = pd.read_parquet(path)
    assert list(df.columns) == ["timestamp", "funding_rate"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["funding_rate"].dtype == np.float64
    return df


MAY = [(T0 + 11, 8, "0.00010000"), (T0 + H8 + 5, 8, "-0.00012000"), (T0 + 2 * H8 - 1, 8, "0.00030000")]
MAY_EXPECTED = expected([(T0, 1e-4), (T0 + H8, -1.2e-4), (T0 + 2 * H8, 3e-4)])


# ---- archive CSV / ZIP -----------------------------------------------------------------

@pytest.mark.parametrize("header", [True, False])
def test_archive_csv_jitter_rounded(tmp_path, header):
    src = tmp_path / "BTCUSDT-fundingRate-2021-05.csv"
    src.write_text(archive_csv(MAY, header))
    out = tmp_path / "f.parquet"
    assert main("import-funding", src, "--out", out) == 0
    pd.testing.assert_frame_equal(read_written(out), MAY_EXPECTED)
    meta = pq.ParquetFile(out).schema_arrow.metadata
    assert meta[b"symbol"] == b"BTCUSDT" and meta[b"funding_interval_hours"] == b"8"
    got = load_funding(out)
    pd.testing.assert_frame_equal(got, MAY_EXPECTED)
    assert got.attrs["symbol"] == "BTCUSDT"


def test_archive_zip_and_microseconds(tmp_path, capsys):
    z = tmp_path / "BTCUSDT-fundingRate-2021-05.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("BTCUSDT-fundingRate-2021-05.csv", archive_csv(MAY))
    out = tmp_path / "z.parquet"
    assert data_main(["data", "import-funding", str(z), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(read_written(out), MAY_EXPECTED)
    printed = capsys.readouterr().out
    assert "3 rates" in printed and "rounded to the second" in printed
    # µs times (> 1e14) are told by their magnitude; gzip is read too
    us = tmp_path / "us.csv.gz"
    us.write_bytes(gzip.compress(archive_csv([(t * 1000 + 7, h, r) for t, h, r in MAY]).encode()))
    pd.testing.assert_frame_equal(import_funding(us), MAY_EXPECTED)


def test_changing_interval_kept_as_rows(tmp_path):
    rows = [(T0, 8, "0.0001"), (T0 + H8, 4, "0.003"), (T0 + H8 + H8 // 2, 4, "0.003")]
    src = tmp_path / "XUSDT-fundingRate-2021-05.csv"
    src.write_text(archive_csv(rows))
    df = import_funding(src)
    assert df.attrs["funding_interval_hours"] == [4, 8]
    assert df["timestamp"].diff().dropna().tolist() == [pd.Timedelta("8h"), pd.Timedelta("4h")]


# ---- REST form ----------------------------------------------------------------------------

def test_rest_csv_and_json(tmp_path):
    exp = expected([(T0, 1e-4), (T0 + H8, -1.2e-4)])
    with_header = tmp_path / "rest.csv"
    with_header.write_text("symbol,fundingTime,fundingRate,markPrice\n"
                           f"BTCUSDT,{T0 + 2},0.00010000,\n"
                           f"BTCUSDT,{T0 + H8},-0.00012000,57000.12\n")
    df = import_funding(with_header)
    pd.testing.assert_frame_equal(df, exp)
    assert df.attrs["symbol"] == "BTCUSDT"  # from the symbol column
    assert df.attrs["funding_interval_hours"] == []
    bare = tmp_path / "rest-bare.csv"
    bare.write_text(f"BTCUSDT,{T0},0.00010000,\nBTCUSDT,{T0 + H8},-0.00012000,57000.12\n")
    pd.testing.assert_frame_equal(import_funding(bare), exp)
    js = tmp_path / "rest.json"
    js.write_text(json.dumps([
        {"symbol": "BTCUSDT", "fundingTime": T0 + 1, "fundingRate": "0.00010000", "markPrice": ""},
        {"symbol": "BTCUSDT", "fundingTime": T0 + H8, "fundingRate": "-0.00012000",
         "markPrice": "57000.12"}]))
    out = tmp_path / "j.parquet"
    assert main("import-funding", js, "--out", out) == 0
    pd.testing.assert_frame_equal(read_written(out), exp)


# ---- merging ------------------------------------------------------------------------------

def test_merge_two_months_overlap_and_existing_parquet(tmp_path, capsys):
    apr = [(T0 - 2 * H8 + 3, 8, "0.0002"), (T0 - H8, 8, "0.00025")]
    a = tmp_path / "BTCUSDT-fundingRate-2021-04.csv"
    a.write_text(archive_csv(apr, header=False))  # an older file: no header
    b = tmp_path / "BTCUSDT-fundingRate-2021-05.csv"
    b.write_text(archive_csv([apr[-1]] + MAY))  # repeats April's last row: kept once
    out = tmp_path / "BTCUSDT_PERP-funding.parquet"
    assert main("import-funding", b, a, "--out", out) == 0  # order of arguments does not matter
    exp = pd.concat([expected([(T0 - 2 * H8, 2e-4), (T0 - H8, 2.5e-4)]), MAY_EXPECTED],
                    ignore_index=True)
    pd.testing.assert_frame_equal(read_written(out), exp)
    assert "1 rate repeated across files dropped" in capsys.readouterr().out
    # the written file is a source too: extend it with a newer month
    june = tmp_path / "BTCUSDT-fundingRate-2021-06.csv"
    june.write_text(archive_csv([(T0 + 3 * H8, 8, "0.0001")]))
    assert main("import-funding", out, june, "--out", out) == 2  # its own input: refused without --overwrite
    assert "(it is one of the inputs); give --overwrite" in capsys.readouterr().err
    assert main("import-funding", out, june, "--out", out, "--overwrite") == 0
    got = load_funding(out)
    assert len(got) == len(exp) + 1 and got.attrs["symbol"] == "BTCUSDT"  # metadata first
    # a directory stands for its files
    d = tmp_path / "dir"
    d.mkdir()
    for f in (a, b):
        (d / f.name).write_text(f.read_text())
    pd.testing.assert_frame_equal(import_funding(d), exp)


def test_merge_conflict_names_both_files(tmp_path):
    a = tmp_path / "BTCUSDT-fundingRate-2021-05.csv"
    a.write_text(archive_csv(MAY))
    b = tmp_path / "BTCUSDT-rest.csv"
    b.write_text(f"symbol,fundingTime,fundingRate,markPrice\nBTCUSDT,{T0 + H8},-0.00013,\n")
    with pytest.raises(DataError) as e:
        import_funding([a, b])
    msg = str(e.value)
    assert "\n" not in msg
    assert str(a) in msg and str(b) in msg and "line 3" in msg and "line 2" in msg
    assert "2021-05-03 08:00 UTC" in msg and "-0.00012" in msg and "-0.00013" in msg
    out = tmp_path / "o.parquet"
    assert main("import-funding", a, b, "--out", out) == 2
    assert not out.exists()


def test_different_symbols_refused(tmp_path):
    a = tmp_path / "BTCUSDT-fundingRate-2021-05.csv"
    a.write_text(archive_csv(MAY))
    b = tmp_path / "ETHUSDT-fundingRate-2021-06.csv"
    b.write_text(archive_csv([(T0 + 3 * H8, 8, "0.0001")]))
    with pytest.raises(DataError, match="different symbols"):
        import_funding([a, b])
    assert import_funding([a, b], symbol="X").attrs["symbol"] == "X"


# ---- errors: one line naming the file, exit code 2 -------------------------------------------

BAD = {
    "bad_column": (HEADER.replace("last_funding_rate", "last_rate") + f"\n{T0},8,0.0001\n",
                   "not a funding-rate file: columns 'calc_time', 'funding_interval_hours', 'last_rate'"),
    "bad_value": archive_csv([(T0, 8, "0.0001"), (T0 + H8, 8, "abc")]),
    "nan_rate": archive_csv([(T0, 8, "0.0001"), (T0 + H8, 8, "nan")]),
    "empty_rate": archive_csv([(T0, 8, "0.0001"), (T0 + H8, 8, "")]),
    "percent": archive_csv([(T0, 8, "1.5")]),
    "bad_interval": archive_csv([(T0, 0, "0.0001")]),
    "dup_within": archive_csv([(T0 + 4, 8, "0.0001"), (T0 - 3, 8, "0.0002")]),
    "backwards": archive_csv([(T0 + H8, 8, "0.0001"), (T0, 8, "0.0002")]),
    "kline": ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
              "taker_buy_volume,taker_buy_quote_volume,ignore\n"
              f"{T0},1,2,0.5,1.5,0,{T0 + 3_599_999},0,0,0,0,0\n", "a kline file?"),
    "five_columns": ("1,2,3,4,5\n", "line 1 has 5 columns"),
    "header_only": (HEADER + "\n", "only a header row"),
    "empty": ("", "empty file"),
}
WANT = {
    "bad_value": "column 'last_funding_rate': line 3: 'abc' is not a number",
    "nan_rate": "column 'last_funding_rate': line 3 (2021-05-03 08:00 UTC) is empty",
    "empty_rate": "column 'last_funding_rate': line 3 (2021-05-03 08:00 UTC) is empty",
    "percent": "column 'last_funding_rate': line 2 (2021-05-03 00:00 UTC) 1.5 is not a fraction",
    "bad_interval": "column 'funding_interval_hours': line 2 (2021-05-03 00:00 UTC) interval 0.0",
    "dup_within": "column 'calc_time': line 3 (2021-05-03 00:00 UTC) duplicates the time of "
                  "line 2 with a different rate (0.0001 vs 0.0002)",
    "backwards": "column 'calc_time': line 3 (2021-05-03 00:00 UTC) is not after line 2",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_errors_one_line_naming_file(tmp_path, case, capsys):
    text = BAD[case]
    want = WANT.get(case)
    if isinstance(text, tuple):
        text, want = text
    src = tmp_path / f"BTCUSDT-fundingRate-{case}.csv"
    src.write_text(text)
    with pytest.raises(DataError) as e:
        import_funding(src)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(src)), msg
    assert want in msg, msg
    with pytest.raises(DataError):
        load_funding(src)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous")
    assert main("import-funding", src, "--out", out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(src) in err and "Traceback" not in err
    assert out.read_bytes() == b"previous"  # an existing file survives a failed import
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_not_funding_parquet_and_missing(tmp_path):
    bars = tmp_path / "BTCUSDT-1h.parquet"
    pd.DataFrame({"timestamp": pd.to_datetime([T0], unit="ms", utc=True), "open": [1.0], "high": [1.0],
                  "low": [1.0], "close": [1.0], "volume": [0.0]}).to_parquet(bars)
    with pytest.raises(DataError, match="not a funding-rate Parquet file.*an OHLCV file"):
        load_funding(bars)
    assert main("import-funding", bars, "--out", tmp_path / "o.parquet") == 2
    assert main("import-funding", tmp_path / "none.csv", "--out", tmp_path / "o.parquet") == 2
    assert main("import-funding", tmp_path / "none.csv") == 2  # --out is required


def test_funding_file_given_to_bar_import_points_to_import_funding(tmp_path):
    src = tmp_path / "BTCUSDT-fundingRate-2021-05.csv"
    src.write_text(archive_csv(MAY))
    with pytest.raises(DataError, match="import-funding"):
        import_ohlcv(src)
    z = tmp_path / "BTCUSDT-fundingRate-2021-04.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("BTCUSDT-fundingRate-2021-04.csv", archive_csv(MAY, header=False))
    with pytest.raises(DataError, match="import-funding"):
        import_ohlcv(z)


# ---- load_funding / write_funding on our layout ----------------------------------------------

def test_load_funding_layouts_and_validation(tmp_path):
    csv = tmp_path / "BTCUSDT_PERP-funding.csv"
    MAY_EXPECTED.to_csv(csv, index=False)  # ISO times with +00:00
    got = load_funding(csv)
    pd.testing.assert_frame_equal(got, MAY_EXPECTED)
    assert got.attrs["symbol"] == "BTCUSDT_PERP"
    # naive Parquet timestamps are UTC; an extra column is ignored
    naive = MAY_EXPECTED.assign(timestamp=MAY_EXPECTED["timestamp"].dt.tz_localize(None), note="x")
    p = tmp_path / "naive.parquet"
    naive.to_parquet(p)
    pd.testing.assert_frame_equal(load_funding(p), MAY_EXPECTED)
    # Parquet rows: unsorted, duplicated, NaN, epoch numbers
    cases = {
        "unsorted": (MAY_EXPECTED.iloc[::-1], "column 'timestamp': row 1 (2021-05-03 08:00 UTC) is not after row 0"),
        "dup": (pd.concat([MAY_EXPECTED, MAY_EXPECTED.iloc[-1:]]), "row 3 (2021-05-03 16:00 UTC) duplicates the time of row 2"),
        "nan": (MAY_EXPECTED.assign(funding_rate=[1e-4, np.nan, 1e-4]), "column 'funding_rate': row 1 (2021-05-03 08:00 UTC) is empty"),
        "inf": (MAY_EXPECTED.assign(funding_rate=[1e-4, np.inf, 1e-4]), "row 1 (2021-05-03 08:00 UTC) is inf"),
        "epoch": (MAY_EXPECTED.assign(timestamp=[T0, T0 + H8, T0 + 2 * H8]), "type int64 is not a timestamp"),
        "norate": (MAY_EXPECTED.rename(columns={"funding_rate": "rate"}), "expected 'timestamp' and 'funding_rate'"),
    }
    for name, (df, want) in cases.items():
        f = tmp_path / f"{name}.parquet"
        df.to_parquet(f, index=False)
        with pytest.raises(DataError) as e:
            load_funding(f)
        assert str(e.value).startswith(f"{f}: ") and want in str(e.value), (name, str(e.value))
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="duplicates"):
        write_funding(cases["dup"][0], tmp_path / "w.parquet")
    assert not (tmp_path / "w.parquet").exists()


def test_write_funding_round_trip_and_atomic(tmp_path):
    out = write_funding(MAY_EXPECTED, tmp_path / "sub" / "f.parquet", symbol="BTCUSDT_PERP")
    pd.testing.assert_frame_equal(read_written(out), MAY_EXPECTED)
    assert load_funding(out).attrs["symbol"] == "BTCUSDT_PERP"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Exception) as e:
        write_funding(MAY_EXPECTED, blocker / "f.parquet")
    assert "\n" not in str(e.value) and "cannot create directory" in str(e.value)


def test_bundled_funding_file_loads_and_round_trips(tmp_path):
    ref = pd.read_parquet(SHARED)
    got = load_funding(SHARED)
    pd.testing.assert_frame_equal(got, ref)
    out = tmp_path / "BTCUSDT_PERP-funding.parquet"
    assert main("import-funding", SHARED, "--out", out) == 0
    pd.testing.assert_frame_equal(read_written(out), ref)


# ---- mark-price klines: the kline path, zero volume ---------------------------------------

MARK_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
               "taker_buy_volume,taker_buy_quote_volume,ignore")


@pytest.mark.parametrize("header", [True, False])
def test_mark_price_klines_import(tmp_path, header):
    t = 1_704_067_200_000  # 2024-01-01 00:00 UTC
    rows = [(t, 42314.1, 42400.5, 42300.1, 42350.2), (t + 3_600_000, 42350.2, 42500.0, 42340.0, 42480.0),
            (t + 7_200_000, 42480.0, 42490.0, 42100.0, 42150.3)]
    lines = [MARK_HEADER] if header else []
    lines += [f"{a},{o},{h},{lo},{c},0,{a + 3_599_999},0,0,0,0,0" for a, o, h, lo, c in rows]
    name = "BTCUSDT-1h-2024-01.csv"
    src = tmp_path / name
    src.write_text("\n".join(lines) + "\n")
    z = tmp_path / "BTCUSDT-1h-2024-01.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(name, src.read_text())
    want = pd.DataFrame(
        {"open": [r[1] for r in rows], "high": [r[2] for r in rows], "low": [r[3] for r in rows],
         "close": [r[4] for r in rows], "volume": [0.0] * 3},
        index=pd.DatetimeIndex(pd.to_datetime([r[0] for r in rows], unit="ms", utc=True).as_unit("ns"),
                               name="timestamp"))
    for i, (cmd, source) in enumerate((("import", src), ("import-binance", z))):
        out = tmp_path / f"BTCUSDT_PERP-1h-mark-{i}.parquet"
        assert main(cmd, source, "--out", out) == 0
        got = load_ohlcv(out)
        pd.testing.assert_frame_equal(got, want, check_freq=False)
        assert got.attrs["symbol"] == "BTCUSDT" and got.attrs["timeframe"] == "1h"
        written = pd.read_parquet(out)
        assert list(written.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
        assert str(written["timestamp"].dtype) == "datetime64[ns, UTC]"
        assert (written["volume"] == 0).all()
