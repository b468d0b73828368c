"""The path inside a bar: where stops, take-profits, trailing stops and
liquidation fire, in the order the path reaches their prices
(``docs/model-choices.md``, "Stops and the path inside a bar").

The walks read and write the run's state in place, in two small arrays
indexed by the names below (the pattern of ``account.py``'s ``st[HB]``):
``fs`` (float64) and ``ns`` (int64), shared with ``kernel.py`` and
``limits.py``.  What a walk spends (fees, interest, liquidation fees, bad
debt) it adds into ``tot``, a totals row the caller zeroed for it: the
caller adds the row to the run's totals afterwards, so every sum is taken
in the order it always was and the results stay the same to the bit.  The
settings travel as the ``inputs.Settings`` record ``cfg``.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .account import HB, HQ, IB, IQ, PB, PQ, _forced_exit, _position, _record_order, _trade_to, borrow_limits
from .records import LIQUIDATION, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP
from .rules import liquidation_trigger, stop_levels
from .venues import binance_usdm as usdm
from .venues.plug import exposed, level_price

MAX_LIQUIDATIONS_PER_BAR = 8

# ``fs``, the run's float state: the position's average entry and best price
# since it opened; the hour's rates; a strategy's stop-loss / take-profit
# price for this bar; the standing limit order (quantity, price, what it
# borrowed, its borrow charge as quote value and in the borrowed asset); the
# order decided at the last close (target, limit price); the run's totals
(ENTRY, BEST, RB, RQ, SLP, TPP, LIM_Q, LIM_PX, LIM_B, LIM_INTEREST, LIM_CHARGE, PENDING, PENDING_LIMIT,
 FEES_PAID, PAID, INT_BASE, INT_QUOTE, LIQ_FEES, BAD_DEBT, AFTER_B, AFTER_Q) = range(21)
N_FS_LOOP = 21
N_FS = usdm.N_SLOTS  # the venue's slots follow (venues/binance_usdm.py)
assert usdm.FREE == N_FS_LOOP
# ``ns``, the run's counts and flags: records written and the counters of
# ``kernel.STATS``; the standing limit order (side +1 buy / −1 sell / 0 none,
# the bar it was placed, capped?); the pending order's kind; per-run flags
# (records kept, stops on, a mark series, finer bars); a round trip open (``_count_fill``); the first
# rate column whose rates may differ from ``fs[RB]``, ``fs[RQ]`` (``Rates.change``: no lookup before it)
(N_ORDERS, N_LIQS, N_CALLS, N_CAPPED, N_TRADES, N_AMBIGUOUS, N_DETAIL_MISSING, N_CANCELLED, LIM_SIDE,
 LIM_PLACED, LIM_CAPPED, PENDING_KIND, RECORD, STOPS_ON, HAS_MARK, DETAIL_ON, N_WRITE_OFFS, TRADE_OPEN,
 R_END) = range(19)
N_NS = 19
# a totals row ``tot``: trading fees, interest paid (quote value), base and
# quote interest charged, liquidation fees, bad debt
T_FEES, T_PAID, T_IB, T_IQ, T_LIQ, T_BAD = range(6)
N_TOT = 6


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
def best_after(best, p, long_):
    """The best price since entry once the path has reached ``p``: the
    highest for a long, the lowest for a short; NaN (no position, or none
    kept) stays NaN."""
    if best != best:
        return best
    return max(best, p) if long_ else min(best, p)


@njit(cache=True, inline="always")
def trade_step(was_open, before, after, q):
    """The round trips of ``trades.csv`` at a fill of ``q`` that took the
    position from ``before`` to ``after`` (docs/model-choices.md "Results"),
    ``was_open`` whether one was open: (opens one, one open after).  One
    ends at 0 or through zero; one opens through zero, or, none being open,
    where the fill takes the position away from 0 (base interest owed while
    flat moves it with no trade; a fill that only buys that back opens
    none).  The kernels count so: a sweep has no trades table."""
    ends = before != 0.0 and (after == 0.0 or (after > 0.0) != (before > 0.0))
    opens = q > 0.0 and after != 0.0 and (ends or (not was_open and abs(after) > abs(before)))
    return opens, opens or (was_open and not ends)


@njit(cache=True, inline="always")
def _count_fill(ns, before, after, q):
    """``trade_step`` on the run's count and flag in ``ns``."""
    opens, now = trade_step(ns[TRADE_OPEN] != 0, before, after, q)
    ns[N_TRADES] += opens
    ns[TRADE_OPEN] = now


@njit(cache=True, inline="always")
def _track_in(fs, n0, n1, price, mkt):
    """``_track`` on the entry and best price kept in ``fs``."""
    entry, best = _track(n0, n1, price, mkt, fs[ENTRY], fs[BEST])
    fs[ENTRY] = entry
    fs[BEST] = best


@njit(cache=True, inline="always")
def _levels(fs, best, long_, cfg):
    """(stop-loss, trailing, take-profit) levels from the entry in ``fs``
    and ``best``: from the fractions, a strategy's price for the bar
    (``fs[SLP]``, ``fs[TPP]``; NaN = none) replacing the fraction's; none
    without an entry price."""
    entry = fs[ENTRY]
    s, t, g = stop_levels(entry, best, long_, cfg.stop_loss, cfg.take_profit, cfg.trailing_stop)
    if entry == entry:
        if fs[SLP] == fs[SLP]:
            s = fs[SLP]
        if fs[TPP] == fs[TPP]:
            g = fs[TPP]
    return s, t, g


@njit(cache=True)
def _liquidate_in_bar(st, fs, ns, tot, cfg, mlr, i, at, orders, liqs, pv):
    """One liquidation inside a bar at ``at`` = (trigger, traded, mo,
    market): triggered at ``trigger``, filled at ``traded``, recorded and
    added to ``tot``, with the entry and best price it leaves (a position it
    leaves starts its best at ``market``); a gap when the trigger is the open
    ``mo``.  False when nothing was liquidated (``_forced_exit``)."""
    trigger, traded, mo, market = at
    pos = _position(st)
    f, b, row = _exit_at(st, fs, ns, cfg, i, (trigger, traded), mlr, (orders, liqs), pv)
    if row < 0:
        return False
    liqs[row].gap = trigger == mo
    _count_fill(ns, pos, _position(st), liqs[row].quantity)
    _track_in(fs, pos, _position(st), liqs[row].fill_price, market)
    ns[N_ORDERS] += 1
    ns[N_LIQS] += 1
    ns[N_WRITE_OFFS] += liqs[row].quantity == 0.0  # nothing to sell, debt written off (counted apart)
    tot[T_LIQ] += f
    tot[T_BAD] += b
    return True


def _exit_at(st, fs, ns, cfg, i, at, mlr, recs, pv):
    """A liquidation at ``at`` = (trigger, traded) by the venue's rule, into
    ``recs`` = (orders, liquidations): (fee, bad debt, row), row −1 when
    nothing was liquidated."""


@overload(_exit_at)
def _exit_at_typed(st, fs, ns, cfg, i, at, mlr, recs, pv):
    # chosen by pv's type, as _fill_to (a perp run's pv is an optional integer: an if on it compiled both)
    if isinstance(pv, types.NoneType):
        def spot(st, fs, ns, cfg, i, at, mlr, recs, pv):
            return _forced_exit(st, i, at[0], at[1], cfg, mlr, recs[0], ns[N_ORDERS], recs[1], ns[N_LIQS])
        return spot

    def perp(st, fs, ns, cfg, i, at, mlr, recs, pv):
        return _perp_exit(st, fs, ns, cfg, i, at[0], recs[0], recs[1])
    return perp


def _trigger_at(st, fs, mlr, mk, pv):
    """Where the bar ``mk`` = (open, high, low) first reaches the venue's
    liquidation level ``mlr`` (NaN: it does not)."""


@overload(_trigger_at)
def _trigger_at_typed(st, fs, mlr, mk, pv):
    if isinstance(pv, types.NoneType):
        def spot(st, fs, mlr, mk, pv):
            return liquidation_trigger(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], mlr, mk[0], mk[1], mk[2])
        return spot

    def perp(st, fs, mlr, mk, pv):
        return usdm.liquidation_trigger(st, fs, mlr, mk[0], mk[1], mk[2])
    return perp


@njit(cache=True)
def _perp_exit(st, fs, ns, cfg, i, trigger, orders, liqs):
    """A perp position liquidated at ``trigger`` (``binance_usdm.liquidate``),
    recorded as ``_forced_exit`` records a spot one."""
    k = min(ns[N_LIQS], liqs.shape[0] - 1)
    rec = liqs[k]
    rec.bar = i
    before = _position(st)
    side, q, fee, bad = usdm.liquidate(st, fs, trigger, cfg.liquidation_fee, cfg.isolated, rec)
    if side == 0:
        return 0.0, 0.0, -1
    _record_order(orders, min(ns[N_ORDERS], orders.shape[0] - 1), i, LIQUIDATION, (side, q, trigger, fee, False), st,
                  before)
    return fee, bad, k


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
def _first_level(st, fs, cfg, mlr, cur, p, at_open, pv):
    """(kind, trigger price) of the first level the move ``cur → p`` fires,
    kind −1 for none.  Kinds in priority order (ties and the open):
    liquidation, stop-loss, trailing, take-profit."""
    p_liq, side = level_price(st, fs, pv, mlr)
    long_ = _position(st) > 0.0
    s, t, g = _levels(fs, fs[BEST], long_, cfg)
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
def _ambiguous(st, fs, cfg, h, lo, mh, ml, pv):
    """The bar's range reaches an adverse level and the take-profit (the
    liquidation level: the range ``mh``, ``ml`` of the mark bar)."""
    p_liq, side = level_price(st, fs, pv, cfg.liquidation_ml)
    long_ = _position(st) > 0.0
    s, t, g = _levels(fs, fs[BEST], long_, cfg)
    if g != g or not ((h >= g) if long_ else (lo <= g)):
        return False
    if side != 0 and ((ml <= p_liq) if side == 1 else (mh >= p_liq)):
        return True
    return (lo <= s or lo <= t) if long_ else (h >= s or h >= t)  # NaN compares False


@njit(cache=True, inline="always")
def _quiet(fs, cfg, long_, h, lo, liq_near):
    """True when no stop, trailing or take-profit level lies in the bar's
    range and the liquidation level is not near it: the walk would fire
    nothing (the trailing level is taken at its highest, from the best
    price the bar can reach).  Errs towards False; the walk is exact."""
    if liq_near:
        return False
    best = fs[BEST]
    far = max(best, h) if long_ else min(best, lo)
    s, t, g = _levels(fs, far, long_, cfg)
    if long_:
        return not (lo <= s or lo <= t or h >= g)  # NaN (off) compares False
    return not (h >= s or h >= t or lo <= g)


@njit(cache=True, inline="always")
def _owe(st, fs, cb, cq, o):
    """Interest charged, base ``cb`` and quote ``cq``, owed and counted at the open ``o``."""
    st[IB] += cb
    st[IQ] += cq
    fs[INT_BASE] += cb
    fs[INT_QUOTE] += cq
    fs[PAID] += cb * o + cq


def _fill_to(st, fs, x, price, cfg, pv):
    """A market fill toward ``x`` at ``price`` by the venue's rule: (side,
    quantity, price, fee value, capped, base interest, quote interest)."""


@overload(_fill_to)
def _fill_to_typed(st, fs, x, price, cfg, pv):
    # chosen by pv's type, not by an if: numba types both sides of an if on a value that is not None (the
    # kernel's pv on perps is an optional integer), so a perp run compiled spot margin's fill too (~2.8 s)
    if isinstance(pv, types.NoneType):
        def spot(st, fs, x, price, cfg, pv):
            return _trade_to(st, x, price, cfg, (fs[RB], fs[RQ]), borrow_limits(st, cfg))
        return spot

    def perp(st, fs, x, price, cfg, pv):
        side, q, fill, fee_value, capped = usdm.trade_to(st, fs, x, price, cfg.fee, cfg.slippage, cfg.leverage,
                                                         cfg.isolated, fs[ENTRY])
        return side, q, fill, fee_value, capped, 0.0, 0.0
    return perp


@njit(cache=True)
def _market(st, fs, ns, tot, cfg, i, x, price, kind, orders, pv):
    """A market order towards target ``x`` at ``price`` (the open, or a
    stop's trigger) in bar ``i``, recorded as ``kind``, its fee and interest
    added to ``tot``; returns ``capped`` (``account._trade_to``)."""
    pos = _position(st)
    side, q, fill, fee_value, capped, cb, cq = _fill_to(st, fs, x, price, cfg, pv)
    if side == 0:
        return capped
    if ns[RECORD]:
        _record_order(orders, ns[N_ORDERS], i, kind, (side, q, fill, fee_value, capped), st, pos, cb * price + cq,
                      cb + cq)
    _count_fill(ns, pos, _position(st), q)
    _track_in(fs, pos, _position(st), fill, price)
    ns[N_ORDERS] += 1
    tot[T_FEES] += fee_value
    tot[T_PAID] += cb * price + cq
    tot[T_IB] += cb
    tot[T_IQ] += cq
    return capped


@njit(cache=True)
def _walk(st, fs, ns, tot, cfg, i, px, orders, liqs, pv):
    """Step 5 with stops on: walk O → X1 → X2 → C of the bar ``px`` (open,
    high, low, close) firing liquidations and stops where the path reaches
    them (docs/model-choices.md); a strategy's stop-loss / take-profit price
    for the bar is in ``fs[SLP]``, ``fs[TPP]`` (NaN = the fraction's level).

    Adds its fees and charges to ``tot``; returns (forced exit?, ambiguous?).
    """
    o, h, lo, c = px
    mlr = cfg.liquidation_ml
    long_ = _position(st) > 0.0
    fs[BEST] = best_after(fs[BEST], o, long_)
    ambiguous = _ambiguous(st, fs, cfg, h, lo, h, lo, pv)
    low_first = long_ if cfg.pessimistic else c >= o  # pessimistic: the adverse extreme first
    x1 = lo if low_first else h
    x2 = h if low_first else lo
    forced = False
    n_l = 0
    cur = o
    for k in range(4):
        p = o if k == 0 else (x1 if k == 1 else (x2 if k == 2 else c))
        while True:
            pos = _position(st)
            if pos == 0.0:
                return forced, ambiguous
            kind, trigger = _first_level(st, fs, cfg, mlr, cur, p, k == 0, pv)
            if kind < 0:
                break
            if kind == LIQUIDATION:
                if not _liquidate_in_bar(st, fs, ns, tot, cfg, mlr, i,
                                         (trigger, trigger, o, trigger), orders, liqs, pv):
                    mlr = 0.0  # nothing to liquidate: the level is off for the rest of the bar
                    continue
                forced = True
                n_l += 1
                if n_l == MAX_LIQUIDATIONS_PER_BAR:
                    break
                cur = trigger
                continue
            forced = True
            _market(st, fs, ns, tot, cfg, i, 0.0, trigger, kind, orders, pv)  # a stop closes the position
            return forced, ambiguous
        if n_l == MAX_LIQUIDATIONS_PER_BAR:
            break
        fs[BEST] = best_after(fs[BEST], p, _position(st) > 0.0)
        cur = p
    return forced, ambiguous


@njit(cache=True)
def _liquidations(st, fs, ns, tot, cfg, i, mk, h, lo, orders, liqs, pv):
    """Step 5 without the walk on one (sub-)bar: liquidate while the adverse
    extreme of the bar liquidation is checked on (``mk``: open, high, low of
    the mark bar, or the traded one) reaches the liquidation price (at most
    MAX_LIQUIDATIONS_PER_BAR times); each fills where the market traded, the
    trigger clamped into the traded range ``lo``..``h``.  Adds the fees and
    bad debt to ``tot``; True when it liquidated."""
    mo = mk[0]
    mlr = cfg.liquidation_ml
    n_l = 0
    for _ in range(MAX_LIQUIDATIONS_PER_BAR):
        trigger = _trigger_at(st, fs, mlr, mk, pv)
        if trigger != trigger:
            break
        traded = min(max(trigger, lo), h)  # a mark trigger fills where the market traded
        if not _liquidate_in_bar(st, fs, ns, tot, cfg, mlr, i, (trigger, traded, mo, trigger), orders, liqs, pv):
            break  # nothing to liquidate
        n_l += 1
        if not exposed(st, pv):
            break
    return n_l > 0
