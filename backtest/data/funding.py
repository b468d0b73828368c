"""Funding rates: Binance files → marginbt's ``timestamp, funding_rate`` Parquet.

Inputs (CSV, a ZIP of CSV, gzip, JSON or Parquet; the layout is told by the
header, or by the field count of a headerless first line):

* archive  data.binance.vision ``futures/um/monthly/fundingRate``:
           ``calc_time,funding_interval_hours,last_funding_rate`` (older
           files without the header row)
* REST     ``GET /fapi/v1/fundingRate`` saved as CSV
           ``symbol,fundingTime,fundingRate,markPrice`` (``markPrice`` may be
           empty or absent; header optional) or as its JSON list of objects
* marginbt ``timestamp,funding_rate`` (Parquet as written here, or CSV with
           ISO or epoch times)

Epoch times are told per value by magnitude (ms below 1e14, µs above, as
the kline files).  Every time is rounded to the nearest second: Binance's
``calc_time`` carries millisecond jitter (``1620000000011`` is
2021-05-03 00:00:00.011 and becomes 00:00:00).  Within a file the rounded
times must increase; across files a time given twice is kept once when the
rates agree and is an error naming both files when they do not.  Rates are
fractions per funding interval (``0.0001`` = 0.01 %); NaN, inf and
``|rate| >= 1`` (a percentage?) are errors naming the file, column and line.

The written Parquet has the bundled files' layout: ``timestamp``
(``datetime64[ns, UTC]``) and ``funding_rate`` (float64), with key-value
metadata ``symbol`` and, when the source gave it, ``funding_interval_hours``
(the distinct intervals, e.g. ``"8"`` or ``"4,8"``); the schedule itself is
the rows' times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from backtest.errors import DataError

from .binance import verify_checksum, zip_csv_members
from .formats import expand_sources
from .names import parse_name
from .parquet import check_file, file_meta, open_parquet, sniff_kind, write_table
from .tables import refuse_empty, time_column_ns, value_column
from .textio import first_lines, is_number, read_bytes, read_csv, sniff_delimiter
from .times import NAT, fmt_ts

COLUMNS = ("timestamp", "funding_rate")
ARCHIVE = ("calc_time", "funding_interval_hours", "last_funding_rate")
REST = ("symbol", "fundingTime", "fundingRate", "markPrice")
SECOND = 1_000_000_000
MAX_RATE = 1.0  # |rate| >= 100 % per interval: not a fraction

# header names (lower-case, letters and digits only) → role
_ROLES = {
    "calctime": "time", "fundingtime": "time", "timestamp": "time",
    "lastfundingrate": "rate", "fundingrate": "rate",
    "fundingintervalhours": "interval",
    "symbol": "symbol",
}
_LAYOUTS = ("calc_time,funding_interval_hours,last_funding_rate (Binance archive), "
            "symbol,fundingTime,fundingRate,markPrice (REST) or timestamp,funding_rate")


def _num(x) -> str:
    return repr(float(x))


def _norm(name) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


@dataclass
class Rates:
    """One source's funding rows, times rounded, in file order."""
    ts: np.ndarray  # int64 ns UTC
    rate: np.ndarray  # float64
    source: str
    interval: np.ndarray | None = None  # float64 hours, when the source has the column
    symbol: str | None = None
    first_line: int | None = None  # 1-based line of row 0 in a text file
    rows: np.ndarray | None = None  # row positions in the file (after dropping duplicates)
    notes: list = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def label(self, i: int) -> str:
        r = int(self.rows[i]) if self.rows is not None else int(i)
        return f"line {self.first_line + r}" if self.first_line is not None else f"row {r}"


def _not_funding(source: str, what: str) -> DataError:
    hint = ""
    if "open_time" in what or "12 " in what:
        hint = " (a kline file? import it with `backtest data import`)"
    return DataError(f"{source}: not a funding-rate file: {what}; expected {_LAYOUTS}{hint}")


def _roles(names, source: str) -> dict:
    roles: dict = {}
    for n in names:
        r = _ROLES.get(_norm(n))
        if r and r not in roles:
            roles[r] = n
    if "time" not in roles or "rate" not in roles:
        shown = ", ".join(repr(str(n)) for n in names) or "none"
        raise _not_funding(source, f"columns {shown}")
    return roles


# ---- reading one source ------------------------------------------------------------

def read_funding_source(path, strict: bool = False) -> list[Rates]:
    """One ``Rates`` per CSV (a ZIP may hold several), checked row by row."""
    p = check_file(path)
    src = str(path)
    kind = sniff_kind(p)
    if kind == "empty":
        raise DataError(f"{src}: empty file: no funding rates")
    if kind == "parquet":
        return [_parquet_rates(p, src, strict)]
    if kind == "feather":
        raise _not_funding(src, "a feather file")
    verify_checksum(p)
    if kind == "zip":
        return [_text_rates(data, msrc, parse_name(m)[0] or parse_name(p)[0], strict)
                for msrc, m, data in zip_csv_members(p, src)]
    data = read_bytes(p)
    sym = parse_name(p)[0]
    if data.lstrip()[:1] in (b"[", b"{"):
        return [_json_rates(data, src, sym, strict)]
    return [_text_rates(data, src, sym, strict)]


def _text_rates(data: bytes, source: str, symbol, strict: bool) -> Rates:
    lines = first_lines(data, 2)
    if not lines:
        raise DataError(f"{source}: empty file: no funding rates")
    delim = sniff_delimiter(lines[0])
    fields = [f.strip().strip('"').strip() for f in lines[0].split(delim)]
    header = not any(is_number(f) for f in fields)
    if header:
        if len(lines) < 2:
            raise DataError(f"{source}: only a header row, no funding rates")
        names = fields
        if len(set(names)) != len(names):
            raise DataError(f"{source}: line 1: a column name appears twice ({lines[0][:120]})")
        roles = _roles(names, source)
    else:
        n = len(fields)
        if n in (3, 4) and not is_number(fields[0]) and is_number(fields[1]):
            names = list(REST[:n])
        elif n == 3:
            names = list(ARCHIVE)
        elif n == 2:
            names = list(COLUMNS)
        else:
            raise _not_funding(source, f"line 1 has {n} columns" + (
                " (12 columns: a kline file?)" if n == 12 else ""))
        roles = _roles(names, source)
    types = {roles["rate"]: pa.float64()}
    if "interval" in roles:
        types[roles["interval"]] = pa.float64()
    if "symbol" in roles:
        types[roles["symbol"]] = pa.string()
    table = read_csv(data, source, names=names, skip_rows=1 if header else 0, delimiter=delim,
                     column_types=types, include=list(roles.values()))
    return _from_table(table, roles, source, symbol, first_line=2 if header else 1, strict=strict)


def _json_rates(data: bytes, source: str, symbol, strict: bool) -> Rates:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: not valid JSON ({exc})") from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list) or not obj or not all(isinstance(r, dict) for r in obj):
        raise _not_funding(source, "JSON that is not a non-empty list of objects "
                                   "(REST /fapi/v1/fundingRate returns one)")
    try:
        table = pa.Table.from_pylist([{k: (None if v == "" else v) for k, v in r.items()}
                                      for r in obj])
    except (pa.ArrowException, TypeError) as exc:
        raise DataError(f"{source}: JSON rows are not uniform objects ({exc})") from None
    roles = _roles(table.column_names, source)
    return _from_table(table, roles, source, symbol, first_line=None, strict=strict)


def _parquet_rates(p: Path, source: str, strict: bool) -> Rates:
    pf = open_parquet(p)
    names = pf.schema_arrow.names
    if "timestamp" not in names or "funding_rate" not in names:
        shown = ", ".join(repr(n) for n in names) or "none"
        hint = " (an OHLCV file?)" if "open" in names else ""
        raise DataError(f"{source}: not a funding-rate Parquet file: columns {shown}{hint}; "
                        "expected 'timestamp' and 'funding_rate'")
    t = pf.schema_arrow.field("timestamp").type
    if not pa.types.is_timestamp(t):
        raise DataError(f"{source}: column 'timestamp': type {t} is not a timestamp")
    cols = ["timestamp", "funding_rate"] + (["funding_interval_hours"]
                                            if "funding_interval_hours" in names else [])
    try:
        table = pf.read(columns=cols)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{source}: a corrupt Parquet file, cannot read its data "
                        f"({str(exc).splitlines()[0]})") from None
    roles = {"time": "timestamp", "rate": "funding_rate"}
    if len(cols) == 3:
        roles["interval"] = "funding_interval_hours"
    symbol = file_meta(pf).get("symbol") or parse_name(p)[0]
    return _from_table(table, roles, source, symbol, first_line=None, strict=strict)


def _from_table(table: pa.Table, roles: dict, source: str, symbol, first_line, strict) -> Rates:
    if table.num_rows == 0:
        raise DataError(f"{source}: no funding rates (no data rows)")
    label = (lambda i: f"line {first_line + i}") if first_line is not None else (lambda i: f"row {i}")
    tcol, rcol = roles["time"], roles["rate"]
    raw = time_column_ns(table.column(tcol), source, tcol, label)
    rate = value_column(table.column(rcol), source, rcol, label)
    interval = None
    if "interval" in roles:
        interval = value_column(table.column(roles["interval"]), source, roles["interval"], label)
    if "symbol" in roles:
        syms = pd.unique(pd.Series(table.column(roles["symbol"]).to_pandas()).dropna().astype(str))
        if len(syms) > 1:
            raise DataError(f"{source}: column '{roles['symbol']}': rows for several symbols "
                            f"({', '.join(map(str, syms[:5]))}); save one symbol a file")
        if len(syms):
            symbol = str(syms[0]).upper()
    r = Rates(round_to_second(raw), rate, source, interval=interval, symbol=symbol,
              first_line=first_line)
    jitter = np.abs(raw - r.ts)
    jitter = jitter[raw != NAT]
    if jitter.size and jitter.max() > 0:
        k = int(np.count_nonzero(jitter))
        r.notes.append(f"{source}: {k:,} time{'s' if k != 1 else ''} rounded to the second "
                       f"(up to {jitter.max() / 1e6:g} ms off)")
    return check_rates(r, roles, strict)


def round_to_second(ns: np.ndarray) -> np.ndarray:
    """Nearest whole second (half up); ``NAT`` stays ``NAT``."""
    ns = np.asarray(ns, dtype=np.int64)
    out = (ns + SECOND // 2) // SECOND * SECOND
    return np.where(ns == NAT, NAT, out)


def check_rates(r: Rates, roles: dict | None = None, strict: bool = True) -> Rates:
    """The row rules: a time; a finite rate with ``|rate| < 1``; a positive
    interval; times increasing.  A repeated time is an error when ``strict``
    (or when the rates differ), else dropped (with a note)."""
    roles = roles or {"time": "timestamp", "rate": "funding_rate", "interval": "funding_interval_hours"}
    src = r.source
    n = len(r)
    if n == 0:
        raise DataError(f"{src}: no funding rates")

    def when(i):
        return "" if r.ts[i] == NAT else f" ({fmt_ts(r.ts[i])})"

    checks = [(r.ts == NAT, roles["time"], lambda i: "has no time"),
              (~np.isfinite(r.rate), roles["rate"],
               lambda i: "is empty" if np.isnan(r.rate[i]) else f"is {_num(r.rate[i])}"),
              (np.abs(r.rate) >= MAX_RATE, roles["rate"],
               lambda i: f"{_num(r.rate[i])} is not a fraction per interval (|rate| >= 1; "
                         "a percentage? divide by 100)")]
    if r.interval is not None:
        iv = r.interval
        checks.append((~(iv > 0) | ~np.isfinite(iv), roles.get("interval", "funding_interval_hours"),
                       lambda i: f"interval {_num(iv[i])} is not a positive number of hours"))
    back = np.zeros(n, dtype=bool)
    back[1:] = r.ts[1:] < r.ts[:-1]
    checks.append((back, roles["time"],
                   lambda i: f"is not after {r.label(i - 1)} ({fmt_ts(r.ts[i - 1])}): "
                             "times must increase"))
    for mask, col, what in checks:
        if mask.any():
            i = int(np.argmax(mask))
            raise DataError(f"{src}: column '{col}': {r.label(i)}{when(i)} {what(i)}")
    dup = np.zeros(n, dtype=bool)
    dup[1:] = r.ts[1:] == r.ts[:-1]
    if dup.any():
        k = np.flatnonzero(dup)
        differ = r.rate[k] != r.rate[k - 1]
        if strict or differ.any():
            i = int(k[np.argmax(differ)]) if differ.any() else int(k[0])
            extra = (f" with a different rate ({_num(r.rate[i - 1])} vs {_num(r.rate[i])})"
                     if r.rate[i] != r.rate[i - 1] else "")
            raise DataError(f"{src}: column '{roles['time']}': {r.label(i)}{when(i)} duplicates "
                            f"the time of {r.label(i - 1)}{extra}")
        keep = ~dup
        r.notes.append(f"{src}: {int(dup.sum()):,} repeated rows dropped")
        r.rows = np.flatnonzero(keep)
        r.ts, r.rate = r.ts[keep], r.rate[keep]
        if r.interval is not None:
            r.interval = r.interval[keep]
    return r


# ---- merging ------------------------------------------------------------------------

def _base(sym: str) -> str:
    return sym.upper().removesuffix("_PERP")


def _symbol(parts: list[Rates], override: str | None) -> str | None:
    if override:
        return override
    by_base: dict = {}
    for p in parts:
        if p.symbol:
            by_base.setdefault(_base(p.symbol), []).append(p)
    if len(by_base) > 1:
        shown = "; ".join(f"{b} ({', '.join(p.source for p in ps)[:120]})" for b, ps in sorted(by_base.items()))
        raise DataError(f"the files are for different symbols: {shown}; "
                        "import them separately or pass --symbol to override")
    if not by_base:
        return None
    names = {p.symbol.upper() for ps in by_base.values() for p in ps}
    perp = sorted(s for s in names if s.endswith("_PERP"))
    return perp[0] if perp else sorted(names)[0]


def _merge(parts: list[Rates]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    ts = np.concatenate([p.ts for p in parts])
    rate = np.concatenate([p.rate for p in parts])
    has_iv = any(p.interval is not None for p in parts)
    iv = np.concatenate([p.interval if p.interval is not None else np.full(len(p), np.nan)
                         for p in parts]) if has_iv else None
    fid = np.concatenate([np.full(len(p), k, dtype=np.int32) for k, p in enumerate(parts)])
    row = np.concatenate([np.arange(len(p), dtype=np.int64) for p in parts])
    order = np.argsort(ts, kind="stable")
    ts, rate, fid, row = ts[order], rate[order], fid[order], row[order]
    if iv is not None:
        iv = iv[order]
    dup = np.zeros(ts.shape, dtype=bool)
    dup[1:] = ts[1:] == ts[:-1]
    if not dup.any():
        return ts, rate, iv, 0
    k = np.flatnonzero(dup)
    differ = rate[k] != rate[k - 1]
    if differ.any():
        j = int(k[np.argmax(differ)])
        a, b = parts[fid[j - 1]], parts[fid[j]]
        raise DataError(f"{a.source} {a.label(row[j - 1])} and {b.source} {b.label(row[j])} both "
                        f"have {fmt_ts(ts[j])} with different funding rates ({_num(rate[j - 1])} vs "
                        f"{_num(rate[j])}); remove one of the files")
    keep = ~dup
    return ts[keep], rate[keep], (iv[keep] if iv is not None else None), int(dup.sum())


def _frame(ts: np.ndarray, rate: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.DatetimeIndex(ts.view("M8[ns]")).tz_localize("UTC"),
        "funding_rate": np.ascontiguousarray(rate, dtype=np.float64),
    })


def _intervals(iv: np.ndarray | None) -> list:
    if iv is None:
        return []
    vals = np.unique(iv[np.isfinite(iv)])
    return [int(v) if float(v).is_integer() else float(v) for v in vals]


def import_funding(sources, symbol: str | None = None) -> pd.DataFrame:
    """Read funding-rate files (see the module docstring) into one frame.

    ``sources``: a path or a list of paths and directories.  Returns a
    DataFrame with columns ``timestamp`` (``datetime64[ns, UTC]``) and
    ``funding_rate`` (float64), sorted, one row a time; ``attrs``: ``symbol``,
    ``sources``, ``funding_interval_hours`` (distinct values, may be empty),
    ``duplicates_dropped`` and ``notes``.  Raises ``DataError`` (one line
    naming the file, column and line) on the first bad row.
    """
    refuse_empty(symbol=symbol)
    files = expand_sources(sources)
    parts: list[Rates] = []
    for f in files:
        parts += read_funding_source(f)
    sym = _symbol(parts, symbol)
    ts, rate, iv, dropped = _merge(parts)
    notes = [n for p in parts for n in p.notes]
    if dropped:
        notes.append(f"{dropped:,} rate{'s' if dropped != 1 else ''} repeated across files dropped")
    df = _frame(ts, rate)
    df.attrs.update(symbol=sym, sources=[str(f) for f in files],
                    funding_interval_hours=_intervals(iv), duplicates_dropped=dropped,
                    notes=notes)
    return df


def load_funding(path) -> pd.DataFrame:
    """Read and validate a funding-rate file.

    Our Parquet layout (``timestamp`` a Parquet timestamp, naive = UTC;
    numeric ``funding_rate``) or a CSV ``timestamp,funding_rate`` (ISO or
    epoch times); Binance archive and REST files are read too.  Times are
    rounded to the second and must strictly increase; rates must be finite
    with ``|rate| < 1``.  Returns columns ``timestamp`` (``datetime64[ns,
    UTC]``) and ``funding_rate`` (float64) with ``attrs`` ``symbol`` and
    ``path``; raises ``DataError`` naming the file, column and row/line.
    """
    parts = read_funding_source(path, strict=True)
    ts, rate, _, dropped = _merge(parts)
    if dropped:  # the same time in two CSVs of one ZIP
        raise DataError(f"{path}: {dropped:,} times appear in more than one of its files")
    df = _frame(ts, rate)
    df.attrs.update(symbol=_symbol(parts, None), path=str(path))
    return df


def validate_funding(df: pd.DataFrame, source: str = "DataFrame") -> pd.DataFrame:
    """The ``load_funding`` rules on a frame with ``timestamp`` (a column or
    the index) and ``funding_rate``; returns the canonical two-column frame."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    if "timestamp" in df.columns:
        t = df["timestamp"]
    elif isinstance(df.index, pd.DatetimeIndex):
        t = df.index.to_series()
    else:
        raise DataError(f"{source}: no 'timestamp' column nor DatetimeIndex")
    if "funding_rate" not in df.columns:
        raise DataError(f"{source}: missing column 'funding_rate'; found "
                        f"{', '.join(repr(str(c)) for c in df.columns) or 'none'}")
    if not (isinstance(t.dtype, pd.DatetimeTZDtype) or t.dtype.kind == "M"):
        raise DataError(f"{source}: column 'timestamp': type {t.dtype} is not a datetime")
    idx = pd.DatetimeIndex(t)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    ts = round_to_second(np.asarray(idx.as_unit("ns").asi8, dtype=np.int64))
    s = df["funding_rate"]
    if s.dtype == bool or not pd.api.types.is_numeric_dtype(s.dtype):
        raise DataError(f"{source}: column 'funding_rate': type {s.dtype} is not numeric")
    r = check_rates(Rates(ts, s.to_numpy(dtype=np.float64, na_value=np.nan), source))
    out = _frame(r.ts, r.rate)
    out.attrs.update(df.attrs)
    return out


def write_funding(df: pd.DataFrame, path, symbol: str | None = None,
                  extra_meta: dict | None = None) -> Path:
    """Write a funding frame (validated first) as Parquet in the bundled
    layout, atomically (a failed write leaves an existing file untouched)."""
    p = Path(str(path))
    clean = validate_funding(df, str(p))
    ts = np.asarray(clean["timestamp"].array.asi8, dtype=np.int64)
    arrays = [pa.array(ts, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
              pa.array(clean["funding_rate"].to_numpy(), pa.float64())]
    md = {"kind": "funding"}
    sym = symbol or df.attrs.get("symbol")
    if sym:
        md["symbol"] = str(sym)
    ivs = df.attrs.get("funding_interval_hours")
    if ivs:
        md["funding_interval_hours"] = ",".join(f"{v:g}" for v in ivs)
    for k, v in (extra_meta or {}).items():
        md[k] = v if isinstance(v, str) else json.dumps(v)
    table = pa.Table.from_arrays(arrays, names=list(COLUMNS)).replace_schema_metadata(md)
    return write_table(table, p)

