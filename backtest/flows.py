"""The trader's own moves inside the bar loop: scheduled transfers in and
out of the margin account and top-ups from a reserve kept outside it
and the manual loans (docs/model-choices.md "Transfers and a reserve",
"Manual loans").  Venue-neutral: the
levels, what may leave and where money goes are the venue's, asked through
the plug point (``venues/plug.py``).  The run's ``inputs.Flows`` record
holds the schedule, the reserve and the log of moves.
"""
from numba import njit

import numpy as np

from .account import PB, PQ, _position, _record_order, borrow_by_hand, repay_by_hand
from .intrabar import ENTRY, FEES_PAID, N_ORDERS, RB, RECORD, RQ, _count_fill, _owe, _track_in
from .records import BORROW, DELEVERAGE, REPAY, SCHEDULED, TOP_UP, WITHDRAWAL
from .rules import interest_charge
from .venues.plug import (deleverage_size, deposit, exposed, level_at, level_price, lift_to, lift_to_initial,
                          reduce_fill, withdrawable)

MAX_MOVES_PER_BAR = 64  # top-ups and deleverage orders of one bar
RESERVE, NET, TOPPED = range(3)  # ``flows.state``
ROWS, NEXT, NEXT_LOAN = range(3)  # ``flows.count``: log rows written, the next scheduled transfer, loan
# ``flows.loan_kind``, in the order a bar does them: repays first, base before quote
REPAY_BASE, REPAY_QUOTE, BORROW_BASE, BORROW_QUOTE = range(4)


@njit(cache=True)
def room(flows):
    """Log rows a bar may need beyond those written: every scheduled move
    left, a top-up at the open and those on the path."""
    return (flows.count[ROWS] + flows.bar.shape[0] - flows.count[NEXT] + flows.loan_bar.shape[0]
            - flows.count[NEXT_LOAN] + MAX_MOVES_PER_BAR + 1)


@njit(cache=True)
def next_bar(flows, n):
    """The bar of the next scheduled transfer or loan (``n``: none left)."""
    k, m = flows.count[NEXT], flows.count[NEXT_LOAN]
    return min(flows.bar[k] if k < flows.bar.shape[0] else n, flows.loan_bar[m] if m < flows.loan_bar.shape[0] else n)


@njit(cache=True)
def _log(flows, i, reason, amount, requested, price, before, after, base=False):
    rec = flows.log[flows.count[ROWS]]
    rec.bar = i
    rec.reason = reason
    rec.base = base
    rec.amount = amount
    rec.requested = requested
    rec.price = price
    rec.level_before = before
    rec.level_after = after
    rec.capped = abs(amount) < abs(requested) * (1.0 - 1e-12)
    rec.reserve_after = flows.state[RESERVE]
    flows.count[ROWS] += 1


@njit(cache=True)
def scheduled(st, fs, pv, cfg, flows, i, o):
    """0a. The transfers due at bar ``i`` (open ``o``), in their order: a
    deposit whole, a withdrawal capped to what may leave."""
    k = flows.count[NEXT]
    while k < flows.bar.shape[0] and flows.bar[k] <= i:
        a = flows.amount[k]
        before = level_at(st, fs, pv, o)
        moved = a if a >= 0.0 else -min(-a, withdrawable(st, fs, pv, cfg, o, fs[ENTRY]))
        if moved != 0.0:
            deposit(st, fs, pv, moved, cfg.isolated, cfg.auto_repay)
        flows.state[NET] += moved
        _log(flows, i, SCHEDULED if a >= 0.0 else WITHDRAWAL, moved, a, o, before, level_at(st, fs, pv, o))
        k += 1
    flows.count[NEXT] = k


@njit(cache=True)
def loans(st, fs, cfg, flows, i, o):
    """0c. The manual loans due at bar ``i`` (open ``o``), repays first;
    returns the principal (base, quote) before the first borrow (+inf: no
    borrow), all step 4's hour may fall on."""
    kept_b = kept_q = np.inf
    k = flows.count[NEXT_LOAN]
    while k < flows.loan_bar.shape[0] and flows.loan_bar[k] <= i:
        kind = flows.loan_kind[k]
        base = kind == REPAY_BASE or kind == BORROW_BASE
        before = level_at(st, fs, None, o)
        if kind <= REPAY_QUOTE:
            moved, requested = repay_by_hand(st, base, flows.loan_amount[k])
            reason = REPAY
        else:
            if kept_b == np.inf:
                kept_b, kept_q = st[PB], st[PQ]
            rate = fs[RB] if base else fs[RQ]
            requested = flows.loan_amount[k]
            moved = borrow_by_hand(st, base, requested, o, rate, cfg.initial_ml,
                                   cfg.max_borrow_base if base else cfg.max_borrow_quote)
            if moved > 0.0:
                charge = interest_charge(moved, rate, cfg.round_interest)
                _owe(st, fs, charge if base else 0.0, 0.0 if base else charge, o)
            reason = BORROW
        if requested > 0.0:
            _log(flows, i, reason, moved, requested, o, before, level_at(st, fs, None, o), base)
        k += 1
    flows.count[NEXT_LOAN] = k
    return kept_b, kept_q


@njit(cache=True)
def _top_up(st, fs, pv, cfg, flows, i, p):
    """One top-up at price ``p``: what lifts the level to the rule's (``top_ml``
    < 0: the initial level), or the fixed amount, as far as the reserve
    goes; False when nothing moved."""
    if flows.top_ml != flows.top_ml:
        want = flows.top_amount
    elif flows.top_ml < 0.0:
        want = lift_to_initial(st, fs, pv, cfg, p)
    else:
        want = lift_to(st, fs, pv, p, flows.top_ml, cfg.auto_repay)
    moved = min(want, flows.state[RESERVE])
    if moved <= 0.0:
        return False
    before = level_at(st, fs, pv, p)
    deposit(st, fs, pv, moved, False, cfg.auto_repay)
    left = flows.state[RESERVE] - moved
    flows.state[RESERVE] = left if left > 1e-12 * moved else 0.0  # (all of it, up to float noise)
    flows.state[TOPPED] += moved
    _log(flows, i, TOP_UP, moved, want, p, before, level_at(st, fs, pv, p))
    return True


@njit(cache=True)
def _deleverage(st, fs, ns, pv, cfg, i, p, orders):
    """The safety buffer's reduction at ``p`` (filled at ``p`` ∓ slippage,
    the trading fee), recorded as a ``deleverage`` order; False when it
    reduced nothing."""
    side, q, capped = deleverage_size(st, fs, pv, cfg, p, p)  # (the side first: the slippage's direction)
    f = p * (1.0 + side * cfg.slippage)
    side, q, capped = deleverage_size(st, fs, pv, cfg, p, f)
    if q <= 1e-9 * abs(_position(st)):  # float noise: the level is back where the buffer leaves it
        return False
    pos = _position(st)
    q, fee_value = reduce_fill(st, fs, pv, cfg, side, q, f, fs[ENTRY])
    if ns[RECORD]:
        _record_order(orders, ns[N_ORDERS], i, DELEVERAGE, (side, q, f, fee_value, capped), st, pos)
    _count_fill(ns, pos, _position(st), q)
    _track_in(fs, pos, _position(st), f, p)
    ns[N_ORDERS] += 1
    fs[FEES_PAID] += fee_value
    return True


@njit(cache=True)
def at_open(st, fs, ns, pv, cfg, flows, i, mo, orders):
    """0b. A bar opening at or below the margin-call level is topped up
    there; one opening at or below the buffer is deleveraged there."""
    if flows.state[RESERVE] > 0.0 and exposed(st, pv) and level_at(st, fs, pv, mo) <= cfg.call_ml:
        _top_up(st, fs, pv, cfg, flows, i, mo)
    x = flows.keep_ml
    if x == x and exposed(st, pv) and level_at(st, fs, pv, mo) <= x:
        _deleverage(st, fs, ns, pv, cfg, i, mo, orders)


@njit(cache=True, inline="always")
def _reached(st, fs, pv, m, mo, mh, ml):
    """Where the bar's adverse extreme reaches health ``m`` (the open when
    it opens past it): (price, side), side 0 when it does not."""
    p, side = level_price(st, fs, pv, m)
    if side == 1 and ml <= p:
        return min(mo, p), 1
    if side == -1 and mh >= p:
        return max(mo, p), -1
    return 0.0, 0


@njit(cache=True)
def on_path(st, fs, ns, pv, cfg, flows, i, mo, mh, ml, orders):
    """5'. Where the path meets the margin-call line (with a reserve) or the
    buffer, whichever it reaches first (a top-up on a tie), a top-up or a
    deleverage there; again while it does (a move that does nothing is off
    for the rest of the bar); True when any happened."""
    any_ = False
    x = flows.keep_ml
    top_on, keep_on = True, x == x
    for _ in range(MAX_MOVES_PER_BAR):
        if not exposed(st, pv):
            break
        pc, sc = (0.0, 0)
        if top_on and flows.state[RESERVE] > 0.0:
            pc, sc = _reached(st, fs, pv, cfg.call_ml, mo, mh, ml)
        pk, sk = (0.0, 0)
        if keep_on:
            pk, sk = _reached(st, fs, pv, x, mo, mh, ml)
        if sc == 0 and sk == 0:
            break
        if sk == 0 or (sc != 0 and (pc >= pk if sc == 1 else pc <= pk)):  # the first on the path
            if _top_up(st, fs, pv, cfg, flows, i, pc):
                any_ = True
            else:
                top_on = False
        elif _deleverage(st, fs, ns, pv, cfg, i, pk, orders):
            any_ = True
        else:
            keep_on = False
    return any_
