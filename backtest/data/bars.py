"""``Bars``: OHLCV columns as numpy arrays, before validation.

Readers of every format produce a ``Bars``; ``validate`` raises on the first
bad row, ``check`` lists every problem, ``to_frame`` builds the DataFrame the
rest of marginbt uses.  ``label(i)`` names a row the way the user can find it
in the source: ``row 17`` (0-based data row of a Parquet/feather/JSON file
or DataFrame) or ``line 18`` (1-based line of a text file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from backtest.errors import DataError


COLUMNS = ("open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")


@dataclass
class Bars:
    ts: np.ndarray  # int64 ns UTC, NAT where missing
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = "DataFrame"
    symbol: str | None = None
    timeframe: str | None = None
    # 1-based line number of data row 0 in a text file (rows follow one a line)
    first_line: int | None = None
    # maps a row position to the row number in the file (range reads)
    row_of: Callable[[int], int] | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def col(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def label(self, i: int) -> str:
        i = int(i)
        if self.first_line is not None:
            return f"line {self.first_line + i}"
        if self.row_of is not None:
            return f"row {self.row_of(i)}"
        return f"row {i}"


def make_bars(ts, o, h, l, c, v, **kw) -> Bars:
    f = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    return Bars(np.ascontiguousarray(ts, dtype=np.int64), f(o), f(h), f(l), f(c), f(v), **kw)


def to_frame(bars: Bars, path: str | None = None) -> pd.DataFrame:
    """The validated DataFrame: UTC ``DatetimeIndex`` named ``timestamp``."""
    df = pd.DataFrame({c: bars.col(c) for c in COLUMNS}, index=utc_index(bars.ts), copy=False)
    df.attrs["symbol"] = bars.symbol
    df.attrs["timeframe"] = bars.timeframe
    if path is not None:
        df.attrs["path"] = str(path)
    return df


def utc_index(ts: np.ndarray) -> pd.DatetimeIndex:
    """The canonical index of int64 ns UTC times: named ``timestamp``."""
    return pd.DatetimeIndex(ts.view("M8[ns]"), name="timestamp", dtype="datetime64[ns, UTC]")  # (no tz_localize copy)


def _index_ns(idx: pd.DatetimeIndex) -> np.ndarray:
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    if idx.unit != "ns":  # (as_unit copies even when the unit is already ns)
        idx = idx.as_unit("ns")
    return np.asarray(idx.asi8, dtype=np.int64)


def from_frame(df: pd.DataFrame, source: str = "DataFrame") -> Bars:
    """Columns of a user DataFrame, with the same type checks as a file.

    Timestamps come from a ``timestamp`` column if there is one, else from a
    ``DatetimeIndex``.  Naive timestamps are taken as UTC; others converted.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    cols = [str(c) for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if "timestamp" in df.columns:
        s = df["timestamp"]
        if not isinstance(s.dtype, pd.DatetimeTZDtype) and s.dtype.kind != "M":
            raise DataError(
                f"{source}: column 'timestamp': type {s.dtype} is not a datetime "
                "(numbers and strings are not guessed: convert with "
                "pd.to_datetime(..., unit='ms', utc=True) or `backtest data import`)"
            )
        ts = _index_ns(pd.DatetimeIndex(s))
    elif isinstance(df.index, pd.DatetimeIndex):
        ts = _index_ns(df.index)
    else:
        missing = ["timestamp"] + missing
        ts = None
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(repr(m) for m in missing)}; "
            f"found {', '.join(repr(c) for c in cols) or 'none'}"
            f" (index: {type(df.index).__name__}){_hint(cols)}"
        )
    arrays = {}
    for c in COLUMNS:
        s = df[c]
        if isinstance(s, pd.DataFrame):
            raise DataError(f"{source}: column '{c}' appears more than once")
        if s.dtype == bool or not pd.api.types.is_numeric_dtype(s.dtype):
            raise DataError(f"{source}: column '{c}': type {s.dtype} is not numeric")
        arrays[c] = s.to_numpy(dtype=np.float64, na_value=np.nan)
    return make_bars(ts, *(arrays[c] for c in COLUMNS), source=source,
                     symbol=df.attrs.get("symbol"), timeframe=df.attrs.get("timeframe"))


def _hint(found: list[str]) -> str:
    low = {c.lower(): c for c in found}
    if all(c in low for c in COLUMNS) and any(c not in found for c in COLUMNS):
        return "; names are case-sensitive: rename to lower-case open, high, low, close, volume"
    if "date" in low and "timestamp" not in found:
        return "; a freqtrade file? convert it with `backtest data import`"
    return ""
