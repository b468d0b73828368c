"""Finer bars under the bars (``--detail FILE``): load, check, align.

docs/model-choices.md "Finer bars settle the path": bar i's sub-bars are
the finer bars opening in ``[t_i, t_i + T)``; they are usable when none is
missing and they add up to the bar's open, high, low and close exactly.
The kernel gets them as plain arrays plus, per bar, the index range of its
usable sub-bars (empty where there are none).
"""
import numpy as np
import pandas as pd

from .data import load_ohlcv, parse_timeframe, validate_ohlcv
from .companion import check_companion
from .errors import UserError
from .inputs import Detail

_EMPTY_F = np.empty(0, dtype=np.float64)
_EMPTY_I = np.empty(0, dtype=np.int64)
# the kernel's detail arguments when there is no --detail (same types, so one compiled kernel)
NO_DETAIL = (_EMPTY_F, _EMPTY_F, _EMPTY_F, _EMPTY_F, _EMPTY_I, _EMPTY_I)


def for_kernel(detail, cfg, given):
    """The kernel's ``detail`` argument: the finer bars ``detail``
    (``detail_arrays``'s, or ``NO_DETAIL``) as an ``inputs.Detail``, or None
    when nothing in the run walks a bar's path (no stop-loss, take-profit or
    trailing fraction in ``cfg``, no limit orders or stop levels in
    ``given``, no finer bars).  numba then compiles none of the walk: a
    first run of that kind compiles its kernel without it."""
    walks = (cfg.stop_loss > 0.0 or cfg.take_profit > 0.0 or cfg.trailing_stop > 0.0 or given.limit.shape[0] > 0
             or given.sl_price.shape[0] > 0 or given.tp_price.shape[0] > 0 or detail[4].shape[0] > 0)
    return Detail(*detail) if walks else None


def sub_bars(arrays) -> int:
    """How many sub-bars a usable bar has in ``detail_arrays``' output (0
    when none is usable)."""
    count = arrays[5] - arrays[4]
    return int(count.max()) if len(count) else 0


def _timeframe_ns(tf, what):
    if not tf:
        raise UserError(f"{what}: cannot tell the timeframe (name the file like BTCUSDT-1m.parquet)")
    parsed = parse_timeframe(tf, what)
    if parsed.months:
        raise UserError(f"{what}: timeframe {tf} is not a fixed length; --detail needs fixed bars")
    return parsed.ns


def detail_arrays(detail, bars: pd.DataFrame, symbol: str):
    """The kernel's detail arguments for ``bars`` and how many bars have
    usable sub-bars.

    ``detail`` is a Parquet path or an OHLCV DataFrame.  Refused (one-line
    ``UserError``): another symbol, a timeframe that is not finer than the
    bars' or does not divide it, and finer bars none of which fall inside
    the bars' span.
    """
    name = str(detail) if not isinstance(detail, pd.DataFrame) else (symbol or "detail")  # (a frame: its symbol's)
    step = _timeframe_ns(bars.attrs.get("timeframe"), "bars")
    lo, hi = bars.index[0], bars.index[-1] + pd.Timedelta(step, "ns") - pd.Timedelta(1, "ns")
    if isinstance(detail, pd.DataFrame):
        d = validate_ohlcv(detail, name)
        d = d.loc[(d.index >= lo) & (d.index <= hi)]
    else:
        try:
            d = load_ohlcv(detail, lo, hi)
        except UserError as exc:
            raise UserError(f"--detail {exc}") from None
    check_companion("--detail", d, name, bars, symbol, column="open")  # a bar's first finer bar opens with it
    fine = _timeframe_ns(d.attrs.get("timeframe"), f"--detail {name}")
    if fine >= step or step % fine:
        raise UserError(f"--detail {name}: timeframe {d.attrs.get('timeframe')} must be finer than the bars' "
                        f"{bars.attrs.get('timeframe')} and divide it")
    if len(d) == 0:
        raise UserError(f"--detail {name}: no bar inside the data's range ({bars.index[0]} → {bars.index[-1]})")

    t = bars.index.asi8
    dt = d.index.asi8
    j0 = np.searchsorted(dt, t, "left")
    j1 = np.searchsorted(dt, t + step, "left")
    ratio = step // fine
    usable = (j1 - j0) == ratio
    cols = [d[k].to_numpy(np.float64) for k in ("open", "high", "low", "close")]
    if usable.any():
        rows = j0[usable][:, None] + np.arange(ratio)  # each usable bar's sub-bars, in time order
        o, h, lo_, c = (bars[k].to_numpy(np.float64)[usable] for k in ("open", "high", "low", "close"))
        usable[usable] = ((cols[0][rows[:, 0]] == o) & (cols[1][rows].max(axis=1) == h)
                          & (cols[2][rows].min(axis=1) == lo_) & (cols[3][rows[:, -1]] == c))
    start = np.where(usable, j0, 0).astype(np.int64)
    end = np.where(usable, j1, 0).astype(np.int64)
    return (*cols, start, end), int(usable.sum())
