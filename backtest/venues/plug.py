"""The plug point: what the bar loop asks of a venue, one function per
question, each choosing the venue's rule by ``cfg.venue``.

The loop keeps every venue's account in the same six numbers
(``account.py``) and the run state ``fs``; a venue brings its rules (spot
margin: ``rules.py`` and ``account.py``; USDⓈ-M perpetuals:
``binance_usdm.py``) and one branch here per question.  Levels ``m`` are
in the venue's own health terms, lower = closer to liquidation: spot
margin's margin level (assets / debt), the perp's margin balance over
maintenance margin.
"""
from numba import njit

from ..profiles import USDM as USDM_NAME
from ..profiles import VENUE, VENUE_CODES
from ..account import HB, HQ, IB, IQ, PB, PQ, _assets, _debt
from ..rules import liquidation_price, margin_level
from . import binance_usdm as usdm

SPOT, USDM = VENUE_CODES[VENUE], VENUE_CODES[USDM_NAME]


@njit(cache=True, inline="always")
def exposed(st, cfg):
    """Can the account be liquidated at all: spot margin owes something, a
    perp account holds a position."""
    if cfg.venue == USDM:
        return st[HB] - st[PB] != 0.0
    return st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0


@njit(cache=True)
def at_or_below(st, fs, cfg, price, m):
    """Health at ``price`` at or below level ``m`` (the account exposed)."""
    if cfg.venue == USDM:
        return usdm.health_at_or_below(st, fs, price, m)
    return _assets(st, price) <= m * _debt(st, price)


@njit(cache=True)
def health(st, fs, cfg, price):
    """The account's health at ``price``: margin level, or MB / MM."""
    if cfg.venue == USDM:
        return usdm.health(st, fs, price)
    return margin_level(_assets(st, price), _debt(st, price))


@njit(cache=True)
def level_price(st, fs, cfg, m):
    """(price, side) where health reaches ``m``: side +1 when a falling
    price reaches it, −1 a rising one, 0 none."""
    if cfg.venue == USDM:
        return usdm.level_price(st, fs, m)
    return liquidation_price(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], m)
