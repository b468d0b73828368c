"""Limit orders: placing one (its borrowing starts then, as on Binance),
cancelling it (what it borrowed is repaid), filling it, and the path inside
a bar while one stands (docs/model-choices.md, "Limit orders").

Only bars with a standing order come here; the kernel's common path is
untouched.
"""
import numpy as np
from numba import njit

from .account import (HB, HQ, IB, IQ, PB, PQ, _assets, _clean, _debt, _position, _record_order,
                      _repay)
from .intrabar import (MAX_LIQUIDATIONS_PER_BAR, _ambiguous, _first_level, _hit, _levels, _liquidate_in_bar,
                       _stop_exit, _track)
from .records import LIMIT, LIQUIDATION, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP
from .rules import borrow_limit_cap, interest_charge, liquidation_price, max_borrow


@njit(cache=True)
def _place(st, x, o, lim, fee, rate_b, rate_q, m0, round_up, limit_b, limit_q):
    """Place a limit order at ``lim`` towards target ``x`` at open ``o``,
    borrowing its shortfall at once (held until it fills or is cancelled);
    ``limit_b``/``limit_q``: a profile's max borrow per asset (+inf: none)
    caps that borrow too, as for a market order.

    Returns (side, quantity, borrowed, capped, base charge, quote charge);
    side 0 when no order stands.
    """
    eq = _assets(st, o) - _debt(st, o)
    if eq <= 0.0:
        return 0, 0.0, 0.0, False, 0.0, 0.0
    delta = x * eq / lim - _position(st)
    assets = _assets(st, o)
    debt = _debt(st, o)
    if delta > 0.0:  # the borrow cap: the borrowed amount held and owed keeps ML ≥ m0 at the open
        q = delta / (1.0 - fee)
        cap = (st[HQ] + max_borrow(assets, debt, 1.0, rate_q, m0)) / lim
        cap = min(cap, borrow_limit_cap(st[HQ], st[PQ], limit_q, lim)[0])
    elif delta < 0.0:
        q = -delta
        cap = st[HB] + max_borrow(assets, debt, o, rate_b, m0)
        cap = min(cap, borrow_limit_cap(st[HB], st[PB], limit_b, 1.0)[0])
    else:
        return 0, 0.0, 0.0, False, 0.0, 0.0
    capped = cap < q * (1.0 - 1e-9)
    q = min(q, cap)
    if q <= 0.0:
        return 0, 0.0, 0.0, capped, 0.0, 0.0
    cb = 0.0
    cq = 0.0
    if delta > 0.0:
        b = q * lim - st[HQ]
        if b > 0.0:
            cq = interest_charge(b, rate_q, round_up)
            st[PQ] += b
            st[IQ] += cq
            st[HQ] += b
    else:
        b = q - st[HB]
        if b > 0.0:
            cb = interest_charge(b, rate_b, round_up)
            st[PB] += b
            st[IB] += cb
            st[HB] += b
    _clean(st)
    return (1 if delta > 0.0 else -1), q, max(b, 0.0), capped, cb, cq


@njit(cache=True)
def _cancel(st, side, borrowed):
    """Cancel a standing order: the principal it borrowed (as far as still
    held and owed) is repaid; the interest charged on it stays owed."""
    if borrowed > 0.0:
        if side > 0:
            r = min(borrowed, st[HQ], st[PQ])
            st[HQ] -= r
            st[PQ] -= r
        else:
            r = min(borrowed, st[HB], st[PB])
            st[HB] -= r
            st[PB] -= r
        _clean(st)


@njit(cache=True)
def _fill(st, side, q, price, fee):
    """Fill the order at ``price`` (no slippage; it never borrows: that was
    done at placement); return the fee's quote value."""
    if side > 0:
        left = max(st[HQ] - q * price, 0.0)
        st[HQ] = 0.0 if left <= 1e-9 * st[HQ] else left  # float noise of spending it all
        st[HB] += _repay(q * (1.0 - fee), st, IB, PB)
        _clean(st)
        return q * fee * price
    left = max(st[HB] - q, 0.0)
    st[HB] = 0.0 if left <= 1e-9 * st[HB] else left
    st[HQ] += _repay(q * price * (1.0 - fee), st, IQ, PQ)
    _clean(st)
    return q * price * fee


@njit(cache=True)
def _first_mark(st, entry, best, sl, tp, tr, slp, tpp, mlr, cur, p, cm, pm, at_open, lim_side, lim_px):
    """(kind, trigger, θ) of the first level reached on a segment walked on
    two paths (docs/model-choices.md "Mark price"): the liquidation level on
    the mark's ``cm → pm``, the others on the traded ``cur → p``, each at
    the share θ of its move; kind −1 for none.  Ties: priority order."""
    p_liq, side = liquidation_price(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], mlr)
    long_ = _position(st) > 0.0
    s, t, g = _levels(entry, best, long_, sl, tp, tr, slp, tpp)
    cands = (
        (LIQUIDATION, p_liq if side != 0 else np.nan, side == 1, cm, pm),
        (STOP_LOSS, s, long_, cur, p),
        (TRAILING_STOP, t, long_, cur, p),
        (TAKE_PROFIT, g, not long_, cur, p),
        (LIMIT, lim_px if lim_side != 0 else np.nan, lim_side > 0, cur, p),
    )
    kind = -1
    theta = np.inf
    trigger = 0.0
    for k, lv, falls, a, b in cands:
        if lv != lv:
            continue
        if at_open:
            if not ((lv >= a) if falls else (lv <= a)):
                continue
            th = 0.0
            x = a
        elif falls and b < a and lv >= b:
            th = max(a - lv, 0.0) / (a - b)
            x = min(lv, a)
        elif not falls and b > a and lv <= b:
            th = max(lv - a, 0.0) / (b - a)
            x = max(lv, a)
        else:
            continue
        if kind == -1 or th < theta:
            kind = k
            theta = th
            trigger = x
    return kind, trigger, theta


@njit(cache=True)
def _walk_limit(st, i, o, h, lo, c, entry, best, stops_on, sl, tp, tr, slp, tpp, pessimistic, fee, slip, rate_b,
                rate_q, m0, round_up, liq_fee_rate, m_restore, full, mlr, record, orders, n_orders, liqs, n_liqs,
                lim_side, lim_q, lim_px, lim_b, lim_capped, lim_interest, lim_charge, has_mark, mo, mh, ml, mc,
                auto_repay, repay_on_flat, limit_b, limit_q):
    """Step 5 while a limit order stands, or with stops and a mark series:
    the walk O → X1 → X2 → C of ``intrabar._walk`` with the order as one
    more level (last among equals); a liquidation or a stop cancels it
    first.  With ``has_mark`` the liquidation level is walked on the mark
    bar ``mo, mh, ml, mc`` alongside (``_first_mark``).  A limit order
    never stands with auto-repay off (refused by the engine); with stops on
    a mark the exits follow ``auto_repay`` and the max borrow.

    Returns (n_orders, n_liqs, trading fees, interest paid (quote), base
    interest, quote interest, liquidation fees, bad debt, entry, best,
    forced exit?, liquidations, ambiguous?, side of the order still standing
    (0: filled or cancelled), cancelled?, trades opened).
    """
    pos0 = _position(st)
    long_ = pos0 > 0.0
    if best == best:
        best = max(best, o) if long_ else min(best, o)
    ambiguous = False
    if stops_on and pos0 != 0.0:
        ambiguous = _ambiguous(st, entry, best, sl, tp, tr, slp, tpp, mlr, h, lo, mh, ml)
    low_first = long_ if pessimistic else c >= o
    x1 = lo if low_first else h
    x2 = h if low_first else lo
    x1m = ml if low_first else mh  # the mark's extremes in the traded path's order
    x2m = mh if low_first else ml
    cm = mo
    fees = 0.0
    paid = 0.0
    ib_add = 0.0
    iq_add = 0.0
    liq_fees = 0.0
    bad = 0.0
    forced = False
    cancelled = False
    opened = 0
    n_l = 0
    cur = o
    for k in range(4):
        p = o if k == 0 else (x1 if k == 1 else (x2 if k == 2 else c))
        pm = mo if k == 0 else (x1m if k == 1 else (x2m if k == 2 else mc))
        while True:
            pos = _position(st)
            if pos == 0.0 and lim_side == 0:
                return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l,
                        ambiguous, lim_side, cancelled, opened)
            theta = 0.0
            if has_mark:
                kind, trigger, theta = _first_mark(st, entry, best, sl, tp, tr, slp, tpp, mlr, cur, p, cm, pm,
                                                   k == 0, lim_side, lim_px)
            else:
                kind, trigger = _first_level(st, entry, best, sl, tp, tr, slp, tpp, mlr, cur, p, k == 0)
            if lim_side != 0 and not has_mark:
                x = _hit(lim_px, lim_side > 0, cur, p, k == 0)
                # the order goes first only when strictly nearer on the segment
                if x == x and (kind < 0 or (k != 0 and (x > trigger if p < cur else x < trigger))):
                    kind = LIMIT
                    trigger = x if k == 0 else (min(x, cur) if p < cur else max(x, cur))
            if kind < 0:
                break
            if kind == LIMIT:
                fv = _fill(st, lim_side, lim_q, trigger, fee)
                fees += fv
                after = _position(st)
                if record:
                    _record_order(orders, n_orders, i, lim_side, LIMIT, lim_capped, lim_q, trigger, fv, st,
                                  lim_interest, pos, lim_charge)
                n_orders += 1
                opened += 1 if after != 0.0 and (pos == 0.0 or (pos > 0.0) != (after > 0.0)) else 0
                entry, best = _track(pos, after, trigger, trigger, entry, best)
                lim_side = 0
                if has_mark and k > 0:
                    cm = cm + theta * (pm - cm)
                cur = trigger
                continue
            was = forced
            forced = True
            if lim_side != 0:
                _cancel(st, lim_side, lim_b)
                lim_side = 0
                cancelled = True
                pos = _position(st)
            if kind == LIQUIDATION:
                traded = min(max(trigger, lo), h) if has_mark else trigger  # a mark trigger fills where it traded
                n0 = n_liqs
                n_orders, n_liqs, f, b, entry, best = _liquidate_in_bar(
                    st, i, trigger, traded, mo, slip, liq_fee_rate, m_restore, full, mlr, orders, n_orders, liqs,
                    n_liqs, auto_repay, entry, best)
                if n_liqs == n0:  # nothing to liquidate (the order stays cancelled): the level is off for the bar
                    forced = was
                    mlr = 0.0
                    continue
                liq_fees += f
                bad += b
                n_l += 1
                if n_l == MAX_LIQUIDATIONS_PER_BAR:
                    break
                if has_mark:
                    if k > 0:
                        cur = cur + theta * (p - cur)
                    cm = trigger
                else:
                    cur = trigger
                continue
            n_orders, fv, pv, cb, cq, entry, best = _stop_exit(
                st, i, kind, trigger, pos, fee, slip, rate_b, rate_q, m0, round_up, auto_repay, repay_on_flat, limit_b,
                limit_q, record, orders, n_orders, entry, best)
            fees += fv
            paid += pv
            ib_add += cb
            iq_add += cq
            return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l,
                    ambiguous, lim_side, cancelled, opened)
        if n_l == MAX_LIQUIDATIONS_PER_BAR:
            break
        if best == best:
            best = max(best, p) if _position(st) > 0.0 else min(best, p)
        cur = p
        cm = pm
    return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l, ambiguous,
            lim_side, cancelled, opened)
