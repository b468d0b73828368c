"""The compiled bar loop for cross accounts holding several symbols.

Arrays ``[S, n]`` in (NaN where a symbol has no bar on the union time grid),
arrays and record arrays out; no pandas, no I/O.  Every account here holds
two or more symbols: the joint path and the cross liquidation of
``cross.py``.  An account with one symbol is the one-symbol kernel's
(``kernel.py``; ``multi_accounts.py`` sends each account to its loop).  The
order of events is docs/model-choices.md "Several symbols".  Liquidation is checked on mark bars (the traded bars
themselves when a symbol has no mark series) and interest charged from a
table of hourly rates per asset (constant or a rate history).  One-symbol
``kernel.py`` is left as it is (and as fast).

``simulate_multi`` makes the books and ``_loop`` runs the bars, compiled
without reference counting, as ``kernel._loop`` is (numba's counting
functions took ~12 % of ``bench --symbols 2`` alone, perf): the loop
allocates nothing and gets no array back from a call; the few steps that
allocate (a liquidation's order of sale, the finer bars' walk) say
``_nrt=True`` (``tests/test_kernel_loop.py``).  The steps it calls say
``_nrt=False`` themselves: numba would compile them so from the loop, but
the warm helper (``warm.py``) compiles them apart, into the same cache.

Speed: with every symbol in one cross account, after each eventful bar
``_close_quiet`` closes the quiet bars that follow in a small loop (the bars
the skip test lets through, and hours whose interest is all they have), as
kernel.py does for one symbol; a cross perp account's ``_close_quiet_perp``
the same (without stops or limit orders); the results are the same bit for
bit.
"""
import warnings

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.core.errors import NumbaExperimentalFeatureWarning

from ._compile_speed import JoinedCompiler
from .account import HB, HQ, PB, PQ, _position, _record_order
from .cross import (HELD, INTEREST, PRINCIPAL, book_value, debt_of, held_over, liquidate_cross, load, net_of,
                    others_term, store, trade_to_cross)
from .intrabar import MAX_LIQUIDATIONS_PER_BAR
from .intrabar import _track as track_entry
from .intrabar import best_after, trade_step
from .limits import _cancel, _fill, borrow_for, in_reach
from .records import LIMIT, LIQUIDATION, REBALANCE, SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP
from .venues import binance_usdm as usdm
from .venues import binance_usdm_cross as usdm_cross
from .rules import (
    HOUR,
    hour_boundaries_between,
    interest_charge,
    joint_theta,
    leg_theta,
    margin_level,
    path_prices,
    stop_levels,
)

# the order records here carry three more fields (symbol, trigger, event) than
# the one-symbol record account._record_order is typed for; numba accepts the
# wider record as a subtype and says so once per compile, which would only
# confuse a user's first multi-symbol run
warnings.filterwarnings("ignore", message=".*has been considered a subtype of Record",
                        category=NumbaExperimentalFeatureWarning)

# rows of ``out_acct[a]`` and ``out_sym[s]``
ACCOUNT_ROWS = ("equity", "debt", "interest_owed", "interest_paid")
SYMBOL_ROWS = ("position", "interest_symbol")  # cumulative quote value of its base interest and its fills' borrow charges
# with auto-repay off, after them (multi_accounts asks for them): as the one-symbol kernel's extra rows
SYMBOL_EXTRA = ("interest_quote", "after_base", "after_quote", "base_owed")
# totals in ``stats``
STATS = ("fees_paid", "liquidation_fees", "bad_debt", "n_orders", "n_liquidations", "n_margin_calls",
         "n_capped", "n_trades", "detail_missing_bars", "n_cancelled")
N_STATS = len(STATS)
FEES, LIQ_FEES, BAD, N_ORD, N_LIQ, N_CALL, N_CAP, N_TRD, N_MISS, N_CANC = range(N_STATS)
ORDERS_PER_STEP = 3 + MAX_LIQUIDATIONS_PER_BAR  # per symbol: its order, a gap fill, the intrabar fills, a stop


@njit(cache=True, _nrt=False)
def _book_order(st, i, s, a, trade, o, before, ss, sa, orders, tot):
    """A filled order of symbol s in account a (``trade``: what
    ``cross.trade_to_cross`` returns; ``st`` the position after it,
    ``before`` before): its interest (the symbol's share: its base interest
    and its own borrows), its fee, its record and the trade count."""
    side, q, price, fee_value, capped, cb, cq = trade
    _note(ss, sa, s, a, cb, cq, o)
    ss[s, QUOTE_SYM] += cq
    paid = cb * o + cq
    ss[s, PAID_SYM] += paid
    tot[FEES] += fee_value
    k = int(tot[N_ORD])
    _record_order(orders, k, i, np.int8(ss[s, KIND]), (side, q, price, fee_value, capped), st, before, paid, cb + cq)
    _fill_order(orders, k, s, np.nan, -1)
    tot[N_ORD] += 1
    _count(ss, s, tot, before, _position(st), q)
    _track(ss, s, before, _position(st), price, o)


@njit(cache=True, inline="always")
def _count(ss, s, tot, before, after, q):
    """Symbol s's fill from ``before`` to ``after`` counted as trades.csv counts it (``intrabar.trade_step``)."""
    opens, now = trade_step(ss[s, TRADE_OPEN] != 0.0, before, after, q)
    tot[N_TRD] += opens
    ss[s, TRADE_OPEN] = 1.0 if now else 0.0


@njit(cache=True)
def _track(ss, s, n0, n1, price, o):
    """Symbol s's entry and best price after a fill at ``price`` (its bar's
    open ``o``) took its position from ``n0`` to ``n1`` (the one-symbol
    rule, ``intrabar._track``)."""
    ss[s, ENTRY], ss[s, BEST] = track_entry(n0, n1, price, o, ss[s, ENTRY], ss[s, BEST])


@njit(cache=True)
def _fill_order(orders, k, s, trigger, event):
    orders[k].symbol = s
    orders[k].trigger = trigger
    orders[k].event = event


@njit(cache=True)
def _call(calls, tot, i, a, ml):
    """A margin call of account a at bar i, at margin level (or health) ``ml``."""
    j = int(tot[N_CALL])
    calls[j].bar = i
    calls[j].margin_level = ml
    calls[j].account = a
    tot[N_CALL] += 1


@njit(cache=True)
def _liq_record(liqs, k, a, theta, gap):
    liqs[k].account = a
    liqs[k].theta = theta
    liqs[k].gap = gap


# per-symbol state ``ss[s]`` and per-account state ``sa[a]`` (float columns, so
# the steps take few arguments and numba can inline them)
LAST_CLOSE, PENDING, KIND, LAST_TARGET, SUSPENDED, PAID_SYM, INT_BASE, ENTRY, BEST = range(9)
# and the books of a symbol whose loans may outlive its trades (auto-repay off; ``SYMBOL_EXTRA``): its quote
# interest (its fills' borrow charges, its shares of the account's hourly quote charges) and the step-4
# charges after a bar's orders (base, its quote share), cumulative, in asset units
QUOTE_SYM, AFTER_B, AFTER_Q = range(9, 12)
# and its setting: a custom profile's max borrow of its base (principal; +inf: none)
LIMIT_B = 12
# and a strategy's limit orders (docs "Limit orders in a cross account of several symbols"): the pending
# order's limit price (NaN: a market order); the standing order's side (0: none), quantity, limit price,
# amount borrowed at placement, its symbol's bars it has stood, capped, and its placement's charge (quote
# value; in asset units)
PEND_LIM, LIM_SIDE, LIM_Q, LIM_PX, LIM_B, LIM_BARS, LIM_CAPPED, LIM_INT, LIM_CHG = range(13, 22)
TRADE_OPEN = 22  # a round trip of the symbol open (intrabar.trade_step)
N_SS = 23
T_PREV, NEXT_HOUR, PAID, INT_QUOTE, ABOVE_CALL, HALTED = range(6)
# profile levels ``lv[a]`` and settings ``cfg``
M0, CALL, MLR, LIQ_FEE, RESTORE, LIMIT_Q = range(6)  # (LIMIT_Q: the max borrow of its quote)
# (WALK: 0 no walk; 1 stops on or finer bars; 2 limit orders only, walked while one stands; 3 the same with
# finer bars: step 5 always on them, _finer walks a sub-step while an order stands)
FEE, SLIP, FULL, ROUND, STOP, WALK, REPAY, ON_FLAT = range(8)
# scratch rows ``scr[r]`` of a cross step: CUR the traded open (orders, interest), MCUR the mark open
# (liquidation checks; both the last close without a bar), TRADED where a liquidation fills (before slippage)
CUR, EXT, PB0, QTY, FILL, TRADABLE, SIDE, TRIG, MCUR, TRADED = range(10)
# and of the joint walk with stops (``_walk_joint``): a leg's start and end (traded, then mark), a symbol's
# direction, its stop taken, its stop fractions (stop-loss, take-profit, trailing) and its strategy's stop-loss /
# take-profit prices for the bar
LEG_A, LEG_B, MLEG_A, MLEG_B, DIRN, DONE, F_SL, F_TP, F_TR, P_SL, P_TP = range(10, 21)
# and whether its limit order filled in the bar (its levels then did not stand at the open)
FILLED = 21
N_SCRATCH = 22
# rows of ``loc[r]``, the book of a quiet run (``_close_quiet``)
Q_HB, Q_DB, Q_IB, Q_UP = range(4)
# and with stops on (``_quiet_stops``): per held symbol its side (+1 long, −1 short, 0 no levels), the
# band its bar's low and high must stay in (stop-loss, take-profit), its trailing fraction and best price
Q_SIDE, Q_LO, Q_HI, Q_TR, Q_BEST = range(4, 9)


@njit(cache=True, inline="always")
def _note(ss, sa, s, a, cb, cq, price):
    """Interest charged: base ``cb`` of symbol s, quote ``cq`` of account a."""
    ss[s, INT_BASE] += cb
    sa[a, INT_QUOTE] += cq
    sa[a, PAID] += cb * price + cq


@njit(cache=True)
def _follows_gap(ss, s, stop):
    """After a gap liquidation: does symbol s's pending order still execute
    at this open?  A signal (a target change) does, unless the run stops at
    a liquidation; a rebalance is dropped (docs/model-choices.md)."""
    if stop or ss[s, KIND] == REBALANCE or ss[s, PENDING] != ss[s, PENDING]:
        ss[s, PENDING] = np.nan
        return False
    return True


@njit(cache=True)
def _charge_book(sb, aq, a, syms, m, rates, col, round_up, scr, ss, sa, after):
    """One hour on the base principals ``scr[PB0]`` and the quote principal
    ``scr[PB0, m]`` of a cross account, at the rates of column ``col``, base
    charges valued at ``scr[CUR]``; ``after`` 1.0: the step-4 charge, after
    the bar's orders (0.0: step 1's; a float, as the literal True and False
    were typed apart: numba compiled this function once for each).  The
    quote charge is shared by the symbols long now, by value (their books
    with auto-repay off: docs/model-choices.md "Auto-repay off in a cross
    account of several symbols")."""
    total = 0.0
    for k in range(m):
        s = syms[a, k]
        long_ = net_of(sb, s)
        scr[QTY, k] = long_ * scr[CUR, k] if long_ > 0.0 else 0.0
        total += scr[QTY, k]
    for k in range(m):
        s = syms[a, k]
        cb = interest_charge(scr[PB0, k], rates[s, col], round_up)
        sb[s, INTEREST] += cb
        _note(ss, sa, s, a, cb, 0.0, scr[CUR, k])
        ss[s, PAID_SYM] += cb * scr[CUR, k]
        if after != 0.0:
            ss[s, AFTER_B] += cb
    cq = interest_charge(scr[PB0, m], rates[rates.shape[0] - 1, col], round_up)
    aq[a, INTEREST] += cq
    _note(ss, sa, 0, a, 0.0, cq, 0.0)
    if cq > 0.0 and total > 0.0:
        for k in range(m):
            share = cq * (scr[QTY, k] / total)
            ss[syms[a, k], QUOTE_SYM] += share
            if after != 0.0:
                ss[syms[a, k], AFTER_Q] += share


@njit(cache=True, _nrt=True)  # (allocates: counts references though _loop does not)
def _cross_liquidation(i, a, syms_of, m, where, books, lv, cfg, orders, liqs):
    """A cross liquidation at the trigger prices ``scr[TRIG]``, filled at
    ``scr[TRADED]`` (± slippage), recorded with ``where`` = (its θ on the
    bar's path, at a (sub-)bar's open); False (nothing recorded) when
    there was nothing to liquidate.  ``books``: ``(sb, aq, st, ss, sa, scr,
    tot)``, the books and state (a rare call: one tuple, few arguments)."""
    sb, aq, _, ss, _, scr, tot = books
    syms = syms_of[a, :m]
    trig = scr[TRIG, :m].copy()
    k_l = int(tot[N_LIQ])
    rec = liqs[k_l]
    rec.bar = i
    before = np.empty(m)
    for k in range(m):
        s = syms[k]
        before[k] = net_of(sb, s)
    tradable = scr[TRADABLE, :m] != 0.0
    side = np.zeros(m, dtype=np.int64)
    qty = scr[QTY]
    fill = scr[FILL]
    f, b, done = liquidate_cross(sb, aq, a, syms, m, (trig, scr[TRADED, :m], tradable),
                                 (cfg[SLIP], lv[a, LIQ_FEE], lv[a, RESTORE], cfg[FULL] != 0.0, cfg[REPAY] == 0.0), rec,
                                 (qty, fill, side))
    if not done:
        return False
    _liq_record(liqs, k_l, a, where[0], where[1])
    tot[N_LIQ] += 1
    tot[LIQ_FEES] += f
    tot[BAD] += b
    for k in range(m):
        s = syms[k]
        after = net_of(sb, s)
        filled = side[k] != 0
        if not filled and not (b > 0.0 and before[k] < 0.0 and after == 0.0):
            continue
        # a fill; or a short written off with no bar to fill: a record of side 0 and quantity 0 at the price
        # its debt was valued at, which ends the trade in the count here and in the trades table (the
        # only place this is decided: multi_accounts takes it out of the orders, books.write_offs)
        q = qty[k] if filled else 0.0
        o = orders[int(tot[N_ORD])]
        o.bar = i
        o.side = side[k]
        o.kind = LIQUIDATION
        o.capped = False
        o.ambiguous = False
        o.quantity = q
        o.price = fill[k] if filled else trig[k]
        o.fee = 0.0  # the event's fee is on the liquidation record, not on one symbol
        o.position_before = before[k]
        o.position = after
        o.interest = 0.0
        o.charge = 0.0
        o.symbol = s
        o.trigger = trig[k]
        o.event = k_l
        tot[N_ORD] += 1
        _count(ss, s, tot, before[k], after, q)
        if filled:
            _track(ss, s, before[k], after, fill[k], scr[TRADED, k])  # (best: before slippage)
    return True


@njit(cache=True, inline="always")
def _prices(i, a, syms, m, open_, mark_open, ss, scr):
    """The account's current prices at bar i: traded (``CUR``) and mark
    (``MCUR``) opens, the last close for a symbol without a bar."""
    for k in range(m):
        s = syms[a, k]
        o = open_[s, i]
        scr[TRADABLE, k] = 1.0 if o == o else 0.0
        scr[CUR, k] = o if o == o else ss[s, LAST_CLOSE]
        scr[MCUR, k] = mark_open[s, i] if o == o else ss[s, LAST_CLOSE]


@njit(cache=True, _nrt=False)
def _toward_adverse(i, a, syms, m, sb, aq, mark_high, mark_low, mlr, scr):
    """Each symbol's adverse (mark) extreme into ``scr[EXT]`` (its current
    price when it has no bar or ``a − M·d`` is 0) and the joint path's terms
    toward them (``_joint_terms``)."""
    for k in range(m):
        s = syms[a, k]
        coef = held_over(sb, s, mlr)
        if coef > 0.0 and scr[TRADABLE, k] != 0.0:
            scr[EXT, k] = mark_low[s, i]
        elif coef < 0.0 and scr[TRADABLE, k] != 0.0:
            scr[EXT, k] = mark_high[s, i]
        else:
            scr[EXT, k] = scr[MCUR, k]
    return _joint_terms(a, m, syms, sb, aq, mlr, scr, MCUR, EXT)


@njit(cache=True)
def _joint_terms(a, m, syms, sb, aq, mlr, scr, start, end):
    """``(f0, g, any debt)`` of the joint path from the prices ``scr[start]``
    to ``scr[end]`` (docs "Joint path": ``f0 = Σ (a_s − M·d_s)·P_s + c −
    M·e`` at the start, ``g`` its change to the end)."""
    f0 = held_over(aq, a, mlr)
    g = 0.0
    any_debt = debt_of(aq, a) > 0.0
    for k in range(m):
        s = syms[a, k]
        db = debt_of(sb, s)
        any_debt = any_debt or db > 0.0
        coef = held_over(sb, s, mlr)
        f0 += coef * scr[start, k]
        g += coef * (scr[end, k] - scr[start, k])
    return f0, g, any_debt


@njit(cache=True)
def _at_theta(i, a, syms, m, theta, scr, start, end, high, low):
    """Every symbol's price at ``θ`` from ``scr[start]`` to ``scr[end]``
    into ``scr[TRIG]`` (the triggers), and where it fills into
    ``scr[TRADED]``: that price clamped into the symbol's traded bar (with
    a mark series the mark's level, brought into the range the market
    traded; a symbol without a bar stays at its price)."""
    path_prices(scr, start, end, theta, TRIG, m)
    for k in range(m):
        p = scr[TRIG, k]
        if scr[TRADABLE, k] != 0.0:
            p = min(max(p, low[syms[a, k], i]), high[syms[a, k], i])
        scr[TRADED, k] = p


@njit(cache=True)
def _level_theta(lv, falling, a_, b_, first):
    """Where on a leg from ``a_`` to ``b_`` a level firing when the price
    falls to it (``falling``) or rises to it fires: ``(θ, trigger)``, θ = −1
    when it does not; on the first leg a level the open is already beyond
    fires there (docs "Stops on a joint path")."""
    if lv != lv:
        return -1.0, 0.0
    if (lv >= a_) if falling else (lv <= a_):
        if first or (b_ < a_ if falling else b_ > a_):
            return 0.0, a_
        return -1.0, 0.0
    if falling and b_ < a_ and lv >= b_:
        return (a_ - lv) / (a_ - b_), lv
    if not falling and b_ > a_ and lv <= b_:
        return (lv - a_) / (b_ - a_), lv
    return -1.0, 0.0


@njit(cache=True)
def _next_event(a, m, leg, syms, sb, aq, ss, scr, mlr, liq_on, after, fsv):
    """The first event on leg ``leg`` (1, 2, 3) of the joint walk from the
    legs' rows (the liquidation on the marks' ``scr[MLEG_A]`` → ``scr[MLEG_B]``,
    the stops on the traded ``scr[LEG_A]`` → ``scr[LEG_B]``): ``(θ, kind, k,
    trigger)``, kind −1 when the leg has none, LIQUIDATION (k −1), or a stop
    kind of the account's k-th symbol; none before ``after`` (the last event's θ).
    ``leg`` 0 is leg 1 of a sub-step of finer bars after the first: no step
    2 checked its opens, so an account already at the level there is
    liquidated at θ = 0 even when the leg does not move it (``g = 0``; docs
    "Finer bars on a joint path").
    ``fsv``: None on spot margin, else a cross perp account's bracket tables
    (its liquidation: ``binance_usdm_cross.joint_theta`` on the leg)."""
    best, kind, who, trig = np.inf, -1, -1, 0.0
    theta = -1.0
    if fsv is None:
        f0, g, owes = _joint_terms(a, m, syms, sb, aq, mlr, scr, MLEG_A, MLEG_B)
        if owes and liq_on:
            # (leg 0: leg_theta; leg 1 with g > 0, an event on it having turned the path favourable: none)
            theta = (joint_theta(f0, g) if g <= 0.0 else -1.0) if leg == 1 else leg_theta(f0, g)
    elif liq_on:  # (from the last event's θ on: docs "A cross perp account ...", *Stops*)
        theta = usdm_cross.joint_theta(sb, aq[a, 0], syms, a, m, fsv, (scr, MLEG_A, MLEG_B, TRADED), after)
    if theta >= 0.0:
        best, kind = max(theta, after), LIQUIDATION
    for k in range(m):
        s = syms[a, k]
        if scr[TRADABLE, k] != 0.0 and ss[s, LIM_SIDE] != 0.0:  # its standing limit order: a buy fires falling
            theta, p = _level_theta(ss[s, LIM_PX], ss[s, LIM_SIDE] > 0.0, scr[LEG_A, k], scr[LEG_B, k], leg <= 1)
            if theta >= 0.0:
                theta, p = _not_before(theta, p, after, scr[LEG_A, k], scr[LEG_B, k])
                if theta < best:  # (last among equals: anything found at the same θ keeps its place)
                    best, kind, who, trig = theta, LIMIT, k, p
        n = net_of(sb, s)
        if scr[TRADABLE, k] == 0.0 or scr[DONE, k] != 0.0 or n == 0.0 or ss[s, ENTRY] != ss[s, ENTRY]:
            continue
        levels = stop_levels(ss[s, ENTRY], ss[s, BEST], n > 0.0, scr[F_SL, k], scr[F_TP, k], scr[F_TR, k])
        if scr[P_SL, k] == scr[P_SL, k]:  # a strategy's price for the bar replaces the fraction's (docs "Levels")
            levels = (scr[P_SL, k], levels[1], levels[2])
        if scr[P_TP, k] == scr[P_TP, k]:
            levels = (levels[0], levels[1], scr[P_TP, k])
        first = leg <= 1 and scr[FILLED, k] == 0.0  # (a limit fill's levels: where the path reaches them)
        for j in range(3):  # stop-loss and trailing fire toward the adverse side, take-profit the other way
            theta, p = _level_theta(levels[j], (n > 0.0) == (j < 2), scr[LEG_A, k], scr[LEG_B, k], first)
            kd = STOP_LOSS if j == 0 else (TRAILING_STOP if j == 1 else TAKE_PROFIT)
            if theta >= 0.0:
                theta, p = _not_before(theta, p, after, scr[LEG_A, k], scr[LEG_B, k])
                if theta < best or (theta == best and kind != LIQUIDATION and _rank(kd) < _rank(kind)):
                    best, kind, who, trig = theta, kd, k, p
    return best, kind, who, trig


@njit(cache=True, inline="always")
def _not_before(theta, p, after, a_, b_):
    """A level found on a leg before the last event's θ ``after`` (new since:
    a fill set its entry) fires there, at its path price (docs "Stops on a
    joint path"); else ``(theta, p)`` as found."""
    if theta < after:
        return after, a_ + after * (b_ - a_)
    return theta, p


@njit(cache=True)
def _rank(kind):
    """Ties on the path: liquidation, stop-loss, trailing, take-profit, a limit order."""
    if kind == STOP_LOSS:
        return 1
    if kind == TRAILING_STOP:
        return 2
    if kind == TAKE_PROFIT:
        return 3
    return 0 if kind == LIQUIDATION else 4


@njit(cache=True)
def _leg(i, a, m, leg, bars, scr, ss, sb):
    """Leg ``leg``'s ends per symbol (the bars' column ``i``) into ``scr[LEG_A]``, ``scr[LEG_B]``:
    the path ``O → X1 → X2 → C`` of its direction ``scr[DIRN]`` (adverse
    extreme first), its current price throughout without a direction; the
    mark path's paired leg into ``scr[MLEG_A]``, ``scr[MLEG_B]`` (the mark
    bar's low and high in the traded path's order); the best price of each
    held symbol moves to the leg's start."""
    syms, open_, high, low, close, mark_open, mark_high, mark_low, mark_close = bars
    for k in range(m):
        s = syms[a, k]
        d = scr[DIRN, k]
        if d == 0.0:
            scr[LEG_A, k] = scr[LEG_B, k] = scr[CUR, k]
            scr[MLEG_A, k] = scr[MLEG_B, k] = scr[MCUR, k]
            continue
        pts = (open_[s, i], low[s, i] if d > 0.0 else high[s, i], high[s, i] if d > 0.0 else low[s, i], close[s, i])
        scr[LEG_A, k] = pts[leg - 1]
        scr[LEG_B, k] = pts[leg]
        mpts = (mark_open[s, i], mark_low[s, i] if d > 0.0 else mark_high[s, i],
                mark_high[s, i] if d > 0.0 else mark_low[s, i], mark_close[s, i])
        scr[MLEG_A, k] = mpts[leg - 1]
        scr[MLEG_B, k] = mpts[leg]
        n = net_of(sb, s)
        if n != 0.0:
            ss[s, BEST] = best_after(ss[s, BEST], pts[leg - 1], n > 0.0)


def _mark_closes(walk, close):
    """The closes the joint walk's mark paths end at: the walk's mark
    closes (``inputs.JointStops.mark_close``), or the traded ones without
    mark series or without a walk."""
    if walk is None:
        return close
    if walk.mark_close.shape[1] == 0:
        return close
    return walk.mark_close


@njit(cache=True, inline="always")
def _stop_near(walk, s, i, pos, ss, bar):
    """May a stop level of symbol s (position ``pos``, its bar ``(open,
    high, low)``) fire in bar i?  False only when none can: every level
    that fires as the price falls lies below the bar's low, every one that
    fires as it rises above its high, the trailing level taken at the best
    price the bar can bring (docs "Stops on a joint path": then the walk
    would fire nothing, and the bar needs no step)."""
    if pos == 0.0 or ss[s, ENTRY] != ss[s, ENTRY]:
        return False
    o, h, lo = bar
    long_ = pos > 0.0
    best = max(max(max(ss[s, BEST], o), lo), h) if long_ else min(min(min(ss[s, BEST], o), h), lo)
    sl, tr, tp = stop_levels(ss[s, ENTRY], best, long_, walk.fractions[s, 0], walk.fractions[s, 1],
                             walk.fractions[s, 2])
    if walk.sl_price.shape[1] > 0:  # a strategy's prices for the bar replace the fractions' levels
        if walk.sl_price[s, i] == walk.sl_price[s, i]:
            sl = walk.sl_price[s, i]
        if walk.tp_price[s, i] == walk.tp_price[s, i]:
            tp = walk.tp_price[s, i]
    if long_:
        return sl >= lo or tr >= lo or tp <= h
    return sl <= h or tr <= h or tp >= lo


@njit(cache=True, inline="always")
def _stops_in_reach(i, a, m, syms, sb, ss, walk, bars):
    """May a stop level of one of account a's held symbols with a bar fire
    in bar i (``_stop_near``; ``bars`` = the traded open, high, low)?"""
    open_, high, low = bars
    for k in range(m):
        s = syms[a, k]
        if open_[s, i] == open_[s, i] and _stop_near(walk, s, i, net_of(sb, s), ss,
                                                     (open_[s, i], high[s, i], low[s, i])):
            return True
    return False


@njit(cache=True, inline="always")
def _limits_in_reach(i, a, m, syms, ss, high, low):
    """Does the bar i of one of account a's symbols with a standing limit
    order reach its price (a buy's at or above the low, a sell's at or
    below the high)?  (A symbol without a bar has NaN there: no.)"""
    for k in range(m):
        s = syms[a, k]
        if ss[s, LIM_SIDE] != 0.0 and in_reach(ss[s, LIM_SIDE], ss[s, LIM_PX], high[s, i], low[s, i]):
            return True
    return False


@njit(cache=True)
def _quiet_stops(n_sym, walk, sb, ss, loc):
    """The stop levels of a quiet run's held symbols (without a strategy's
    prices, constant over the run but for the trailing level) into ``loc``:
    side, the band ``Q_LO``..``Q_HI`` from stop-loss and take-profit, the
    trailing fraction, the best price (``_band_left`` moves it)."""
    for k in range(n_sym):
        pos = net_of(sb, k)
        loc[Q_SIDE, k] = 0.0
        if pos == 0.0 or ss[k, ENTRY] != ss[k, ENTRY] or ss[k, BEST] != ss[k, BEST]:
            continue
        long_ = pos > 0.0
        sl, _, tp = stop_levels(ss[k, ENTRY], ss[k, BEST], long_, walk.fractions[k, 0], walk.fractions[k, 1],
                                walk.fractions[k, 2])
        falls, rises = (sl, tp) if long_ else (tp, sl)  # a level firing as the price falls, as it rises
        loc[Q_SIDE, k] = 1.0 if long_ else -1.0
        loc[Q_LO, k] = falls if falls == falls else -np.inf
        loc[Q_HI, k] = rises if rises == rises else np.inf
        loc[Q_TR, k] = walk.fractions[k, 2]
        loc[Q_BEST, k] = ss[k, BEST]


@njit(cache=True, inline="always")
def _band_left(j, n_sym, loc, open_, high, low):
    """Does a held symbol's bar j reach one of its levels (``_quiet_stops``'s
    band, the trailing level at the best price the bar brings)?"""
    for k in range(n_sym):
        side = loc[Q_SIDE, k]
        if side == 0.0:
            continue
        lo, hi = low[k, j], high[k, j]
        if not (lo > loc[Q_LO, k] and hi < loc[Q_HI, k]):
            return True
        # rules.stop_levels' trailing level written out (calling it here, and one helper for the bar's best
        # price shared with _stop_near and _best_over_bar, made this loop 3-6 % slower, alternated)
        tr = loc[Q_TR, k]
        if tr > 0.0 and not ((lo > max(loc[Q_BEST, k], hi) * (1.0 - tr)) if side > 0.0
                             else (hi < min(loc[Q_BEST, k], lo) * (1.0 + tr))):
            return True
    return False


@njit(cache=True, inline="always")
def _band_best(j, n_sym, loc, open_, high, low):
    """A quiet bar j: the held symbols' best prices (``loc[Q_BEST]``) move as
    the joint walk would move them (``_leg``: the open, then the extremes,
    adverse first)."""
    for k in range(n_sym):
        if loc[Q_SIDE, k] > 0.0:
            loc[Q_BEST, k] = max(max(max(loc[Q_BEST, k], open_[k, j]), low[k, j]), high[k, j])
        elif loc[Q_SIDE, k] < 0.0:
            loc[Q_BEST, k] = min(min(min(loc[Q_BEST, k], open_[k, j]), high[k, j]), low[k, j])


@njit(cache=True, inline="always")
def _best_over_bar(i, a, m, syms, sb, ss, open_, high, low):
    """A bar the joint walk would cross without an event: each held symbol
    with a bar and an entry price takes its best price as the walk's legs
    would move it (``_leg``: the open, then the extremes)."""
    for k in range(m):
        s = syms[a, k]
        n = net_of(sb, s)
        o = open_[s, i]
        if n == 0.0 or o != o or ss[s, BEST] != ss[s, BEST]:
            continue
        if n > 0.0:  # d = +1: O → L → H
            ss[s, BEST] = max(max(max(ss[s, BEST], o), low[s, i]), high[s, i])
        else:  # d = −1: O → H → L
            ss[s, BEST] = min(min(min(ss[s, BEST], o), high[s, i]), low[s, i])


@njit(cache=True, _nrt=False)
def _walk_joint(at, a, m, bars, books, params, orders, liqs, perp):
    """Step 5 of a cross account with several symbols and stops on: the
    joint walk of docs "Stops on a joint path", three legs, each event at
    the smallest θ first, the liquidation on the marks' paired path (the
    traded one without mark series).  ``at`` = (bar i, the bars' column it
    reads, the offset its liquidations' θ is recorded from, a sub-step of
    finer bars after the first (no step 2 checked its opens)): (i, i, 0,
    False) on a bar, (i, j, 3j, j > 0) on sub-step j (``_finer``; ``bars``
    then the sub-bars).  ``perp``: None on spot margin, else
    ``(fsv, venue)`` of a cross perp account (docs "A cross perp account
    holding several symbols", *Stops*: its liquidation closes everything at
    the marks, its stops are the venue's market orders).  Returns whether
    the account was liquidated."""
    i, c, base, fine = at
    syms, high, low = bars[0], bars[2], bars[3]
    sb, aq, st, ss, sa, scr, tot = books
    lv, cfg, rates, col, stops = params
    mlr = lv[a, MLR]
    priced = stops.sl_price.shape[1] > 0
    for k in range(m):  # the symbols' stop settings for this bar (inputs.JointStops)
        s = syms[a, k]
        scr[F_SL, k], scr[F_TP, k], scr[F_TR, k] = stops.fractions[s, 0], stops.fractions[s, 1], stops.fractions[s, 2]
        scr[P_SL, k] = stops.sl_price[s, i] if priced else np.nan
        scr[P_TP, k] = stops.tp_price[s, i] if priced else np.nan
    liquidated = False
    n_liq = 0
    liq_on = True
    for k in range(m):
        s = syms[a, k]
        coef = held_over(sb, s, mlr)
        scr[DIRN, k] = 0.0 if scr[TRADABLE, k] == 0.0 else (1.0 if coef > 0.0 else (-1.0 if coef < 0.0 else 0.0))
        if scr[DIRN, k] == 0.0 and scr[TRADABLE, k] != 0.0 and ss[s, LIM_SIDE] != 0.0:
            scr[DIRN, k] = -1.0  # a standing order walks its bar: flat counts as short, the high first
        scr[DONE, k] = scr[FILLED, k] = 0.0
    for leg in range(1, 4):
        _leg(c, a, m, leg, bars, scr, ss, sb)
        after = 0.0
        while True:
            theta, kind, who, trig = _next_event(a, m, 0 if fine and leg == 1 else leg, syms, sb, aq, ss, scr, mlr,
                                                 liq_on, after, None if perp is None else perp[0])
            if kind < 0:
                break
            after = theta
            if kind == LIQUIDATION:  # every symbol at its mark at θ, filled there clamped into its traded bar
                _at_theta(c, a, syms, m, theta, scr, MLEG_A, MLEG_B, high, low)
            else:  # every symbol at its traded path price
                _at_theta(c, a, syms, m, theta, scr, LEG_A, LEG_B, high, low)
            if kind == LIMIT:
                if perp is None:
                    _limit_fill(i, a, who, m, trig, syms, books, cfg[FEE], orders)
                else:
                    _perp_limit_fill(i, a, who, trig, (syms, m), books, perp, cfg, orders)
                scr[FILLED, who] = 1.0
                continue
            # a liquidation cancels every standing order first, a stop its symbol's
            if kind == LIQUIDATION:
                _cancel_all(a, syms, m, books, perp)
            elif ss[syms[a, who], LIM_SIDE] != 0.0:
                _cancel_limit(a, syms[a, who], books, perp)
            if kind == LIQUIDATION and perp is not None:  # every position closed at the marks: nothing left
                _perp_liquidation(i, a, syms, m, base + leg - 1 + theta, books, perp[0], lv, liqs, orders)
                return True
            if kind == LIQUIDATION:
                # (recorded at leg − 1 + θ: the walk's position in [0, 3]; a gap only at the (sub-)bar's open)
                if not _cross_liquidation(i, a, syms, m, (base + leg - 1 + theta, leg == 1 and theta == 0.0), books,
                                          lv, cfg, orders, liqs):
                    liq_on = False  # nothing to liquidate
                    continue
                liquidated = True
                n_liq += 1
                if n_liq == MAX_LIQUIDATIONS_PER_BAR:
                    return liquidated
                continue
            scr[TRIG, who] = trig
            if perp is None:
                _stop_fill(i, a, m, who, kind, trig, syms, books, params, orders)
            else:
                _perp_stop(i, a, who, kind, trig, (syms, m), books, perp, cfg, orders)
    for k in range(m):  # the end of the last leg, the closes: the best prices of the symbols held
        s = syms[a, k]
        n = net_of(sb, s)
        if scr[DIRN, k] != 0.0 and n != 0.0:
            ss[s, BEST] = best_after(ss[s, BEST], bars[4][s, c], n > 0.0)
    return liquidated


@njit(cache=True, _nrt=True)  # (allocates: counts references though _loop does not)
def _finer(i, a, m, bars, books, params, recs, detail, walk):
    """Step 5 of spot account ``a`` at bar i with finer bars (docs "Finer
    bars on a joint path"): nothing where nothing can fire (the liquidation
    level, every held symbol's levels and every standing limit order out of
    the bar's reach: the held symbols' best prices move as over a quiet
    bar); else, when every symbol with a bar has usable sub-bars, the joint
    walk (stops on, or an order standing) or the joint path on each
    sub-step; else on the bar, counted in ``detail_missing_bars``.
    ``bars``: simulate_multi's ``walk_bars``; ``params``: ``_walk_joint``'s.
    Returns 1 when liquidated, 0, or −1 when a record buffer ran short (grow
    it, run again)."""
    syms, open_, high, low, mark_high, mark_low = bars[0], bars[1], bars[2], bars[3], bars[6], bars[7]
    sb, aq, _, ss, _, scr, tot = books
    lv, cfg = params[0], params[1]
    orders, liqs, _ = recs
    mlr = lv[a, MLR]
    f0, g, owes = _toward_adverse(i, a, syms, m, sb, aq, mark_high, mark_low, mlr, scr)
    ax, dx = book_value(sb, aq, a, syms, m, scr, EXT)
    reach = owes and ax <= mlr * (1.0 + 1e-9) * dx
    if walk is not None and not reach:
        reach = (_stops_in_reach(i, a, m, syms, sb, ss, walk, (open_, high, low))
                 or _limits_in_reach(i, a, m, syms, ss, high, low))
    if not reach:  # (the sub-bars lie inside the bar: they fire nothing either)
        if walk is not None:
            _best_over_bar(i, a, m, syms, sb, ss, open_, high, low)
        return 0
    usable = True
    for k in range(m):
        s = syms[a, k]
        usable = usable and (open_[s, i] != open_[s, i] or detail.start[s, i] >= 0)
    if not usable:  # the bar as without finer bars
        tot[N_MISS] += 1.0
        if walk is None or (cfg[WALK] == 3.0 and not _standing(a, syms, m, ss)):
            hl = (high, low, mark_high, mark_low)
            return 1 if owes and _joint_path((i, i, 0.0, False), a, syms, m, books, hl, lv, cfg, recs, (f0, g)) else 0
        return 1 if _walk_joint((i, i, 0.0, False), a, m, bars, books, params, orders, liqs, None) else 0
    ratio = detail.ratio
    sub = np.full((4, open_.shape[0], ratio), np.nan)  # the symbols' sub-bars: open, high, low, close
    for k in range(m):
        s = syms[a, k]
        if open_[s, i] == open_[s, i]:
            r0 = detail.start[s, i]
            for j in range(ratio):
                sub[0, s, j], sub[1, s, j] = detail.open[s, r0 + j], detail.high[s, r0 + j]
                sub[2, s, j], sub[3, s, j] = detail.low[s, r0 + j], detail.close[s, r0 + j]
    o_, h_, l_, c_ = sub[0], sub[1], sub[2], sub[3]
    liquidated = False
    for j in range(ratio):
        if tot[N_ORD] + m * ORDERS_PER_STEP > orders.shape[0] or tot[N_LIQ] + ORDERS_PER_STEP > liqs.shape[0]:
            return -1
        for k in range(m):  # the sub-bars' opens are the current prices
            if scr[TRADABLE, k] != 0.0:
                scr[CUR, k] = scr[MCUR, k] = o_[syms[a, k], j]
        # (limit orders only: walked while one stands; one may have filled in sub-step j − 1)
        if walk is None or (cfg[WALK] == 3.0 and not _standing(a, syms, m, ss)):
            f0, g, owes = _toward_adverse(j, a, syms, m, sb, aq, h_, l_, mlr, scr)
            if owes:  # (θ from 3j where other sub-steps of the run may walk: one scale orders the bar's events)
                liquidated = _joint_path((i, j, float(j) if walk is None else 3.0 * j, j > 0), a, syms, m, books,
                                         (h_, l_, h_, l_), lv, cfg, recs, (f0, g)) or liquidated
        else:
            liquidated = _walk_joint((i, j, 3.0 * j, j > 0), a, m, (syms, o_, h_, l_, c_, o_, h_, l_, c_), books,
                                     params, orders, liqs, None) or liquidated
    return 1 if liquidated else 0


@njit(cache=True, inline="always")
def _costs(cfg):
    """``cross.trade_to_cross``'s costs from the run's settings."""
    return cfg[FEE], cfg[SLIP], cfg[ROUND] != 0.0, cfg[REPAY] != 0.0, cfg[ON_FLAT] != 0.0


@njit(cache=True)
def _stop_fill(i, a, m, k, kind, trig, syms, books, params, orders):
    """The account's k-th symbol's stop firing at ``trig``: its market order
    to target 0 there (the others at their path prices ``scr[TRIG]``),
    recorded with its kind and trigger; its rebalancing suspended."""
    sb, aq, st, ss, sa, scr, tot = books
    lv, cfg, rates, col, _ = params
    m0 = lv[a, M0]
    s = syms[a, k]
    scr[DONE, k] = 1.0
    ss[s, SUSPENDED] = 1.0
    assets, debt = book_value(sb, aq, a, syms, m, scr, TRIG)
    kept = _load_free(st, sb, aq, ss, s, a, syms, m)
    w = others_term(sb, syms, a, m, scr, TRIG, k, m0) + kept  # (the quote locked stays an asset)
    before = _position(st)
    trade = trade_to_cross(st, 0.0, trig, (assets - debt, w, 1e-9 * (assets + debt), m0), _costs(cfg),
                           (rates[s, col], rates[rates.shape[0] - 1, col]), (ss[s, LIMIT_B], lv[a, LIMIT_Q]))
    _store_free(st, sb, aq, s, a, kept)
    if trade[0] != 0:
        ss[s, KIND] = kind
        _book_order(st, i, s, a, trade, trig, before, ss, sa, orders, tot)
        orders[int(tot[N_ORD]) - 1].trigger = trig
    tot[N_CAP] += trade[4]  # (capped)


@njit(cache=True)
def _perp_stop(i, a, k, kind, trig, acct, books, perp, cfg, orders):
    """The cross perp account's k-th symbol's stop firing at ``trig``
    (``acct`` = (syms, m)): its market order to target 0 there, the other
    symbols at their path prices ``scr[TRIG]``; recorded with its kind and
    trigger; its rebalancing suspended (docs "A cross perp account holding
    several symbols", *Stops*)."""
    syms, m = acct
    _, _, _, ss, _, scr, _ = books
    scr[DONE, k] = 1.0
    ss[syms[a, k], SUSPENDED] = 1.0
    _perp_fill(i, a, k, (0.0, trig, np.int8(kind), trig, np.int64(TRIG)), acct, books, perp, cfg, orders)


@njit(cache=True)
def _perp_fill(i, a, k, order, acct, books, perp, cfg, orders):
    """A market order of the account's k-th symbol, ``order`` = (target,
    price, kind, trigger, the row of ``scr`` the other symbols are valued
    at): the one-symbol rule (binance_usdm.trade_to) on the account's
    equity, the other symbols' positions folded into the net quote at those
    prices and their initial margin taken from the available money;
    recorded, its entry and best price tracked (the stops')."""
    x, price, kind, trigger, row = order
    sb, aq, st, ss, _, _, tot = books
    fsv, venue = perp
    s = acct[0][a, k]
    before = sb[s, 0]
    others = _load_perp(a, k, acct, books, perp, row)
    fill = usdm.trade_to(st, fsv[s], x, price, cfg[FEE], cfg[SLIP], venue.leverage, False, 0.0)
    if fill[0] != 0:
        sb[s, 0] = st[HB] - st[PB]
        aq[a, 0] = st[HQ] - st[PQ] - others
        _perp_order(orders, tot, ss, i, s, kind, fill, before, st, trigger, -1)
        _track(ss, s, before, sb[s, 0], fill[2], price)
    tot[N_CAP] += fill[4]  # (capped)


@njit(cache=True, inline="always")
def _load_perp(a, k, acct, books, perp, row):
    """The account's k-th symbol as a one-symbol perp account in ``st``: its
    position, the net quote with the other symbols' positions folded in at
    the prices ``scr[row]``, their initial margin as the venue's OTHERS
    (taken from the available money); returns the folded-in value."""
    syms, m = acct
    sb, aq, st, _, _, scr, _ = books
    fsv, venue = perp
    s = syms[a, k]
    others = 0.0
    im = 0.0
    for j in range(m):
        if j != k:
            n_j = sb[syms[a, j], 0]
            others += n_j * scr[row, j]
            im += abs(n_j) * scr[row, j] / venue.leverage
    usdm.set_state(st, sb[s, 0], aq[a, 0] + others)
    fsv[s, usdm.OTHERS] = im
    return others


@njit(cache=True)
def _perp_place(a, k, acct, books, perp, cfg):
    """Step (2): place the account's k-th symbol's pending limit order,
    sized at its open ``scr[CUR, k]`` as a market order filled at the limit
    price would be (``binance_usdm.limit_size``: nothing reserved or
    borrowed; docs "A cross perp account holding several symbols", *Limit
    orders*)."""
    _, _, st, ss, _, scr, tot = books
    fsv, venue = perp
    s = acct[0][a, k]
    _load_perp(a, k, acct, books, perp, CUR)
    side, q, capped = usdm.limit_size(st, fsv[s], ss[s, PENDING], scr[CUR, k], ss[s, PEND_LIM], cfg[FEE],
                                      venue.leverage, False, 0.0)
    _stand(ss, tot, s, (side, q, 0.0, capped), (0.0, 0.0))


@njit(cache=True)
def _perp_limit_fill(i, a, k, trig, acct, books, perp, cfg, orders):
    """The account's k-th symbol's standing perp order filled at ``trig``
    in the joint walk, the other symbols at their path prices ``scr[TRIG]``
    (``binance_usdm.fill``: the opening part cut again there); recorded as
    kind ``limit`` unless the cut left nothing."""
    sb, aq, st, ss, _, _, tot = books
    fsv, venue = perp
    s = acct[0][a, k]
    before = sb[s, 0]
    others = _load_perp(a, k, acct, books, perp, TRIG)
    side = int(ss[s, LIM_SIDE])
    q, fv, cut = usdm.fill(st, fsv[s], side, ss[s, LIM_Q], trig, cfg[FEE], venue.leverage, False, 0.0)
    capped = ss[s, LIM_CAPPED] != 0.0
    tot[N_CAP] += cut and not capped
    ss[s, LIM_SIDE] = 0.0
    if q > 0.0:
        sb[s, 0] = st[HB] - st[PB]
        aq[a, 0] = st[HQ] - st[PQ] - others
        _perp_order(orders, tot, ss, i, s, np.int8(LIMIT), (side, q, trig, fv, capped or cut), before, st, np.nan,
                    -1)
        _track(ss, s, before, sb[s, 0], trig, trig)


@njit(cache=True, inline="always")
def _load_free(st, sb, aq, ss, s, a, syms, m):
    """``cross.load`` of symbol s with the account's quote held less what its
    other symbols' standing buy orders lock (their q·L): what s may spend
    (docs "Limit orders in a cross account of several symbols"); returns
    the amount set aside, which ``_store_free`` adds back."""
    load(st, sb, aq, s, a)
    locked = 0.0
    for k in range(m):
        j = syms[a, k]
        if j != s and ss[j, LIM_SIDE] > 0.0:
            locked += ss[j, LIM_Q] * ss[j, LIM_PX]
    if locked == 0.0:
        return 0.0
    free = max(st[HQ] - locked, 0.0)
    kept = st[HQ] - free
    st[HQ] = free
    return kept


@njit(cache=True, inline="always")
def _store_free(st, sb, aq, s, a, kept):
    """``cross.store`` after ``_load_free``: the quote set aside back."""
    st[HQ] += kept
    store(st, sb, aq, s, a)


@njit(cache=True)
def _cancel_limit(a, s, books, perp=None):
    """Cancel symbol s's standing order: what it borrowed is repaid as far as
    held (docs "Limit orders", *Cancel*), on its six numbers; counted.  A
    perp order (``perp`` not None) borrowed nothing: it is only gone."""
    sb, aq, st, ss, _, _, tot = books
    if perp is None:
        load(st, sb, aq, s, a)
        _cancel(st, int(ss[s, LIM_SIDE]), ss[s, LIM_B])
        store(st, sb, aq, s, a)
    ss[s, LIM_SIDE] = 0.0
    tot[N_CANC] += 1


@njit(cache=True, inline="always")
def _age_limit(a, s, replaced, books, expiry, perp):
    """Step 3 (a perp: (2)) at symbol s's bar: its standing order has had one
    more of its own bars; cancelled when a new order is pending
    (``replaced``) or its ``e`` bars are up."""
    ss = books[3]
    if ss[s, LIM_SIDE] != 0.0:
        ss[s, LIM_BARS] += 1.0
        if replaced or ss[s, LIM_BARS] >= expiry[s]:
            _cancel_limit(a, s, books, perp)


@njit(cache=True)
def _cancel_all(a, syms, m, books, perp=None):
    """Cancel every standing order of account ``a`` (before its liquidation)."""
    for k in range(m):
        if books[3][syms[a, k], LIM_SIDE] != 0.0:
            _cancel_limit(a, syms[a, k], books, perp)


@njit(cache=True, _nrt=False)
def _place_limit(a, k, syms, m, books, lv, cfg, hourly):
    """Step 3: place the account's k-th symbol's pending limit order at its
    open ``scr[CUR, k]``, sized on the account's equity and capped on its
    assets and debt there, its shortfall borrowed at once (``limits.borrow_for``);
    the placement's charge is the symbol's (its books: the base part as its
    base interest, the quote part as its quote interest)."""
    sb, aq, st, ss, sa, scr, tot = books
    rates, col = hourly
    s = syms[a, k]
    o = scr[CUR, k]
    assets, debt = book_value(sb, aq, a, syms, m, scr, CUR)
    kept = _load_free(st, sb, aq, ss, s, a, syms, m)
    side, q, b, capped, cb, cq = borrow_for(st, ss[s, PENDING], o, ss[s, PEND_LIM], (assets, debt, 1e-9),
                                            (cfg[FEE], lv[a, M0], cfg[ROUND] != 0.0),
                                            (rates[s, col], rates[rates.shape[0] - 1, col]), (ss[s, LIMIT_B],
                                                                                              lv[a, LIMIT_Q]))
    _store_free(st, sb, aq, s, a, kept)
    _stand(ss, tot, s, (side, q, b, capped), (cb * o + cq, cb + cq))
    if side != 0:
        _note(ss, sa, s, a, cb, cq, o)
        ss[s, PAID_SYM] += cb * o  # (its quote part in QUOTE_SYM: the fill's record carries the charge)
        ss[s, QUOTE_SYM] += cq


@njit(cache=True, inline="always")
def _stand(ss, tot, s, order, charge):
    """Symbol s's pending limit order placed: ``order`` = (side, quantity,
    borrowed, capped), side 0 when nothing stands; ``charge`` = its
    borrow's first hour as quote value and in the borrowed asset."""
    side, q, b, capped = order
    ss[s, PENDING] = np.nan
    tot[N_CAP] += capped
    ss[s, LIM_SIDE] = side
    if side != 0:
        ss[s, LIM_Q], ss[s, LIM_PX], ss[s, LIM_B], ss[s, LIM_BARS] = q, ss[s, PEND_LIM], b, 0.0
        ss[s, LIM_CAPPED], ss[s, LIM_INT], ss[s, LIM_CHG] = capped, charge[0], charge[1]


@njit(cache=True)
def _limit_fill(i, a, k, m, trig, syms, books, fee, orders):
    """The account's k-th symbol's standing order filled at ``trig``
    (``limits._fill`` on its six numbers: no slippage, never borrows),
    recorded as kind ``limit`` with its placement's charge."""
    sb, aq, st, ss, _, _, tot = books
    s = syms[a, k]
    kept = _load_free(st, sb, aq, ss, s, a, syms, m)
    before = _position(st)
    side = int(ss[s, LIM_SIDE])
    q = ss[s, LIM_Q]
    fv = _fill(st, side, q, trig, fee)
    _store_free(st, sb, aq, s, a, kept)
    ss[s, LIM_SIDE] = 0.0
    tot[FEES] += fv
    n = int(tot[N_ORD])
    _record_order(orders, n, i, np.int8(LIMIT), (side, q, trig, fv, ss[s, LIM_CAPPED] != 0.0), st, before,
                  ss[s, LIM_INT], ss[s, LIM_CHG])
    _fill_order(orders, n, s, np.nan, -1)
    tot[N_ORD] += 1
    _count(ss, s, tot, before, _position(st), q)
    _track(ss, s, before, _position(st), trig, trig)


@njit(cache=True, _nrt=False)
def _limit_decisions(i, a, syms, m, ss, limit, open_):
    """8, a strategy's limit orders: a new target read at the symbol's bar i
    (an older one went at step 3) with a limit price there is a limit order
    at that price (``limit``: ``inputs.JointStops.limit``); a rebalance
    while the symbol's order stands is dropped."""
    for k in range(m):
        s = syms[a, k]
        if ss[s, PENDING] != ss[s, PENDING]:
            continue
        if ss[s, KIND] == REBALANCE:
            ss[s, PEND_LIM] = np.nan
            if ss[s, LIM_SIDE] != 0.0:
                ss[s, PENDING] = np.nan
        elif open_[s, i] == open_[s, i]:
            ss[s, PEND_LIM] = limit[s, i]


@njit(cache=True, _nrt=False)
def _step_cross(i, t, a, syms, m, books, bars, lv, cfg, hourly, recs, expiry):
    """Steps 1–6 of a cross account with several symbols (with stops on, 1–4
    and 6: step 5 is ``_walk_joint``, _loop's); the liquidation
    checks on the mark bars (``bars`` = the traded open, high, low and the
    mark open, high, low: the traded ones without a mark series), the
    orders and the fills on the traded bars.  ``books``: (sb, aq, st, ss,
    sa, scr, tot); ``hourly``: (h0, rates); ``recs``: (orders, liqs, calls);
    each built once by simulate_multi; ``expiry``: per symbol its limit
    orders' expiry in its bars (``inputs.JointStops``; empty: no limit
    orders, one type for every run)."""
    sb, aq, st, ss, sa, scr, tot = books
    open_, high, low, mark_open, mark_high, mark_low = bars
    h0, rates = hourly
    orders, liqs, calls = recs
    liquidated = False
    round_up = cfg[ROUND] != 0.0
    mlr = lv[a, MLR]
    m0 = lv[a, M0]
    col = t // HOUR - h0  # this bar's hour, as a rate column
    _prices(i, a, syms, m, open_, mark_open, ss, scr)
    # 1. hour boundaries passed since the account's last active time, each at the rates in force then
    on_hour = False
    if t >= sa[a, NEXT_HOUR]:
        on_hour = t % HOUR == 0
        if sa[a, T_PREV] >= 0.0:
            t_prev = np.int64(sa[a, T_PREV])
            h1 = t_prev // HOUR + 1 - h0
            for n_h in range(hour_boundaries_between(t_prev, t)):
                for k in range(m):
                    scr[PB0, k] = sb[syms[a, k], PRINCIPAL]
                scr[PB0, m] = aq[a, PRINCIPAL]
                _charge_book(sb, aq, a, syms, m, rates, h1 + n_h, round_up, scr, ss, sa, 0.0)
        sa[a, NEXT_HOUR] = (t // HOUR + 1) * HOUR
    # 2. gap liquidation at the current (mark) prices, filled at the traded opens
    assets, debt = book_value(sb, aq, a, syms, m, scr, MCUR)
    if debt > 0.0 and assets <= mlr * debt:
        for k in range(m):
            scr[TRIG, k] = scr[MCUR, k]
            scr[TRADED, k] = scr[CUR, k]
        if expiry.shape[0] > 0:  # standing limit orders are cancelled first
            _cancel_all(a, syms, m, books)
        at = 0.0  # θ at the open: a gap (a test, not the literal True: typed apart, compiled twice)
        if _cross_liquidation(i, a, syms, m, (at, at == 0.0), books, lv, cfg, orders, liqs):
            for k in range(m):
                if not _follows_gap(ss, syms[a, k], cfg[STOP] != 0.0):
                    ss[syms[a, k], SUSPENDED] = 1.0
            liquidated = cfg[STOP] != 0.0  # (the run stops)
    # 3. pending orders in symbol order
    for k in range(m):
        scr[PB0, k] = sb[syms[a, k], PRINCIPAL]
    scr[PB0, m] = aq[a, PRINCIPAL]
    for k in range(m):
        s = syms[a, k]
        x = ss[s, PENDING]
        if scr[TRADABLE, k] == 0.0:
            continue
        if expiry.shape[0] > 0:
            _age_limit(a, s, x == x, books, expiry, None)
        if x != x:
            continue
        if ss[s, PEND_LIM] == ss[s, PEND_LIM]:
            _place_limit(a, k, syms, m, books, lv, cfg, (rates, col))
            continue
        assets, debt = book_value(sb, aq, a, syms, m, scr, CUR)
        kept = _load_free(st, sb, aq, ss, s, a, syms, m)
        w = others_term(sb, syms, a, m, scr, CUR, k, m0) + kept  # (the quote locked stays an asset)
        before = _position(st)
        o = scr[CUR, k]
        trade = trade_to_cross(st, x, o, (assets - debt, w, 1e-9 * (assets + debt), m0), _costs(cfg),
                               (rates[s, col], rates[rates.shape[0] - 1, col]), (ss[s, LIMIT_B], lv[a, LIMIT_Q]))
        _store_free(st, sb, aq, s, a, kept)
        if trade[0] != 0:
            _book_order(st, i, s, a, trade, o, before, ss, sa, orders, tot)
        tot[N_CAP] += trade[4]  # (capped)
        ss[s, PENDING] = np.nan
    # 4. the whole hour at this open, on principal held across it
    if on_hour:
        for k in range(m):
            scr[PB0, k] = min(scr[PB0, k], sb[syms[a, k], PRINCIPAL])
        scr[PB0, m] = min(scr[PB0, m], aq[a, PRINCIPAL])
        _charge_book(sb, aq, a, syms, m, rates, col, round_up, scr, ss, sa, 1.0)
    # 6. the margin call, on the state after step 4, every symbol at its adverse (mark) extreme
    f0, g, owes = _toward_adverse(i, a, syms, m, sb, aq, mark_high, mark_low, mlr, scr)
    if owes:
        ax, dx = book_value(sb, aq, a, syms, m, scr, EXT)
        if ax <= lv[a, CALL] * dx and sa[a, ABOVE_CALL] != 0.0:
            _call(calls, tot, i, a, margin_level(ax, dx))
    # 5. with stops on or finer bars, _loop's next call (with stops also without debt); else
    # the joint path toward every symbol's adverse extreme
    if not owes or _walks(cfg, a, syms, m, ss) or joint_theta(f0, g) < 0.0:  # (most bars: not reached, no call)
        return liquidated
    return _joint_path((i, i, 0.0, False), a, syms, m, books, (high, low, mark_high, mark_low), lv, cfg, recs,
                       (f0, g)) or liquidated


@njit(cache=True)
def _joint_path(at, a, syms, m, books, hl, lv, cfg, recs, terms):
    """Step 5 without stops: the joint path from the current prices
    ``scr[MCUR]`` toward every symbol's adverse (mark) extreme, a
    liquidation where it reaches the level, again from the start with the
    new state, at most 8 times.  ``at`` as ``_walk_joint``'s (θ recorded
    from its offset; on a sub-step after the first an account already at
    the level at its opens is liquidated there, as ``_next_event``'s leg
    0); ``hl`` = the
    bars' (high, low, mark high, mark low);
    ``terms``: the path's (f0, g) on the state now (step 6's)."""
    i, c, base, fine = at
    high, low, mark_high, mark_low = hl
    sb, aq, _, _, _, scr, _ = books
    orders, liqs, _ = recs
    mlr = lv[a, MLR]
    f0, g = terms
    liquidated = False
    for n_liq in range(MAX_LIQUIDATIONS_PER_BAR):
        if n_liq > 0:
            f0, g, owes = _toward_adverse(c, a, syms, m, sb, aq, mark_high, mark_low, mlr, scr)
            if not owes:
                break
        theta = leg_theta(f0, g) if fine else joint_theta(f0, g)
        if theta < 0.0:
            break
        _at_theta(c, a, syms, m, theta, scr, MCUR, EXT, high, low)  # the marks at θ
        if not _cross_liquidation(i, a, syms, m, (base + theta, theta == 0.0), books, lv, cfg, orders, liqs):
            break  # nothing to liquidate
        liquidated = True
    return liquidated


@njit(cache=True)
def _perp_order(orders, tot, ss, i, s, kind, fill, before, st, trigger, event):
    """A perp fill of symbol s (``fill``: side, quantity, price, fee,
    capped; ``st``: the position after it), recorded and counted."""
    k = int(tot[N_ORD])
    _record_order(orders, k, i, kind, fill, st, before)
    _fill_order(orders, k, s, trigger, event)
    tot[N_ORD] += 1
    tot[FEES] += fill[3]  # (its fee)
    _count(ss, s, tot, before, _position(st), fill[1])


@njit(cache=True, _nrt=True)  # (allocates: counts references though _loop does not)
def _perp_liquidation(i, a, syms, m, theta, books, fsv, lv, liqs, orders):
    """The cross perp account liquidated at the marks ``scr[TRIG]``: every
    position closed there, one event and a fill per symbol it held
    (``books`` as ``_cross_liquidation``'s)."""
    sb, aq, st, ss, _, scr, tot = books
    k_l = int(tot[N_LIQ])
    side = np.zeros(m, dtype=np.int64)
    qty = scr[QTY]
    fee, bad = usdm_cross.liquidate_all(sb, aq, a, syms, m, fsv, scr, TRIG, lv[a, LIQ_FEE], liqs[k_l], qty, side)
    liqs[k_l].bar = i
    _liq_record(liqs, k_l, a, theta, theta == 0.0)
    tot[N_LIQ] += 1
    tot[LIQ_FEES] += fee
    tot[BAD] += bad
    usdm.set_state(st, 0.0, 0.0)  # (every position is closed)
    for k in range(m):
        if side[k] != 0:  # (the event's fee is on the liquidation record)
            _perp_order(orders, tot, ss, i, syms[a, k], LIQUIDATION, (side[k], qty[k], scr[TRIG, k], 0.0, False),
                        -side[k] * qty[k], st, scr[TRIG, k], k_l)


@njit(cache=True, _nrt=False)
def _perp_trade(i, a, k, syms, m, books, fsv, venue, cfg, orders):
    """Symbol ``syms[a, k]``'s pending order at its traded open
    (``_perp_fill``, the other symbols at their current traded prices)."""
    ss, scr = books[3], books[5]
    s = syms[a, k]
    order = (ss[s, PENDING], scr[CUR, k], np.int8(ss[s, KIND]), np.nan, np.int64(CUR))
    _perp_fill(i, a, k, order, (syms, m), books, (fsv, venue), cfg, orders)
    ss[s, PENDING] = np.nan


@njit(cache=True, inline="always")  # (every bar of a perp account asks it: a call cost ~12 % of bench --venue usdm)
def _perp_quiet(i, a, syms, m, sb, aq, ss, bars, venue, fsv, vp):
    """Would ``_step_perp`` do nothing at bar i?  No order to place, no
    funding charge, no bracket version starting, and the health with every
    symbol at its adverse mark extreme above the margin call (with room to
    spare): MB − MM falls along the joint path, so neither the gap nor the
    path reaches liquidation, and no call is recorded.  ``bars``: the
    traded opens and the mark opens, highs and lows."""
    open_, _, mark_high, mark_low = bars
    j = vp[0]
    if j < venue.funding_bar.shape[0] and venue.funding_bar[j] <= i:
        return False
    mb = aq[a, 0]
    mm = 0.0
    for k in range(m):
        s = syms[a, k]
        o = open_[s, i]
        if venue.ver[s, i] != vp[1 + s] or (o == o and (ss[s, PENDING] == ss[s, PENDING] or ss[s, LIM_SIDE] != 0.0)):
            return False
        n = sb[s, 0]
        if n != 0.0:
            x = ss[s, LAST_CLOSE]
            if o == o:
                x = mark_low[s, i] if n > 0.0 else mark_high[s, i]
            mb += n * x
            mm += usdm.maintenance_row(fsv, s, abs(n) * x)
    return usdm_cross.above_call(mb, mm, 1.0 + 1e-9)


@njit(cache=True, _nrt=False)
def _step_perp(i, a, syms, m, bars, books, vn, lv, cfg, recs, expiry):
    """Steps of a cross perp account with several symbols
    (docs/model-choices.md "A cross perp account holding several symbols"):
    the gap liquidation at the marks' opens, the pending orders, funding,
    the margin call and the liquidation on the marks' joint path
    (``bars`` as ``_perp_quiet``'s; ``books``: ``(sb, aq, st, ss, sa, scr,
    tot)``; ``vn``: ``(venue, fsv, vp)``; ``recs``: the orders,
    liquidations and margin calls; ``expiry``: as ``_step_cross``'s)."""
    open_, mark_open, mark_high, mark_low = bars
    sb, aq, st, ss, sa, scr, tot = books
    venue, fsv, vp = vn
    orders, liqs, calls = recs
    liquidated = False
    _prices(i, a, syms, m, open_, mark_open, ss, scr)
    for k in range(m):
        s = syms[a, k]
        v = venue.ver[s, i]
        if v != vp[1 + s]:  # this symbol's bracket version in force
            vp[1 + s] = v
            usdm.load_table(fsv[s], venue.table_rows, venue.table_start[v], venue.table_start[v + 1])
    # 1. gap liquidation at the marks' opens
    mb, mm = usdm_cross.balance(sb, aq[a, 0], syms[a], m, fsv, scr[MCUR])
    if mm > 0.0 and mb <= mm:
        for k in range(m):
            scr[TRIG, k] = scr[MCUR, k]
        if expiry.shape[0] > 0:  # standing limit orders are cancelled first
            _cancel_all(a, syms, m, books, (fsv, venue))
        _perp_liquidation(i, a, syms, m, 0.0, books, fsv, lv, liqs, orders)
        for k in range(m):
            if not _follows_gap(ss, syms[a, k], cfg[STOP] != 0.0):
                ss[syms[a, k], SUSPENDED] = 1.0
        liquidated = cfg[STOP] != 0.0
    # 2. pending orders in symbol order (each symbol's standing limit order first: replaced, or its e bars up)
    for k in range(m):
        s = syms[a, k]
        x = ss[s, PENDING]
        if scr[TRADABLE, k] == 0.0:
            continue
        if expiry.shape[0] > 0:
            _age_limit(a, s, x == x, books, expiry, (fsv, venue))
        if x == x and ss[s, PEND_LIM] == ss[s, PEND_LIM]:
            _perp_place(a, k, (syms, m), books, (fsv, venue), cfg)
        elif x == x:
            _perp_trade(i, a, k, syms, m, books, fsv, venue, cfg, orders)
    # 3. funding of this bar's charges, out of the cross wallet
    j = vp[0]
    while j < venue.funding_bar.shape[0] and venue.funding_bar[j] <= i:
        s = venue.funding_sym[j]
        pay = sb[s, 0] * venue.funding_mark[j] * venue.funding_rate[j]
        aq[a, 0] -= pay
        if abs(aq[a, 0]) < usdm.DUST:
            aq[a, 0] = 0.0
        venue.funding_out[0, j] = sb[s, 0]
        venue.funding_out[1, j] = pay
        ss[s, PAID_SYM] += pay
        sa[a, PAID] += pay
        j += 1
    vp[0] = j
    # 4. + 5. the margin call at every adverse mark extreme at once, the joint path towards them
    held = False
    for k in range(m):
        n = sb[syms[a, k], 0]
        held = held or n != 0.0
        scr[EXT, k] = scr[MCUR, k]
        if scr[TRADABLE, k] != 0.0 and n > 0.0:
            scr[EXT, k] = mark_low[syms[a, k], i]
        elif scr[TRADABLE, k] != 0.0 and n < 0.0:
            scr[EXT, k] = mark_high[syms[a, k], i]
    if not held:
        return liquidated
    mb, mm = usdm_cross.balance(sb, aq[a, 0], syms[a], m, fsv, scr[EXT])
    if mb <= usdm.CALL * mm and sa[a, ABOVE_CALL] != 0.0:
        _call(calls, tot, i, a, mb / mm)
    if _walks(cfg, a, syms, m, ss):  # 5. with stops on or an order standing: the joint walk (_loop's)
        return liquidated
    theta = usdm_cross.joint_theta(sb, aq[a, 0], syms, a, m, fsv, (scr, MCUR, EXT, TRADED), 0.0)
    if theta >= 0.0:
        path_prices(scr, MCUR, EXT, theta, TRIG, m)
        _perp_liquidation(i, a, syms, m, theta, books, fsv, lv, liqs, orders)
        liquidated = True
    return liquidated


@njit(cache=True, inline="always")  # (on hourly bars every bar's: a call handing it ~20 arrays cost more than its work)
def _quiet_hour(j, t_prev, g, books, lv, syms, hourly, round_up):
    """The hour at bar ``j`` of a quiet run, if it is all the bar has: the bar
    is on the hour and the last was within the hour before (step 1 charges
    nothing), and _loop's skip test passes both before the charge
    (step 2) and after it (steps 5-6); then step 4 is made, by
    ``_charge_book`` itself; the closes must be present (the bar is then
    closed by the quiet run).  Returns whether it was (else nothing changed)."""
    ts, open_, _, _, close, _, mark_open, mark_high, mark_low = g
    sb, aq, _, ss, sa, scr, _ = books
    h0, rates = hourly
    t = ts[j]
    if t % HOUR != 0 or not (t - HOUR <= t_prev < t):
        return False
    n_sym = open_.shape[0]
    for k in range(n_sym):
        if close[k, j] != close[k, j]:
            return False
    mlr = lv[0, MLR]
    near = max(lv[0, CALL], mlr) * (1.0 + 1e-9)
    col = t // HOUR - h0
    for before in (True, False):  # (after: on the charged book, the sums of _close_quiet's test, which it skips)
        cq = 0.0 if before else interest_charge(aq[0, PRINCIPAL], rates[n_sym, col], round_up)
        dq = aq[0, PRINCIPAL] + (aq[0, INTEREST] + cq)
        assets = aq[0, HELD]
        debt = dq
        assets_x = assets
        debt_x = dq
        owes = dq > 0.0
        for k in range(n_sym):
            cb = 0.0 if before else interest_charge(sb[k, PRINCIPAL], rates[k, col], round_up)
            db = sb[k, PRINCIPAL] + (sb[k, INTEREST] + cb)
            owes = owes or db > 0.0
            o = mark_open[k, j]
            x = mark_low[k, j] if sb[k, HELD] - mlr * db >= 0.0 else mark_high[k, j]
            assets += sb[k, HELD] * o
            debt += db * o
            assets_x += sb[k, HELD] * x
            debt_x += db * x
        if not ((assets > mlr * debt and assets_x > near * debt_x) if owes else assets == assets):
            return False
    sa[0, NEXT_HOUR] = (t // HOUR + 1) * HOUR
    for k in range(n_sym):
        scr[PB0, k] = sb[k, PRINCIPAL]
        scr[CUR, k] = open_[k, j]
    scr[PB0, n_sym] = aq[0, PRINCIPAL]
    # (account 0 as an int64, not the literal 0, as the step calls _charge_book)
    _charge_here(sb, aq, np.int64(0), syms, n_sym, rates, col, round_up, scr, ss, sa, 1.0)
    return True


_charge_here = njit(inline="always")(_charge_book.py_func)  # (inlined into the quiet hour, as it; never compiled apart)


@njit(cache=True, inline="always")
def _stretch(start, end, sb, ss, sa, out_acct, out_sym):
    """Bars ``start .. end − 1`` of a quiet run between hours: each symbol's
    position and interest, and the account's interest paid, unchanged there."""
    for k in range(sb.shape[0]):
        pos = net_of(sb, k)
        paid = ss[k, PAID_SYM]
        for r in range(start, end):
            out_sym[k, 0, r] = pos
            out_sym[k, 1, r] = paid
    paid = sa[0, PAID]
    for r in range(start, end):
        out_acct[0, 3, r] = paid


@njit(cache=True, inline="always")
def _symbol_rows(i, sb, ss, out_sym):
    """Bar i's rows of each symbol (``SYMBOL_ROWS``, and ``SYMBOL_EXTRA`` when asked for)."""
    for s in range(sb.shape[0]):
        out_sym[s, 0, i] = net_of(sb, s)
        out_sym[s, 1, i] = ss[s, PAID_SYM]
    if out_sym.shape[1] > 2:
        _books_rows(i, sb, ss, out_sym)


@njit(cache=True)
def _books_rows(i, sb, ss, out_sym):
    """Bar i's ``SYMBOL_EXTRA`` rows of each symbol (auto-repay off)."""
    for k in range(sb.shape[0]):
        out_sym[k, 2, i] = ss[k, QUOTE_SYM]
        out_sym[k, 3, i] = ss[k, AFTER_B]
        out_sym[k, 4, i] = ss[k, AFTER_Q]
        out_sym[k, 5, i] = debt_of(sb, k)


@njit(cache=True, _nrt=False)
def _close_quiet(i0, g, syms, books, loc, lv, rebalance, out, hourly, round_up, walk):
    """Close bars ``i0, i0 + 1, …`` of the only account (every symbol in one
    cross account) while they are quiet; returns the first bar not closed.

    A quiet bar has no order at its open, every symbol's open and close are
    present, and the margin level at the (mark) opens and adverse extremes
    passes the test by which ``_loop`` skips steps 1-6 (same
    arithmetic; no test without debt), and with stops on (``walk``; not
    with a strategy's prices per bar) no held symbol's level is within its
    bar (``_quiet_stops``, ``_band_left``): the steps would
    do nothing, so the bar is only closed, as ``_loop`` closes it
    (the held symbols' best prices moved as the walk would move them).  A
    bar on the hour is quiet too when the hour's interest is all that
    happens (``_quiet_hour``).  Between hours the book does not change, so
    its numbers are loaded into ``loc`` and what is the same on every bar is
    written per stretch; the loop body is small (numba compiles a small body
    with few live values into much faster code, see kernel.py), but for the
    hour, inlined (on hourly bars every bar's: a call cost more than its
    work); on an hour ``_quiet_hour``'s test after the charge is the bar's
    (the same sums as the test here: they must stay so).  It takes
    simulate_multi's tuples and records (at most 12 parameters): its 25
    arrays and numbers one by one ran ~3 % faster (pairwise medians of
    alternated runs in one process, both orders)."""
    ts, open_, high, low, close, target, mark_open, mark_high, mark_low = g
    sb, aq, _, ss, sa, _, _ = books
    out_acct, out_sym = out.acct, out.sym
    n_sym, n = open_.shape
    for k in range(n_sym):
        if ss[k, PENDING] == ss[k, PENDING]:
            return i0
    mlr = lv[0, MLR]
    near = max(lv[0, CALL], mlr) * (1.0 + 1e-9)
    halted = sa[0, HALTED] != 0.0
    next_hour = sa[0, NEXT_HOUR]
    end = n
    seg = i0  # the first bar since the last hour's interest
    reload = True
    hq = dq = iq = 0.0
    owes = False
    if walk is not None:
        if walk.sl_price.shape[1] > 0:  # a strategy's prices per bar: every bar walks (no quiet run)
            return i0
        _quiet_stops(n_sym, walk, sb, ss, loc)
    for j in range(i0, n):
        # stops on: a held symbol's level within its bar ends the run (tested before an hour's interest)
        if walk is not None and _band_left(j, n_sym, loc, open_, high, low):
            end = j
            break
        hour = ts[j] >= next_hour
        if hour:
            _stretch(seg, j, sb, ss, sa, out_acct, out_sym)  # the stretch before the hour (its interest changes it)
            seg = j
            t_prev = ts[j - 1] if j > i0 else np.int64(sa[0, T_PREV])
            if not _quiet_hour(j, t_prev, g, books, lv, syms, hourly, round_up):
                end = j
                break
            next_hour = sa[0, NEXT_HOUR]
            reload = True
        if reload:  # the book, at the start and after an hour's interest
            reload = False
            hq, dq, iq, owes = _load_quiet(sb, aq, loc, mlr)
        # _loop's test, its arithmetic (a NaN open makes ``assets`` NaN: not quiet); on an hour
        # _quiet_hour has made it, on the book after the charge (the same sums)
        if not hour:
            assets = hq
            debt = dq
            assets_x = hq
            debt_x = dq
            for k in range(n_sym):
                o = mark_open[k, j]
                x = mark_low[k, j] if loc[Q_UP, k] != 0.0 else mark_high[k, j]
                assets += loc[Q_HB, k] * o
                debt += loc[Q_DB, k] * o
                assets_x += loc[Q_HB, k] * x
                debt_x += loc[Q_DB, k] * x
            if not ((assets > mlr * debt and assets_x > near * debt_x) if owes else assets == assets):
                end = j
                break
        # 7. the close
        assets = hq
        debt = dq
        owed = iq
        for k in range(n_sym):
            c = close[k, j]
            assets += loc[Q_HB, k] * c
            debt += loc[Q_DB, k] * c
            owed += loc[Q_IB, k] * c
        if owed != owed:  # a close missing (NaN): _loop keeps the last close
            end = j
            break
        if walk is not None:  # the bar is quiet, the walk would fire nothing: the held symbols' best prices move
            _band_best(j, n_sym, loc, open_, high, low)
        eq = assets - debt
        out_acct[0, 0, j] = eq
        out_acct[0, 1, j] = debt
        out_acct[0, 2, j] = owed
        # 8. decisions; an order ends the quiet run after this bar
        if halted:
            continue
        ordered = False
        for k in range(n_sym):
            ordered |= _decide_one(ss, k, target[k, j], net_of(sb, k), close[k, j], eq, rebalance)
        if ordered:
            end = j + 1
            break
    if walk is not None:  # the best prices _band_best moved
        for k in range(n_sym):
            if loc[Q_SIDE, k] != 0.0:
                ss[k, BEST] = loc[Q_BEST, k]
    if end == i0:
        return i0
    _stretch(seg, end, sb, ss, sa, out_acct, out_sym)  # what is the same on every bar of the last stretch
    _after_quiet(end - 1, ts, close, books, lv)
    return end


@njit(cache=True, _nrt=False)
def _close_quiet_perp(i0, g, syms, books, rebalance, out, vn):
    """Close bars ``i0, i0 + 1, …`` of the only account, a cross perp
    account of several symbols, while they are quiet; returns the first bar
    not closed.  A quiet bar is one ``_loop`` would only close:
    every symbol's open and close present, ``_perp_quiet``'s test passes
    (no order, no funding charge, no bracket version starting, the health at
    the adverse mark extremes above the call; its arithmetic), so the bar
    is closed as ``_close_at`` and decided as ``_decide_at`` do, in their
    arithmetic.  An order ends the run after its bar.  Without stops or
    limit orders (``_loop`` calls it so).  One call for a run of
    bars (when a call's arrays were still reference-counted, every bar's
    steps were the most of a perp account's time)."""
    ts, open_, _, _, close, target, _, mark_high, mark_low = g
    sb, aq, _, ss, sa, scr, _ = books
    venue, fsv, vp = vn
    out_acct, out_sym = out.acct, out.sym
    n_sym, n = open_.shape
    if out_sym.shape[1] != len(SYMBOL_ROWS):  # (rows it does not write: _symbol_rows's extra ones)
        return i0
    for k in range(n_sym):
        if ss[k, PENDING] == ss[k, PENDING] or ss[k, LIM_SIDE] != 0.0:
            return i0
    stop_at = venue.funding_bar[vp[0]] if vp[0] < venue.funding_bar.shape[0] else n  # (a charge: not quiet)
    if stop_at <= i0:  # (a charge due already: multi_accounts puts each on a bar of its symbol, so never so far)
        return i0
    halted = sa[0, HALTED] != 0.0
    end = min(n, stop_at)
    for j in range(i0, end):
        mb = aq[0, 0]
        mm = 0.0
        present = True
        for k in range(n_sym):
            s = syms[0, k]
            o = open_[s, j]
            c = close[s, j]
            present = present and o == o and c == c and venue.ver[s, j] == vp[1 + s]
            q = sb[s, 0]
            if q != 0.0:
                x = mark_low[s, j] if q > 0.0 else mark_high[s, j]
                mb += q * x
                mm += usdm.maintenance_row(fsv, s, abs(q) * x)  # (usdm.maintenance(fsv[s], …): a view a bar)
        if not (present and usdm_cross.above_call(mb, mm, 1.0 + 1e-9)):  # (_perp_quiet's test)
            end = j
            break
        # 7. the close (_close_at's arithmetic: book_value at the closes)
        assets = aq[0, HELD]
        debt = debt_of(aq, 0)
        owed = aq[0, INTEREST]
        for k in range(n_sym):
            s = syms[0, k]
            c = close[s, j]
            assets += sb[s, HELD] * c
            debt += debt_of(sb, s) * c
        for k in range(n_sym):
            owed += sb[syms[0, k], INTEREST] * close[syms[0, k], j]
        eq = assets - debt
        out_acct[0, 0, j] = eq
        out_acct[0, 1, j] = debt
        out_acct[0, 2, j] = owed
        out_acct[0, 3, j] = sa[0, PAID]
        for k in range(n_sym):
            out_sym[k, 0, j] = net_of(sb, k)
            out_sym[k, 1, j] = ss[k, PAID_SYM]
        # 8. decisions (_decide_at's; a halted account has none to clear: no order is pending)
        if halted:
            continue
        ordered = False
        for k in range(n_sym):
            s = syms[0, k]
            ordered |= _decide_one(ss, s, target[s, j], net_of(sb, s), close[s, j], eq, rebalance)
        if ordered:
            end = j + 1
            break
    if end == i0:
        return i0
    last = end - 1  # the state _close_at leaves: the last closes, the time, the health at the closes
    for k in range(n_sym):
        s = syms[0, k]
        ss[s, LAST_CLOSE] = close[s, last]
        scr[CUR, k] = close[s, last]
    sa[0, T_PREV] = ts[last]
    mb, mm = usdm_cross.balance(sb, aq[0, 0], syms[0], n_sym, fsv, scr[CUR])
    sa[0, ABOVE_CALL] = 1.0 if usdm_cross.above_call(mb, mm, 1.0) else 0.0
    return end


@njit(cache=True, inline="always")
def _load_quiet(sb, aq, loc, mlr):
    """The book a quiet run reads on each bar between hours: the quote's
    holding, debt and interest (returned), each symbol's in ``loc``, and
    whether any loan is open."""
    hq = aq[0, HELD]
    dq = debt_of(aq, 0)
    owes = dq > 0.0
    for k in range(sb.shape[0]):
        db = debt_of(sb, k)
        owes = owes or db > 0.0
        loc[Q_HB, k] = sb[k, HELD]
        loc[Q_DB, k] = db
        loc[Q_IB, k] = sb[k, INTEREST]
        loc[Q_UP, k] = 1.0 if held_over(sb, k, mlr) >= 0.0 else 0.0
    return hq, dq, aq[0, INTEREST], owes


@njit(cache=True)
def _after_quiet(last, ts, close, books, lv):
    """The state after a quiet run ending at bar ``last``: each symbol's
    last close, the time, whether the account closed above the call level."""
    sb, aq, _, ss, sa, _, _ = books
    assets = aq[0, HELD]
    debt = debt_of(aq, 0)
    for k in range(sb.shape[0]):
        c = close[k, last]
        ss[k, LAST_CLOSE] = c
        assets += sb[k, HELD] * c
        debt += debt_of(sb, k) * c
    sa[0, T_PREV] = ts[last]
    sa[0, ABOVE_CALL] = 1.0 if (assets > lv[0, CALL] * debt or debt <= 0.0) else 0.0


@njit(cache=True, _nrt=False)
def _close(i, t, a, syms, m, books, close, fsv, venue, out_acct, call_ml):
    """``_close_at`` as a call of its own: a spot account's loop reaches it
    at its eventful bars only (``_close_quiet`` closes the others), and
    warm's helper compiles it apart from the loop (a shorter first run)."""
    _close_at(i, t, a, syms, m, books, close, fsv, venue, out_acct, call_ml)


@njit(cache=True, inline="always")
def _close_at(i, t, a, syms, m, books, close, fsv, venue, out_acct, call_ml):
    """7. the close of account ``a`` (last closes for symbols without a bar);
    ``books``: simulate_multi's (sb, aq, st, ss, sa, scr, tot)."""
    sb, aq, _, ss, sa, scr, _ = books
    for k in range(m):
        c = close[syms[a, k], i]
        if c == c:
            ss[syms[a, k], LAST_CLOSE] = c
        scr[CUR, k] = ss[syms[a, k], LAST_CLOSE]
    assets, debt = book_value(sb, aq, a, syms, m, scr, CUR)
    owed = aq[a, INTEREST]
    for k in range(m):
        owed += sb[syms[a, k], INTEREST] * scr[CUR, k]
    sa[a, T_PREV] = t
    if venue is not None:  # a perp account: its health at the closes (flat counts as above the call)
        mb, mm = usdm_cross.balance(sb, aq[a, 0], syms[a], m, fsv, scr[CUR])
        sa[a, ABOVE_CALL] = 1.0 if usdm_cross.above_call(mb, mm, 1.0) else 0.0
    else:
        sa[a, ABOVE_CALL] = 1.0 if (assets > call_ml * debt or debt <= 0.0) else 0.0
    out_acct[a, 0, i] = assets - debt
    out_acct[a, 1, i] = debt
    out_acct[a, 2, i] = owed
    out_acct[a, 3, i] = sa[a, PAID]


@njit(cache=True, _nrt=False)
def _decide(i, a, syms, m, sb, target, liquidated, stop_on_liquidation, rebalance, eq, ss, sa):
    """``_decide_at`` as a call of its own (``_close``'s reasons)."""
    _decide_at(i, a, syms, m, sb, target, liquidated, stop_on_liquidation, rebalance, eq, ss, sa)


@njit(cache=True, inline="always")
def _decide_at(i, a, syms, m, sb, target, liquidated, stop_on_liquidation, rebalance, eq, ss, sa):
    """8. the decisions of account ``a``'s symbols at the close."""
    if liquidated:
        for k in range(m):
            s = syms[a, k]
            ss[s, SUSPENDED] = 1.0
            if ss[s, KIND] == REBALANCE:  # a rebalance still waiting for its symbol's bar is dropped
                ss[s, PENDING] = np.nan
        if stop_on_liquidation:
            sa[a, HALTED] = 1.0
    if sa[a, HALTED] != 0.0:  # a stopped account trades no more: not even an order waiting for its symbol's bar
        for k in range(m):
            ss[syms[a, k], PENDING] = np.nan
        return
    for k in range(m):
        s = syms[a, k]
        _decide_one(ss, s, target[s, i], net_of(sb, s), ss[s, LAST_CLOSE], eq, rebalance)


@njit(cache=True, inline="always")
def _decide_one(ss, s, x, pos, price, eq, rebalance):
    """Symbol s's target ``x`` read at the close: a new target is a signal,
    a drift beyond ``rebalance`` a rebalance; returns whether it ordered."""
    if x != x:
        return False
    if x != ss[s, LAST_TARGET]:
        ss[s, PENDING] = x
        ss[s, KIND] = SIGNAL
        ss[s, LAST_TARGET] = x
        ss[s, SUSPENDED] = 0.0
        return True
    if rebalance > 0.0 and ss[s, SUSPENDED] == 0.0 and eq > 0.0 and abs(pos * price / eq - x) > rebalance * abs(x):
        ss[s, PENDING] = x
        ss[s, KIND] = REBALANCE
        return True
    return False


@njit(cache=True, _nrt=False)
def _hold(out_acct, a, i, capital):
    """An account none of whose symbols has a bar at i: the last values stand."""
    if i > 0:
        for r in range(4):
            out_acct[a, r, i] = out_acct[a, r, i - 1]
    else:
        out_acct[a, 0, i] = capital
        for r in range(1, 4):
            out_acct[a, r, i] = 0.0


@njit(cache=True, inline="always")
def _cross_need(i, t, a, m, syms, books, bars, lv, walk):
    """Does spot account ``a`` need the steps at bar i?  Most bars do not:
    no hour passed, no order, and the margin level at the open and at the
    adverse extreme far from the call and liquidation levels (``bars``:
    the traded open, high, low and the mark open, high, low); with stops on
    not a held symbol with a level within its bar either (``_stop_near``)."""
    open_, high, low, mark_open, mark_high, mark_low = bars
    sb, aq, _, ss, sa, _, _ = books
    near = max(lv[a, CALL], lv[a, MLR]) * (1.0 + 1e-9)
    need = t >= sa[a, NEXT_HOUR]
    owes = debt_of(aq, a) > 0.0
    assets = aq[a, HELD]
    debt = debt_of(aq, a)
    assets_x, debt_x = assets, debt
    for k in range(m):
        s = syms[a, k]
        need = need or ss[s, PENDING] == ss[s, PENDING] or ss[s, LIM_SIDE] != 0.0
        db = debt_of(sb, s)
        owes = owes or db > 0.0
        o = mark_open[s, i]  # NaN exactly where the symbol has no bar
        if walk is not None and o == o and not need:
            need = _stop_near(walk, s, i, net_of(sb, s), ss, (open_[s, i], high[s, i], low[s, i]))
        p = o if o == o else ss[s, LAST_CLOSE]
        x = p
        if o == o:
            x = mark_low[s, i] if held_over(sb, s, lv[a, MLR]) >= 0.0 else mark_high[s, i]
        assets += sb[s, HELD] * p
        debt += db * p
        assets_x += sb[s, HELD] * x
        debt_x += db * x
    if owes and not need:
        need = assets <= lv[a, MLR] * debt or assets_x <= near * debt_x
    return need


def _limit_inputs(walk):
    """The joint walk's limit prices ``[S, n]`` and expiry ``[S]`` (empty
    without a walk), and whether it has limit orders and no stop settings
    (it then walks only a bar where an order stands)."""
    if walk is None:
        return np.empty((0, 0)), np.zeros(0, np.int64), False
    return walk.limit, walk.expiry, bool(walk.limit.shape[1] > 0 and walk.fractions.max() <= 0.0
                                         and walk.sl_price.shape[1] == 0 and walk.tp_price.shape[1] == 0)


@njit(cache=True, inline="always")
def _walks(cfg, a, syms, m, ss):
    """Does step 5 of account ``a`` walk (``_walk_joint``)?  Always with
    stops or finer bars; with limit orders only, when one stands (with
    finer bars too: ``_finer`` asks ``_standing`` per sub-step)."""
    if cfg[WALK] != 2.0:
        return cfg[WALK] != 0.0
    return _standing(a, syms, m, ss)


@njit(cache=True, inline="always")
def _standing(a, syms, m, ss):
    """Does a limit order of one of account ``a``'s symbols stand?"""
    for k in range(m):
        if ss[syms[a, k], LIM_SIDE] != 0.0:
            return True
    return False


def _venue_arg(fsv, venue):
    """The joint walk's venue: None on spot margin (none of its perp code compiled), else (fsv, venue)."""


@overload(_venue_arg)
def _venue_arg_typed(fsv, venue):
    # chosen by type (an njit function returning None or a tuple would be typed Optional, which numba
    # cannot index)
    if isinstance(venue, types.NoneType):
        return lambda fsv, venue: None
    return lambda fsv, venue: (fsv, venue)


def simulate_multi(g, ac, config, out, orders, liqs, calls, venue=None, walk=None, detail=None, spot=True):
    """Run ``S`` symbols through ``A`` cross accounts (each holding two or more) on the grid ``g``, with
    ``ac``, ``config``, writing ``out`` and the records (``inputs``: ``Grid``, ``Accounts``, ``MultiConfig``,
    ``MultiOut``).  Returns ``(complete, stats)``: False when a record buffer ran short (grow it, call
    again).  None (nothing of it compiled) or: ``venue`` a cross perp account's ``inputs.CrossVenue``;
    ``walk`` the joint walk's stops and limit orders (``inputs.JointStops``); ``detail`` finer bars
    (``inputs.JointDetail``); ``spot`` None beside a venue (numba prunes only on a None argument: spot
    margin's steps, under ``spot is not None``, are then not compiled; tests/test_compile_prune.py).
    Python: it makes the books before the first bar (all capital in quote) and ``_loop``, compiled, runs
    the bars (a compiled function around the loop would cost a first run its compile and link again)."""
    if venue is not None and spot is not None:  # (one venue's steps or the other's, never both)
        raise ValueError("simulate_multi: a perp venue needs spot=None")
    limits, capital = config.borrow_limits, ac.capital  # (limits: [S] bases, quote)
    n_sym, n_acct = g.open.shape[0], capital.shape[0]
    tot = np.zeros(N_STATS)
    sb = np.zeros((n_sym, 3))
    aq = np.zeros((n_acct, 3))
    aq[:, HELD] = capital
    n_of, syms_of = _members(ac.symbol_account, n_acct)
    lv = np.empty((n_acct, 6))
    lv[:, M0], lv[:, CALL], lv[:, MLR] = ac.initial_ml, ac.call_ml, ac.liquidation_ml
    lv[:, LIQ_FEE], lv[:, RESTORE], lv[:, LIMIT_Q] = ac.liquidation_fee, ac.restore_ml, limits[n_sym]
    limit, expiry, limits_only = _limit_inputs(walk)
    cfg = _settings_row(config, walk, detail, limits_only)
    ss = np.zeros((n_sym, N_SS))  # LAST_CLOSE 0: a symbol before its first bar holds nothing
    ss[:, PENDING], ss[:, LAST_TARGET], ss[:, ENTRY], ss[:, BEST] = np.nan, np.nan, np.nan, np.nan
    ss[:, LIMIT_B] = limits[:n_sym]
    ss[:, PEND_LIM] = np.nan
    sa = np.zeros((n_acct, 6))
    sa[:, T_PREV], sa[:, NEXT_HOUR], sa[:, ABOVE_CALL] = -1.0, -np.inf, 1.0
    # quiet runs (_close_quiet) are written for this; not with auto-repay off (its rows there cost them 5-7 %)
    one_cross = n_acct == 1 and n_sym >= 2 and venue is None and out.sym.shape[1] == len(SYMBOL_ROWS)
    fsv = np.zeros((n_sym if venue is not None else 0, usdm.N_SLOTS))  # per perp symbol its table in force
    vp = np.full(n_sym + 1, -1, dtype=np.int64)  # the next funding charge, each symbol's loaded version
    vp[0] = 0
    books = (sb, aq, np.zeros(6), ss, sa, np.zeros((N_SCRATCH, n_sym + 1)), tot)
    marks = (g.mark_open, g.mark_high, g.mark_low)
    bars = ((g.open, *marks), (g.open, g.high, g.low, *marks),
            (syms_of, g.open, g.high, g.low, g.close, *marks, _mark_closes(walk, g.close)), (config.rate_h0, config.rates))
    tables = (lv, cfg, np.zeros((9, n_sym)), fsv, vp, limit, expiry, n_of, syms_of, one_cross)
    if not _loop(g, config, ac, out, (orders, liqs, calls), books, tables, bars, venue, walk, detail, spot):
        return False, tot
    out.interest_base[:] = ss[:, INT_BASE]
    out.interest_quote[:] = sa[:, INT_QUOTE]
    return True, tot


# _nrt=False: no reference counting in the bar loop (kernel._loop's reason: each array a step is handed
# was counted on every eventful bar, two atomic operations and an opaque call each, ~12 % of bench
# --symbols 2 in the counting functions alone, perf); simulate_multi allocates, the loop allocates nothing
# and gets no array back from a call (tests/test_kernel_loop.py)
@njit(cache=True, nogil=True, _nrt=False, pipeline_class=JoinedCompiler)  # (waits for warm's helper at typing)
def _loop(g, config, ac, out, recs, books, tables, bars, venue, walk, detail, spot):
    """``simulate_multi``'s bars on its books and tables; False when a record buffer ran short."""
    ts, open_, high, low, close, target, mark_open, mark_high, mark_low = g
    rebalance, stop_on_liquidation = config.rebalance, config.stop_on_liquidation
    out_acct, out_sym = out.acct, out.sym
    capital, call_ml = ac.capital, ac.call_ml
    orders, liqs, calls = recs
    sb, aq, st, ss, sa, scr, tot = books
    lv, cfg, loc, fsv, vp, limit, expiry, n_of, syms_of, one_cross = tables
    perp_bars, cross_bars, walk_bars, hourly = bars
    rate_h0, rates = hourly
    n_sym, n = open_.shape
    n_acct = capital.shape[0]
    stops = walk is not None  # (multi_accounts passes it with a stop on or limit orders)
    resume_at = 0  # the first bar a quiet run (_close_quiet, _close_quiet_perp) did not close
    perp = _venue_arg(fsv, venue)  # (the walk's venue: None on spot margin)
    for i in range(n):
        if i < resume_at:
            continue
        if (tot[N_ORD] + n_sym * ORDERS_PER_STEP > orders.shape[0]
                or tot[N_LIQ] + n_acct * ORDERS_PER_STEP > liqs.shape[0] or tot[N_CALL] + n_acct > calls.shape[0]):
            return False
        t = ts[i]
        for a in range(n_acct):
            m = n_of[a]
            active = False
            for k in range(m):
                if open_[syms_of[a, k], i] == open_[syms_of[a, k], i]:
                    active = True
            if not active:
                _hold(out_acct, a, i, capital[a])
                continue
            liquidated = need = False
            if venue is not None:
                need = not _perp_quiet(i, a, syms_of, m, sb, aq, ss, perp_bars, venue, fsv, vp)
                if stops and not need:  # a held symbol's levels within its bar: the walk (written out here:
                    # _stops_in_reach inlined here made bench --symbols 2 --venue usdm --stops 15-25 % slower)
                    for k in range(m):
                        s = syms_of[a, k]
                        if open_[s, i] == open_[s, i] and not need:
                            need = _stop_near(walk, s, i, sb[s, HELD], ss, (open_[s, i], high[s, i], low[s, i]))
            if spot is not None:
                need = _cross_need(i, t, a, m, syms_of, books, cross_bars, lv, walk)
            if need:
                if venue is not None:
                    liquidated = _step_perp(i, a, syms_of, m, perp_bars, books, (venue, fsv, vp), lv, cfg, recs,
                                            expiry)
                if spot is not None:
                    liquidated = _step_cross(i, t, a, syms_of, m, books, cross_bars, lv, cfg, hourly, recs,
                                             expiry)
                if detail is not None:  # 5. on finer bars (None: numba compiles none of it)
                    fine = _finer(i, a, m, walk_bars, books, (lv, cfg, rates, t // HOUR - rate_h0, walk), recs,
                                  detail, walk)
                    if fine < 0:
                        return False
                    liquidated = fine > 0 or liquidated
                elif walk is not None and _walks(cfg, a, syms_of, m, ss):  # 5. the walk (None: none compiled)
                    liquidated = _walk_joint((i, i, 0.0, False), a, m, walk_bars, books,
                                             (lv, cfg, rates, t // HOUR - rate_h0, walk), orders, liqs,
                                             perp) or liquidated
            elif stops:  # the walk would fire nothing: only the held symbols' best prices move
                _best_over_bar(i, a, m, syms_of, sb, ss, open_, high, low)
            if venue is not None:  # every bar its quiet run (_close_quiet_perp) did not close: inlined
                _close_at(i, t, a, syms_of, m, books, close, fsv, venue, out_acct, call_ml[a])
                _decide_at(i, a, syms_of, m, sb, target, liquidated, stop_on_liquidation, rebalance, out_acct[a, 0, i],
                           ss, sa)
                if limit.shape[1] > 0:
                    _limit_decisions(i, a, syms_of, m, ss, limit, open_)
            if spot is not None:
                _close(i, t, a, syms_of, m, books, close, fsv, venue, out_acct, call_ml[a])
                _decide(i, a, syms_of, m, sb, target, liquidated, stop_on_liquidation, rebalance, out_acct[a, 0, i], ss,
                        sa)
                if limit.shape[1] > 0:
                    _limit_decisions(i, a, syms_of, m, ss, limit, open_)
        _symbol_rows(i, sb, ss, out_sym)
        if spot is not None:
            if one_cross and i + 1 < n and sa[0, ABOVE_CALL] != 0.0:  # (below the call level bars are rarely quiet)
                resume_at = _close_quiet(i + 1, g, syms_of, books, loc, lv, rebalance, out, hourly, cfg[ROUND] != 0.0,
                                         walk)
        if venue is not None and walk is None and n_acct == 1 and i + 1 < n:  # (a cross perp account: the only one)
            resume_at = _close_quiet_perp(i + 1, g, syms_of, books, rebalance, out, (venue, fsv, vp))
    return True


def _members(symbol_account, n_acct):
    """Each account's number of symbols, and its symbols (``syms_of[a, :n_of[a]]``)."""
    n_of = np.zeros(n_acct, dtype=np.int64)
    syms_of = np.zeros((n_acct, symbol_account.shape[0]), dtype=np.int64)
    for s, a in enumerate(symbol_account):
        syms_of[a, n_of[a]] = s
        n_of[a] += 1
    return n_of, syms_of


def _settings_row(config, walk, detail, limits_only):
    """``cfg``: the run's settings the steps read (``FEE`` … ``ON_FLAT``),
    ``WALK`` the code of what walks a bar (none; stops; limit orders only;
    limit orders only, with finer bars)."""
    walk_code = 0.0 if walk is None and detail is None else (2.0 if limits_only and detail is None else (
        3.0 if limits_only else 1.0))
    return np.array([config.fee, config.slippage, 1.0 if config.full_liquidation else 0.0,
                     1.0 if config.round_interest else 0.0, 1.0 if config.stop_on_liquidation else 0.0, walk_code,
                     1.0 if config.auto_repay else 0.0, 1.0 if config.repay_on_flat else 0.0])
