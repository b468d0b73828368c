"""Spec §6 rules, vectorised: the first bad row is an error.

Rules (in the order used to break ties within one row): a timestamp is
present; every value is finite (no NaN/inf); prices > 0; volume >= 0;
high >= low; low <= min(open, close); high >= max(open, close); timestamps
strictly increasing.  The error names the earliest bad row and, at that row,
the first rule it breaks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.derived import derived
from backtest.errors import DataError

from .bars import COLUMNS, PRICES, Bars, from_frame, to_frame, utc_index
from .times import NAT, NS, fmt_ts
from .timeframes import infer_timeframe


def _num(x: float) -> str:
    return repr(float(x))


def rule_masks(b: Bars):
    """Yield ``(kind, column, mask, describe)`` for every row rule.

    ``describe(i)`` tells what is wrong with row ``i``.  Masks are boolean
    arrays over the rows, computed with numpy in one pass each.
    """
    ts = b.ts
    yield "timestamp", "timestamp", ts == NAT, lambda i: "has no timestamp (NaT)"
    for c in COLUMNS:
        a = b.col(c)
        yield "nan", c, ~np.isfinite(a), (lambda a, c: lambda i: f"{c} is {_num(a[i])}")(a, c)
    for c in PRICES:
        a = b.col(c)
        yield "price", c, a <= 0, (lambda a, c: lambda i: f"{c} {_num(a[i])} <= 0")(a, c)
    v = b.volume
    yield "volume", "volume", v < 0, lambda i: f"volume {_num(v[i])} < 0"
    o, h, l, c = b.open, b.high, b.low, b.close
    yield "high<low", "high", h < l, lambda i: f"high {_num(h[i])} < low {_num(l[i])}"
    lo_body = np.minimum(o, c)
    yield ("low>body", "low", l > lo_body,
           lambda i: f"low {_num(l[i])} > min(open, close) {_num(lo_body[i])}")
    hi_body = np.maximum(o, c)
    yield ("high<body", "high", h < hi_body,
           lambda i: f"high {_num(h[i])} < max(open, close) {_num(hi_body[i])}")
    order = np.zeros(ts.shape, dtype=bool)
    if ts.size > 1:
        order[1:] = ts[1:] <= ts[:-1]

    def describe_order(i):
        if ts[i] == ts[i - 1]:
            return f"duplicates the timestamp of {b.label(i - 1)}"
        return f"is not after {b.label(i - 1)} ({fmt_ts(ts[i - 1])}): timestamps must increase"

    yield "order", "timestamp", order, describe_order


def first_error(b: Bars) -> str | None:
    """One-line message for the earliest bad row, or ``None`` if clean."""
    from .clean import clean  # compiled: numba loads on first use, not with `backtest --help`

    n = len(b)
    if clean(b.ts, b.open, b.high, b.low, b.close, b.volume):
        return None
    best = None  # (row, rank, kind, column, mask, describe)
    for rank, (kind, column, mask, describe) in enumerate(rule_masks(b)):
        if n == 0:
            break
        i = int(np.argmax(mask))
        if mask[i] and (best is None or i < best[0]):
            best = (i, rank, kind, column, mask, describe)
    if best is None:
        return None
    i, _, kind, column, mask, describe = best
    count = int(np.count_nonzero(mask))
    when = "" if b.ts[i] == NAT else f" ({fmt_ts(b.ts[i])})"
    more = f" (first of {count:,} bad rows)" if count > 1 else ""
    mapping = b.meta.get("mapping") or {}
    shown = mapping.get("time" if column == "timestamp" else column) or column
    return f"{b.source}: column '{shown}': {b.label(i)}{when} {describe(i)}{more}"


def validate_bars(b: Bars) -> Bars:
    if len(b) == 0:
        raise DataError(f"{b.source}: no bars")
    msg = first_error(b)
    if msg is not None:
        raise DataError(msg)
    if b.timeframe is None:
        b.timeframe = infer_timeframe(b.ts)
    return b


def validate_ohlcv(df: pd.DataFrame, source: str = "DataFrame") -> pd.DataFrame:
    """Check an in-memory OHLCV frame by the rules of spec §6.

    ``df`` has a ``DatetimeIndex`` or a ``timestamp`` column (datetime dtype;
    epoch numbers are not guessed), and numeric ``open, high, low, close,
    volume`` columns; other columns are ignored.  Naive timestamps are taken
    as UTC, other time zones converted to UTC.

    Returns a new frame in the canonical form (``DatetimeIndex`` named
    ``timestamp``, ``datetime64[ns, UTC]``, float64 columns in order;
    ``attrs`` symbol/timeframe kept, timeframe inferred from the median
    spacing if absent).  Raises ``DataError`` naming ``source``, the column
    and the first bad row (0-based position).
    """
    return checked(df, source)[0]


def checked(df: pd.DataFrame, source: str = "DataFrame") -> tuple:
    """``validate_ohlcv``'s frame and its open, high, low and close arrays
    where the check had them at hand (else None: the frame's columns)."""
    given = _as_given(df)
    prices = None
    if given is None:  # a frame to convert, or one that breaks a rule: the general path, which names it
        b = validate_bars(from_frame(df, source))
        out, timeframe = to_frame(b), b.timeframe
    else:
        out, prices = given
        timeframe = df.attrs.get("timeframe") or derived(out.index, "timeframe", lambda i: infer_timeframe(i.asi8))
        out.attrs.update(symbol=None, timeframe=None)  # (the keys in to_frame's order)
    out.attrs.update(df.attrs)
    out.attrs["symbol"] = df.attrs.get("symbol")
    out.attrs["timeframe"] = df.attrs.get("timeframe") or timeframe
    return out, prices


def _as_given(df) -> tuple | None:
    """(the canonical frame, its open, high, low and close arrays) of a
    clean frame that needs no conversion but of its index's unit or time
    zone (float64 columns, a ``DatetimeIndex``), built from its own
    columns; else ``None``.  The rules are checked on the index's own
    integers (a missing time and the order are the same in any unit), on
    every run (an index's data can be written in place: ``asi8`` is a view):
    ~2 ms for 1M bars less than the general path, which copies them into a
    ``Bars`` first (a backtest loop validates its frame every run)."""
    from .clean import clean  # compiled: numba loads on first use, not with `backtest --help`

    idx = getattr(df, "index", None)
    if (not isinstance(df, pd.DataFrame) or not isinstance(idx, pd.DatetimeIndex) or "timestamp" in df.columns
            or idx.unit not in NS or len(idx) == 0 or df.columns.nlevels != 1 or not df.columns.is_unique
            or any(c not in df.columns for c in COLUMNS)):
        return None
    given = [df[c] for c in COLUMNS]  # (each column read once: ~15 µs a read)
    if any(s.dtype != np.float64 for s in given):
        return None
    raw = np.ascontiguousarray(idx.asi8)  # UTC instants in the index's unit, whatever its time zone
    cols = {c: np.ascontiguousarray(s.to_numpy()) for c, s in zip(COLUMNS, given)}
    if not clean(raw, *cols.values()):
        return None
    per = NS[idx.unit]  # (sorted now: the first and last times bound the rest)
    if not (-2**63 < int(raw[0]) * per and int(raw[-1]) * per < 2**63):
        return None  # beyond datetime64[ns]: the general path says so
    if idx.tz is not _UTC or idx.unit != "ns" or idx.name != "timestamp" or idx.freq is not None:
        idx = derived(idx, "utc_ns", lambda i: utc_index(raw * per if per > 1 else raw))
    # a view: the frame's index is its own object (renaming it renames neither the caller's nor a kept one)
    return pd.DataFrame(cols, index=idx.rename("timestamp"), copy=False), tuple(cols[k] for k in PRICES)


_UTC = utc_index(np.empty(0, dtype=np.int64)).tz  # the time zone object of the canonical index
