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
import numpy as np
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


@njit(cache=True)
def level_at(st, fs, pv, p):
    """The account's health at price ``p`` (spot: assets / debt, perps: MB /
    MM); +inf when nothing can be liquidated."""
    if pv is not None:
        return usdm.health(st, fs, p)
    debt = (st[PB] + st[IB]) * p + st[PQ] + st[IQ]
    return (st[HB] * p + st[HQ]) / debt if debt > 0.0 else np.inf


@njit(cache=True)
def lift_to(st, fs, pv, p, m, repay):
    """The quote that lifts the health at ``p`` to ``m`` (≤ 0: none needed):
    perps ``m·MM − MB``; spot ``m·D − A``, or with ``repay`` (auto-repay:
    the money repays the quote loan first) ``D − A/m`` while it only repays."""
    if pv is not None:
        n = st[HB] - st[PB]
        return m * usdm.maintenance(fs, abs(n) * p) - (st[HQ] - st[PQ] - fs[usdm.FREE] + n * p)
    assets = st[HB] * p + st[HQ]
    debt_b = (st[PB] + st[IB]) * p
    dq = st[PQ] + st[IQ]
    if repay and debt_b + dq - assets / m <= dq:
        return debt_b + dq - assets / m
    if repay:
        return m * debt_b + dq - assets
    return m * (debt_b + dq) - assets


@njit(cache=True)
def lift_to_initial(st, fs, pv, cfg, p):
    """The quote that lifts the account at ``p`` back to its initial level:
    spot margin's initial margin level; a perp's margin balance to the
    position's initial margin ``|N|·p / L``."""
    if pv is not None:
        n = st[HB] - st[PB]
        return abs(n) * p / cfg.leverage - (st[HQ] - st[PQ] - fs[usdm.FREE] + n * p)
    return lift_to(st, fs, pv, p, cfg.initial_ml, cfg.auto_repay)


@njit(cache=True)
def deposit(st, fs, pv, amount, free, repay):
    """Quote into (``amount`` > 0) or out of the account: spot margin's held
    quote (with ``repay``, auto-repay, a deposit repays the quote loan
    first: interest, then principal); a perp's wallet: the position's
    margin, or with ``free`` the cross wallet outside an isolated position."""
    if pv is not None:
        usdm.set_state(st, st[HB] - st[PB], st[HQ] - st[PQ] + amount)
        if free:
            fs[usdm.FREE] += amount
        return
    if repay and amount > 0.0:
        x = min(amount, st[IQ])
        st[IQ] -= x
        y = min(amount - x, st[PQ])
        st[PQ] -= y
        amount -= x + y
    st[HQ] = max(st[HQ] + amount, 0.0)


@njit(cache=True)
def withdrawable(st, fs, pv, cfg, o, entry):
    """What may leave the account at the open ``o``: spot margin's held
    quote, less what keeps the margin level at the initial level; a perp's
    available money, at most its wallet (unrealised profit stays: ``entry``
    the position's entry price) in cross mode, its cross wallet isolated."""
    if pv is not None:
        if cfg.isolated:
            return max(fs[usdm.FREE], 0.0)
        n = st[HB] - st[PB]
        c = st[HQ] - st[PQ]
        wallet = c + n * entry if n != 0.0 else c
        return max(min(n * o + c - abs(n) * o / cfg.leverage, wallet), 0.0)
    debt = (st[PB] + st[IB]) * o + st[PQ] + st[IQ]
    if debt <= 0.0:
        return st[HQ]
    return max(min(st[HQ], st[HB] * o + st[HQ] - cfg.initial_ml * debt), 0.0)


@njit(cache=True)
def deleverage_size(st, fs, pv, cfg, p, f):
    """The reduction that brings the health at ``p`` back to the initial
    level, filled at ``f`` with the trading fee (docs/model-choices.md "A
    safety buffer"): (side of the fill, quantity, cut to what the position
    or the quote held allows?); quantity 0 when none (also when the
    formula's numerator or denominator is not positive).  Spot margin with
    auto-repay on: a long sells, its proceeds repay the quote loan; a short
    buys, the base repays the base loan.  Perps (cross): the margin balance
    back at the initial margin."""
    fee = cfg.fee
    if pv is not None:
        n = st[HB] - st[PB]
        a = abs(n)
        num = a * p / cfg.leverage - (st[HQ] - st[PQ] + n * p)
        den = p / cfg.leverage - abs(f - p) - f * fee
        side = -1 if n > 0.0 else 1
        if num <= 0.0 or den <= 0.0:
            return side, 0.0, False
        return side, min(num / den, a), num / den > a
    m0 = cfg.initial_ml
    db = st[PB] + st[IB]
    if db > 0.0:  # a short: buy back
        num = m0 * db * p - st[HQ]
        den = m0 * p * (1.0 - fee) - f
        if num <= 0.0 or den <= 0.0:
            return 1, 0.0, False
        cap = min(db / (1.0 - fee), st[HQ] / f)
        return 1, min(num / den, cap), num / den > cap
    num = m0 * (st[PQ] + st[IQ]) - st[HB] * p
    den = m0 * f * (1.0 - fee) - p
    if num <= 0.0 or den <= 0.0:
        return -1, 0.0, False
    return -1, min(num / den, st[HB]), num / den > st[HB]
