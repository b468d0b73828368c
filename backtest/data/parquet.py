"""OHLCV Parquet: read (only the needed columns and range) and write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backtest.errors import DataError, UserError

from .bars import COLUMNS, Bars, make_bars
from .names import parse_name
from .times import NAT, describe_range, fmt_ts, range_bounds

REQUIRED = ("timestamp",) + COLUMNS
ROW_GROUP = 131_072


def sniff_kind(path: Path) -> str:
    """What a file looks like inside: parquet, feather, zip, gzip, json, text."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:6] == b"ARROW1" or head[:4] == b"FEA1":
        return "feather"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head.lstrip()[:1] in (b"[", b"{"):
        return "json"
    return "text" if head else "empty"


def check_file(path) -> Path:
    p = Path(str(path))
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, not a Parquet file")
    return p


def open_parquet(p: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(p)
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = sniff_kind(p)
        if kind == "empty":
            raise DataError(f"{p}: not a Parquet file: the file is empty (0 bytes); copy or download it again") from None
        if kind == "parquet":  # it starts as Parquet: cut short or damaged, not another format
            raise DataError(f"{p}: a truncated or corrupt Parquet file ({p.stat().st_size:,} bytes; "
                            f"{str(exc).splitlines()[0]}); copy or download it again") from None
        hint = {
            "feather": " (it is a feather file)",
            "zip": " (it is a ZIP archive)",
            "json": " (it looks like JSON)",
            "text": " (it looks like text, e.g. CSV)",
            "empty": " (the file is empty)",
        }.get(kind, f" ({str(exc).splitlines()[0]})")
        raise DataError(
            f"{p}: not a Parquet file{hint}; convert it with `backtest data import`"
        ) from None


def file_meta(pf: pq.ParquetFile) -> dict[str, str]:
    md = pf.schema_arrow.metadata or {}
    out = {}
    for k, v in md.items():
        k = k.decode("utf-8", "replace")
        if k != "pandas":
            out[k] = v.decode("utf-8", "replace")
    return out


def _schema_check(p: Path, schema: pa.Schema) -> None:
    names = schema.names
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        low = {n.lower() for n in names}
        hint = ""
        if all(c in low for c in REQUIRED):
            hint = "; names are case-sensitive (lower-case expected)"
        elif "date" in low:
            hint = "; a freqtrade-style file? convert it with `backtest data import`"
        elif "funding_rate" in names:
            hint = "; a funding-rate file (read it with backtest.data.load_funding)"
        raise DataError(
            f"{p}: missing column(s) {', '.join(repr(m) for m in missing)}; found "
            f"{', '.join(repr(n) for n in names) or 'none'}{hint}"
        )
    t = schema.field("timestamp").type
    if not pa.types.is_timestamp(t):
        extra = ""
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            extra = " (epoch numbers are not guessed; convert with `backtest data import`)"
        raise DataError(f"{p}: column 'timestamp': type {t} is not a timestamp{extra}")
    for c in COLUMNS:
        t = schema.field(c).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            raise DataError(f"{p}: column '{c}': type {t} is not numeric")


def _ts_scalar(ns: int, coltype: pa.TimestampType) -> pa.Scalar:
    return pa.scalar(int(ns), pa.int64()).cast(pa.timestamp("ns", tz=coltype.tz))


def _ts_ns(col: pa.ChunkedArray) -> np.ndarray:
    t = col.type
    # naive and aware columns both hold the instant as counted from the epoch
    col = col.cast(pa.int64())
    factor = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[t.unit]
    a = col.to_numpy(zero_copy_only=False) if col.null_count == 0 else (
        pc.fill_null(col, NAT).to_numpy(zero_copy_only=False))
    a = np.asarray(a, dtype=np.int64)
    if factor != 1:
        a = np.where(a == NAT, NAT, a * factor)
    return a


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    if not pa.types.is_float64(col.type):
        col = col.cast(pa.float64())
    if col.null_count:
        col = pc.fill_null(col, float("nan"))
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def read_parquet_bars(path, start=None, end=None) -> Bars:
    """Read an OHLCV Parquet file into ``Bars`` without validating rows."""
    p = check_file(path)
    pf = open_parquet(p)
    schema = pf.schema_arrow
    _schema_check(p, schema)
    meta = file_meta(pf)
    lo, hi = range_bounds(start, end)
    filt = None
    coltype = schema.field("timestamp").type
    if lo is not None:
        filt = pc.field("timestamp") >= _ts_scalar(lo, coltype)
    if hi is not None:
        f2 = pc.field("timestamp") <= _ts_scalar(hi, coltype)
        filt = f2 if filt is None else (filt & f2)
    try:
        table = pq.read_table(p, columns=list(REQUIRED), filters=filt)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{p}: a corrupt Parquet file, cannot read its data ({str(exc).splitlines()[0]}); "
                        "copy or download it again") from None
    ts = _ts_ns(table.column("timestamp"))
    cols = [_floats(table.column(c)) for c in COLUMNS]
    name_sym, name_tf = parse_name(p)
    bars = make_bars(
        ts, *cols, source=str(path),
        symbol=meta.get("symbol") or name_sym,
        timeframe=meta.get("timeframe") or name_tf,
        meta=meta,
    )
    if filt is not None:
        bars.row_of = _row_mapper(p, lo, hi)
        bars.meta["range"] = (lo, hi)
    return bars


def _row_mapper(p: Path, lo, hi):
    """Row position in a range read → row number in the whole file.

    Only used on the error path: reads the timestamp column once.
    """
    cache = {}

    def row_of(i: int) -> int:
        if "rows" not in cache:
            t = _ts_ns(pq.read_table(p, columns=["timestamp"]).column("timestamp"))
            m = t != NAT
            if lo is not None:
                m &= t >= lo
            if hi is not None:
                m &= t <= hi
            cache["rows"] = np.flatnonzero(m)
        rows = cache["rows"]
        return int(rows[i]) if i < rows.size else i

    return row_of


def empty_range_error(bars: Bars, path) -> DataError:
    lo, hi = bars.meta.get("range", (None, None))
    if lo is None and hi is None:
        return DataError(f"{path}: no bars (the file is empty)")
    try:
        t = _ts_ns(pq.read_table(str(path), columns=["timestamp"]).column("timestamp"))
        t = t[t != NAT]
        cover = f" (the file covers {fmt_ts(t.min())} to {fmt_ts(t.max())})" if t.size else " (the file is empty)"
    except Exception:  # noqa: BLE001 - best effort detail
        cover = ""
    return DataError(f"{path}: no bars from {describe_range(lo, hi)}{cover}")


def write_ohlcv(df, path, symbol: str | None = None, timeframe: str | None = None,
                extra_meta: dict | None = None) -> Path:
    """Write a validated OHLCV frame as Parquet in the bundled files' schema.

    ``timestamp`` datetime64[ns, UTC] and float64 ``open, high, low, close,
    volume``; key-value metadata ``symbol`` and ``timeframe`` (defaults:
    ``df.attrs``).  zstd, delta-encoded timestamps (plain floats: smaller
    than byte-stream-split for prices with few decimals), row groups of 131,072 rows with statistics (so ``load_ohlcv``
    with ``start``/``end`` skips whole row groups).  The file is written to a
    temporary name and renamed, so a failed write leaves no half file.
    """
    p = Path(str(path))
    symbol = symbol or df.attrs.get("symbol")
    timeframe = timeframe or df.attrs.get("timeframe")
    ts = np.asarray(df.index.as_unit("ns").asi8, dtype=np.int64)
    arrays = [pa.array(ts, pa.int64()).cast(pa.timestamp("ns", tz="UTC"))]
    arrays += [pa.array(np.asarray(df[c], dtype=np.float64)) for c in COLUMNS]
    md = {}
    if symbol:
        md["symbol"] = str(symbol)
    if timeframe:
        md["timeframe"] = str(timeframe)
    for k, v in (extra_meta or {}).items():
        md[k] = v if isinstance(v, str) else json.dumps(v)
    table = pa.Table.from_arrays(arrays, names=list(REQUIRED)).replace_schema_metadata(md)
    return write_table(table, p)


def write_table(table: pa.Table, p: Path) -> Path:
    """Write ``table`` (a ``timestamp`` column, then float columns) to ``p``
    atomically: to a temporary name beside it, then renamed over it, so a
    failed write leaves no half file and an existing ``p`` untouched."""
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{p}: cannot create directory {p.parent} ({exc.strerror})") from None
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(
            table, tmp, compression="zstd", compression_level=3,
            use_dictionary=False,
            column_encoding={"timestamp": "DELTA_BINARY_PACKED",
                             **{c: "PLAIN" for c in table.column_names if c != "timestamp"}},
            row_group_size=ROW_GROUP, write_statistics=True,
        )
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{p}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
