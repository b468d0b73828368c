"""``resample_ohlcv``: bars to a longer timeframe.

open = first open, high = max high, low = min low, close = last close,
volume = sum of volumes; each new bar is labelled with its open time (the
start of its period on the grid: epoch-aligned, weeks from Monday 00:00 UTC,
months by the calendar).  A period's bar is built from whatever source bars
fall in it; periods with no source bar produce no bar (gaps stay gaps).

Incomplete edge periods — the first one when the data starts after the
period's start, the last one when the data ends before the period's end —
are dropped unless ``keep_partial=True``.  Interior periods with missing
source bars (exchange outages) are kept and counted in
``attrs["resample"]["incomplete"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.errors import UserError

from .bars import Bars, to_frame
from .timeframes import Timeframe, infer_timeframe, parse_timeframe
from .times import fmt_ts


def _month_len_ns(starts: np.ndarray, n: int) -> np.ndarray:
    m = starts.view("M8[ns]").astype("M8[M]")
    nxt = (m + np.timedelta64(n, "M")).astype("M8[ns]").astype(np.int64)
    return nxt - starts


def resample_ohlcv(df: pd.DataFrame, to: str, keep_partial: bool = False) -> pd.DataFrame:
    """Resample a validated OHLCV frame (as ``load_ohlcv`` returns) to ``to``.

    ``to`` is a timeframe (``"4h"``, ``"1d"``, ``"1w"``, ``"1M"``) that is a
    whole multiple of the source timeframe (``df.attrs["timeframe"]`` or the
    median spacing).  Returns a frame in the same canonical form with
    ``attrs``: ``symbol``, ``timeframe`` (= ``to``) and ``resample`` (counts:
    ``source_bars``, ``bars``, ``dropped_edges``, ``incomplete``).
    """
    target = parse_timeframe(to, "--to")
    ts = np.asarray(df.index.as_unit("ns").asi8, dtype=np.int64)
    if ts.size == 0:
        raise UserError("resample: no bars")
    src_text = df.attrs.get("timeframe") or infer_timeframe(ts)
    if src_text is None:
        raise UserError("resample: cannot tell the source timeframe (one bar?)")
    src = parse_timeframe(src_text)
    _check_multiple(src, target)

    b = target.bucket(ts)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], ts.size]  # exclusive
    o = df["open"].to_numpy(dtype=np.float64)
    h = df["high"].to_numpy(dtype=np.float64)
    lo = df["low"].to_numpy(dtype=np.float64)
    c = df["close"].to_numpy(dtype=np.float64)
    v = df["volume"].to_numpy(dtype=np.float64)
    new_ts = target.bucket_start(b[starts])
    if target.months:
        per_len = _month_len_ns(new_ts, target.n)
    else:
        per_len = np.full(new_ts.shape, target.ns, dtype=np.int64)
    if src.months:
        expected = np.full(new_ts.shape, target.n // src.n)
    else:
        expected = per_len // src.ns
    count = ends - starts
    complete = count >= expected

    keep = np.ones(new_ts.shape, dtype=bool)
    dropped = []
    if not keep_partial:
        if ts[0] > new_ts[0]:
            keep[0] = False
            dropped.append(f"first ({fmt_ts(new_ts[0])}, {int(count[0])} of {int(expected[0])} bars)")
        last_end = new_ts[-1] + per_len[-1]
        src_end = ts[-1] + (src.ns if not src.months else _month_len_ns(ts[-1:], src.n)[0])
        if src_end < last_end and keep[-1]:
            keep[-1] = False
            dropped.append(f"last ({fmt_ts(new_ts[-1])}, {int(count[-1])} of {int(expected[-1])} bars)")
    interior = ~complete & keep
    if not keep.any():
        raise UserError(f"resample: no complete {target} bar in {fmt_ts(ts[0])} to "
                        f"{fmt_ts(ts[-1])}; use --keep-partial to keep partial bars")

    out = Bars(
        new_ts[keep],
        o[starts][keep],
        np.maximum.reduceat(h, starts)[keep],
        np.minimum.reduceat(lo, starts)[keep],
        c[ends - 1][keep],
        np.add.reduceat(v, starts)[keep],
        symbol=df.attrs.get("symbol"),
        timeframe=str(target),
    )
    res = to_frame(out)
    res.attrs["resample"] = {
        "from": str(src), "to": str(target), "source_bars": int(ts.size),
        "bars": int(keep.sum()), "dropped_edges": dropped,
        "incomplete": int(interior.sum()),
    }
    return res


def _check_multiple(src: Timeframe, target: Timeframe) -> None:
    if target.months:
        if src.months:
            ok = target.n % src.n == 0
        else:
            ok = (86_400 * 10**9) % src.ns == 0  # whole days divide into months
    elif src.months:
        ok = False
    else:
        ok = target.ns % src.ns == 0
    if not ok:
        raise UserError(f"--to {target}: not a whole multiple of the data's timeframe {src}")
