"""A series given beside the traded bars (``--mark``, ``--detail``) must be
the same market's.

Two cheap checks refuse another market's file with one line naming both
files, instead of a run of garbage (an ETHUSDT mark series on a BTCUSDT run
"liquidates" every bar):

- its symbol (Parquet metadata, else the file name), when it names a pair,
  must be the traded pair; a perpetual's ``_PERP`` suffix is allowed
  (Binance's mark prices are the perpetual's);
- the median ratio of its prices to the traded bars' on the times both have
  must lie in ``BAND`` (0.8–1.25): a mark or finer series of the same
  market stays within a few per cent.
"""
import numpy as np
import pandas as pd

from .assets import pair_name, split_symbol
from .errors import UserError

BAND = (0.8, 1.25)


def pair_of(symbol):
    """``BTCUSDT_PERP`` → ``BTCUSDT``; None when it names no pair we know."""
    if not symbol:
        return None
    s = pair_name(symbol)
    try:
        split_symbol(s)
    except UserError:
        return None
    return s


def check_companion(flag, other: pd.DataFrame, other_name, bars: pd.DataFrame, symbol=None, column="close"):
    """Refuse ``other`` (given with ``flag``) unless it is the market of
    ``bars``; ``column``: the prices compared where both have a bar (the
    first finer bar of a bar opens with it: ``open`` for ``--detail``)."""
    data = f"--data {bars.attrs['path']}" if bars.attrs.get("path") else "the traded bars"
    mine = pair_of(symbol or bars.attrs.get("symbol"))
    theirs = pair_of(other.attrs.get("symbol"))
    if mine and theirs and mine != theirs:
        raise UserError(f"{flag} {other_name}: symbol {other.attrs.get('symbol')} (from its metadata or file name), "
                        f"but {data} is {mine}; give the same market's file")
    common = bars.index.intersection(other.index)
    if len(common) == 0:
        return
    theirs_px = other[column].reindex(common).to_numpy(np.float64)
    mine_px = bars[column].reindex(common).to_numpy(np.float64)
    ratio = float(np.median(theirs_px / mine_px))
    if not BAND[0] <= ratio <= BAND[1]:
        raise UserError(f"{flag} {other_name}: its prices are {ratio:.3g}× those of {data} (median over "
                        f"{len(common):,} common bars; the same market's stay within {BAND[0]:g}–{BAND[1]:g}×)")
