"""The path inside a bar: where stops, take-profits, trailing stops and
liquidation fire, in the order the path reaches their prices
(``docs/model-choices.md``, "Stops and the path inside a bar").
"""
import numpy as np
from numba import njit

from .account import HB, HQ, IB, IQ, PB, PQ, _forced_exit, _position, _record_order, _trade_to
from .records import LIQUIDATION, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP
from .rules import liquidation_price, liquidation_trigger, stop_levels

MAX_LIQUIDATIONS_PER_BAR = 8


@njit(cache=True, inline="always")
def _track(n0, n1, price, mkt, entry, best):
    """Average entry and best price since opening, after a fill at ``price``
    (market ``mkt``): docs/model-choices.md "Entry and best price"."""
    if n1 == 0.0:
        return np.nan, np.nan
    if n0 == 0.0 or (n0 > 0.0) != (n1 > 0.0) or entry != entry:  # no entry yet: interest on a zero position
        return price, mkt
    if abs(n1) > abs(n0):
        return (entry * abs(n0) + price * (abs(n1) - abs(n0))) / abs(n1), best
    return entry, best


@njit(cache=True, inline="always")
def _levels(entry, best, long_, sl, tp, tr, slp, tpp):
    """(stop-loss, trailing, take-profit) levels: from the fractions, a
    strategy's price for the bar (``slp``, ``tpp``; NaN = none) replacing
    the fraction's; none without an entry price."""
    s, t, g = stop_levels(entry, best, long_, sl, tp, tr)
    if entry == entry:
        if slp == slp:
            s = slp
        if tpp == tpp:
            g = tpp
    return s, t, g


@njit(cache=True)
def _liquidate_in_bar(st, i, trigger, traded, mo, slip, liq_fee_rate, m_restore, full, mlr, orders, n_orders, liqs,
                      n_liqs, auto_repay, entry, best):
    """One liquidation inside a bar at ``trigger`` (filled at ``traded``),
    recorded, with the entry and best price it leaves; a gap when the trigger
    is the open ``mo``.  Returns (n_orders, n_liqs, fee, bad debt, entry, best);
    the counts unchanged when nothing was liquidated (``_forced_exit``)."""
    pos = _position(st)
    f, b, row = _forced_exit(st, i, trigger, traded, slip, liq_fee_rate, m_restore, full, mlr, orders, n_orders, liqs,
                             n_liqs, auto_repay)
    if row < 0:
        return n_orders, n_liqs, f, b, entry, best
    liqs[row].gap = trigger == mo
    entry, best = _track(pos, _position(st), liqs[row].fill_price, trigger, entry, best)
    return n_orders + 1, n_liqs + 1, f, b, entry, best


@njit(cache=True, inline="always")
def _hit(lv, falls, cur, p, at_open):
    """The level ``lv`` if the move ``cur → p`` reaches it in its firing
    direction (at the open: ``cur`` if the open is already past it), else NaN."""
    if lv != lv:
        return np.nan
    if at_open:
        return cur if ((lv >= cur) if falls else (lv <= cur)) else np.nan
    if falls:
        return lv if p < cur and lv >= p else np.nan
    return lv if p > cur and lv <= p else np.nan


@njit(cache=True)
def _first_level(st, entry, best, sl, tp, tr, slp, tpp, mlr, cur, p, at_open):
    """(kind, trigger price) of the first level the move ``cur → p`` fires,
    kind −1 for none.  Kinds in priority order (ties and the open):
    liquidation, stop-loss, trailing, take-profit."""
    p_liq, side = liquidation_price(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], mlr)
    long_ = _position(st) > 0.0
    s, t, g = _levels(entry, best, long_, sl, tp, tr, slp, tpp)
    cands = (
        (LIQUIDATION, _hit(p_liq if side != 0 else np.nan, side == 1, cur, p, at_open)),
        (STOP_LOSS, _hit(s, long_, cur, p, at_open)),
        (TRAILING_STOP, _hit(t, long_, cur, p, at_open)),
        (TAKE_PROFIT, _hit(g, not long_, cur, p, at_open)),
    )
    kind = -1
    lv = np.nan
    for k, x in cands:
        if x != x:
            continue
        if kind == -1 or (not at_open and (x > lv if p < cur else x < lv)):
            kind = k
            lv = x
    if kind == -1:
        return -1, 0.0
    if at_open:
        return kind, cur
    return kind, (min(lv, cur) if p < cur else max(lv, cur))


@njit(cache=True)
def _ambiguous(st, entry, best, sl, tp, tr, slp, tpp, mlr, h, lo, mh, ml):
    """The bar's range reaches an adverse level and the take-profit (the
    liquidation level: the range ``mh``, ``ml`` of the mark bar)."""
    p_liq, side = liquidation_price(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], mlr)
    long_ = _position(st) > 0.0
    s, t, g = _levels(entry, best, long_, sl, tp, tr, slp, tpp)
    if g != g or not ((h >= g) if long_ else (lo <= g)):
        return False
    if side != 0 and ((ml <= p_liq) if side == 1 else (mh >= p_liq)):
        return True
    return (lo <= s or lo <= t) if long_ else (h >= s or h >= t)  # NaN compares False


@njit(cache=True, inline="always")
def _quiet(long_, entry, best, sl, tp, tr, slp, tpp, h, lo, liq_near):
    """True when no stop, trailing or take-profit level lies in the bar's
    range and the liquidation level is not near it: the walk would fire
    nothing (the trailing level is taken at its highest, from the best
    price the bar can reach).  Errs towards False; the walk is exact."""
    if liq_near:
        return False
    far = max(best, h) if long_ else min(best, lo)
    s, t, g = _levels(entry, far, long_, sl, tp, tr, slp, tpp)
    if long_:
        return not (lo <= s or lo <= t or h >= g)  # NaN (off) compares False
    return not (h >= s or h >= t or lo <= g)


@njit(cache=True)
def _stop_exit(st, i, kind, trigger, pos, fee, slip, rate_b, rate_q, m0, round_up, auto_repay, repay_on_flat, limit_b,
               limit_q, record, orders, n_orders, entry, best):
    """A stop, trailing stop or take-profit fired at ``trigger``: close the
    position there, recorded as ``kind``.  Returns (n_orders, fee value,
    interest paid (quote), base interest, quote interest, entry, best)."""
    side, q, price, fee_value, capped, cb, cq = _trade_to(st, 0.0, trigger, fee, slip, rate_b, rate_q, m0, round_up,
                                                          auto_repay, repay_on_flat, limit_b, limit_q)
    if side == 0:
        return n_orders, 0.0, 0.0, 0.0, 0.0, entry, best
    if record:
        _record_order(orders, n_orders, i, side, kind, capped, q, price, fee_value, st, cb * trigger + cq, pos, cb + cq)
    entry, best = _track(pos, _position(st), price, trigger, entry, best)
    return n_orders + 1, fee_value, cb * trigger + cq, cb, cq, entry, best


@njit(cache=True)
def _walk(st, i, o, h, lo, c, entry, best, sl, tp, tr, slp, tpp, pessimistic, fee, slip, rate_b, rate_q, m0, round_up,
          liq_fee_rate, m_restore, full, mlr, record, orders, n_orders, liqs, n_liqs, auto_repay, repay_on_flat,
          limit_b, limit_q):
    """Step 5 with stops on: walk O → X1 → X2 → C firing liquidations and
    stops where the path reaches them (docs/model-choices.md); ``slp``,
    ``tpp``: a strategy's stop-loss / take-profit price for the bar (NaN =
    the fraction's level).

    Returns (n_orders, n_liqs, trading fees, interest paid (quote), base
    interest, quote interest, liquidation fees, bad debt, entry, best,
    forced exit?, liquidations, ambiguous?).
    """
    long_ = _position(st) > 0.0
    if best == best:
        best = max(best, o) if long_ else min(best, o)
    ambiguous = _ambiguous(st, entry, best, sl, tp, tr, slp, tpp, mlr, h, lo, h, lo)
    low_first = long_ if pessimistic else c >= o  # pessimistic: the adverse extreme first
    x1 = lo if low_first else h
    x2 = h if low_first else lo
    fees = 0.0
    paid = 0.0
    ib_add = 0.0
    iq_add = 0.0
    liq_fees = 0.0
    bad = 0.0
    forced = False
    n_l = 0
    cur = o
    for k in range(4):
        p = o if k == 0 else (x1 if k == 1 else (x2 if k == 2 else c))
        while True:
            pos = _position(st)
            if pos == 0.0:
                return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l,
                        ambiguous)
            kind, trigger = _first_level(st, entry, best, sl, tp, tr, slp, tpp, mlr, cur, p, k == 0)
            if kind < 0:
                break
            if kind == LIQUIDATION:
                n0 = n_liqs
                n_orders, n_liqs, f, b, entry, best = _liquidate_in_bar(
                    st, i, trigger, trigger, o, slip, liq_fee_rate, m_restore, full, mlr, orders, n_orders, liqs,
                    n_liqs, auto_repay, entry, best)
                if n_liqs == n0:  # nothing to liquidate: the level is off for the rest of the bar
                    mlr = 0.0
                    continue
                forced = True
                liq_fees += f
                bad += b
                n_l += 1
                if n_l == MAX_LIQUIDATIONS_PER_BAR:
                    break
                cur = trigger
                continue
            forced = True
            n_orders, fv, pv, cb, cq, entry, best = _stop_exit(
                st, i, kind, trigger, pos, fee, slip, rate_b, rate_q, m0, round_up, auto_repay, repay_on_flat, limit_b,
                limit_q, record, orders, n_orders, entry, best)
            fees += fv
            paid += pv
            ib_add += cb
            iq_add += cq
            return n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l, ambiguous
        if n_l == MAX_LIQUIDATIONS_PER_BAR:
            break
        if best == best:
            best = max(best, p) if _position(st) > 0.0 else min(best, p)
        cur = p
    return n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, n_l, ambiguous


@njit(cache=True)
def _liquidations(st, i, mo, mh, ml, h, lo, entry, best, slip, liq_fee_rate, m_restore, full, mlr, orders, n_orders,
                  liqs, n_liqs, auto_repay):
    """Step 5 without the walk on one (sub-)bar: liquidate while the adverse
    extreme of the bar liquidation is checked on (``mo``, ``mh``, ``ml``: the
    mark bar, or the traded one) reaches the liquidation price (at most
    MAX_LIQUIDATIONS_PER_BAR times); each fills where the market traded, the
    trigger clamped into the traded range ``lo``..``h``.  Returns (n_orders,
    n_liqs, liquidation fees, bad debt, liquidations, entry, best)."""
    fees = 0.0
    bad = 0.0
    n_l = 0
    for _ in range(MAX_LIQUIDATIONS_PER_BAR):
        trigger = liquidation_trigger(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], mlr, mo, mh, ml)
        if trigger != trigger:
            break
        traded = min(max(trigger, lo), h)  # a mark trigger fills where the market traded
        n0 = n_liqs
        n_orders, n_liqs, f, b, entry, best = _liquidate_in_bar(
            st, i, trigger, traded, mo, slip, liq_fee_rate, m_restore, full, mlr, orders, n_orders, liqs, n_liqs,
            auto_repay, entry, best)
        if n_liqs == n0:  # nothing to liquidate
            break
        fees += f
        bad += b
        n_l += 1
        if st[PB] + st[IB] + st[PQ] + st[IQ] == 0.0:
            break
    return n_orders, n_liqs, fees, bad, n_l, entry, best


@njit(cache=True)
def _replay(st, i, d_open, d_high, d_low, d_close, j0, j1, entry, best, stops_on, sl, tp, tr, slp, tpp, pessimistic,
            fee, slip, rate_b, rate_q, m0, round_up, liq_fee_rate, m_restore, full, mlr, record, orders, n_orders,
            liqs, n_liqs, auto_repay, repay_on_flat, limit_b, limit_q):
    """Step 5 of bar ``i`` on its finer bars ``j0 .. j1 - 1``, each as if it
    were the bar (docs/model-choices.md "Finer bars settle the path"): the
    walk while a position is open with stops on, else the liquidation check.

    Returns the totals of ``_walk`` (n_orders, n_liqs, trading fees, interest
    paid, base and quote interest, liquidation fees, bad debt, entry, best,
    forced exit?, ambiguous?) and ``short``: True when a record buffer ran
    short (the run must be redone with larger ones).
    """
    fees = 0.0
    paid = 0.0
    ib_add = 0.0
    iq_add = 0.0
    liq_fees = 0.0
    bad = 0.0
    forced = False
    ambiguous = False
    for j in range(j0, j1):
        if record and (n_orders + MAX_LIQUIDATIONS_PER_BAR + 1 > orders.shape[0]
                       or n_liqs + MAX_LIQUIDATIONS_PER_BAR + 1 > liqs.shape[0]):
            return (n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, ambiguous,
                    True)
        pos = _position(st)
        if stops_on and pos != 0.0:
            n0 = n_orders
            (n_orders, n_liqs, fv, pv, cb, cq, lf, b, entry, best, f, _, amb) = _walk(
                st, i, d_open[j], d_high[j], d_low[j], d_close[j], entry, best, sl, tp, tr, slp, tpp, pessimistic, fee,
                slip, rate_b, rate_q, m0, round_up, liq_fee_rate, m_restore, full, mlr, record, orders, n_orders, liqs,
                n_liqs, auto_repay, repay_on_flat, limit_b, limit_q)
            fees += fv
            paid += pv
            ib_add += cb
            iq_add += cq
            liq_fees += lf
            bad += b
            forced = forced or f
            ambiguous = ambiguous or amb
            if record and amb and n_orders > n0:
                orders[n_orders - 1].ambiguous = True  # the forced fill the path inside the sub-bar decided
        elif st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0:
            # (entry and best are kept even with stops off: a buy-back can leave a position)
            n_orders, n_liqs, lf, b, n_l, entry, best = _liquidations(
                st, i, d_open[j], d_high[j], d_low[j], d_high[j], d_low[j], entry, best, slip, liq_fee_rate,
                m_restore, full, mlr, orders, n_orders, liqs, n_liqs, auto_repay)
            liq_fees += lf
            bad += b
            forced = forced or n_l > 0
    return n_orders, n_liqs, fees, paid, ib_add, iq_add, liq_fees, bad, entry, best, forced, ambiguous, False
