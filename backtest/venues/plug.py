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

from .. import account as spot
from ..account import HB, HQ, IB, IQ, PB, PQ, _assets, _debt
from ..profiles import USDM as USDM_NAME
from ..profiles import VENUE, VENUE_CODES
from ..rules import liquidation_price, margin_level
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


@njit(cache=True)
def level_at(st, fs, pv, p):
    """The account's health at price ``p`` (spot: assets / debt, perps: MB /
    MM); +inf when nothing can be liquidated."""
    if pv is not None:
        return usdm.health(st, fs, p)
    return margin_level(_assets(st, p), _debt(st, p))


@njit(cache=True)
def lift_to(st, fs, pv, p, m, repay):
    """The quote that lifts the health at ``p`` to ``m`` (≤ 0: none needed;
    ``repay``: spot margin's auto-repay, the money repays the quote loan first)."""
    if pv is not None:
        return usdm.lift_to(st, fs, p, m)
    return spot.lift_to(st, p, m, repay)


@njit(cache=True)
def lift_to_initial(st, fs, pv, cfg, p):
    """The quote that lifts the account at ``p`` back to its initial level:
    spot margin's initial margin level; a perp's initial margin."""
    if pv is not None:
        return usdm.lift_to_initial(st, fs, p, cfg.leverage)
    return spot.lift_to(st, p, cfg.initial_ml, cfg.auto_repay)


@njit(cache=True)
def deposit(st, fs, pv, amount, free, repay):
    """Quote into (``amount`` > 0) or out of the account (``free``: a perp's
    cross wallet outside an isolated position; ``repay``: spot margin's
    auto-repay)."""
    if pv is not None:
        usdm.deposit(st, fs, amount, free)
    else:
        spot.deposit(st, amount, repay)


@njit(cache=True)
def withdrawable(st, fs, pv, cfg, o, entry):
    """What may leave the account at the open ``o`` (``entry``: a perp's entry price)."""
    if pv is not None:
        return usdm.withdrawable(st, fs, o, cfg.leverage, cfg.isolated, entry)
    return spot.withdrawable(st, o, cfg.initial_ml)


@njit(cache=True)
def deleverage_size(st, fs, pv, cfg, p, f):
    """The safety buffer's reduction at ``p``, filled at ``f``: (side,
    quantity, cut?), quantity 0 when none (docs/model-choices.md "A safety
    buffer")."""
    if pv is not None:
        return usdm.deleverage_size(st, fs, p, f, cfg.fee, cfg.leverage)
    return spot.deleverage_size(st, p, f, cfg.fee, cfg.initial_ml)


@njit(cache=True)
def reduce_fill(st, fs, pv, cfg, side, q, f, entry):
    """A reduction of ``q`` at ``f`` (the safety buffer's), with the trading
    fee and no borrowing: spot margin's fill in the asset received (auto-repay
    on), a perp's fill; returns (quantity filled, fee value)."""
    if pv is not None:
        q, fee_value, _ = usdm.fill(st, fs, side, q, f, cfg.fee, cfg.leverage, False, entry)
        return q, fee_value
    if side > 0:
        spot._buy(st, q, f, cfg.fee, 0.0, cfg.round_interest, False, True)
        return q, q * cfg.fee * f
    spot._sell(st, q, f, cfg.fee, 0.0, cfg.round_interest, False, True)
    return q, q * f * cfg.fee
