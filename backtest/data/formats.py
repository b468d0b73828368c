"""Reading one source file in any supported format into ``Bars``.

Formats (``--format``):

* ``binance``   data.binance.vision kline CSV or ZIP (12 columns)
* ``freqtrade`` ``user_data/data/<exchange>/*.feather`` or ``*.json(.gz)``
* ``ccxt``      ``fetch_ohlcv`` output saved as JSON (``[[ms, o, h, l, c, v], ...]``)
                or CSV (``timestamp,open,high,low,close,volume``, header optional)
* ``csv``       any CSV with a header; columns mapped by name or ``--columns``
* ``parquet``   any Parquet table; columns mapped like ``csv``

``auto`` (default) looks inside the file: Parquet/feather/ZIP/gzip magic
bytes, JSON's opening bracket, else CSV, where 12 numeric fields mean
Binance, 6 numeric fields mean ccxt, and a header means generic CSV.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from backtest.errors import DataError, UserError

from .bars import Bars, make_bars
from .binance import read_binance
from .names import parse_name, symbol_from_pair
from .parquet import sniff_kind
from .tables import table_to_bars
from .textio import first_lines, is_number, read_bytes, read_csv, sniff_delimiter
from .times import epoch_to_ns

FORMATS = ("auto", "binance", "freqtrade", "ccxt", "csv", "parquet")
_EXTS = (".zip", ".csv", ".txt", ".json", ".gz", ".jsongz", ".feather", ".arrow",
         ".ipc", ".parquet", ".pq")


@dataclass
class ReadOptions:
    columns: dict | None = None
    time_unit: str = "auto"
    time_format: str | None = None
    tz: str | None = None


@dataclass
class ReadResult:
    bars: list[Bars]
    format: str
    notes: list[str] = field(default_factory=list)


def expand_sources(sources) -> list[Path]:
    """Files, and directories expanded to their data files in name order."""
    out: list[Path] = []
    if isinstance(sources, (str, Path)):
        sources = [sources]
    for s in sources:
        p = Path(str(s))
        if p.is_dir():
            files = sorted(
                f for f in p.iterdir()
                if f.is_file() and not f.name.startswith(".")
                and f.name.lower().endswith(_EXTS)
            )
            if not files:
                raise DataError(f"{p}: directory holds no data files ({', '.join(_EXTS)})")
            out.extend(files)
        elif p.exists():
            out.append(p)
        else:
            raise DataError(f"{p}: file not found")
    if not out:
        raise UserError("no input files given")
    return out


_FUNDING_NAMES = ("calctime", "lastfundingrate", "fundingrate", "fundingtime")


def _norm_name(field: str) -> str:
    return "".join(ch for ch in field.lower() if ch.isalnum())


def detect_format(path: Path) -> str:
    kind = sniff_kind(path)
    name = path.name.lower()
    if kind == "parquet":
        return "parquet"
    if kind == "feather":
        return "freqtrade"
    if kind == "zip":
        return "binance"
    if kind == "empty":
        raise DataError(f"{path}: empty file")
    if kind == "json" or name.endswith((".json", ".json.gz", ".jsongz")):
        return "freqtrade" if "_" in name.split("-")[0] else "ccxt"
    data = read_bytes(path)
    if data.lstrip()[:1] in (b"[", b"{"):
        return "ccxt"
    lines = first_lines(data, 2)
    if not lines:
        raise DataError(f"{path}: empty file")
    delim = sniff_delimiter(lines[0])
    fields = lines[0].split(delim)
    names = {_norm_name(f) for f in fields}
    if names & set(_FUNDING_NAMES) and "open" not in names:
        raise DataError(f"{path}: a funding-rate file, not bars; import it with "
                        "`backtest data import-funding`")
    if all(is_number(f) for f in fields):
        if len(fields) == 12:
            return "binance"
        if len(fields) == 6:
            return "ccxt"
        hint = (" (a Binance funding-rate file? use `backtest data import-funding`)"
                if len(fields) == 3 else "")
        raise DataError(f"{path}: headerless CSV with {len(fields)} columns: not Binance (12) "
                        f"nor ccxt (6){hint}; add a header row and use --format csv --columns ...")
    if (len(fields) == 12 and fields[0].strip().lower() in ("open_time", "open time", "opentime")
            and len(lines) > 1 and is_number(lines[1].split(",")[0])):
        return "binance"
    return "csv"


def read_source(path: Path, fmt: str = "auto", opts: ReadOptions | None = None) -> ReadResult:
    opts = opts or ReadOptions()
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    sym, tf = parse_name(path)
    src = str(path)
    if fmt == "binance":
        if sniff_kind(path) in ("parquet", "feather", "json"):
            raise DataError(f"{path}: not a Binance kline CSV/ZIP (it is {sniff_kind(path)})")
        return ReadResult(read_binance(path), "binance")
    kind = sniff_kind(path)
    if fmt == "parquet" or (fmt in ("freqtrade", "csv") and kind == "parquet"):
        table = _read_parquet_table(path)
        b, notes = table_to_bars(table, src, columns=opts.columns, time_unit=opts.time_unit,
                                 time_format=opts.time_format, tz=opts.tz, symbol=sym, timeframe=tf)
        meta = table.schema.metadata or {}
        b.symbol = (meta.get(b"symbol") or b"").decode() or b.symbol
        b.timeframe = (meta.get(b"timeframe") or b"").decode() or b.timeframe
        return ReadResult([b], "parquet", notes)
    if kind == "feather":
        if fmt not in ("freqtrade", "csv"):
            raise DataError(f"{path}: a feather file is not {fmt} format (use --format freqtrade)")
        try:
            table = feather.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: cannot read feather ({str(exc).splitlines()[0]})") from None
        b, notes = table_to_bars(table, src, columns=opts.columns, time_unit=opts.time_unit,
                                 tz=opts.tz, symbol=sym, timeframe=tf)
        return ReadResult([b], "freqtrade", notes)
    data = read_bytes(path)
    if data.lstrip()[:1] in (b"[", b"{"):
        if fmt == "csv":
            raise DataError(f"{path}: JSON, not CSV (use --format ccxt or freqtrade)")
        b, notes = json_to_bars(data, src, opts, sym, tf)
        return ReadResult([b], fmt, notes)
    if fmt == "freqtrade":
        raise DataError(f"{path}: not a freqtrade feather or JSON file")
    b, notes = csv_to_bars(data, src, opts, sym, tf, ccxt=(fmt == "ccxt"))
    return ReadResult([b], fmt, notes)


def _read_parquet_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read Parquet ({str(exc).splitlines()[0]})") from None


def csv_to_bars(data: bytes, src: str, opts: ReadOptions, sym, tf, ccxt: bool):
    lines = first_lines(data, 2)
    if not lines:
        raise DataError(f"{src}: empty file")
    delim = sniff_delimiter(lines[0])
    fields = lines[0].split(delim)
    headerless = all(is_number(f) for f in fields)
    if headerless:
        if len(fields) != 6:
            raise DataError(f"{src}: line 1: a headerless ccxt CSV has 6 columns "
                            f"(timestamp, open, high, low, close, volume), found {len(fields)}")
        names = ["timestamp", "open", "high", "low", "close", "volume"]
        types = {"timestamp": pa.float64(), **{c: pa.float64() for c in names[1:]}}
        table = read_csv(data, src, names=names, delimiter=delim, column_types=types)
        first_line = 1
    else:
        table = read_csv(data, src, delimiter=delim)
        inferred = {f.name: pa.string() for f in table.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)}
        if opts.time_format is not None and inferred:  # pyarrow read ISO times itself: as text, --time-format applies
            table = read_csv(data, src, delimiter=delim, column_types=inferred)
        first_line = 2
        if ccxt and opts.columns is None:
            names = [n.strip().lower() for n in table.column_names]
            if len(names) < 6:
                raise DataError(f"{src}: a ccxt CSV has 6 columns, found {len(names)}")
    return table_to_bars(table, src, columns=opts.columns, first_line=first_line,
                         time_unit=opts.time_unit, time_format=opts.time_format, tz=opts.tz,
                         symbol=sym, timeframe=tf)


_JSON_NUMERIC = b" \t\r\n[],.0123456789eE+-"


def _numeric_rows(data: bytes) -> np.ndarray | None:
    """Fast path for ``[[n, n, ...], ...]`` (only numbers): rows become CSV
    lines parsed by pyarrow.  ``None`` when the text is anything else."""
    if data.translate(None, _JSON_NUMERIC):
        return None
    body = data.strip()
    if not (body.startswith(b"[") and body.endswith(b"]")):
        return None
    body = body[1:-1].strip()
    if not (body.startswith(b"[") and body.endswith(b"]")):
        return None
    body = body[1:-1].replace(b"], [", b"\n").replace(b"],[", b"\n")
    if b"[" in body or b"]" in body:
        body = re.sub(rb"\]\s*,\s*\[", b"\n", body)
        if b"[" in body or b"]" in body:
            return None
    try:
        table = pcsv.read_csv(
            io.BytesIO(body),
            read_options=pcsv.ReadOptions(autogenerate_column_names=True, block_size=1 << 22),
            convert_options=pcsv.ConvertOptions(strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return None
    cols = []
    for c in table.columns:
        if not (pa.types.is_integer(c.type) or pa.types.is_floating(c.type)) or c.null_count:
            return None
        cols.append(np.asarray(c.to_numpy(), dtype=np.float64))
    return np.column_stack(cols) if cols else None


def json_to_bars(data: bytes, src: str, opts: ReadOptions, sym, tf):
    arr = _numeric_rows(data)
    if arr is not None and arr.shape[1] >= 6:
        return _rows_to_bars(arr, src, opts, sym, tf)
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{src}: not valid JSON ({exc})") from None
    if isinstance(obj, dict):
        lists = [(k, v) for k, v in obj.items() if isinstance(v, list)]
        if len(lists) == 1:
            key, obj = lists[0]
            if "/" in key and parse_name(src)[1] is None:  # {"BTC/USDT": [[...], ...]}
                sym = symbol_from_pair(key)
        elif "data" in obj and isinstance(obj["data"], list):
            obj = obj["data"]
        else:
            raise DataError(f"{src}: JSON object; expected a list of [time, open, high, low, "
                            "close, volume] rows")
    if not isinstance(obj, list):
        raise DataError(f"{src}: JSON {type(obj).__name__}; expected a list of rows")
    if not obj:
        raise DataError(f"{src}: no bars (empty list)")
    if isinstance(obj[0], dict):
        try:
            table = pa.Table.from_pylist(obj)
        except (pa.ArrowException, TypeError) as exc:
            raise DataError(f"{src}: JSON rows are not uniform objects ({exc})") from None
        return table_to_bars(table, src, columns=opts.columns, time_unit=opts.time_unit,
                             time_format=opts.time_format, tz=opts.tz, symbol=sym, timeframe=tf)
    try:
        arr = np.array(obj, dtype=np.float64)
    except (ValueError, TypeError):
        for i, row in enumerate(obj):
            if not isinstance(row, list) or len(row) != len(obj[0]):
                raise DataError(f"{src}: row {i}: expected a list of {len(obj[0])} values, "
                                f"found {row!r:.80}") from None
            for j, x in enumerate(row):
                if x is not None and not isinstance(x, (int, float)):
                    if not (isinstance(x, str) and is_number(x)):
                        raise DataError(f"{src}: row {i}, field {j}: {x!r:.40} is not a number") from None
        arr = np.array([[np.nan if x is None else float(x) for x in row] for row in obj])
    if arr.ndim != 2 or arr.shape[1] < 6:
        raise DataError(f"{src}: rows have {arr.shape[1] if arr.ndim == 2 else 1} values; "
                        "expected [time, open, high, low, close, volume]")
    return _rows_to_bars(arr, src, opts, sym, tf)


def _rows_to_bars(arr: np.ndarray, src: str, opts: ReadOptions, sym, tf):
    t = arr[:, 0]
    ns, bad = epoch_to_ns(t, opts.time_unit)
    bad &= np.isfinite(t)
    frac = np.isfinite(t) & (t != np.floor(t))
    if bad.any() or frac.any():
        i = int(np.argmax(bad | frac))
        raise DataError(f"{src}: row {i}: time {t[i]!r} is not an epoch time")
    b = make_bars(ns, arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5],
                  source=src, symbol=sym, timeframe=tf)
    return b, []
