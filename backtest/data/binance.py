"""Binance kline files from data.binance.vision (CSV, or ZIP of CSV).

Twelve columns: open time, open, high, low, close, volume, close time,
quote volume, trade count, taker buy base volume, taker buy quote volume,
ignore.  Spot files have no header row; futures files have one; both are
accepted.  Times are milliseconds before 2025 and microseconds from 2025 on
(spot); each row's unit is told by its magnitude, so any mix works:
``1735689600000000`` (µs) is 2025-01-01 00:00 UTC and its close time
``1735693199999999`` is 00:59:59.999999.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from backtest.errors import DataError

from .bars import Bars, make_bars
from .names import parse_name
from .textio import first_lines, is_number, read_bytes, read_csv
from .times import epoch_to_ns, epoch_unit_factor, fmt_ts
from .timeframes import timeframe_from_ns

KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
_TYPES = {"open_time": pa.int64(), "close_time": pa.int64(),
          **{c: pa.float64() for c in ("open", "high", "low", "close", "volume")}}


def kline_time_ns(values) -> np.ndarray:
    """Binance kline times (ms or µs, per value) → int64 ns UTC."""
    ns, bad = epoch_to_ns(np.asarray(values, dtype=np.int64))
    return ns


def verify_checksum(path: Path) -> None:
    """If ``<file>.CHECKSUM`` (Binance's sha256 file) sits next to it, check it."""
    ck = path.with_name(path.name + ".CHECKSUM")
    if not ck.is_file():
        return
    try:
        want = ck.read_text().split()[0].lower()
    except (OSError, IndexError):
        return
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want:
        raise DataError(f"{path}: sha256 {got} does not match {ck.name} ({want}); "
                        "the download is corrupt")


def read_binance(path: Path, display: str | None = None) -> list[Bars]:
    """One ``Bars`` per CSV (a ZIP may hold several)."""
    display = display or str(path)
    verify_checksum(path)
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return [kline_bytes_to_bars(data, src, name=m, fallback_name=path.name)
                for src, m, data in zip_csv_members(path, display)]
    return [kline_bytes_to_bars(read_bytes(path), display, name=path.name)]


def kline_bytes_to_bars(data: bytes, source: str, name: str, fallback_name: str | None = None) -> Bars:
    lines = first_lines(data, 2)
    if not lines:
        raise DataError(f"{source}: empty file: no klines")
    fields = lines[0].split(",")
    header = not is_number(fields[0])
    if header:
        if len(lines) < 2:
            raise DataError(f"{source}: only a header row, no klines")
        fields = lines[1].split(",")
    if len(fields) != len(KLINE_COLUMNS):
        raise DataError(
            f"{source}: line {2 if header else 1}: expected 12 columns of a Binance "
            f"kline file, found {len(fields)} ("
            + ("a funding-rate file? use `backtest data import-funding`)" if len(fields) == 3 else
               "for other layouts use --format ccxt or csv)")
        )
    table = read_csv(data, source, names=list(KLINE_COLUMNS), skip_rows=1 if header else 0,
                     column_types=_TYPES, include=list(KLINE_COLUMNS[:7]))
    first_line = 2 if header else 1

    def ints(col):
        c = table.column(col)
        if c.null_count:
            i = int(np.flatnonzero(c.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{source}: column '{col}': line {first_line + i} is empty")
        return np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.int64)

    raw_open = ints("open_time")
    raw_close = ints("close_time")
    ts, bad = epoch_to_ns(raw_open)
    close, bad_c = epoch_to_ns(raw_close)
    for mask, col, what in ((bad, "open_time", raw_open), (bad_c, "close_time", raw_close)):
        if mask.any():
            i = int(np.argmax(mask))
            raise DataError(f"{source}: column '{col}': line {first_line + i}: "
                            f"{what[i]} is not a time in ms or µs")
    wrong = close <= ts
    if wrong.any():
        i = int(np.argmax(wrong))
        raise DataError(f"{source}: column 'close_time': line {first_line + i} "
                        f"({fmt_ts(ts[i])}): close time {raw_close[i]} is not after "
                        f"open time {raw_open[i]}")
    # bar length from open/close times: close = open + length - 1 unit
    length = close - ts + epoch_unit_factor(raw_close)
    tf_close = timeframe_from_ns(int(np.median(length))) if length.size else None

    cols = []
    for c in ("open", "high", "low", "close", "volume"):
        a = table.column(c)
        if a.null_count:
            a = a.fill_null(float("nan"))
        cols.append(np.asarray(a.to_numpy(zero_copy_only=False), dtype=np.float64))
    sym, tf = parse_name(name)
    if tf is None and fallback_name:
        sym, tf = parse_name(fallback_name)
    bars = make_bars(ts, *cols, source=source, symbol=sym,
                     timeframe=tf or (str(tf_close) if tf_close else None),
                     first_line=first_line)
    units = np.unique(epoch_unit_factor(raw_open))
    bars.meta["units"] = sorted({1_000_000: "ms", 1_000: "us", 1: "ns", 1_000_000_000: "s"}[int(u)]
                                for u in units)
    return bars


def zip_csv_members(path, display) -> list:
    """``(source, member, bytes)`` of every .csv/.txt member of the ZIP
    ``path`` (``source``: ``display``, with ``:member`` when there are
    several); a ZIP that cannot be read, or holds none, is one line."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{display}: not a readable ZIP file ({exc})") from None
    with zf:
        members = sorted(n for n in zf.namelist() if n.lower().endswith((".csv", ".txt")))
        if not members:
            raise DataError(f"{display}: ZIP holds no .csv file (found {', '.join(zf.namelist()) or 'nothing'})")
        out = []
        for m in members:
            src = display if len(members) == 1 else f"{display}:{m}"
            try:
                out.append((src, m, zf.read(m)))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataError(f"{src}: cannot unzip {m} ({exc})") from None
        return out
