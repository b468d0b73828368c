"""The compiled bar loop for several symbols in one or more margin accounts.

Arrays ``[S, n]`` in (NaN where a symbol has no bar on the union time grid),
arrays and record arrays out; no pandas, no I/O.  Each account is one
symbol's isolated account or the cross account of several; an account with
one symbol runs exactly the one-symbol kernel's steps (``kernel.py``) on its
six numbers, an account with several the joint path and the cross
liquidation of ``cross.py``.  The order of events is docs/model-choices.md
"Several symbols".  One-symbol ``kernel.py`` is left as it is (and as fast).
"""
import numpy as np
from numba import njit

from .account import HB, HQ, IB, IQ, PB, PQ, _assets, _debt, _forced_exit, _position, _record_order, _trade_to
from .cross import HELD, INTEREST, PRINCIPAL, book_value, liquidate_cross, load, others_term, store, trade_to_cross
from .intrabar import MAX_LIQUIDATIONS_PER_BAR
from .kernel import _opens_trade
from .records import LIQUIDATION, REBALANCE, SIGNAL
from .rules import (
    HOUR,
    falling_price_hurts,
    hour_boundaries_between,
    interest_charge,
    joint_theta,
    liquidation_price,
    margin_level,
)

# rows of ``out_acct[a]`` and ``out_sym[s]``
ACCOUNT_ROWS = ("equity", "debt", "interest_owed", "interest_paid")
SYMBOL_ROWS = ("position", "interest_symbol")  # cumulative quote value of its base interest and its fills' borrow charges
# totals in ``stats``
STATS = ("fees_paid", "liquidation_fees", "bad_debt", "n_orders", "n_liquidations", "n_margin_calls",
         "n_capped", "n_trades")
N_STATS = len(STATS)
FEES, LIQ_FEES, BAD, N_ORD, N_LIQ, N_CALL, N_CAP, N_TRD = range(N_STATS)
ORDERS_PER_STEP = 2 + MAX_LIQUIDATIONS_PER_BAR  # per symbol: its order, a gap fill, the intrabar fills


@njit(cache=True)
def _fill_order(orders, k, s, trigger, event):
    orders[k].symbol = s
    orders[k].trigger = trigger
    orders[k].event = event


@njit(cache=True)
def _liq_record(liqs, k, a, theta, gap):
    liqs[k].account = a
    liqs[k].theta = theta
    liqs[k].gap = gap


@njit(cache=True)
def _single_liquidation(st, i, a, s, trigger, slip, liq_fee, restore, full, mlr, gap, orders, liqs, tot):
    k_o = int(tot[N_ORD])
    k_l = int(tot[N_LIQ])
    f, b, row = _forced_exit(st, i, trigger, trigger, slip, liq_fee, restore, full, mlr, orders, k_o, liqs, k_l)
    _liq_record(liqs, row, a, np.nan, gap)
    _fill_order(orders, k_o, s, trigger, row)
    tot[N_ORD] += 1
    tot[N_LIQ] += 1
    tot[LIQ_FEES] += f
    tot[BAD] += b


@njit(cache=True)
def _step_single(i, t, a, s, st, o, h, lo, c, rb, rq, fee, slip, m0, call_ml, mlr, liq_fee, restore, full,
                 round_up, pending, pending_kind, t_prev, next_hour, paid, paid_b, int_b, int_q, above_call,
                 orders, liqs, calls, tot):
    """Steps 1–7 of an account with one symbol: kernel.simulate's, without
    stops and mark prices.  Returns whether it was liquidated."""
    liquidated = False
    # 1. hour boundaries passed since the account's last bar
    on_hour = False
    if t >= next_hour[a]:
        on_hour = t % HOUR == 0
        if t_prev[a] >= 0 and (st[PB] > 0.0 or st[PQ] > 0.0):
            for _ in range(hour_boundaries_between(t_prev[a], t)):
                cb = interest_charge(st[PB], rb, round_up)
                cq = interest_charge(st[PQ], rq, round_up)
                st[IB] += cb
                st[IQ] += cq
                int_b[s] += cb
                int_q[a] += cq
                paid[a] += cb * o + cq
                paid_b[s] += cb * o
        next_hour[a] = (t // HOUR + 1) * HOUR
    # 2. gap liquidation
    if st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0:
        if _assets(st, o) <= mlr * _debt(st, o):
            _single_liquidation(st, i, a, s, o, slip, liq_fee, restore, full, mlr, True, orders, liqs, tot)
            liquidated = True
            pending[s] = np.nan
    # 3. the order decided at the last close
    pb0 = st[PB]
    pq0 = st[PQ]
    if pending[s] == pending[s]:
        before = _position(st)
        side, q, price, fee_value, capped, cb, cq = _trade_to(st, pending[s], o, fee, slip, rb, rq, m0, round_up)
        if side != 0:
            int_b[s] += cb
            int_q[a] += cq
            paid[a] += cb * o + cq
            paid_b[s] += cb * o
            tot[FEES] += fee_value
            k = int(tot[N_ORD])
            _record_order(orders, k, i, side, pending_kind[s], capped, q, price, fee_value, st, cb * o + cq,
                          before, cb + cq)
            _fill_order(orders, k, s, np.nan, -1)
            tot[N_ORD] += 1
            tot[N_TRD] += _opens_trade(before, _position(st))
        tot[N_CAP] += capped
        pending[s] = np.nan
    # 4. the whole hour at this open
    if on_hour:
        cb = interest_charge(min(pb0, st[PB]), rb, round_up)
        cq = interest_charge(min(pq0, st[PQ]), rq, round_up)
        st[IB] += cb
        st[IQ] += cq
        int_b[s] += cb
        int_q[a] += cq
        paid[a] += cb * o + cq
        paid_b[s] += cb * o
    # 5. + 6. the adverse extreme
    db = st[PB] + st[IB]
    if db + st[PQ] + st[IQ] > 0.0:
        worst = lo if falling_price_hurts(st[HB], db, mlr) else h
        assets_x = _assets(st, worst)
        debt_x = _debt(st, worst)
        if assets_x <= call_ml * debt_x and above_call[a]:
            k = int(tot[N_CALL])
            calls[k].bar = i
            calls[k].margin_level = margin_level(assets_x, debt_x)
            calls[k].account = a
            tot[N_CALL] += 1
        if assets_x <= mlr * debt_x * (1.0 + 1e-9):
            for _ in range(MAX_LIQUIDATIONS_PER_BAR):
                p_liq, side = liquidation_price(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], mlr)
                if side == 1 and lo <= p_liq:
                    trigger = min(o, p_liq)
                elif side == -1 and h >= p_liq:
                    trigger = max(o, p_liq)
                else:
                    break
                _single_liquidation(st, i, a, s, trigger, slip, liq_fee, restore, full, mlr, trigger == o, orders,
                                    liqs, tot)
                liquidated = True
                if st[PB] + st[IB] + st[PQ] + st[IQ] == 0.0:
                    break
    return liquidated


@njit(cache=True)
def _charge_book(sb, aq, a, syms, m, principals, pq, rate_b, rq, round_up, cur, int_b, int_q, paid, paid_b):
    """One hour on the given base principals and quote principal of a cross account."""
    for k in range(m):
        s = syms[k]
        cb = interest_charge(principals[k], rate_b[s], round_up)
        sb[s, INTEREST] += cb
        int_b[s] += cb
        paid[a] += cb * cur[k]
        paid_b[s] += cb * cur[k]
    cq = interest_charge(pq, rq, round_up)
    aq[a, INTEREST] += cq
    int_q[a] += cq
    paid[a] += cq


@njit(cache=True)
def _cross_liquidation(sb, aq, i, a, syms, m, trig, tradable, theta, slip, liq_fee, restore, full, orders, liqs,
                       qty, fill, side, tot):
    k_l = int(tot[N_LIQ])
    rec = liqs[k_l]
    rec.bar = i
    before = np.empty(m)
    for k in range(m):
        s = syms[k]
        before[k] = sb[s, HELD] - sb[s, PRINCIPAL] - sb[s, INTEREST]
    f, b = liquidate_cross(sb, aq, a, syms, m, trig, tradable, slip, liq_fee, restore, full, rec, qty, fill, side)
    _liq_record(liqs, k_l, a, theta, theta == 0.0)
    tot[N_LIQ] += 1
    tot[LIQ_FEES] += f
    tot[BAD] += b
    for k in range(m):
        if side[k] != 0:
            s = syms[k]
            o = orders[int(tot[N_ORD])]
            o.bar = i
            o.side = side[k]
            o.kind = LIQUIDATION
            o.capped = False
            o.ambiguous = False
            o.quantity = qty[k]
            o.price = fill[k]
            o.fee = 0.0  # the event's fee is on the liquidation record, not on one symbol
            o.position_before = before[k]
            o.position = sb[s, HELD] - sb[s, PRINCIPAL] - sb[s, INTEREST]
            o.interest = 0.0
            o.charge = 0.0
            o.symbol = s
            o.trigger = trig[k]
            o.event = k_l
            tot[N_ORD] += 1


@njit(cache=True)
def _step_cross(i, t, a, syms, m, sb, aq, st, open_, high, low, close, last_close, rate_b, rq, fee, slip, m0,
                call_ml, mlr, liq_fee, restore, full, round_up, pending, pending_kind, t_prev, next_hour, paid,
                paid_b, int_b, int_q, above_call, orders, liqs, calls, tot, cur, ext, tradable, pb0, qty, fill, side):
    """Steps 1–7 of a cross account with several symbols."""
    liquidated = False
    for k in range(m):
        s = syms[k]
        o = open_[s, i]
        tradable[k] = o == o
        cur[k] = o if tradable[k] else last_close[s]
    # 1. hour boundaries passed since the account's last active time
    on_hour = False
    if t >= next_hour[a]:
        on_hour = t % HOUR == 0
        if t_prev[a] >= 0:
            nb = hour_boundaries_between(t_prev[a], t)
            for _ in range(nb):
                for k in range(m):
                    pb0[k] = sb[syms[k], PRINCIPAL]
                _charge_book(sb, aq, a, syms, m, pb0, aq[a, PRINCIPAL], rate_b, rq, round_up, cur, int_b, int_q,
                             paid, paid_b)
        next_hour[a] = (t // HOUR + 1) * HOUR
    # 2. gap liquidation at the current prices
    assets, debt = book_value(sb, aq, a, syms, m, cur)
    if debt > 0.0 and assets <= mlr * debt:
        _cross_liquidation(sb, aq, i, a, syms, m, cur, tradable, 0.0, slip, liq_fee, restore, full, orders, liqs,
                           qty, fill, side, tot)
        liquidated = True
        for k in range(m):
            pending[syms[k]] = np.nan
    # 3. pending orders in symbol order
    for k in range(m):
        pb0[k] = sb[syms[k], PRINCIPAL]
    pq0 = aq[a, PRINCIPAL]
    for k in range(m):
        s = syms[k]
        if not tradable[k] or pending[s] != pending[s]:
            continue
        assets, debt = book_value(sb, aq, a, syms, m, cur)
        w = others_term(sb, syms, m, cur, k, m0)
        load(st, sb, aq, s, a)
        before = _position(st)
        o = cur[k]
        side_, q, price, fee_value, capped, cb, cq = trade_to_cross(st, pending[s], o, assets - debt, w,
                                                                    1e-9 * (assets + debt), fee, slip, rate_b[s], rq,
                                                                    m0, round_up)
        store(st, sb, aq, s, a)
        if side_ != 0:
            int_b[s] += cb
            int_q[a] += cq
            paid[a] += cb * o + cq
            paid_b[s] += cb * o + cq  # the symbol's share: its base interest and its own borrows
            tot[FEES] += fee_value
            j = int(tot[N_ORD])
            _record_order(orders, j, i, side_, pending_kind[s], capped, q, price, fee_value, st, cb * o + cq,
                          before, cb + cq)
            _fill_order(orders, j, s, np.nan, -1)
            tot[N_ORD] += 1
            tot[N_TRD] += _opens_trade(before, _position(st))
        tot[N_CAP] += capped
        pending[s] = np.nan
    # 4. the whole hour at this open, on principal held across it
    if on_hour:
        for k in range(m):
            pb0[k] = min(pb0[k], sb[syms[k], PRINCIPAL])
        _charge_book(sb, aq, a, syms, m, pb0, min(pq0, aq[a, PRINCIPAL]), rate_b, rq, round_up, cur, int_b,
                     int_q, paid, paid_b)
    # 5. + 6. the joint path toward every symbol's adverse extreme
    for n_liq in range(MAX_LIQUIDATIONS_PER_BAR):
        f0 = aq[a, HELD] - mlr * (aq[a, PRINCIPAL] + aq[a, INTEREST])
        g = 0.0
        any_debt = aq[a, PRINCIPAL] + aq[a, INTEREST] > 0.0
        for k in range(m):
            s = syms[k]
            db = sb[s, PRINCIPAL] + sb[s, INTEREST]
            any_debt = any_debt or db > 0.0
            coef = sb[s, HELD] - mlr * db
            if coef > 0.0 and tradable[k]:
                ext[k] = low[s, i]
            elif coef < 0.0 and tradable[k]:
                ext[k] = high[s, i]
            else:
                ext[k] = cur[k]
            f0 += coef * cur[k]
            g += coef * (ext[k] - cur[k])
        if not any_debt:
            break
        if n_liq == 0:  # 6. the margin call, on the state after step 4
            ax, dx = book_value(sb, aq, a, syms, m, ext)
            if ax <= call_ml * dx and above_call[a]:
                j = int(tot[N_CALL])
                calls[j].bar = i
                calls[j].margin_level = margin_level(ax, dx)
                calls[j].account = a
                tot[N_CALL] += 1
        theta = joint_theta(f0, g)
        if theta < 0.0:
            break
        for k in range(m):
            ext[k] = cur[k] + theta * (ext[k] - cur[k])
        _cross_liquidation(sb, aq, i, a, syms, m, ext, tradable, theta, slip, liq_fee, restore, full, orders, liqs,
                           qty, fill, side, tot)
        liquidated = True
    return liquidated


@njit(cache=True, nogil=True)
def simulate_multi(
    ts, open_, high, low, close, target, symbol_account, capital, fee, slippage, rate_base, rate_quote,
    initial_ml, call_ml, liquidation_ml, liquidation_fee, restore_ml, full_liquidation, rebalance,
    round_interest, stop_on_liquidation, out_acct, out_sym, interest_base, interest_quote, orders, liqs, calls,
):
    """Run ``S`` symbols through ``A`` accounts on the time grid ``ts``.

    ``open_ … close``, ``target``: ``[S, n]``, NaN where a symbol has no bar
    (target NaN = hold).  ``symbol_account[s]``: the account of symbol s;
    per account ``capital`` and the profile levels (``initial_ml`` …
    ``restore_ml``, assets / debt terms); ``rate_base[s]`` and
    ``rate_quote``: hourly rates.  Writes ``out_acct`` ``[A, 4, n]``
    (``ACCOUNT_ROWS``), ``out_sym`` ``[S, 2, n]`` (``SYMBOL_ROWS``),
    interest charged per base asset / per account's quote in asset units,
    and the records.  Returns ``(complete, stats)``; ``complete`` False when
    a record buffer ran short (grow it and call again).
    """
    n_sym, n = open_.shape
    n_acct = capital.shape[0]
    tot = np.zeros(N_STATS)
    sb = np.zeros((n_sym, 3))
    aq = np.zeros((n_acct, 3))
    n_of = np.zeros(n_acct, dtype=np.int64)
    syms_of = np.zeros((n_acct, n_sym), dtype=np.int64)
    for s in range(n_sym):
        a = symbol_account[s]
        syms_of[a, n_of[a]] = s
        n_of[a] += 1
    for a in range(n_acct):
        aq[a, HELD] = capital[a]
    st = np.zeros(6)
    cur = np.zeros(n_sym)
    ext = np.zeros(n_sym)
    tradable = np.zeros(n_sym, dtype=np.bool_)
    pb0 = np.zeros(n_sym)
    qty = np.zeros(n_sym)
    fill = np.zeros(n_sym)
    side = np.zeros(n_sym, dtype=np.int64)
    last_close = np.zeros(n_sym)  # a symbol before its first bar holds nothing: price 0
    pending = np.full(n_sym, np.nan)
    pending_kind = np.zeros(n_sym, dtype=np.int8)
    last_target = np.full(n_sym, np.nan)
    suspended = np.zeros(n_sym, dtype=np.bool_)
    paid_b = np.zeros(n_sym)
    t_prev = np.full(n_acct, -1, dtype=np.int64)
    next_hour = np.full(n_acct, np.iinfo(np.int64).min, dtype=np.int64)
    paid = np.zeros(n_acct)
    above_call = np.ones(n_acct, dtype=np.bool_)
    halted = np.zeros(n_acct, dtype=np.bool_)
    eq_now = capital.copy()
    interest_base[:] = 0.0
    interest_quote[:] = 0.0

    for i in range(n):
        if (tot[N_ORD] + n_sym * ORDERS_PER_STEP > orders.shape[0]
                or tot[N_LIQ] + n_acct * ORDERS_PER_STEP > liqs.shape[0] or tot[N_CALL] + n_acct > calls.shape[0]):
            return False, tot
        t = ts[i]
        for a in range(n_acct):
            m = n_of[a]
            syms = syms_of[a]
            active = False
            for k in range(m):
                if open_[syms[k], i] == open_[syms[k], i]:
                    active = True
            if not active:  # nothing happens: the last values stand
                if i > 0:
                    for r in range(4):
                        out_acct[a, r, i] = out_acct[a, r, i - 1]
                else:
                    out_acct[a, 0, i] = capital[a]
                    for r in range(1, 4):
                        out_acct[a, r, i] = 0.0
                continue
            if m == 1:
                s = syms[0]
                load(st, sb, aq, s, a)
                c = close[s, i]
                liquidated = _step_single(
                    i, t, a, s, st, open_[s, i], high[s, i], low[s, i], c, rate_base[s], rate_quote, fee, slippage,
                    initial_ml[a], call_ml[a], liquidation_ml[a], liquidation_fee[a], restore_ml[a],
                    full_liquidation, round_interest, pending, pending_kind, t_prev, next_hour, paid, paid_b,
                    interest_base, interest_quote, above_call, orders, liqs, calls, tot)
                store(st, sb, aq, s, a)
                last_close[s] = c
                assets = _assets(st, c)
                debt = _debt(st, c)
                owed = st[IB] * c + st[IQ]
            else:
                liquidated = _step_cross(
                    i, t, a, syms, m, sb, aq, st, open_, high, low, close, last_close, rate_base, rate_quote, fee,
                    slippage, initial_ml[a], call_ml[a], liquidation_ml[a], liquidation_fee[a], restore_ml[a],
                    full_liquidation, round_interest, pending, pending_kind, t_prev, next_hour, paid, paid_b,
                    interest_base, interest_quote, above_call, orders, liqs, calls, tot, cur, ext, tradable, pb0,
                    qty, fill, side)
                # 7. the close (last closes for symbols without a bar)
                for k in range(m):
                    c = close[syms[k], i]
                    if c == c:
                        last_close[syms[k]] = c
                    cur[k] = last_close[syms[k]]
                assets, debt = book_value(sb, aq, a, syms, m, cur)
                owed = aq[a, INTEREST]
                for k in range(m):
                    owed += sb[syms[k], INTEREST] * cur[k]
            t_prev[a] = t
            eq = assets - debt
            eq_now[a] = eq
            above_call[a] = assets > call_ml[a] * debt or debt <= 0.0
            out_acct[a, 0, i] = eq
            out_acct[a, 1, i] = debt
            out_acct[a, 2, i] = owed
            out_acct[a, 3, i] = paid[a]
            # 8. decisions of the account's symbols
            if liquidated:
                for k in range(m):
                    suspended[syms[k]] = True
                halted[a] = halted[a] or stop_on_liquidation
            if halted[a]:
                continue
            for k in range(m):
                s = syms[k]
                x = target[s, i]
                if x != x:
                    continue
                if x != last_target[s]:
                    pending[s] = x
                    pending_kind[s] = SIGNAL
                    last_target[s] = x
                    suspended[s] = False
                elif rebalance > 0.0 and not suspended[s] and eq > 0.0:
                    pos = sb[s, HELD] - sb[s, PRINCIPAL] - sb[s, INTEREST]
                    if abs(pos * last_close[s] / eq - x) > rebalance * abs(x):
                        pending[s] = x
                        pending_kind[s] = REBALANCE
        for s in range(n_sym):
            out_sym[s, 0, i] = sb[s, HELD] - sb[s, PRINCIPAL] - sb[s, INTEREST]
            out_sym[s, 1, i] = paid_b[s]
    return True, tot
