"""Gaps: missing bars on the regular grid.  Reported, never filled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .times import NAT
from .timeframes import Timeframe, median_step, parse_timeframe, timeframe_from_ns


def _as_ns(index) -> np.ndarray:
    if isinstance(index, pd.DataFrame):
        index = index.index if "timestamp" not in index.columns else index["timestamp"]
    if isinstance(index, np.ndarray) and index.dtype == np.int64:
        return index
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


def gap_arrays(ts: np.ndarray, step: int | None = None, timeframe=None):
    """``(before, after, missing)`` arrays for sorted int64 ns timestamps.

    ``before`` is the last bar before a gap, ``after`` the first bar after it
    and ``missing`` the number of grid bars between them.  The grid spacing
    is ``timeframe`` if given, else ``step`` ns, else the median spacing.
    """
    ts = ts[ts != NAT]
    empty = (np.empty(0, np.int64),) * 3
    tf = None
    if timeframe is not None:
        tf = timeframe if isinstance(timeframe, Timeframe) else parse_timeframe(timeframe)
    if tf is None:
        step = step if step is not None else median_step(ts)
        if step is None:
            return empty
        tf = timeframe_from_ns(step)
    if ts.size < 2:
        return empty
    if tf is not None and tf.months:
        b = tf.bucket(ts)
        d = np.diff(b)
        k = np.flatnonzero(d > 1)
        return ts[k], ts[k + 1], (d[k] - 1).astype(np.int64)
    step = tf.ns if tf is not None else int(step)
    d = np.diff(ts)
    k = np.flatnonzero(d > step)
    missing = -(-d[k] // step) - 1  # ceil(d / step) - 1
    return ts[k], ts[k + 1], missing.astype(np.int64)


def find_gaps(index, step=None) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Gaps in a sorted DatetimeIndex (or frame, or int64 ns array).

    Returns ``[(start, end, n_missing), ...]``: ``start`` is the last bar
    before the gap, ``end`` the first bar after it, ``n_missing`` the number
    of bars of the median spacing (or ``step``: a timeframe string like
    ``"1h"``, a ``pd.Timedelta``, or ns) that would fit between them.  A
    bar at 03:00 followed by one at 05:00 in hourly data is one gap with one
    bar missing.  Gaps are reported, never filled.
    """
    ts = _as_ns(index)
    tf = None
    step_ns = None
    if isinstance(step, str):
        tf = parse_timeframe(step)
    elif step is not None:
        step_ns = int(pd.Timedelta(step).value) if not isinstance(step, (int, np.integer)) else int(step)
    a, b, n = gap_arrays(ts, step_ns, tf)
    to_ts = lambda x: pd.Timestamp(int(x), unit="ns", tz="UTC")  # noqa: E731
    return [(to_ts(x), to_ts(y), int(m)) for x, y, m in zip(a, b, n)]
