"""The compiled bar loop: one symbol, one margin account.

Arrays in, arrays and record arrays out (the caller allocates them, so
NumPy's huge-page allocations serve the per-bar outputs); no pandas, no I/O, no Python
objects.  The order of events inside a bar is the one written down in
``docs/model-choices.md``; the rules themselves (margin level, liquidation
price, interest, borrow cap, liquidation sizes) come from ``rules.py``.

The account's moves live in ``account.py``, the path inside a bar in
``intrabar.py``.

Speed: most bars of a run are quiet (no order, no whole hour, prices well
inside the band where ML stays above the margin-call and liquidation
levels, ``rules.safe_band``).  After each eventful bar an inner loop closes
it and the quiet bars after it, so the hot loop is small; the event steps
run only where something can happen.  Keep per-bar code out of helper
functions: numba compiles an inlined helper with branches in the hot loop
into markedly slower code (measured: 2x for a 5-line drawdown helper).
"""
import numpy as np
from numba import njit

from .account import HB, HQ, IB, IQ, PB, PQ, _assets, _debt, _forced_exit, _position, _record_order, _trade_to
from .intrabar import MAX_LIQUIDATIONS_PER_BAR, _liquidations, _quiet, _replay, _track, _walk
from .limits import _cancel, _place, _walk_limit
from .records import REBALANCE, SIGNAL
from .rules import (
    HOUR,
    falling_price_hurts,
    hour_boundaries_between,
    interest_charge,
    margin_level,
    safe_band,
    stop_levels,
)


@njit(cache=True, inline="always")
def _opens_trade(before, after):
    """1 when a fill starts a round trip: from flat, or through zero."""
    return 1 if after != 0.0 and (before == 0.0 or (before > 0.0) != (after > 0.0)) else 0


RETURN_BLOCK = 64


@njit(cache=True, fastmath=True)
def _add_returns(block, m, sum_r, sum_r2, sum_neg2):
    """Add the bar returns of ``block[1..m]`` (``block[0]`` is the equity
    before them) to the running sums; a return from zero equity counts 0.

    Branch-free and fastmath so the block vectorises; the order of the sums is
    fixed by the code, so a run and a sweep row still agree to the bit.
    """
    for k in range(1, m + 1):
        p = block[k - 1]
        r = block[k] / p - 1.0 if p > 0.0 else 0.0
        neg = min(r, 0.0)
        sum_r += r
        sum_r2 += r * r
        sum_neg2 += neg * neg
    return sum_r, sum_r2, sum_neg2


# what ``stats`` holds at the end of a run, in this order
STATS = (
    "interest_base", "interest_quote", "liquidation_fees", "bad_debt", "interest_paid", "fees_paid",
    "final_equity", "sum_r", "sum_r2", "sum_neg2", "max_drawdown", "n_exposed", "min_margin_level",
    "n_orders", "n_liquidations", "n_margin_calls", "n_capped", "n_trades", "ambiguous_bars",
    "detail_missing_bars", "n_cancelled",
)
N_STATS = len(STATS)

# room a bar may need in the record buffers: its order, a gap liquidation,
# the intrabar ones and a stop exit; the caller grows the buffers and reruns
# when it runs short
ORDERS_PER_BAR = 3 + MAX_LIQUIDATIONS_PER_BAR
N_OUT = 5  # rows of ``out``: every byte per bar costs (fresh pages), the rest is derived


@njit(cache=True, nogil=True)  # nogil: sweeps run combinations on threads
def simulate(bars, marks, cfg, rates, detail, given, extra, out, orders, liqs, calls):
    """Run one symbol through one margin account.

    The inputs are the records of ``inputs.py``: ``bars`` (``Bars``),
    ``marks`` (``Marks``), the settings ``cfg`` (``Settings``), ``rates``
    (``Rates``), ``detail`` (``Detail``) and the strategy's ``given``
    (``Given``); their fields are read by name below.

    ``mark_*``: the mark price bars liquidation is checked against (the
    traded ``open_``, ``high``, ``low`` themselves when there is none, and
    ``mark_close`` empty); with stops or limit orders the walk inside the
    bar follows the mark bar alongside (docs/model-choices.md "Mark price").

    ``ts`` are bar open times in integer seconds (UTC); ``target`` the
    strategy's target exposure per bar (NaN = hold), read at the bar's close
    and executed at the next open.  ``rate_base``/``rate_quote``: hourly
    rates of the whole hours ``rate_h0, rate_h0 + 1, …`` (hours since the
    epoch; docs/model-choices.md "Rate histories").  ``stop_loss``,
    ``take_profit``, ``trailing_stop`` are fractions of the entry (best)
    price, 0 = off; ``pessimistic`` picks the path inside a bar.
    ``detail_*``: finer bars (empty arrays: none); bar ``i``'s usable ones
    are ``detail_start[i] .. detail_end[i] - 1`` (an empty range: none).  A
    strategy's orders (docs/model-choices.md "Limit orders", "Levels from a
    strategy"): ``limit`` a limit price per bar for the target decided there
    (NaN = market) standing ``expiry`` bars; ``sl_price``, ``tp_price``
    stop-loss / take-profit prices per bar, in force in the next bar (NaN =
    the fraction's level).  Each may be empty: none.
    ``auto_repay`` False: what a fill receives stays as balance and loans run
    on; ``repay_on_flat`` then repays them at a fill that leaves no position
    (docs/model-choices.md "Auto-repay off").  ``max_borrow_base``/
    ``max_borrow_quote``: the most principal the profile lets each asset be
    borrowed up to (+inf: no limit).

    Writes per bar into ``out`` (5 × n): equity, position, debt, interest
    owed, cumulative interest paid (margin level, cumulative fees and the
    ambiguous bars follow from these and the fills).  ``extra``: None, or
    4 × n rows (auto-repay off) for the cumulative quote interest, the
    cumulative base and quote interest charged at the open after the bar's
    order (step 4), in asset units, and the base owed (principal and
    interest): with loans running on in both assets, the split per asset
    and per trade cannot be derived otherwise.  Fills
    the record buffers ``orders``, ``liqs``, ``calls``.  With ``out`` of
    shape (5, 0) nothing per bar or per event is kept (sweeps): the buffers
    then only need one row.  Returns ``(n_orders, n_liqs, n_calls, complete,
    stats)``: ``complete`` is False when a buffer ran short (grow it and call
    again); ``stats`` holds the run's totals named in ``STATS``.
    """
    ts, open_, high, low, close = bars.ts, bars.open, bars.high, bars.low, bars.close
    mark_open, mark_high, mark_low, mark_close = marks.open, marks.high, marks.low, marks.close
    capital, fee, slippage = cfg.capital, cfg.fee, cfg.slippage
    rate_h0, rate_base, rate_quote = rates.h0, rates.base, rates.quote
    initial_ml, call_ml, liquidation_ml = cfg.initial_ml, cfg.call_ml, cfg.liquidation_ml
    liquidation_fee, restore_ml, full_liquidation = cfg.liquidation_fee, cfg.restore_ml, cfg.full_liquidation
    rebalance, round_interest, stop_on_liquidation = cfg.rebalance, cfg.round_interest, cfg.stop_on_liquidation
    stop_loss, take_profit, trailing_stop = cfg.stop_loss, cfg.take_profit, cfg.trailing_stop
    pessimistic, auto_repay, repay_on_flat = cfg.pessimistic, cfg.auto_repay, cfg.repay_on_flat
    max_borrow_base, max_borrow_quote = cfg.max_borrow_base, cfg.max_borrow_quote
    detail_open, detail_high, detail_low = detail.open, detail.high, detail.low
    detail_close, detail_start, detail_end = detail.close, detail.start, detail.end
    target, limit, expiry, sl_price, tp_price = given.target, given.limit, given.expiry, given.sl_price, given.tp_price
    n = ts.shape[0]
    equity, position, debt_out, owed_out, paid_out = out[0], out[1], out[2], out[3], out[4]
    after_b = 0.0  # cumulative step-4 charges, for ``extra``
    after_q = 0.0
    has_sl = sl_price.shape[0] > 0
    has_tp = tp_price.shape[0] > 0
    has_limit = limit.shape[0] > 0
    has_mark = mark_close.shape[0] > 0
    stops_on = stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0 or has_sl or has_tp
    entry = np.nan  # average entry price of the open position (kept with stops on)
    best = np.nan  # best price since it opened
    n_ambiguous = 0
    detail_on = detail_start.shape[0] > 0
    n_detail_missing = 0  # bars the path setting decided for want of finer bars
    record = out.shape[1] > 0  # False: summary only, the buffers are one-row scratch
    stats = np.zeros(N_STATS)
    n_orders = 0
    n_liqs = 0
    n_calls = 0
    n_capped = 0
    n_trades = 0
    prev_eq = capital
    block = np.empty(RETURN_BLOCK + 1)  # block[0]: the equity before the block
    block[0] = capital
    n_block = 0
    peak = capital
    sum_r = 0.0
    sum_r2 = 0.0
    sum_neg2 = 0.0
    max_dd = 0.0
    n_exposed = 0
    min_ml = np.inf

    st = np.zeros(6)
    st[HQ] = capital
    paid = 0.0  # cumulative interest charged, quote value
    fees_paid = 0.0
    int_base = 0.0
    int_quote = 0.0
    liq_fees = 0.0
    bad_debt = 0.0

    last_target = np.nan
    pending = np.nan
    pending_kind = SIGNAL
    pending_limit = np.nan  # the pending order's limit price (NaN: a market order)
    lim_side = 0  # the standing limit order: +1 buy, −1 sell, 0 none
    lim_q = 0.0
    lim_px = 0.0
    lim_b = 0.0  # what it borrowed at placement
    lim_placed = 0
    lim_capped = False
    lim_interest = 0.0  # its borrow charge, quote value, and in the borrowed asset
    lim_charge = 0.0
    n_cancelled = 0
    suspended = False  # rebalancing waits for a new target after a liquidation
    halted = False
    above_call = True  # the last close's margin level was above the margin-call level
    next_hour = ts[0] if n > 0 else 0  # first whole hour not yet passed
    rb = rate_base[0] if n > 0 else 0.0  # the rates in force in this bar's hour
    rq = rate_quote[0] if n > 0 else 0.0

    # After a bar's events, its close and the closes of the quiet bars that
    # follow run in one tight inner loop.  A quiet bar has no order at its
    # open, passes no whole hour, and every price of it (mark open, high, low
    # and the close) lies strictly inside the band where ML stays above the
    # margin-call level and the liquidation check's reach: steps 1-6 would do
    # nothing there, so it is only closed (same arithmetic, same results).
    m_band = max(call_ml, liquidation_ml * (1.0 + 2e-9))
    resume_at = 0  # the first bar the inner loop did not close
    for i in range(n):
        if i < resume_at:
            continue
        if record and (n_orders + ORDERS_PER_BAR > orders.shape[0] or n_liqs + ORDERS_PER_BAR > liqs.shape[0]
                       or n_calls + 1 > calls.shape[0]):
            return n_orders, n_liqs, n_calls, False, stats
        o = open_[i]
        # 1. hour boundaries passed since the last bar's open (long bars, gaps);
        # next_hour spares an integer division on bars that cross no hour
        t = ts[i]
        on_hour = False
        if t >= next_hour:
            on_hour = t % HOUR == 0
            if i > 0 and (st[PB] > 0.0 or st[PQ] > 0.0):
                h1 = ts[i - 1] // HOUR + 1 - rate_h0  # the first boundary passed, as a rate index
                for k in range(hour_boundaries_between(ts[i - 1], t)):  # each at the rate in force then
                    cb = interest_charge(st[PB], rate_base[h1 + k], round_interest)
                    cq = interest_charge(st[PQ], rate_quote[h1 + k], round_interest)
                    st[IB] += cb
                    st[IQ] += cq
                    int_base += cb
                    int_quote += cq
                    paid += cb * o + cq
            rb = rate_base[t // HOUR - rate_h0]
            rq = rate_quote[t // HOUR - rate_h0]
            next_hour = (t // HOUR + 1) * HOUR

        # 2. a bar that opens beyond the liquidation level is liquidated first
        liquidated = False
        if st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0:
            mo = mark_open[i]
            if _assets(st, mo) <= liquidation_ml * _debt(st, mo):  # ML ≤ level, without a division
                if lim_side != 0:  # a liquidation cancels the open order first
                    _cancel(st, lim_side, lim_b)
                    lim_side = 0
                    n_cancelled += 1
                pos_before = _position(st)
                f, b, row = _forced_exit(st, i, mo, o, slippage, liquidation_fee, restore_ml, full_liquidation,
                                         liquidation_ml, orders, n_orders, liqs, n_liqs, auto_repay)
                if row >= 0:  # (−1: nothing to liquidate; the order it cancelled stays cancelled)
                    liqs[row].gap = True
                    if stops_on:
                        entry, best = _track(pos_before, _position(st), liqs[row].fill_price, o, entry, best)
                    n_orders += 1
                    n_liqs += 1
                    liq_fees += f
                    bad_debt += b
                    # the order decided at the last close still follows (step 3), unless the run stops
                    # here or it was a rebalance; a target change ends the suspension, so only a
                    # dropped order leaves the position suspended
                    if stop_on_liquidation or pending_kind == REBALANCE or pending != pending:
                        liquidated = True
                        pending = np.nan

        # 3. the order decided at the last close
        pb0 = st[PB]
        pq0 = st[PQ]
        if lim_side != 0 and (pending == pending or i >= lim_placed + expiry):  # replaced, or its bars are up
            _cancel(st, lim_side, lim_b)
            lim_side = 0
            n_cancelled += 1
        if pending == pending and pending_limit == pending_limit:
            lim_side, lim_q, lim_b, lim_capped, cb, cq = _place(st, pending, o, pending_limit, fee, rb, rq,
                                                                initial_ml, round_interest, max_borrow_base,
                                                                max_borrow_quote)
            n_capped += lim_capped
            if lim_side != 0:
                lim_px = pending_limit
                lim_placed = i
                lim_interest = cb * o + cq
                lim_charge = cb + cq
                int_base += cb
                int_quote += cq
                paid += cb * o + cq
            pending = np.nan
        elif pending == pending:
            pos_before = _position(st)
            side, q, price, fee_value, capped, cb, cq = _trade_to(
                st, pending, o, fee, slippage, rb, rq, initial_ml, round_interest, auto_repay, repay_on_flat,
                max_borrow_base, max_borrow_quote
            )
            if side != 0:
                int_base += cb
                int_quote += cq
                paid += cb * o + cq
                fees_paid += fee_value
                if record:
                    _record_order(orders, n_orders, i, side, pending_kind, capped, q, price, fee_value, st, cb * o + cq,
                                  pos_before, cb + cq)
                n_orders += 1
                n_trades += _opens_trade(pos_before, _position(st))
                if stops_on:
                    entry, best = _track(pos_before, _position(st), price, o, entry, best)
            n_capped += capped  # an order cut to nothing is counted too, though it made no fill
            pending = np.nan

        # 4. the whole hour at this open falls on principal held across it
        if on_hour:
            cb = interest_charge(min(pb0, st[PB]), rb, round_interest)
            cq = interest_charge(min(pq0, st[PQ]), rq, round_interest)
            st[IB] += cb
            st[IQ] += cq
            int_base += cb
            int_quote += cq
            paid += cb * o + cq
            if extra is not None:
                after_b += cb
                after_q += cq

        # 5. + 6. the bar's adverse extreme against the margin-call and liquidation levels
        db = st[PB] + st[IB]
        liq_near = False  # the adverse extreme is at or near the liquidation level
        if db + st[PQ] + st[IQ] > 0.0:
            worst = mark_low[i] if falling_price_hurts(st[HB], db, liquidation_ml) else mark_high[i]
            assets_x = _assets(st, worst)
            debt_x = _debt(st, worst)
            liq_near = assets_x <= liquidation_ml * debt_x * (1.0 + 1e-9)
            if assets_x <= call_ml * debt_x and above_call:  # ML ≤ call, without a division per bar
                if record:
                    calls[n_calls].bar = i
                    calls[n_calls].margin_level = margin_level(assets_x, debt_x)
                n_calls += 1
        # a walk through the bar (stops, finer bars, a limit order) returns its totals here
        walked = False
        mark_last = True  # the walk leaves marking its ambiguous fill to the kernel
        fv = pv = cb = cq = lf = b = 0.0
        forced = False
        is_ambiguous = False
        pos = _position(st)
        slp = np.nan  # a strategy's stop-loss / take-profit price for this bar
        tpp = np.nan
        if (has_sl or has_tp) and i > 0:
            slp = sl_price[i - 1] if has_sl else np.nan
            tpp = tp_price[i - 1] if has_tp else np.nan
        walk_limit = lim_side != 0  # a standing limit order: the walk, with the order as one more level
        if walk_limit:
            pass
        elif stops_on and pos != 0.0 and _quiet(pos > 0.0, entry, best, stop_loss, take_profit, trailing_stop,
                                                slp, tpp, high[i], low[i], liq_near):
            if best == best:  # what the walk would leave: the best price of the bar
                best = max(best, high[i]) if pos > 0.0 else min(best, low[i])
        elif stops_on and pos != 0.0 and has_mark:
            walk_limit = True  # its walk follows the mark bar alongside
        elif detail_on and (liq_near or (stops_on and pos != 0.0)) and detail_end[i] > detail_start[i]:
            (n_orders, n_liqs, fv, pv, cb, cq, lf, b, entry, best, forced, is_ambiguous, short) = _replay(
                st, i, detail_open, detail_high, detail_low, detail_close, detail_start[i], detail_end[i], entry,
                best, stops_on, stop_loss, take_profit, trailing_stop, slp, tpp, pessimistic, fee, slippage, rb, rq,
                initial_ml, round_interest, liquidation_fee, restore_ml, full_liquidation, liquidation_ml, record,
                orders, n_orders, liqs, n_liqs, auto_repay, repay_on_flat, max_borrow_base, max_borrow_quote)
            if short:
                return n_orders, n_liqs, n_calls, False, stats
            walked = True
            mark_last = False  # the replay marks the sub-bar's own fill
        elif stops_on and pos != 0.0:
            n_detail_missing += detail_on
            (n_orders, n_liqs, fv, pv, cb, cq, lf, b, entry, best, forced, n_l, is_ambiguous) = _walk(
                st, i, o, high[i], low[i], close[i], entry, best, stop_loss, take_profit, trailing_stop, slp, tpp,
                pessimistic, fee, slippage, rb, rq, initial_ml, round_interest, liquidation_fee, restore_ml,
                full_liquidation, liquidation_ml, record, orders, n_orders, liqs, n_liqs, auto_repay, repay_on_flat,
                max_borrow_base, max_borrow_quote)
            walked = True
        elif liq_near:  # the division of the liquidation price only where the level is in reach
            n_detail_missing += detail_on
            # (entry and best are kept even with stops off: a buy-back can leave a position)
            n_orders, n_liqs, lf, b, n_l, entry, best = _liquidations(
                st, i, mark_open[i], mark_high[i], mark_low[i], high[i], low[i], entry, best, slippage,
                liquidation_fee, restore_ml, full_liquidation, liquidation_ml, orders, n_orders, liqs, n_liqs,
                auto_repay)
            liq_fees += lf
            bad_debt += b
            liquidated = liquidated or n_l > 0
        if walk_limit:
            mc = mark_close[i] if has_mark else close[i]
            (n_orders, n_liqs, fv, pv, cb, cq, lf, b, entry, best, forced, n_l, is_ambiguous, lim_side, gone,
             opened) = _walk_limit(
                st, i, o, high[i], low[i], close[i], entry, best, stops_on, stop_loss, take_profit, trailing_stop,
                slp, tpp, pessimistic, fee, slippage, rb, rq, initial_ml, round_interest, liquidation_fee,
                restore_ml, full_liquidation, liquidation_ml, record, orders, n_orders, liqs, n_liqs, lim_side,
                lim_q, lim_px, lim_b, lim_capped, lim_interest, lim_charge, has_mark, mark_open[i], mark_high[i],
                mark_low[i], mc, auto_repay, repay_on_flat, max_borrow_base, max_borrow_quote)
            n_cancelled += gone
            n_trades += opened
            walked = True
        if walked:
            fees_paid += fv
            paid += pv
            int_base += cb
            int_quote += cq
            liq_fees += lf
            bad_debt += b
            liquidated = liquidated or forced
            n_ambiguous += is_ambiguous
            if mark_last and record and is_ambiguous and n_orders > 0:
                orders[n_orders - 1].ambiguous = True  # the forced fill the path order decided

        # 7. the close, then those of the quiet bars after it
        pos_after = _position(st)
        band_lo, band_hi = safe_band(st[HB], st[HQ], st[PB] + st[IB], st[PQ] + st[IQ], m_band)
        q_lo, q_hi = band_lo, band_hi  # the band the quiet bars' lows and highs must stay in
        long_ = pos_after > 0.0
        trail = False
        if stops_on and pos_after != 0.0:  # a stop or take-profit level also ends the quiet run
            s_lv, _, g_lv = stop_levels(entry, best, long_, stop_loss, take_profit, 0.0)
            lo_lv, hi_lv = (s_lv, g_lv) if long_ else (g_lv, s_lv)
            if lo_lv == lo_lv:
                q_lo = max(q_lo, lo_lv)
            if hi_lv == hi_lv:
                q_hi = min(q_hi, hi_lv)
            trail = trailing_stop > 0.0 and best == best
        if lim_side != 0 or (stops_on and pos_after != 0.0 and (has_sl or has_tp or has_mark)):
            q_lo, q_hi = np.inf, -np.inf  # a standing limit, a strategy's levels, stops on a mark: no quiet run
        j = i
        for j in range(i, n):
            c = close[j]
            assets = _assets(st, c)
            debt = _debt(st, c)
            eq = assets - debt
            pos = _position(st)
            above_call = assets > call_ml * debt or debt <= 0.0
            if record:
                equity[j] = eq
                position[j] = pos
                debt_out[j] = debt
                owed_out[j] = st[IB] * c + st[IQ]
                paid_out[j] = paid
                if extra is not None:  # pruned at compile time when None: the default loop is untouched
                    extra[0, j] = int_quote
                    extra[1, j] = after_b
                    extra[2, j] = after_q
                    extra[3, j] = st[PB] + st[IB]
            # online statistics, so summary-only runs (sweeps) need no per-bar arrays
            # returns are taken in blocks: the divisions of a block are independent,
            # so they overlap instead of each waiting on the last
            n_block += 1
            block[n_block] = eq
            if n_block == RETURN_BLOCK:
                sum_r, sum_r2, sum_neg2 = _add_returns(block, n_block, sum_r, sum_r2, sum_neg2)
                block[0] = eq
                n_block = 0
            prev_eq = eq
            # divisions are the loop's slowest steps: compare first, divide on a new extreme
            if eq > peak:
                peak = eq
            elif eq < (1.0 + max_dd) * peak and peak > 0.0:
                max_dd = eq / peak - 1.0
            if pos != 0.0:
                n_exposed += 1
            if debt > 0.0 and assets < min_ml * debt:
                min_ml = assets / debt

            # 8. the decision for the next open
            if liquidated:
                suspended = True
                halted = halted or stop_on_liquidation
            x = np.nan if halted else target[j]
            if x != x:  # NaN holds
                pass
            elif x != last_target:
                pending = x
                pending_kind = SIGNAL
                pending_limit = limit[j] if has_limit else np.nan
                last_target = x
                suspended = False
            elif rebalance > 0.0 and not suspended and eq > 0.0 and lim_side == 0:
                if abs(pos * c / eq - x) > rebalance * abs(x):
                    pending = x
                    pending_kind = REBALANCE
                    pending_limit = np.nan
            liquidated = False
            # the next bar is quiet: close it here too
            k = j + 1
            if (k < n and pending != pending and ts[k] < next_hour and q_lo < mark_low[k] and mark_high[k] < q_hi
                    and band_lo < mark_open[k] < band_hi and band_lo < close[k] < band_hi):
                if not trail:
                    continue
                # the trailing level moves with the best price: test it at the highest it can reach in the bar
                far = max(best, high[k]) if long_ else min(best, low[k])
                if (low[k] > far * (1.0 - trailing_stop)) if long_ else (high[k] < far * (1.0 + trailing_stop)):
                    best = far
                    continue
            break
        resume_at = j + 1

    sum_r, sum_r2, sum_neg2 = _add_returns(block, n_block, sum_r, sum_r2, sum_neg2)
    values = (
        int_base, int_quote, liq_fees, bad_debt, paid, fees_paid, prev_eq, sum_r, sum_r2, sum_neg2,
        max_dd, float(n_exposed), min_ml, float(n_orders), float(n_liqs), float(n_calls), float(n_capped),
        float(n_trades), float(n_ambiguous), float(n_detail_missing), float(n_cancelled),
    )
    for k in range(N_STATS):
        stats[k] = values[k]
    return n_orders, n_liqs, n_calls, True, stats
