"""Limit orders: placing one (its borrowing starts then, as on Binance),
cancelling it (what it borrowed is repaid), filling it, and the path inside
a bar while one stands (docs/model-choices.md, "Limit orders").

Only bars with a standing order come here; the kernel's common path is
untouched.  The standing order lives in the run state ``fs``/``ns``
(``intrabar.py``: ``ns[LIM_SIDE]``, ``fs[LIM_Q]``, …), and the walk adds
into a totals row like ``intrabar._walk``.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .account import (HB, HQ, IB, IQ, PB, PQ, _assets, _clean, _debt, _position, _record_order,
                      _repay)
from .intrabar import (BEST, ENTRY, INT_BASE, INT_QUOTE, LIM_B, LIM_CAPPED, LIM_CHARGE, LIM_INTEREST, LIM_PLACED, LIM_PX,
                       LIM_Q, LIM_SIDE, MAX_LIQUIDATIONS_PER_BAR, N_CANCELLED, N_CAPPED, N_ORDERS, PAID,
                       PENDING, PENDING_LIMIT, RB, RECORD, RQ, STOPS_ON, T_FEES, _ambiguous, _first_level, _hit,
                       _count_fill, _levels, _liquidate_in_bar, _market, _track_in, best_after)
from .records import LIMIT, LIQUIDATION, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP
from .rules import borrow_limit_cap, interest_charge, max_borrow
from .venues import binance_usdm as usdm
from .venues.plug import level_price


@njit(cache=True, inline="always")
def in_reach(side, lim, h, lo):
    """Does a bar with high ``h`` and low ``lo`` reach a standing order's
    price ``lim`` (a buy, ``side`` > 0: the low at or below it; a sell: the
    high at or above it; NaN prices: no)?"""
    return (lo <= lim) if side > 0 else (h >= lim)


@njit(cache=True)
def _place(st, fs, ns, cfg, i, o, pv):
    """Place the pending order (``fs[PENDING]`` at the limit price
    ``fs[PENDING_LIMIT]``) at open ``o`` of bar ``i``, borrowing its
    shortfall at once (held until it fills or is cancelled) and charging
    that borrow's first hour into the run's totals; a profile's max borrow
    per asset (+inf: none) caps that borrow too, as for a market order.
    ``ns[LIM_SIDE]`` 0 when no order stands.  A perp order reserves and
    borrows nothing (``binance_usdm.limit_size``)."""
    side, q, b, capped, cb, cq = _size_at(st, fs, cfg, o, pv)
    ns[LIM_SIDE] = side
    fs[LIM_Q] = q
    fs[LIM_B] = b
    ns[LIM_CAPPED] = capped
    ns[N_CAPPED] += capped
    if side != 0:
        fs[LIM_PX] = fs[PENDING_LIMIT]
        ns[LIM_PLACED] = i
        fs[LIM_INTEREST] = cb * o + cq
        fs[LIM_CHARGE] = cb + cq
        fs[INT_BASE] += cb
        fs[INT_QUOTE] += cq
        fs[PAID] += cb * o + cq


def _size_at(st, fs, cfg, o, pv):
    """The pending order at its limit price, placed at the open ``o`` by the
    venue's rule: (side, quantity, borrowed, capped, base charge, quote
    charge); a perp order borrows nothing (``binance_usdm.limit_size``)."""


@overload(_size_at)
def _size_at_typed(st, fs, cfg, o, pv):
    # chosen by pv's type, as intrabar._fill_to (an if on the one-symbol kernel's pv compiles both venues)
    if isinstance(pv, types.NoneType):
        return lambda st, fs, cfg, o, pv: _borrow_for(st, fs[PENDING], o, fs[PENDING_LIMIT], cfg, fs[RB], fs[RQ])

    def perp(st, fs, cfg, o, pv):
        side, q, capped = usdm.limit_size(st, fs, fs[PENDING], o, fs[PENDING_LIMIT], cfg.fee, cfg.leverage,
                                          cfg.isolated, fs[ENTRY])
        return side, q, 0.0, capped, 0.0, 0.0
    return perp


def _fill_at(st, fs, side, q, trigger, cfg, pv):
    """The standing order's fill at ``trigger`` by the venue's rule:
    (quantity, fee value, cut here?); only a perp's is cut (its opening
    part again at the fill price, ``binance_usdm.fill``)."""


@overload(_fill_at)
def _fill_at_typed(st, fs, side, q, trigger, cfg, pv):
    if isinstance(pv, types.NoneType):
        return lambda st, fs, side, q, trigger, cfg, pv: (q, _fill(st, side, q, trigger, cfg.fee), False)
    return lambda st, fs, side, q, trigger, cfg, pv: usdm.fill(st, fs, side, q, trigger, cfg.fee, cfg.leverage,
                                                               cfg.isolated, fs[ENTRY])


@njit(cache=True)
def _borrow_for(st, x, o, lim, cfg, rate_b, rate_q):
    """A limit order at ``lim`` towards target ``x`` at open ``o``: its
    quantity, capped like a market order's, and the borrow it needs, done.

    Returns (side, quantity, borrowed, capped, base charge, quote charge);
    side 0 when no order stands.
    """
    return borrow_for(st, x, o, lim, (_assets(st, o), _debt(st, o), 0.0), (cfg.fee, cfg.initial_ml, cfg.round_interest),
                      (rate_b, rate_q), (cfg.max_borrow_base, cfg.max_borrow_quote))


@njit(cache=True)
def borrow_for(st, x, o, lim, account, costs, rates, limits):
    """``_borrow_for`` on the six numbers ``st`` of a symbol and its account,
    whose assets and debt at the open and float tolerance are ``account``
    (all its symbols: a cross account of several, tolerance 1e-9, docs
    "Limit orders in a cross account of several symbols"; one symbol: 0);
    ``costs`` (fee, initial ML, rounding), ``rates`` (base, quote) of the
    hour, ``limits`` the max borrow (base, quote)."""
    fee, m0, round_up = costs
    rate_b, rate_q = rates
    assets, debt, tol = account
    room = assets - m0 * debt > tol * (assets + debt)  # (room of float noise is none)
    eq = assets - debt
    if eq <= 0.0:
        return 0, 0.0, 0.0, False, 0.0, 0.0
    delta = x * eq / lim - _position(st)
    if delta > 0.0:  # the borrow cap: the borrowed amount held and owed keeps ML ≥ m0 at the open
        q = delta / (1.0 - fee)
        cap = (st[HQ] + (max_borrow(assets, debt, 1.0, rate_q, m0) if room else 0.0)) / lim
        cap = min(cap, borrow_limit_cap(st[HQ], st[PQ], limits[1], lim)[0])
    elif delta < 0.0:
        q = -delta
        cap = st[HB] + (max_borrow(assets, debt, o, rate_b, m0) if room else 0.0)
        cap = min(cap, borrow_limit_cap(st[HB], st[PB], limits[0], 1.0)[0])
    else:
        return 0, 0.0, 0.0, False, 0.0, 0.0
    capped = cap < q * (1.0 - 1e-9)
    q = min(q, cap) if cap > tol * q else 0.0  # (a cap of float noise is none)
    if q <= 0.0:
        return 0, 0.0, 0.0, capped, 0.0, 0.0
    cb = 0.0
    cq = 0.0
    if delta > 0.0:
        b = q * lim - st[HQ]
        b = b if b > tol * q * lim else 0.0  # (a shortfall of float noise is not borrowed)
        if b > 0.0:
            cq = interest_charge(b, rate_q, round_up)
            st[PQ] += b
            st[IQ] += cq
            st[HQ] += b
    else:
        b = q - st[HB]
        b = b if b > tol * q else 0.0
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
def _cancel_standing(st, fs, ns):
    """Cancel the standing order of the run state, counted."""
    _cancel(st, ns[LIM_SIDE], fs[LIM_B])
    ns[LIM_SIDE] = 0
    ns[N_CANCELLED] += 1


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
def _fill_standing(st, fs, ns, tot, cfg, i, trigger, pos, orders, pv):
    """Fill the standing order at ``trigger`` in bar ``i`` (``pos``: the
    position before), recorded, its fee added to ``tot``."""
    side = ns[LIM_SIDE]
    q = fs[LIM_Q]
    capped = ns[LIM_CAPPED] != 0
    q, fv, cut = _fill_at(st, fs, side, q, trigger, cfg, pv)  # (a perp's opening part is cut again there)
    ns[N_CAPPED] += cut and not capped
    capped = capped or cut
    tot[T_FEES] += fv
    after = _position(st)
    if ns[RECORD]:
        _record_order(orders, ns[N_ORDERS], i, LIMIT, (side, q, trigger, fv, capped), st, pos, fs[LIM_INTEREST],
                      fs[LIM_CHARGE])
    ns[N_ORDERS] += 1
    _count_fill(ns, pos, after, q)
    _track_in(fs, pos, after, trigger, trigger)
    ns[LIM_SIDE] = 0


@njit(cache=True)
def _first_mark(st, fs, ns, cfg, mlr, cur, p, cm, pm, at_open, pv):
    """(kind, trigger, θ) of the first level reached on a segment walked on
    two paths (docs/model-choices.md "Mark price"): the liquidation level on
    the mark's ``cm → pm``, the others (the standing order among them) on
    the traded ``cur → p``, each at the share θ of its move; kind −1 for
    none.  Ties: priority order."""
    p_liq, side = level_price(st, fs, pv, mlr)
    long_ = _position(st) > 0.0
    s, t, g = _levels(fs, fs[BEST], long_, cfg)
    lim_side = ns[LIM_SIDE]
    cands = (
        (LIQUIDATION, p_liq if side != 0 else np.nan, side == 1, cm, pm),
        (STOP_LOSS, s, long_, cur, p),
        (TRAILING_STOP, t, long_, cur, p),
        (TAKE_PROFIT, g, not long_, cur, p),
        (LIMIT, fs[LIM_PX] if lim_side != 0 else np.nan, lim_side > 0, cur, p),
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
def _next_event(st, fs, ns, cfg, mlr, cur, p, cm, pm, k, has_mark, pv):
    """(kind, trigger, θ) of what segment ``k`` of the walk (``cur → p``;
    the mark's ``cm → pm``) reaches first, the standing order last among
    equals and first only when strictly nearer; kind −1 for none."""
    theta = 0.0
    if has_mark:
        kind, trigger, theta = _first_mark(st, fs, ns, cfg, mlr, cur, p, cm, pm, k == 0, pv)
    else:
        kind, trigger = _first_level(st, fs, cfg, mlr, cur, p, k == 0, pv)
    if ns[LIM_SIDE] != 0 and not has_mark:
        x = _hit(fs[LIM_PX], ns[LIM_SIDE] > 0, cur, p, k == 0)
        if x == x and (kind < 0 or (k != 0 and (x > trigger if p < cur else x < trigger))):
            kind = LIMIT
            trigger = x if k == 0 else (min(x, cur) if p < cur else max(x, cur))
    return kind, trigger, theta


@njit(cache=True)
def _walk_limit(st, fs, ns, tot, cfg, i, px, mk, has_mark, orders, liqs, pv):
    """Step 5 while a limit order stands, or with stops and a mark series:
    the walk O → X1 → X2 → C of ``intrabar._walk`` on the bar ``px`` (open,
    high, low, close) with the order as one more level (last among equals);
    a liquidation or a stop cancels it first.  With ``has_mark`` the
    liquidation level is walked on the mark bar ``mk`` (open, high, low,
    close) alongside (``_first_mark``).  A limit order never stands with
    auto-repay off (refused by the engine); with stops on a mark the exits
    follow ``auto_repay`` and the max borrow.

    Adds its fees and charges to ``tot``, its fill, trade and cancel to the
    counts in ``ns``; returns (forced exit?, ambiguous?).
    """
    o, h, lo, c = px
    mo, mh, ml, mc = mk
    mlr = cfg.liquidation_ml
    pos0 = _position(st)
    long_ = pos0 > 0.0
    fs[BEST] = best_after(fs[BEST], o, long_)
    ambiguous = False
    if ns[STOPS_ON] and pos0 != 0.0:
        ambiguous = _ambiguous(st, fs, cfg, h, lo, mh, ml, pv)
    low_first = long_ if cfg.pessimistic else c >= o
    x1 = lo if low_first else h
    x2 = h if low_first else lo
    x1m = ml if low_first else mh  # the mark's extremes in the traded path's order
    x2m = mh if low_first else ml
    cm = mo
    forced = False
    n_l = 0
    cur = o
    for k in range(4):
        p = o if k == 0 else (x1 if k == 1 else (x2 if k == 2 else c))
        pm = mo if k == 0 else (x1m if k == 1 else (x2m if k == 2 else mc))
        while True:
            pos = _position(st)
            if pos == 0.0 and ns[LIM_SIDE] == 0:
                return forced, ambiguous
            kind, trigger, theta = _next_event(st, fs, ns, cfg, mlr, cur, p, cm, pm, k, has_mark, pv)
            if kind < 0:
                break
            if kind == LIMIT:
                _fill_standing(st, fs, ns, tot, cfg, i, trigger, pos, orders, pv)
                if has_mark and k > 0:
                    cm = cm + theta * (pm - cm)
                cur = trigger
                continue
            was = forced
            forced = True
            if ns[LIM_SIDE] != 0:
                _cancel_standing(st, fs, ns)
            if kind == LIQUIDATION:
                traded = min(max(trigger, lo), h) if has_mark else trigger  # a mark trigger fills where it traded
                if not _liquidate_in_bar(st, fs, ns, tot, cfg, mlr, i,
                                         (trigger, traded, mo, trigger), orders, liqs, pv):
                    forced = was  # nothing to liquidate (the order stays cancelled): the level is off for the bar
                    mlr = 0.0
                    continue
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
            _market(st, fs, ns, tot, cfg, i, 0.0, trigger, kind, orders, pv)
            return forced, ambiguous
        if n_l == MAX_LIQUIDATIONS_PER_BAR:
            break
        fs[BEST] = best_after(fs[BEST], p, _position(st) > 0.0)
        cur = p
        cm = pm
    return forced, ambiguous
