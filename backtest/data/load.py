"""``load_ohlcv``: the one way bars get into a backtest."""

from __future__ import annotations

import pandas as pd

from .bars import to_frame
from .parquet import empty_range_error, read_parquet_bars
from .validate import validate_bars


def load_ohlcv(path, start=None, end=None) -> pd.DataFrame:
    """Read and validate an OHLCV Parquet file.

    The file has columns ``timestamp`` (a Parquet timestamp of any unit) and
    numeric ``open, high, low, close, volume``; only these are read.
    Timestamps without a time zone are taken as UTC; other zones are
    converted to UTC.  Epoch numbers in ``timestamp`` are an error, not a
    guess (convert such files with ``backtest data import``).

    ``start`` and ``end`` (str, ``datetime``, ``date`` or ``pd.Timestamp``;
    naive means UTC) keep only bars with ``start <= timestamp <= end``.  An
    ``end`` given as a bare date (``"2024-03-31"`` or a ``datetime.date``)
    includes that whole day; any other ``end`` is an inclusive instant.
    The range is pushed down to pyarrow, so row groups outside it are not
    read.

    Returns a DataFrame indexed by a ``DatetimeIndex`` named ``timestamp``
    (``datetime64[ns, UTC]``) with float64 columns ``open, high, low, close,
    volume``, and ``attrs``: ``symbol`` (Parquet metadata key ``symbol``,
    else the file name: ``BTCUSDT-1h.parquet`` → ``BTCUSDT``), ``timeframe``
    (metadata ``timeframe``, else the file name, else the median bar
    spacing) and ``path``.

    Raises ``backtest.errors.DataError`` with one line naming the file, the
    column and the first bad row (``row N`` is the 0-based row of the file,
    also with a range) for: a missing file, a file that is not Parquet,
    missing columns, a non-timestamp ``timestamp``, NaN/inf, prices <= 0,
    volume < 0, high < low, low > min(open, close), high < max(open, close),
    duplicate or decreasing timestamps, and no bars (empty file or range).
    Gaps are not errors: see ``find_gaps``.
    """
    bars = read_parquet_bars(path, start, end)
    if len(bars) == 0:
        raise empty_range_error(bars, path)
    validate_bars(bars)
    return to_frame(bars, path=path)
