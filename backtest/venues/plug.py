"""The plug point: what the bar loop asks of a venue, one function per
question.

The loop keeps every venue's account in the same six numbers
(``account.py``) and the run state ``fs``; a venue brings its rules (spot
margin: ``rules.py`` and ``account.py``; USDⓈ-M perpetuals:
``binance_usdm.py``) and one branch here per question.  The branch is on
``pv``, the loop's venue record: None on spot margin, so numba drops the
perpetual's code from spot margin's compiled loop (and its compile time);
``Settings.venue`` says the same in the settings.  Levels ``m`` are in the
venue's own health terms, lower = closer to liquidation: spot margin's
margin level (assets / debt), the perp's margin balance over maintenance
margin.
"""
from numba import njit

from ..account import HB, HQ, IB, IQ, PB, PQ
from ..profiles import USDM as USDM_NAME
from ..profiles import VENUE, VENUE_CODES
from ..rules import liquidation_price
from . import binance_usdm as usdm

SPOT, USDM = VENUE_CODES[VENUE], VENUE_CODES[USDM_NAME]


@njit(cache=True, inline="always")
def exposed(st, pv):
    """Can the account be liquidated at all: spot margin owes something, a
    perp account holds a position."""
    if pv is not None:
        return st[HB] - st[PB] != 0.0
    return st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0


@njit(cache=True)
def level_price(st, fs, pv, m):
    """(price, side) where health reaches ``m``: side +1 when a falling
    price reaches it, −1 a rising one, 0 none."""
    if pv is not None:
        return usdm.level_price(st, fs, m)
    return liquidation_price(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], m)
