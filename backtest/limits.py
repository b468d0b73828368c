"""Limit orders: placing one (its borrowing starts then, as on Binance),
cancelling it (what it borrowed is repaid), filling it, and the path inside
a bar while one stands (docs/model-choices.md, "Limit orders").

Only bars with a standing order come here; the kernel's common path is
untouched.
"""
from numba import njit

from .account import (HB, HQ, IB, IQ, PB, PQ, _assets, _clean, _debt, _forced_exit, _position, _record_order,
                      _repay, _trade_to)
from .intrabar import MAX_LIQUIDATIONS_PER_BAR, _ambiguous, _first_level, _hit, _track
from .records import LIMIT, LIQUIDATION
from .rules import interest_charge, max_borrow


@njit(cache=True)
def _place(st, x, o, lim, fee, rate_b, rate_q, m0, round_up):
    """Place a limit order at ``lim`` towards target ``x`` at open ``o``,
    borrowing its shortfall at once (held until it fills or is cancelled).

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
    elif delta < 0.0:
        q = -delta
        cap = st[HB] + max_borrow(assets, debt, o, rate_b, m0)
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
        st[HQ] = max(st[HQ] - q * price, 0.0)
        st[HB] += _repay(q * (1.0 - fee), st, IB, PB)
        _clean(st)
        return q * fee * price
    st[HB] = max(st[HB] - q, 0.0)
    st[HQ] += _repay(q * price * (1.0 - fee), st, IQ, PQ)
    _clean(st)
    return q * price * fee


@njit(cache=True)
def _walk_limit(st, i, o, h, lo, c, entry, best, stops_on, sl, tp, tr, slp, tpp, pessimistic, fee, slip, rate_b,
                rate_q, m0, round_up, liq_fee_rate, m_restore, full, mlr, record, orders, n_orders, liqs, n_liqs,
                lim_side, lim_q, lim_px, lim_b, lim_capped, lim_interest, lim_charge):
    """Step 5 while a limit order stands: the walk O → X1 → X2 → C of
    ``intrabar._walk`` with the order as one more level (last among equals);
    a liquidation or a stop cancels it first.

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
        ambiguous = _ambiguous(st, entry, best, sl, tp, tr, slp, tpp, mlr, h, lo)
    low_first = long_ if pessimistic else c >= o
    x1 = lo if low_first else h
    x2 = h if low_first else lo
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
        while True:
            pos = _position(st)
            if pos == 0.0 and lim_side == 0:
                return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l,
                        ambiguous, lim_side, cancelled, opened)
            kind, trigger = _first_level(st, entry, best, sl, tp, tr, slp, tpp, mlr, cur, p, k == 0)
            if lim_side != 0:
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
                cur = trigger
                continue
            forced = True
            if lim_side != 0:
                _cancel(st, lim_side, lim_b)
                lim_side = 0
                cancelled = True
                pos = _position(st)
            if kind == LIQUIDATION:
                f, b, row = _forced_exit(st, i, trigger, trigger, slip, liq_fee_rate, m_restore, full, mlr, orders,
                                         n_orders, liqs, n_liqs)
                liqs[row].gap = trigger == o
                n_orders += 1
                n_liqs += 1
                liq_fees += f
                bad += b
                entry, best = _track(pos, _position(st), liqs[row].fill_price, trigger, entry, best)
                n_l += 1
                if n_l == MAX_LIQUIDATIONS_PER_BAR:
                    break
                cur = trigger
                continue
            side, q, price, fee_value, capped, cb, cq = _trade_to(st, 0.0, trigger, fee, slip, rate_b, rate_q,
                                                                  m0, round_up)
            if side != 0:
                ib_add += cb
                iq_add += cq
                paid += cb * trigger + cq
                fees += fee_value
                if record:
                    _record_order(orders, n_orders, i, side, kind, capped, q, price, fee_value, st,
                                  cb * trigger + cq, pos, cb + cq)
                n_orders += 1
                entry, best = _track(pos, _position(st), price, trigger, entry, best)
            return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l,
                    ambiguous, lim_side, cancelled, opened)
        if n_l == MAX_LIQUIDATIONS_PER_BAR:
            break
        if best == best:
            best = max(best, p) if _position(st) > 0.0 else min(best, p)
        cur = p
    return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l, ambiguous,
            lim_side, cancelled, opened)
