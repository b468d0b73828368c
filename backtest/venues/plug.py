"""The plug point: what the bar loop asks of a venue, one function per
question.

The loop keeps every venue's account in the same six numbers
(``account.py``) and the run state ``fs``; a venue brings its rules (spot
margin: ``rules.py`` and ``account.py``; USDⓈ-M perpetuals:
``binance_usdm.py``) and one overload here per question, chosen by the
type of ``pv``, the loop's venue marker: None on spot margin, an integer on
perpetuals (numba types the call with the one side only, so neither venue's
compiled loop carries the other's code or its compile time; an ``if`` on
``pv`` would not do: the one-symbol kernel's ``pv`` is an optional integer
on perps, and numba types both sides of such an ``if``).
``Settings.venue`` says the same in the settings.  Levels ``m`` are in the
venue's own health terms, lower = closer to liquidation: spot margin's
margin level (assets / debt), the perp's margin balance over maintenance
margin.
"""
from numba import types
from numba.extending import overload

from .. import account as spot
from ..account import HB, HQ, IB, IQ, PB, PQ, _assets, _debt
from ..profiles import USDM as USDM_NAME
from ..profiles import VENUE, VENUE_CODES
from ..rules import liquidation_level, margin_level
from . import binance_usdm as usdm

SPOT, USDM = VENUE_CODES[VENUE], VENUE_CODES[USDM_NAME]


def _spot(pv):
    """Typing ``pv``: spot margin (None) or a perpetual."""
    return isinstance(pv, types.NoneType)


def exposed(st, pv):
    """Can the account be liquidated at all: spot margin owes something, a
    perp account holds a position."""


@overload(exposed, inline="always")
def _exposed(st, pv):
    if _spot(pv):
        return lambda st, pv: st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0
    return lambda st, pv: st[HB] - st[PB] != 0.0


def level_price(st, fs, pv, m):
    """(price, side) where health reaches ``m``: side +1 when a falling
    price reaches it, −1 a rising one (spot margin: price 0 when the account
    is at or below ``m`` at every price, ``rules.liquidation_level``), 0
    none."""


@overload(level_price)
def _level_price(st, fs, pv, m):
    if _spot(pv):
        return lambda st, fs, pv, m: liquidation_level(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], m)
    return lambda st, fs, pv, m: usdm.level_price(st, fs, m)


def level_at(st, fs, pv, p):
    """The account's health at price ``p`` (spot: assets / debt, perps: MB /
    MM); +inf when nothing can be liquidated."""


@overload(level_at)
def _level_at(st, fs, pv, p):
    if _spot(pv):
        return lambda st, fs, pv, p: margin_level(_assets(st, p), _debt(st, p))
    return lambda st, fs, pv, p: usdm.health(st, fs, p)


def lift_to(st, fs, pv, p, m, repay):
    """The quote that lifts the health at ``p`` to ``m`` (≤ 0: none needed;
    ``repay``: spot margin's auto-repay, the money repays the quote loan first)."""


@overload(lift_to)
def _lift_to(st, fs, pv, p, m, repay):
    if _spot(pv):
        return lambda st, fs, pv, p, m, repay: spot.lift_to(st, p, m, repay)
    return lambda st, fs, pv, p, m, repay: usdm.lift_to(st, fs, p, m)


def lift_to_initial(st, fs, pv, cfg, p):
    """The quote that lifts the account at ``p`` back to its initial level:
    spot margin's initial margin level; a perp's initial margin."""


@overload(lift_to_initial)
def _lift_to_initial(st, fs, pv, cfg, p):
    if _spot(pv):
        return lambda st, fs, pv, cfg, p: spot.lift_to(st, p, cfg.initial_ml, cfg.auto_repay)
    return lambda st, fs, pv, cfg, p: usdm.lift_to_initial(st, fs, p, cfg.leverage)


def deposit(st, fs, pv, amount, free, repay):
    """Quote into (``amount`` > 0) or out of the account (``free``: a perp's
    cross wallet outside an isolated position; ``repay``: spot margin's
    auto-repay)."""


@overload(deposit)
def _deposit(st, fs, pv, amount, free, repay):
    if _spot(pv):
        return lambda st, fs, pv, amount, free, repay: spot.deposit(st, amount, repay)
    return lambda st, fs, pv, amount, free, repay: usdm.deposit(st, fs, amount, free)


def withdrawable(st, fs, pv, cfg, o, entry):
    """What may leave the account at the open ``o`` (``entry``: a perp's entry price)."""


@overload(withdrawable)
def _withdrawable(st, fs, pv, cfg, o, entry):
    if _spot(pv):
        return lambda st, fs, pv, cfg, o, entry: spot.withdrawable(st, o, cfg.initial_ml)
    return lambda st, fs, pv, cfg, o, entry: usdm.withdrawable(st, fs, o, cfg.leverage, cfg.isolated, entry)


def deleverage_size(st, fs, pv, cfg, p, f):
    """The safety buffer's reduction at ``p``, filled at ``f``: (side,
    quantity, cut?), quantity 0 when none (docs/model-choices.md "A safety
    buffer")."""


@overload(deleverage_size)
def _deleverage_size(st, fs, pv, cfg, p, f):
    if _spot(pv):
        return lambda st, fs, pv, cfg, p, f: spot.deleverage_size(st, p, f, cfg.fee, cfg.initial_ml)
    return lambda st, fs, pv, cfg, p, f: usdm.deleverage_size(st, fs, p, f, cfg.fee, cfg.leverage)


def reduce_fill(st, fs, pv, cfg, side, q, f, entry):
    """A reduction of ``q`` at ``f`` (the safety buffer's), with the trading
    fee and no borrowing: spot margin's fill in the asset received (auto-repay
    on), a perp's fill; returns (quantity filled, fee value)."""


@overload(reduce_fill)
def _reduce_fill(st, fs, pv, cfg, side, q, f, entry):
    if _spot(pv):
        def spot_fill(st, fs, pv, cfg, side, q, f, entry):
            if side > 0:
                spot._buy(st, q, f, cfg.fee, 0.0, cfg.round_interest, False, True)
                return q, q * cfg.fee * f
            spot._sell(st, q, f, cfg.fee, 0.0, cfg.round_interest, False, True)
            return q, q * f * cfg.fee
        return spot_fill

    def perp_fill(st, fs, pv, cfg, side, q, f, entry):
        q, fee_value, _ = usdm.fill(st, fs, side, q, f, cfg.fee, cfg.leverage, False, entry)
        return q, fee_value
    return perp_fill
