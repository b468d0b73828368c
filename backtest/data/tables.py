"""Column tables of any origin (CSV, feather, Parquet, JSON) → ``Bars``.

The time column may hold timestamps, dates, epoch numbers (unit told per
value by magnitude: s < 1e11 <= ms < 1e14 <= µs < 1e17 <= ns, or forced with
``time_unit``) or date/time strings (ISO 8601 and the usual variants;
``time_format`` forces a strptime format).  Naive times are in ``tz``
(default UTC); times with an offset or zone are converted to UTC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from backtest.errors import DataError, UserError

from .bars import COLUMNS, Bars, make_bars
from .times import NAT, epoch_to_ns

FIELDS = ("time",) + COLUMNS
# candidates for auto-mapping, compared lower-case with spaces/underscores removed
_AUTO = {
    "time": ("timestamp", "date", "time", "datetime", "opentime", "datetimeutc",
             "timestamputc", "ts", "t", "unix", "unixtimestamp"),
    "open": ("open", "o", "openprice"),
    "high": ("high", "h", "highprice"),
    "low": ("low", "l", "lowprice"),
    "close": ("close", "c", "closeprice"),
    "volume": ("volume", "v", "vol", "baseassetvolume", "volumebase"),
}


def refuse_empty(**flags):
    """A flag given as an empty string (``--symbol ""``) was read as not given (the file's name, UTC won): one
    line instead.  ``flags``: ``{"--symbol": value, ...}`` as keywords ``symbol=value`` (``_`` for ``-``)."""
    for name, value in flags.items():
        if isinstance(value, str) and not value.strip():
            raise UserError(f"--{name.replace('_', '-')}: empty; give a value or leave the flag out")


def parse_columns(spec: str | dict | None) -> dict[str, str] | None:
    """``"time=Date,open=Open,..."`` → ``{"time": "Date", "open": "Open", ...}``."""
    if spec is None or isinstance(spec, dict):
        return spec
    out = {}
    for part in str(spec).split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise UserError(f"--columns: {part!r} is not FIELD=COLUMN (e.g. time=Date,open=Open)")
        k, v = (s.strip() for s in part.split("=", 1))
        k = {"timestamp": "time", "date": "time"}.get(k.lower(), k.lower())
        if k not in FIELDS:
            raise UserError(f"--columns: unknown field {k!r}; fields are {', '.join(FIELDS)}")
        out[k] = v
    return out


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def map_columns(names: list[str], source: str, columns: dict | None) -> dict[str, str | None]:
    """Which table column feeds each field (volume may be absent: ``None``)."""
    mapping: dict[str, str | None] = {}
    found = ", ".join(repr(n) for n in names) or "none"
    if columns:
        for k, v in columns.items():
            if v not in names:
                raise DataError(f"{source}: --columns {k}={v}: no column {v!r}; found {found}")
        mapping.update(columns)
    by_norm = {}
    for n in names:
        by_norm.setdefault(_norm(n), n)
    for f in FIELDS:
        if f in mapping:
            continue
        for cand in _AUTO[f]:
            if cand in by_norm:
                mapping[f] = by_norm[cand]
                break
    missing = [f for f in FIELDS if f not in mapping and f != "volume"]
    if missing:
        raise DataError(
            f"{source}: missing column(s) for {', '.join(missing)}; found {found}; "
            "map them with --columns time=...,open=...,high=...,low=...,close=...,volume=..."
        )
    mapping.setdefault("volume", None)
    return mapping


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def time_column_ns(col: pa.ChunkedArray, source: str, name: str, label, *,
                   time_unit: str = "auto", time_format: str | None = None,
                   tz: str | None = None) -> np.ndarray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_timestamp(t):
        a = col.cast(pa.int64())
        a = np.asarray(pc.fill_null(a, NAT).to_numpy(zero_copy_only=False), dtype=np.int64)
        f = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[t.unit]
        a = np.where(a == NAT, NAT, a * f)
        if t.tz is None and tz and tz.upper() != "UTC":
            a = _localize(a, tz, source, name)
        return a
    if pa.types.is_date(t):
        a = col.cast(pa.timestamp("ns")).cast(pa.int64())
        return np.asarray(pc.fill_null(a, NAT).to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        v = col.cast(pa.float64()) if col.null_count else col
        v = pc.fill_null(v, float("nan")) if col.null_count else v
        arr = np.asarray(v.to_numpy(zero_copy_only=False))
        if arr.dtype.kind == "u":
            arr = arr.astype(np.int64)
        ns, bad = epoch_to_ns(arr, time_unit)
        nulls = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
        bad &= ~nulls  # missing stays NaT, reported by validation
        if bad.any():
            i = _first_bad(bad)
            raise DataError(f"{source}: column '{name}': {label(i)}: {arr[i]!r} is not an epoch time")
        return ns
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        s = pd.Series(col.to_pandas(), dtype=object)
        return _parse_strings(s, source, name, label, time_format, tz, time_unit)
    raise DataError(f"{source}: column '{name}': type {t} is not a time")


def _localize(ns: np.ndarray, tz: str, source: str, name: str) -> np.ndarray:
    idx = pd.DatetimeIndex(ns.view("M8[ns]"))
    try:
        idx = idx.tz_localize(tz, ambiguous="raise", nonexistent="raise").tz_convert("UTC")
    except Exception as exc:  # noqa: BLE001 - pytz/zoneinfo errors vary
        raise DataError(f"{source}: column '{name}': cannot read times as {tz} ({exc})") from None
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


def _parse_strings(s: pd.Series, source, name, label, time_format, tz, time_unit) -> np.ndarray:
    stripped = s.str.strip()
    empty = stripped.isna() | (stripped == "")
    # numbers stored as text: epoch values
    num = pd.to_numeric(stripped.where(~empty), errors="coerce")
    if (num.notna() | empty).all() and num.notna().any():
        ns, bad = epoch_to_ns(num.to_numpy(dtype=np.float64), time_unit)
        bad &= ~empty.to_numpy()
        if bad.any():
            i = _first_bad(bad)
            raise DataError(f"{source}: column '{name}': {label(i)}: {s.iloc[i]!r} is not an epoch time")
        return ns
    fmt = time_format or "ISO8601"
    vals = stripped.where(~empty)
    try:
        parsed = pd.to_datetime(vals, format=fmt, errors="coerce")
        if not isinstance(parsed.dtype, pd.DatetimeTZDtype) and parsed.dtype.kind != "M":
            raise ValueError("mixed")
    except (ValueError, TypeError):
        try:
            parsed = pd.to_datetime(vals, format=time_format or "mixed", errors="coerce", utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{source}: column '{name}': cannot read times ({exc})") from None
    bad = parsed.isna().to_numpy() & ~empty.to_numpy()
    if bad.any() and time_format is None:
        # not ISO 8601: let pandas infer a format (e.g. 01/02/2020 10:00)
        try:
            parsed = pd.to_datetime(vals, errors="coerce", format="mixed")
        except (ValueError, TypeError):
            parsed = pd.to_datetime(vals, errors="coerce", format="mixed", utc=True)
        bad = parsed.isna().to_numpy() & ~empty.to_numpy()
    if bad.any():
        i = _first_bad(bad)
        fmt = "" if time_format is None else f" in --time-format {time_format!r}"
        raise DataError(f"{source}: column '{name}': {label(i)}: {s.iloc[i]!r} is not a date/time{fmt}")
    idx = pd.DatetimeIndex(parsed)
    if idx.tz is None:
        idx = idx.tz_localize(tz or "UTC", ambiguous="raise", nonexistent="raise")
    return np.asarray(idx.tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64)


def value_column(col: pa.ChunkedArray, source: str, name: str, label) -> np.ndarray:
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        if not pa.types.is_float64(t):
            col = col.cast(pa.float64())
        if col.null_count:
            col = pc.fill_null(col, float("nan"))
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        s = pd.Series(col.to_pandas(), dtype=object)
        num = pd.to_numeric(s.str.strip(), errors="coerce")
        bad = num.isna() & s.notna() & (s.str.strip() != "")
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{source}: column '{name}': {label(i)}: {s.iloc[i]!r} is not a number")
        return num.to_numpy(dtype=np.float64, na_value=np.nan)
    raise DataError(f"{source}: column '{name}': type {t} is not numeric")


def table_to_bars(table: pa.Table, source: str, *, columns: dict | None = None,
                  first_line: int | None = None, time_unit: str = "auto",
                  time_format: str | None = None, tz: str | None = None,
                  symbol: str | None = None, timeframe: str | None = None) -> tuple[Bars, list[str]]:
    """Map and convert; returns ``(bars, notes)`` (notes: things the user should know)."""
    mapping = map_columns(table.column_names, source, columns)
    notes = []
    label = (lambda i: f"line {first_line + i}") if first_line is not None else (lambda i: f"row {i}")
    ts = time_column_ns(table.column(mapping["time"]), source, mapping["time"], label,
                       time_unit=time_unit, time_format=time_format, tz=tz)
    vals = []
    for f in COLUMNS:
        if mapping[f] is None:
            notes.append(f"{source}: no volume column: volume set to 0")
            vals.append(np.zeros(table.num_rows))
            continue
        vals.append(value_column(table.column(mapping[f]), source, mapping[f], label))
    bars = make_bars(ts, *vals, source=source, symbol=symbol, timeframe=timeframe,
                     first_line=first_line)
    bars.meta["mapping"] = mapping
    return bars, notes
