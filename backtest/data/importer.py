"""``import_ohlcv``: many source files → one validated OHLCV frame.

Every source file is read and validated on its own (so an error names that
file and its line or row).  Files are then put in time order (by their
first bar) and merged; a timestamp present in more than one file is kept
once if the bars are identical and is an error if they differ.  Gaps are
reported in the notes, never filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.errors import DataError, UserError

from .bars import COLUMNS, Bars, to_frame
from .formats import ReadOptions, expand_sources, read_source
from .gaps import gap_arrays
from .tables import parse_columns, refuse_empty
from .times import fmt_ts
from .timeframes import infer_timeframe, parse_timeframe
from .validate import validate_bars


def _one(values: dict, what: str, override: str | None) -> str | None:
    if override:
        return override
    distinct = sorted({v for v in values.values() if v})
    if len(distinct) > 1:
        shown = "; ".join(f"{v} ({', '.join(k for k, x in values.items() if x == v)[:120]})"
                          for v in distinct)
        raise DataError(f"the files are for different {what}s: {shown}; "
                        f"import them separately or pass --{what} to override")
    return distinct[0] if distinct else None


def import_ohlcv(sources, fmt: str = "auto", columns=None, symbol: str | None = None,
                 timeframe: str | None = None, time_unit: str = "auto",
                 time_format: str | None = None, tz: str | None = None) -> pd.DataFrame:
    """Read OHLCV files of any supported format into one validated frame.

    ``sources``: a path, or a list of paths and directories (a directory
    stands for its data files).  ``fmt``: ``auto`` or one of ``binance``,
    ``freqtrade``, ``ccxt``, ``csv``, ``parquet`` (see ``backtest.data.formats``).
    ``columns``: mapping ``{"time": "Date", "open": "Open", ...}`` or the
    ``"time=Date,open=Open,..."`` string of ``--columns`` (generic tables).
    ``symbol``/``timeframe`` override what the file names say.

    Returns the canonical frame (as ``load_ohlcv``); ``attrs`` holds
    ``symbol``, ``timeframe``, ``sources`` (file names), ``format``,
    ``duplicates_dropped`` and ``notes`` (one-line remarks: files with both
    ms and µs times, missing volume, gaps, a file name disagreeing with the
    bar spacing).
    """
    refuse_empty(symbol=symbol, time_format=time_format, tz=tz)
    files = expand_sources(sources)
    opts = ReadOptions(columns=parse_columns(columns), time_unit=time_unit,
                       time_format=time_format, tz=tz)
    if timeframe is not None:
        timeframe = str(parse_timeframe(timeframe, "--timeframe"))
    parts: list[Bars] = []
    notes: list[str] = []
    formats = set()
    units = set()
    for f in files:
        res = read_source(f, fmt, opts)
        formats.add(res.format)
        notes.extend(res.notes)
        for b in res.bars:
            validate_bars(b)  # raises naming this file and its line/row
            units.update(b.meta.get("units", []))
            parts.append(b)
    sym = _one({b.source: b.symbol for b in parts}, "symbol", symbol)
    tf_names = _one({b.source: b.timeframe for b in parts}, "timeframe", timeframe)

    parts.sort(key=lambda b: int(b.ts[0]))
    merged, dropped = _merge(parts)
    spacing = infer_timeframe(merged.ts)
    if timeframe is not None and spacing and parse_timeframe(spacing).ns < parse_timeframe(timeframe).ns:
        # bars closer than the timeframe said (written as the file's, every run then warned: helper-73); a coarser
        # median than --timeframe is a sparse file (minutes without a trade), what --timeframe is there for
        raise UserError(f"--timeframe {timeframe}: the bars are {spacing} apart (median); give --timeframe "
                        f"{spacing} or leave it out (resample changes a timeframe)")
    tf = tf_names or spacing
    if tf_names and spacing and tf_names != spacing and timeframe is None:
        notes.append(f"file names say {tf_names} but the bars are {spacing} apart "
                     f"(median); kept {tf_names}, pass --timeframe to change")
    merged.symbol, merged.timeframe = sym, tf
    step = parse_timeframe(tf) if tf and timeframe is None else None  # (given: the user's; a month's ns is a guide)
    closer = np.diff(merged.ts) < step.ns if step is not None and not step.months else np.zeros(0, dtype=bool)
    if closer.any():  # (hourly bars with many gaps have a median of 2h: written as 2h unsaid, helper-75)
        k = int(np.argmax(closer))
        n = int(closer.sum())
        notes.append(f"{n:,} bar{'s' if n != 1 else ''} closer than {tf} to the bar before (first at "
                     f"{fmt_ts(merged.ts[k + 1])}): {tf} is the bars' median spacing or the name's; finer bars with "
                     "gaps need --timeframe")
    if len(units) > 1:
        notes.append(f"times in {' and '.join(sorted(units))} (per row) were both read")
    if dropped:
        notes.append(f"{dropped:,} duplicate bars across files dropped")
    a, _, miss = gap_arrays(merged.ts, timeframe=tf) if tf else gap_arrays(merged.ts)
    if miss.size:
        k = int(np.argmax(miss))
        notes.append(f"{miss.size:,} gaps, {int(miss.sum()):,} bars missing (longest "
                     f"{int(miss[k]):,} after {fmt_ts(a[k])}); not filled — see `backtest data check`")
    df = to_frame(merged)
    df.attrs.update(sources=[str(f) for f in files], format="+".join(sorted(formats)),
                    duplicates_dropped=dropped, notes=notes)
    return df


def _merge(parts: list[Bars]) -> tuple[Bars, int]:
    if len(parts) == 1:
        return parts[0], 0
    ts = np.concatenate([b.ts for b in parts])
    vals = {c: np.concatenate([b.col(c) for b in parts]) for c in COLUMNS}
    file_id = np.concatenate([np.full(len(b), k, dtype=np.int32) for k, b in enumerate(parts)])
    row = np.concatenate([np.arange(len(b), dtype=np.int64) for b in parts])
    if ts.size > 1 and not np.all(ts[1:] > ts[:-1]):
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        vals = {c: v[order] for c, v in vals.items()}
        file_id, row = file_id[order], row[order]
    dup = np.zeros(ts.shape, dtype=bool)
    dup[1:] = ts[1:] == ts[:-1]
    dropped = int(dup.sum())
    if dropped:
        k = np.flatnonzero(dup)
        # a run of 3+ copies compares each to its predecessor: all equal or error
        same = np.ones(k.shape, dtype=bool)
        for c in COLUMNS:
            same &= vals[c][k] == vals[c][k - 1]
        if not same.all():
            j = int(k[np.argmax(~same)])
            a, b = parts[file_id[j - 1]], parts[file_id[j]]
            diff = next(c for c in COLUMNS if vals[c][j] != vals[c][j - 1])
            raise DataError(
                f"{a.source} {a.label(row[j - 1])} and {b.source} {b.label(row[j])} both have "
                f"{fmt_ts(ts[j])} with different values ({diff} {vals[diff][j - 1]!r} vs "
                f"{vals[diff][j]!r}); remove one of the files"
            )
        keep = ~dup
        ts = ts[keep]
        vals = {c: v[keep] for c, v in vals.items()}
    merged = Bars(ts, *(vals[c] for c in COLUMNS), source=" + ".join(b.source for b in parts[:3])
                  + (" ..." if len(parts) > 3 else ""))
    return merged, dropped
