"""The compiled bar loop: one symbol, one account, on either venue.

Arrays in, arrays and record arrays out (the caller allocates them); no
pandas, no I/O, no Python objects.  No per-bar rows: the account's log, a
row where its state changes (``bar_rows.py`` makes the per-bar equity,
position, debt and interest from it when they are read).  The order of
events inside a bar is the one written down in ``docs/model-choices.md``;
the rules themselves (margin level, liquidation price, interest, borrow
cap, liquidation sizes) come from ``rules.py`` on spot margin and
``venues/binance_usdm.py`` on perpetual futures, asked through
``venues/plug.py``.  ``venue`` (``inputs.Venue``: bracket tables,
funding charges) is None on spot margin, and the path helpers get ``pv``
(None, or 1 on perps): numba then compiles spot margin's loop without the
perpetual's branches, and the helpers pick their venue's side by ``pv``'s
type (overloads: ``venues/plug.py``, ``intrabar._fill_to``), so a perp run
compiles none of spot margin's.

The account's moves live in ``account.py``, the path inside a bar in
``intrabar.py``, limit orders in ``limits.py``.  The run's state is shared
with them in arrays indexed by name, updated in place: ``st`` (the
account), ``fs`` and ``ns`` (``intrabar.py``: entry, the standing limit
order, the pending order, counts, totals).  ``simulate`` makes them and
``_loop`` runs the bars: an eventful bar's steps are helpers numba inlines
into it, ``_hours`` (1), ``_open_moves`` (0, 2), ``_order_steps`` (3, 4),
``_margin_steps`` (6), ``_path_steps`` (5) and ``_close_run`` (7–8, the
quiet loop); what happens on few bars is a call: ``_gap`` (2),
``_order`` (3), ``_intrabar`` (5, the walks).

Speed: most bars of a run are quiet (no order, no whole hour, prices well
inside the band where ML stays above the margin-call and liquidation
levels, ``rules.safe_band``).  After each eventful bar an inner loop closes
it and the quiet bars after it, so the hot loop is small; the event steps
run only where something can happen.  Keep per-bar code out of helper
functions: numba compiles an inlined helper with branches in the hot loop
into markedly slower code (measured: 2x for a 5-line drawdown helper).  And
mind the arrays handed to what runs on every eventful bar: a numba
function, inlined or not, increfs and decrefs each array it is handed, an
atomic operation each, unless the calls pair up in straight code
(measured: +25 % on ``backtest bench`` for the steps 1–8 as functions of
the state arrays, 2x for them as inlined helpers).  ``_loop`` is compiled
without reference counting (``_nrt=False``), so its inlined steps cost
nothing; it must then allocate nothing and get no array back from a call
(``tests/test_kernel_loop.py``).
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .account import HB, HQ, IB, IQ, PB, PQ, _assets, _debt, _position, net_base, owed_at
from .flows import next_bar as next_flow_bar
from .flows import room as flows_room
from .flows import MAX_MOVES_PER_BAR as MAX_MOVES
from .flows import at_open as moves_at_open
from .flows import on_path as moves_on_path
from .flows import loans as manual_loans
from .flows import scheduled
from .inputs import read_only
from ._compile_speed import JoinedCompiler
from .intrabar import (AFTER_B, AFTER_Q, BAD_DEBT, BEST, DETAIL_ON, ENTRY, FEES_PAID, HAS_MARK, INT_BASE, INT_QUOTE,
                       LIM_PLACED, LIM_PX, LIM_SIDE, LIQ_FEES, MAX_LIQUIDATIONS_PER_BAR, N_AMBIGUOUS, N_CALLS, N_CANCELLED,
                       N_CAPPED, N_DETAIL_MISSING, N_FS, N_LIQS, N_NS, N_ORDERS, N_TOT, N_TRADES, N_WRITE_OFFS, PAID,
                       PENDING, PENDING_KIND, PENDING_LIMIT, R_END, RB, RECORD, RQ, SLP, STOPS_ON, T_BAD, T_FEES, T_IB,
                       T_IQ, T_LIQ, T_PAID, TPP, _liquidate_in_bar, _liquidations, _market, _owe, _quiet, _walk, best_after)
from .bar_rows import log_state
from .limits import _cancel_standing, _place, _walk_limit, in_reach
from .replay import _replay
from .venues import binance_usdm as usdm
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


RETURN_BLOCK = 64


@njit(cache=True)
def _add_returns(block, m, sum_r, sum_r2, sum_neg2):
    """Add the bar returns of ``block[1..m]`` (``block[0]`` is the equity
    before them) to the running sums; a return from zero equity counts 0.
    The last, partial block of a run (``_add_block`` takes the full ones),
    once a run: summed in bar order, no fastmath.  (Fastmath let LLVM
    reorder the sums by where the code was compiled: a first run, compiling
    it inline, and the next ones, loading it from the cache, differed in
    the last bit of the Sharpe ratio.)
    """
    for k in range(1, m + 1):
        p = block[k - 1]
        r = block[k] / p - 1.0 if p > 0.0 else 0.0
        neg = min(r, 0.0)
        sum_r += r
        sum_r2 += r * r
        sum_neg2 += neg * neg
    return sum_r, sum_r2, sum_neg2


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``)."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def _rarely(typingctx, b):
    """``b``, marked unlikely (``llvm.expect``): LLVM then keeps the branch on
    it, where it would compute a short ``if``'s body on every bar and select
    (the quiet run's division for a new minimum margin level: ~10 % of an
    hourly sweep's kernel)."""
    def codegen(context, builder, signature, args):
        i1 = ir.IntType(1)
        expect = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i1, [i1, i1]), "llvm.expect.i1")
        return builder.call(expect, [args[0], ir.Constant(i1, 0)])
    return types.boolean(types.boolean), codegen


@njit(cache=True, inline="always")
def _ret(block, m):
    p = block[m - 1]
    return block[m] / p - 1.0 if p > 0.0 else 0.0


@njit(cache=True, inline="always")
def _fold(s, o):
    """The eight lanes ``s[o .. o + 7]`` summed pairwise: halves, quarters, last pair."""
    return ((s[o + 7] + s[o + 3]) + (s[o + 5] + s[o + 1])) + ((s[o + 6] + s[o + 2]) + (s[o + 4] + s[o]))


# not inlined: numba deep-copies an inlined function's code into each place it goes (~0.5 s of compile
# here, in the quiet run and the wiped-out tail); called once in 64 bars, without reference counting
@njit(cache=True, _nrt=False)
def _add_block(block, sum_r, sum_r2, sum_neg2):
    """``_add_returns`` of a full block (``RETURN_BLOCK`` returns), in the
    order the vectorised fastmath loop took them when the kernel was one
    function, spelled out: numba left to itself reorders a fastmath sum
    differently wherever it inlines it, and the sums (Sharpe, Sortino)
    would change in the last bits with the shape of the code around.

    Eight lanes, lane ``j`` holding the returns ``v0 .. v7`` of bars
    ``j + 1, j + 9, …, j + 57``: the sum ``(((v5 + v1) + (v6 + v2)) + ((s +
    v0) + v4)) + (v7 + v3)``, the squares as fused multiply-adds in the order
    v0 v4 v1 v5 v2 v6 v3 v7, the running sums ``s`` in lane 0 (0 in the
    others); then the lanes folded pairwise (``_fold``).  The lanes are
    independent, so the loop still vectorises; ``block[65:89]`` is scratch.
    """
    s = RETURN_BLOCK + 1
    for j in range(8):
        v0, v1, v2, v3 = _ret(block, j + 1), _ret(block, j + 9), _ret(block, j + 17), _ret(block, j + 25)
        v4, v5, v6, v7 = _ret(block, j + 33), _ret(block, j + 41), _ret(block, j + 49), _ret(block, j + 57)
        r = sum_r if j == 0 else 0.0
        block[s + j] = (((v5 + v1) + (v6 + v2)) + ((r + v0) + v4)) + (v7 + v3)
        q = sum_r2 if j == 0 else 0.0
        q = _fma(v3, v3, _fma(v6, v6, _fma(v2, v2, _fma(v5, v5, _fma(v1, v1, _fma(v4, v4, _fma(v0, v0, q)))))))
        block[s + 8 + j] = _fma(v7, v7, q)
        n0, n1, n2, n3 = min(v0, 0.0), min(v1, 0.0), min(v2, 0.0), min(v3, 0.0)
        n4, n5, n6, n7 = min(v4, 0.0), min(v5, 0.0), min(v6, 0.0), min(v7, 0.0)
        q = sum_neg2 if j == 0 else 0.0
        q = _fma(n3, n3, _fma(n6, n6, _fma(n2, n2, _fma(n5, n5, _fma(n1, n1, _fma(n4, n4, _fma(n0, n0, q)))))))
        block[s + 16 + j] = _fma(n7, n7, q)
    return _fold(block, s), _fold(block, s + 8), _fold(block, s + 16)


@njit(cache=True, _nrt=False)  # (once a run at most: not inlined, a shorter compile)
def _zero_tail(block, n_block, sum_r, sum_r2, sum_neg2, m):
    """The return sums after ``m`` more bars of equity 0 (a wiped-out
    account's): the open block filled with zeros and added; each later
    return is from zero equity, so counts 0 and adds exactly nothing: only
    the last, partial block's length is kept.  The same sums, to the bit,
    as stepping the bars."""
    if n_block + m < RETURN_BLOCK:
        for k in range(n_block + 1, n_block + m + 1):
            block[k] = 0.0
        return n_block + m, sum_r, sum_r2, sum_neg2
    for k in range(n_block + 1, RETURN_BLOCK + 1):
        block[k] = 0.0
    sum_r, sum_r2, sum_neg2 = _add_block(block, sum_r, sum_r2, sum_neg2)
    left = (n_block + m - RETURN_BLOCK) % RETURN_BLOCK
    for k in range(left + 1):
        block[k] = 0.0
    return left, sum_r, sum_r2, sum_neg2


# what ``stats`` holds at the end of a run, in this order
STATS = (
    "interest_base", "interest_quote", "liquidation_fees", "bad_debt", "interest_paid", "fees_paid",
    "final_equity", "sum_r", "sum_r2", "sum_neg2", "max_drawdown", "n_exposed", "min_margin_level",
    "n_orders", "n_liquidations", "n_margin_calls", "n_capped", "n_trades", "ambiguous_bars",
    "detail_missing_bars", "n_cancelled", "n_write_offs",
)
N_STATS = len(STATS)

# room a bar may need in the record buffers: its order, a gap liquidation,
# the intrabar ones and a stop exit; the caller grows the buffers and reruns
# when it runs short
ORDERS_PER_BAR = 3 + MAX_LIQUIDATIONS_PER_BAR
# the quiet loop's room for interest: this many hours at the rate in force (README "Where the time goes")
HOURS_AHEAD = 96.0


def simulate(bars, marks, cfg, rates, detail, given, log, orders, liqs, calls, venue, flows=None):
    """Run one symbol through one margin account: the records of
    ``inputs.py`` in (``bars``; ``marks``: the bars liquidation is checked
    against; ``cfg``: the settings; ``rates``; ``detail``: finer bars;
    ``given``: the strategy's targets, limit orders and levels; ``venue``:
    the venue's tables and periodic charges, ``inputs.Venue``, None on spot
    margin; ``flows``: the trader's transfers and reserve, ``inputs.Flows``,
    None without: numba then compiles none of it).  Writes the account's
    log into ``log`` (n × ``bar_rows.LOG``: a row where the state changes, at
    most one a bar; on a perp account the cross wallet outside an isolated
    position, and the funding paid as the interest paid) and fills the
    record buffers ``orders``, ``liqs``, ``calls``; with ``log`` of shape
    (0, LOG) nothing per bar or per event is kept (sweeps: the buffers then
    need one row).  Returns ``(n_orders, n_liqs, n_calls, complete, stats,
    n_log)``: ``complete`` False when a buffer ran short (grow it and call
    again), ``stats`` the totals in ``STATS``, ``n_log`` the log rows
    written.  The state arrays are made here, in Python (a compiled wrapper
    around the loop cost ~1.7 s of a first run's compile); ``_loop`` runs
    the bars, compiled.
    """
    bars, marks, rates, detail, given = (read_only(r) for r in (bars, marks, rates, detail, given))
    st, fs, ns = _start(cfg, bars, marks, rates, detail, given, log.shape[0] > 0, venue)
    bt = np.zeros((2, N_TOT))  # the totals of a bar's walk, and of one finer bar
    block = np.empty(RETURN_BLOCK + 1 + 24)  # block[0]: the equity before the block; 24 scratch (_add_block)
    vt = np.zeros(2, np.int64)  # the next table version, the next funding charge
    n_log, complete, n_block, sum_r, sum_r2, sum_neg2, prev_eq, max_dd, n_exposed, min_ml = _loop(
        bars, marks, cfg, rates, detail, given, (log, orders, liqs, calls), venue, flows, (st, fs, ns, bt, block, vt))
    counts = int(ns[N_ORDERS]), int(ns[N_LIQS]), int(ns[N_CALLS])
    if not complete:
        return (*counts, False, np.zeros(N_STATS), n_log)
    stats = _stats(fs, ns, block, n_block, (sum_r, sum_r2, sum_neg2), prev_eq, max_dd, n_exposed, min_ml)
    return (*counts, True, stats, n_log)


# _nrt=False: no reference counting in the bar loop.  Its steps are helpers numba inlines into it, and
# each array an inlined helper is handed is a new variable, counted on every eventful bar (two atomic
# operations each: the split loop ran 2x slower on ``backtest bench`` with it).  numba compiles what the
# loop calls with the same flag (unless the cache or an earlier call has it already), so nothing the
# loop reaches may allocate an array it returns or keeps (numba refuses to compile that) or return an
# array at all (a caller that counts references would count it once too often): ``simulate`` owns
# the state arrays, the steps take and return scalars (tests/test_kernel_loop.py).  The steps warm's
# helper compiles apart say ``_nrt=False`` themselves: numba's cache is keyed on types only, and a step
# compiled at top level counts references, which the loop would then link in (tests/test_warm.py).
@njit(cache=True, nogil=True, _nrt=False, pipeline_class=JoinedCompiler)  # (waits for warm's helper at typing)
def _loop(bars, marks, cfg, rates, detail, given, recs, venue, flows, state):
    """``simulate``'s bars, on its state arrays ``state`` (``st``, ``fs``,
    ``ns``, ``bt``, ``block``, ``vt``) and record buffers ``recs`` (``log``,
    ``orders``, ``liqs``, ``calls``): an eventful bar runs steps 1–6 here,
    ``_close_run`` closes it and the quiet bars after it.  Returns ``(n_log,
    complete, n_block, sum_r, sum_r2, sum_neg2, prev_eq, max_dd, n_exposed,
    min_ml)``: ``complete`` False when a buffer ran short."""
    st, fs, ns, bt, block, vt = state
    log, orders, liqs, calls = recs
    n = bars.ts.shape[0]
    # what the path helpers branch on: None on spot margin (their perp code is not compiled), else a
    # scalar (a tuple of arrays would be reference-counted on every call, see the module docstring)
    pv = None if venue is None else 1
    next_venue = n  # the next bar a venue event falls in (spot margin: none)
    if venue is not None:
        next_venue = _next_venue(venue, vt, n)
    block[0] = cfg.capital
    # the returns' and drawdown's running sums (_close_run); int64, not the literal 0: the tuple is carried
    # through the loop, and _close_run returns its counts as int64
    acc = (block, np.int64(0), 0.0, 0.0, 0.0, cfg.capital, cfg.capital, 0.0, np.int64(0), np.inf)
    last_target = np.nan
    suspended = halted = False
    above_call = True  # the last close's margin level was above the margin-call level
    resume_at = n_log = 0  # the first bar the close run did not close; the log rows written
    next_hour = bars.ts[0] if n > 0 else 0  # first whole hour not yet passed
    for i in range(n):
        if i < resume_at:
            continue
        if _short(ns, log, n_log, (orders, liqs, calls), flows):  # the caller grows the buffers and reruns
            return n_log, False, np.int64(0), 0.0, 0.0, 0.0, 0.0, 0.0, np.int64(0), 0.0
        o, mo = bars.open[i], marks.open[i]
        on_hour, next_hour = _hours(st, fs, ns, cfg, rates, bars.ts, i, o, next_hour)  # 1.
        if venue is not None and i == next_venue:
            _table_at(fs, venue, vt, i)
        n_liq0 = ns[N_LIQS]  # (--stop-on-liquidation stops at a liquidation only)
        # 0a–0c. the trader's moves at the open, 2. a bar that opens beyond the liquidation level
        liquidated, kept_b, kept_q = _open_moves(st, fs, ns, bt, cfg, i, (o, mo), (orders, liqs), venue, flows, pv)
        _order_steps(st, fs, ns, bt, cfg, i, o, given, orders, detail, pv, (on_hour, kept_b, kept_q))  # 3., 4.
        if venue is not None and i == next_venue:  # the venue's periodic charges (funding), after step 3
            next_venue = _charges_at(st, fs, venue, vt, i, n)
        liq_near = _margin_steps(st, fs, ns, cfg, marks, i, above_call, (orders, calls), venue, flows, pv)  # 6., 5'.
        forced, short = _path_steps(st, fs, ns, bt, cfg, bars, marks, i, liq_near, detail, (orders, liqs), pv)  # 5.
        if short:
            return n_log, False, np.int64(0), 0.0, 0.0, 0.0, 0.0, 0.0, np.int64(0), 0.0
        if liquidated or forced:  # 8. a forced exit in bar i suspends rebalancing; a liquidation may stop the run
            suspended = True
            halted = halted or (cfg.stop_on_liquidation and ns[N_LIQS] > n_liq0)
        # 7. the close, then those of the quiet bars after it; a venue event or a scheduled transfer ends
        # the quiet run (one comparison in the loop)
        stop_at = next_venue if flows is None else min(next_venue, next_flow_bar(flows, n))
        run = (i, n_log, next_hour, last_target, suspended, halted, cfg.rebalance > 0.0 and ns[LIM_SIDE] == 0, stop_at)
        j, n_log, next_hour, last_target, suspended, above_call, pending_kind, acc = _close_run(
            (st, fs, ns), cfg, bars, marks, given, rates, log, venue, _run_band(st, fs, ns, cfg, given, flows, venue),
            run, acc)
        ns[PENDING_KIND] = pending_kind
        resume_at = j + 1
        if venue is None and flows is None and ns[LIM_SIDE] == 0 and not (st[HB] or st[HQ] or st[PB] or st[PQ]
                                                                          or st[IB] or st[IQ]):
            # wiped out (every balance 0, no money coming): no order can trade again (E = 0), no interest
            # or liquidation either, so equity stays 0 to the end; sweeps of high leverage spend most bars so
            _, n_block, sum_r, sum_r2, sum_neg2, prev_eq, _, max_dd, n_exposed, min_ml = acc
            n_block, sum_r, sum_r2, sum_neg2 = _zero_tail(block, n_block, sum_r, sum_r2, sum_neg2, n - 1 - j)
            return n_log, True, n_block, sum_r, sum_r2, sum_neg2, prev_eq, max_dd, n_exposed, min_ml
    _, n_block, sum_r, sum_r2, sum_neg2, prev_eq, _, max_dd, n_exposed, min_ml = acc
    return n_log, True, n_block, sum_r, sum_r2, sum_neg2, prev_eq, max_dd, n_exposed, min_ml


@njit(cache=True, inline="always")
def _short(ns, log, n_log, recs, flows):
    """True when the record buffers ``recs`` (orders, liquidations, margin
    calls) or the log may run short in the next bar (its order, a gap
    liquidation, the intrabar ones and a stop exit), or the flows' log."""
    orders, liqs, calls = recs
    record = log.shape[0] > 0
    if record and (ns[N_ORDERS] + ORDERS_PER_BAR > orders.shape[0] or ns[N_LIQS] + ORDERS_PER_BAR > liqs.shape[0]
                   or ns[N_CALLS] + 1 > calls.shape[0] or n_log + 1 > log.shape[0]):
        return True
    if flows is not None:
        if flows_room(flows) > flows.log.shape[0] or (
                record and ns[N_ORDERS] + ORDERS_PER_BAR + MAX_MOVES + 1 > orders.shape[0]):
            return True
    return False


@njit(cache=True, inline="always")
def _hours(st, fs, ns, cfg, rates, ts, i, o, next_hour):
    """1. The hour boundaries passed since the last bar's open (long bars,
    gaps), each charged at the rate in force then and owed at the open ``o``;
    the rates of bar ``i``'s hour.  ``next_hour`` (the first whole hour not yet passed) spares an
    integer division on bars that cross no hour.  Returns (a whole hour at
    this open?, next_hour).  The rates of bar ``i``'s hour are looked up
    only past ``ns[R_END]``: up to there they are those held."""
    t = ts[i]
    if t < next_hour:
        return False, next_hour
    if i > 0 and (st[PB] > 0.0 or st[PQ] > 0.0):
        h1 = ts[i - 1] // HOUR + 1 - rates.h0  # the first boundary passed, as a rate index
        for k in range(hour_boundaries_between(ts[i - 1], t)):
            _charge(st, fs, cfg, st[PB], st[PQ], rates.base[h1 + k], rates.quote[h1 + k], o)
    col = t // HOUR - rates.h0
    if col >= ns[R_END]:  # (the table is read where the rates change: a lookup missed the cache on hourly bars)
        fs[RB], fs[RQ], ns[R_END] = rates.base[col], rates.quote[col], rates.change[col]
    return t % HOUR == 0, (t // HOUR + 1) * HOUR


@njit(cache=True, inline="always")
def _open_moves(st, fs, ns, bt, cfg, i, om, recs, venue, flows, pv):
    """With ``flows``: 0a. the trader's scheduled transfers, 0c. loans, 0b.
    a top-up at an open below the call; then 2. a bar that opens (``om``:
    its open and mark open) beyond the liquidation level is liquidated
    first.  Returns (liquidated?, kept_b, kept_q): the principal step 4's
    hour may fall on (manual borrows at this open: less)."""
    o, mo = om
    orders, liqs = recs
    kept_b = kept_q = np.inf
    if flows is not None:
        scheduled(st, fs, pv, cfg, flows, i, o)
        if venue is None:  # (spot margin's: a test of pv would compile it into a perp run too)
            kept_b, kept_q = manual_loans(st, fs, cfg, flows, i, o)
        moves_at_open(st, fs, ns, pv, cfg, flows, i, mo, orders)
    liquidated = False
    if venue is not None:
        if _position(st) != 0.0 and usdm.health_at_or_below(st, fs, mo, cfg.liquidation_ml):
            liquidated = _gap(st, fs, ns, bt, cfg, i, mo, o, orders, liqs, pv)
    elif st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0 and _assets(st, mo) <= cfg.liquidation_ml * _debt(st, mo):
        liquidated = _gap(st, fs, ns, bt, cfg, i, mo, o, orders, liqs, pv)  # (ML ≤ level, without a division)
    return liquidated, kept_b, kept_q


@njit(cache=True, inline="always")
def _order_steps(st, fs, ns, bt, cfg, i, o, given, orders, detail, pv, hour):
    """3. The order decided at the last close, at the open ``o`` (with
    ``detail`` None no limit orders either: the limit code is not
    compiled); 4. the whole hour at this open on the principal held across
    it (``hour``: on the hour?, ``_open_moves``'s kept principal); the
    strategy's stop-loss and take-profit prices for this bar."""
    on_hour, kept_b, kept_q = hour
    pb0, pq0 = min(kept_b, st[PB]), min(kept_q, st[PQ])
    if detail is None:
        if fs[PENDING] == fs[PENDING]:
            _market_order(st, fs, ns, bt, cfg, i, o, orders, pv)
    elif fs[PENDING] == fs[PENDING] or ns[LIM_SIDE] != 0:
        _order(st, fs, ns, bt, cfg, i, o, given.expiry, orders, pv)
    if on_hour:
        cb, cq = _charge(st, fs, cfg, min(pb0, st[PB]), min(pq0, st[PQ]), fs[RB], fs[RQ], o)
        fs[AFTER_B] += cb  # (for ``extra``)
        fs[AFTER_Q] += cq
    has_sl, has_tp = given.sl_price.shape[0] > 0, given.tp_price.shape[0] > 0
    if (has_sl or has_tp) and i > 0:
        fs[SLP] = given.sl_price[i - 1] if has_sl else np.nan
        fs[TPP] = given.tp_price[i - 1] if has_tp else np.nan


@njit(cache=True, inline="always")
def _margin_steps(st, fs, ns, cfg, marks, i, above_call, recs, venue, flows, pv):
    """6. The bar's adverse mark extreme against the margin-call and
    liquidation levels: a margin call when the last close was above the
    call level (``above_call``), recorded in ``recs``' calls; then, with
    ``flows``, 5'. the trader's moves on the path.  Returns whether the
    liquidation level is in reach."""
    orders, calls = recs
    mo, mh, ml = marks.open[i], marks.high[i], marks.low[i]
    if venue is not None:
        liq_near, below_call, ml_x = usdm.margin_check(st, fs, cfg.liquidation_ml, cfg.call_ml, ml, mh)
    else:
        liq_near, below_call, ml_x = _margin_check(st, cfg, ml, mh)
    if below_call and above_call:
        if ns[RECORD]:
            calls[ns[N_CALLS]].bar = i
            calls[ns[N_CALLS]].margin_level = ml_x
        ns[N_CALLS] += 1
    if flows is not None and (flows.state[0] > 0.0 or flows.keep_ml == flows.keep_ml):
        # (not gated on below_call: an account holding base and owing base can lose on the other side
        # at the call level than at the liquidation level, which margin_check's side follows)
        if moves_on_path(st, fs, ns, pv, cfg, flows, i, mo, mh, ml, orders):
            if venue is not None:
                liq_near, _, _ = usdm.margin_check(st, fs, cfg.liquidation_ml, cfg.call_ml, ml, mh)
            else:
                liq_near, _, _ = _margin_check(st, cfg, ml, mh)
    return liq_near


@njit(cache=True, inline="always")
def _path_steps(st, fs, ns, bt, cfg, bars, marks, i, liq_near, detail, recs, pv):
    """5. The path through bar ``i``: with ``detail`` None (no stops, limit
    orders or finer bars: numba compiles no walk) the liquidation check
    where the level is in reach; else ``_intrabar``'s walk where something
    can fire.  Returns (forced exit?, short): ``short`` when a record buffer
    (``recs``: orders, liquidations) ran short."""
    orders, liqs = recs
    h, lo = bars.high[i], bars.low[i]
    if detail is None:
        if liq_near:
            return _liquidation_step(st, fs, ns, bt, cfg, i, (marks.open[i], marks.high[i], marks.low[i]), h, lo,
                                     orders, liqs, pv), False
        return False, False
    if (ns[LIM_SIDE] != 0 or liq_near or (ns[STOPS_ON] != 0 and _position(st) != 0.0)) and not _walk_skipped(
            st, fs, ns, cfg, h, lo, liq_near):
        px = (bars.open[i], h, lo, bars.close[i])
        mk = (marks.open[i], marks.high[i], marks.low[i], marks.close[i] if ns[HAS_MARK] != 0 else bars.close[i])
        return _intrabar(st, fs, ns, bt, cfg, i, (px, mk), liq_near, detail, orders, liqs, pv)
    return False, False


@njit(cache=True, inline="always")
def _run_band(st, fs, ns, cfg, given, flows, venue):
    """7. What the quiet run after an eventful bar's close holds to:
    ``(band_lo, band_hi, q_lo, q_hi, trail, long_, room_b, room_q)``, the
    band of ``_quiet_band`` and the room for the hours' interest it may
    charge (hourly bars cross an hour on every bar): the band is taken with
    that much more debt, so it holds until the room is used up."""
    long_ = _position(st) > 0.0
    stops = ns[STOPS_ON] != 0 and _position(st) != 0.0
    room_b = HOURS_AHEAD * interest_charge(st[PB], fs[RB], cfg.round_interest)
    room_q = HOURS_AHEAD * interest_charge(st[PQ], fs[RQ], cfg.round_interest)
    if not ((_position(st) > 2.0 * room_b) if long_ else (_position(st) < 0.0)):
        room_b = 0.0  # base interest would turn the position's sign (the loop's long_ and stops)
    level = max(cfg.call_ml, cfg.liquidation_ml * (1.0 + 2e-9))  # a quiet bar stays above these levels
    if flows is not None and flows.keep_ml == flows.keep_ml:
        level = max(level, flows.keep_ml * (1.0 + 2e-9))  # and above the safety buffer
    if venue is not None:
        b_lo, b_hi = usdm.band(st, fs, level)
        band_lo, band_hi, q_lo, q_hi, trail = _stop_band(cfg, b_lo, b_hi, long_, stops, fs[ENTRY], fs[BEST])
    else:
        band_lo, band_hi, q_lo, q_hi, trail = _quiet_band(cfg, st[HB], st[HQ], st[PB] + st[IB] + room_b,
                                                          st[PQ] + st[IQ] + room_q, long_, stops, fs[ENTRY],
                                                          fs[BEST], level)
    levels = given.sl_price.shape[0] > 0 or given.tp_price.shape[0] > 0 or ns[HAS_MARK] != 0
    if ns[LIM_SIDE] != 0 or (stops and levels):
        q_lo, q_hi = np.inf, -np.inf  # a standing limit, a strategy's levels, stops on a mark: no quiet run
    if venue is not None and flows is not None and flows.keep_ml == flows.keep_ml:
        q_lo, q_hi = np.inf, -np.inf  # a perp's health need not fall one way at a buffer level: every bar
    return band_lo, band_hi, q_lo, q_hi, trail, long_, room_b, room_q


@njit(cache=True, inline="always")
def _close_run(state, cfg, bars, marks, given, rates, log, venue, band, run, acc):
    """7.–8. The close of eventful bar ``i`` (``run``), then those of the
    quiet bars after it, which stay inside ``band`` (``_run_band``) and
    have at most a whole hour's interest; the online statistics ``acc``
    (sweeps need no per-bar arrays), the decision for the next open.  What
    the loop reads or changes of the run state is held in locals
    (registers).  Returns ``(j, n_log, next_hour, last_target, suspended,
    above_call, pending_kind, acc)``, ``j`` the last bar closed."""
    st, fs, ns = state
    i, n_log, next_hour, last_target, suspended, halted, rebalancing, stop_at = run
    band_lo, band_hi, q_lo, q_hi, trail, long_, room_b, room_q = band
    block, n_block, sum_r, sum_r2, sum_neg2, prev_eq, peak, max_dd, n_exposed, min_ml = acc
    ts, open_, high, low, close = bars.ts, bars.open, bars.high, bars.low, bars.close
    mark_open, mark_high, mark_low, target, limit = marks.open, marks.high, marks.low, given.target, given.limit
    n, has_limit, record = ts.shape[0], limit.shape[0] > 0, log.shape[0] > 0
    paid, int_quote, after_b, after_q, best = fs[PAID], fs[INT_QUOTE], fs[AFTER_B], fs[AFTER_Q], fs[BEST]
    free = fs[usdm.FREE]
    pending = pending_limit = np.nan  # (step 3 took the last one)
    pending_kind = SIGNAL
    cb_run = cq_run = np.nan  # the charges of the quiet run's hours
    col = next_hour // HOUR - rates.h0  # next_hour's column of the rate table (one division a run, not a bar)
    col0 = change = col  # the run's first column, the next whose rates are new to the run
    rb, rq, r_end = fs[RB], fs[RQ], ns[R_END]  # the rates held and the column they hold to (_hours)
    hb, pb, pq, ib, iq = st[HB], st[PB], st[PQ], st[IB], st[IQ]  # the book in registers (no trade here; _owe's adds)
    above_call = True
    if record:  # the state at this close, which the quiet bars after it keep (bar_rows)
        n_log = log_state(log, n_log, st, paid, int_quote, after_b, after_q, free, i)
    j = i
    for j in range(i, n):
        c = close[j]
        assets = _assets(st, c)
        debt = owed_at(pb, ib, pq, iq, c)
        eq = assets - debt
        pos = net_base(hb, pb, ib)
        if venue is not None:
            h_c = usdm.health(st, fs, c)
            above_call = h_c > cfg.call_ml
            min_ml = min(min_ml, h_c)
        else:
            above_call = assets > cfg.call_ml * debt or debt <= 0.0
        # online statistics, so summary-only runs (sweeps) need no per-bar arrays;
        # returns are taken in blocks: the divisions of a block are independent
        n_block += 1
        block[n_block] = eq
        if n_block == RETURN_BLOCK:
            sum_r, sum_r2, sum_neg2 = _add_block(block, sum_r, sum_r2, sum_neg2)
            block[0] = eq
            n_block = 0
        prev_eq = eq
        # divisions are the loop's slowest steps: compare first, divide on a new extreme.  The peak is a
        # select, not a branch (a rising market mispredicted it); at a new peak the test below fails anyway
        peak = eq if eq > peak else peak
        if _rarely(eq < (1.0 + max_dd) * peak and peak > 0.0):
            max_dd = eq / peak - 1.0
        if pos != 0.0:
            n_exposed += 1
        if venue is None and _rarely(debt > 0.0 and assets < min_ml * debt):
            min_ml = assets / debt

        # 8. the decision for the next open (a forced exit at bar i: taken before the loop)
        # (an order ends the run at this bar: what it sets changes nowhere else in the loop, so the
        # loop carries none of it)
        x = target[j]
        if not halted and x == x:  # (NaN holds)
            if x != last_target:
                pending = x
                pending_kind = SIGNAL
                pending_limit = limit[j] if has_limit else np.nan
                last_target = x
                suspended = False
                break
            if rebalancing and not suspended and eq > 0.0 and abs(pos * c / eq - x) > cfg.rebalance * abs(x):
                pending = x
                pending_kind = REBALANCE
                pending_limit = np.nan
                break
        # the next bar is quiet: close it here too
        k = j + 1
        if (k < n and k != stop_at and q_lo < mark_low[k] and mark_high[k] < q_hi
                and band_lo < mark_open[k] < band_hi and band_lo < close[k] < band_hi):
            far = best
            if trail:  # the trailing level moves with the best price: test it at the highest it can reach
                far = max(best, high[k]) if long_ else min(best, low[k])
                if not ((low[k] > far * (1.0 - cfg.trailing_stop)) if long_
                        else (high[k] < far * (1.0 + cfg.trailing_stop))):
                    break
            if ts[k] >= next_hour:  # quiet too if the hour's interest is all it has (steps 1, 4) and fits the room
                if ts[k] != next_hour:  # off the hour, or past more than one boundary (step 1 would charge)
                    break
                if record and n_log == log.shape[0]:  # no room for its log row: the loop above asks for more
                    break
                if col >= change:  # the principal is the run's: the charge changes with the rates
                    if col >= r_end:
                        rb, rq, r_end = rates.base[col], rates.quote[col], rates.change[col]
                    cb_run = interest_charge(pb, rb, cfg.round_interest)
                    cq_run = interest_charge(pq, rq, cfg.round_interest)
                    change = r_end
                cb, cq = cb_run, cq_run
                room_b -= cb
                room_q -= cq
                if room_b < 0.0 or room_q < 0.0:
                    break
                if cb != 0.0 or cq != 0.0:  # (no loan: nothing to add)
                    _owe(st, fs, cb, cq, open_[k])
                    ib, iq = ib + cb, iq + cq  # (a debt read back from st waited on the store: 3 % of a sweep)
                    fs[AFTER_B] += cb
                    fs[AFTER_Q] += cq
                    paid, int_quote, after_b, after_q = fs[PAID], fs[INT_QUOTE], fs[AFTER_B], fs[AFTER_Q]
                    if record:
                        n_log = log_state(log, n_log, st, paid, int_quote, after_b, after_q, free, k)
                next_hour += HOUR
                col += 1
            best = far
            continue
        break
    fs[BEST], fs[PENDING], fs[PENDING_LIMIT] = best, pending, pending_limit
    if col > col0:  # the rates of the last hour passed: those read last (up to r_end they hold)
        fs[RB], fs[RQ], ns[R_END] = rb, rq, r_end
    return j, n_log, next_hour, last_target, suspended, above_call, pending_kind, (
        block, n_block, sum_r, sum_r2, sum_neg2, prev_eq, peak, max_dd, n_exposed, min_ml)


def _stats(fs, ns, block, n_block, sums, prev_eq, max_dd, n_exposed, min_ml):
    """The run's ``stats`` (``STATS``), the last return block added (compiled: ``_add_returns``)."""
    sum_r, sum_r2, sum_neg2 = _add_returns(block, n_block, sums[0], sums[1], sums[2])
    return np.array([
        fs[INT_BASE], fs[INT_QUOTE], fs[LIQ_FEES], fs[BAD_DEBT], fs[PAID], fs[FEES_PAID], prev_eq, sum_r, sum_r2,
        sum_neg2, max_dd, n_exposed, min_ml, ns[N_ORDERS], ns[N_LIQS], ns[N_CALLS], ns[N_CAPPED], ns[N_TRADES],
        ns[N_AMBIGUOUS], ns[N_DETAIL_MISSING], ns[N_CANCELLED], ns[N_WRITE_OFFS],
    ], dtype=np.float64)


def _start(cfg, bars, marks, rates, detail, given, record, venue):
    """The account ``st`` (all capital in quote) and the run state ``fs``,
    ``ns`` before the first bar."""
    st = np.zeros(6)
    st[HQ] = cfg.capital
    fs = np.zeros(N_FS)
    if venue is not None and cfg.isolated:
        fs[usdm.FREE] = cfg.capital  # all of it in the cross wallet until a position takes its margin
    ns = np.zeros(N_NS, np.int64)
    fs[[ENTRY, BEST, SLP, TPP, PENDING, PENDING_LIMIT]] = np.nan  # no position, no levels, no order pending
    n = bars.ts.shape[0]
    fs[RB] = rates.base[0] if n > 0 else 0.0  # the rates in force in this bar's hour
    fs[RQ] = rates.quote[0] if n > 0 else 0.0
    ns[R_END] = rates.change[0] if n > 0 else 0
    ns[PENDING_KIND] = SIGNAL
    ns[RECORD] = record
    ns[STOPS_ON] = (cfg.stop_loss > 0.0 or cfg.take_profit > 0.0 or cfg.trailing_stop > 0.0
                    or given.sl_price.shape[0] > 0 or given.tp_price.shape[0] > 0)
    ns[HAS_MARK] = marks.close.shape[0] > 0
    ns[DETAIL_ON] = detail is not None and detail.start.shape[0] > 0  # (None: nothing walks a bar's path)
    return st, fs, ns


@njit(cache=True, inline="always")
def _charge(st, fs, cfg, pb, pq, rate_b, rate_q, o):
    """An hour's interest on principal ``pb``, ``pq`` at the hourly rates
    ``rate_b``, ``rate_q`` (steps 1 and 4), owed and counted at the open
    ``o``; returns the charges (base, quote)."""
    cb = interest_charge(pb, rate_b, cfg.round_interest)
    cq = interest_charge(pq, rate_q, cfg.round_interest)
    _owe(st, fs, cb, cq, o)
    return cb, cq


@njit(cache=True, inline="always")
def _margin_check(st, cfg, mark_lo, mark_hi):
    """6. The bar's adverse mark extreme (``mark_lo`` or ``mark_hi``)
    against the margin-call and liquidation levels, without a division
    unless ML is at or below the call level: (at or near the liquidation
    level?, at or below the call level?, ML there)."""
    db = st[PB] + st[IB]
    if db + st[PQ] + st[IQ] <= 0.0:
        return False, False, np.nan
    worst = mark_lo if falling_price_hurts(st[HB], db, cfg.liquidation_ml) else mark_hi
    assets_x = _assets(st, worst)
    debt_x = _debt(st, worst)
    below_call = assets_x <= cfg.call_ml * debt_x
    return (assets_x <= cfg.liquidation_ml * debt_x * (1.0 + 1e-9), below_call,
            margin_level(assets_x, debt_x) if below_call else np.nan)


@njit(cache=True, _nrt=False)
def _gap(st, fs, ns, bt, cfg, i, mo, o, orders, liqs, pv):
    """2. A bar that opens (mark ``mo``) beyond the liquidation level (the
    kernel checks) is liquidated first, filled at the open ``o``; a standing limit order is
    cancelled before.  True when the order decided at the last close is
    dropped with it: the run stops here, it was a rebalance, or there was
    none (a target change ends the suspension, so only a dropped order
    leaves the position suspended).  ``bt[0]``: scratch totals."""
    if ns[LIM_SIDE] != 0:  # a liquidation cancels the open order first
        _cancel_standing(st, fs, ns)
    tot = bt[0]
    tot[:] = 0.0
    # (False: nothing to liquidate; the order it cancelled stays cancelled; a position it leaves: best from the
    # traded open, docs "Mark price")
    if _liquidate_in_bar(st, fs, ns, tot, cfg, cfg.liquidation_ml, i, (mo, o, mo, o), orders, liqs, pv):
        fs[LIQ_FEES] += tot[T_LIQ]
        fs[BAD_DEBT] += tot[T_BAD]
        if cfg.stop_on_liquidation or ns[PENDING_KIND] == REBALANCE or fs[PENDING] != fs[PENDING]:
            fs[PENDING] = np.nan
            return True
    return False


@njit(cache=True, _nrt=False)
def _order(st, fs, ns, bt, cfg, i, o, expiry, orders, pv):
    """3. The order decided at the last close, at the open ``o``: a standing
    limit order is cancelled when replaced or when its ``expiry`` bars are
    up; a new one is placed, or a market order fills."""
    pending = fs[PENDING]
    if ns[LIM_SIDE] != 0 and (pending == pending or i >= ns[LIM_PLACED] + expiry):
        _cancel_standing(st, fs, ns)
    if pending != pending:
        return
    if fs[PENDING_LIMIT] == fs[PENDING_LIMIT]:
        _place(st, fs, ns, cfg, i, o, pv)
        fs[PENDING] = np.nan
    else:
        _market_fill(st, fs, ns, bt, cfg, i, o, orders, pv)


@njit(cache=True, _nrt=False)
def _market_order(st, fs, ns, bt, cfg, i, o, orders, pv):
    """3. The market order pending (``fs[PENDING]``, decided at the last
    close) at the open ``o``: all step 3 is in a run without limit orders."""
    _market_fill(st, fs, ns, bt, cfg, i, o, orders, pv)


@njit(cache=True, inline="always")
def _market_fill(st, fs, ns, bt, cfg, i, o, orders, pv):
    """``_market_order``'s body, inline in ``_order`` (a call there made
    ``bench --stops`` 6-8 % slower: its arrays' reference counts per order)."""
    tot = bt[0]
    for k in range(tot.shape[0]):
        tot[k] = 0.0
    capped = _market(st, fs, ns, tot, cfg, i, fs[PENDING], o, ns[PENDING_KIND], orders, pv)
    fs[INT_BASE] += tot[T_IB]
    fs[INT_QUOTE] += tot[T_IQ]
    fs[PAID] += tot[T_PAID]
    fs[FEES_PAID] += tot[T_FEES]
    ns[N_CAPPED] += capped  # an order cut to nothing is counted too, though it made no fill
    fs[PENDING] = np.nan


@njit(cache=True, _nrt=False)
def _intrabar(st, fs, ns, bt, cfg, i, bar, liq_near, detail, orders, liqs, pv):
    """5. The walk through bar ``i`` that fits (``bar`` = (px, mk), ``px``: its
    open, high, low, close; ``mk``: the mark bar's): finer bars: ``_replay``
    (a limit order walked on each); a standing limit order or stops on a
    mark: ``_walk_limit``; stops: ``_walk`` (not called when
    ``_walk_skipped``); else the liquidation check where the level is in
    reach (``liq_near``).  Its totals are taken in ``bt[0]`` (``bt[1]``: a
    finer bar's) and added to the run's.

    Returns (forced exit?, short): ``short`` when a record buffer ran short.
    """
    px, mk = bar
    o, h, lo, _ = px
    stops = ns[STOPS_ON] != 0 and _position(st) != 0.0
    has_mark = ns[HAS_MARK] != 0
    detail_on = ns[DETAIL_ON]
    tot = bt[0]
    for k in range(tot.shape[0]):
        tot[k] = 0.0
    ambiguous = False
    mark_last = True  # the walk leaves marking its ambiguous fill to the kernel
    if detail_on and (liq_near or stops or ns[LIM_SIDE] != 0) and detail.end[i] > detail.start[i]:
        forced, ambiguous, short = _replay(st, fs, ns, tot, bt[1], cfg, i, detail, orders, liqs, pv)
        if short:
            return False, True
        mark_last = False  # the replay marks the sub-bar's own fill
    elif ns[LIM_SIDE] != 0 or (stops and has_mark):  # the order as one more level; a mark walked alongside
        if detail_on:  # (no mark with finer bars)
            ns[N_DETAIL_MISSING] += _limit_bar_decided(st, fs, ns, cfg, h, lo, liq_near)
        forced, ambiguous = _walk_limit(st, fs, ns, tot, cfg, i, px, mk, has_mark, orders, liqs, pv)
    elif stops:
        ns[N_DETAIL_MISSING] += detail_on  # bars the path setting decided for want of finer bars
        forced, ambiguous = _walk(st, fs, ns, tot, cfg, i, px, orders, liqs, pv)
    else:  # liq_near: the division of the liquidation price only where the level is in reach
        ns[N_DETAIL_MISSING] += detail_on
        # (entry and best are kept even with stops off: a buy-back can leave a position)
        forced = _liquidations(st, fs, ns, tot, cfg, i, (mk[0], mk[1], mk[2]), h, lo, orders, liqs, pv)
    _take_totals(fs, tot)
    ns[N_AMBIGUOUS] += ambiguous
    if mark_last and ns[RECORD] and ambiguous and ns[N_ORDERS] > 0:
        orders[ns[N_ORDERS] - 1].ambiguous = True  # the forced fill the path order decided
    return forced, False


@njit(cache=True, inline="always")
def _limit_bar_decided(st, fs, ns, cfg, h, lo, liq_near):
    """A bar without usable finer bars, a limit order standing: the path
    setting decided it when its range reaches the order's price, the
    liquidation level is near, or a stop level lies in its range
    (``detail_missing_bars``; a bar where nothing could fire is not counted)."""
    if in_reach(ns[LIM_SIDE], fs[LIM_PX], h, lo) or liq_near:
        return True
    pos = _position(st)
    return ns[STOPS_ON] != 0 and pos != 0.0 and not _quiet(fs, cfg, pos > 0.0, h, lo, liq_near)


@njit(cache=True, _nrt=False)
def _liquidation_step(st, fs, ns, bt, cfg, i, mk, h, lo, orders, liqs, pv):
    """5. of a run in which nothing walks a bar's path (no stops, limit
    orders or finer bars: ``detail`` None): the liquidation check where
    the level is in reach, as ``_intrabar`` makes it.  Returns whether the
    account was liquidated."""
    tot = bt[0]
    for k in range(tot.shape[0]):
        tot[k] = 0.0
    forced = _liquidations(st, fs, ns, tot, cfg, i, mk, h, lo, orders, liqs, pv)
    _take_totals(fs, tot)
    return forced


@njit(cache=True, inline="always")
def _take_totals(fs, tot):
    """A walk's totals ``tot`` added to the run's."""
    fs[FEES_PAID] += tot[T_FEES]
    fs[PAID] += tot[T_PAID]
    fs[INT_BASE] += tot[T_IB]
    fs[INT_QUOTE] += tot[T_IQ]
    fs[LIQ_FEES] += tot[T_LIQ]
    fs[BAD_DEBT] += tot[T_BAD]


@njit(cache=True, inline="always")
def _walk_skipped(st, fs, ns, cfg, h, lo, liq_near):
    """Stops on, no standing limit, and no level in the bar's range
    (``_quiet``): the walk would fire nothing, so ``_intrabar`` is not
    called (a call hands it a dozen arrays: ~0.3 µs on each eventful bar of
    a run with stops); what the walk would leave, the bar's best price, is
    kept here."""
    pos = _position(st)
    if ns[LIM_SIDE] != 0 or ns[STOPS_ON] == 0 or pos == 0.0 or not _quiet(fs, cfg, pos > 0.0, h, lo, liq_near):
        return False
    fs[BEST] = best_after(fs[BEST], h if pos > 0.0 else lo, pos > 0.0)
    return True


@njit(cache=True)
def _table_at(fs, venue, vt, i):
    """The bracket table coming into force at bar ``i``, if one does."""
    if vt[0] < venue.table_from.shape[0] and venue.table_from[vt[0]] == i:
        usdm.load_table(fs, venue.table_rows, venue.table_start[vt[0]], venue.table_start[vt[0] + 1])
        vt[0] += 1


@njit(cache=True)
def _charges_at(st, fs, venue, vt, i, n):
    """The funding charges of bar ``i`` on the position after its order,
    each written to ``venue.funding_out`` and added to ``fs[PAID]``; returns
    the next bar a venue event falls in."""
    while vt[1] < venue.funding_bar.shape[0] and venue.funding_bar[vt[1]] == i:
        pay = usdm.pay_funding(st, fs, venue.funding_mark[vt[1]], venue.funding_rate[vt[1]])
        venue.funding_out[0, vt[1]] = _position(st)
        venue.funding_out[1, vt[1]] = pay
        fs[PAID] += pay
        vt[1] += 1
    return _next_venue(venue, vt, n)


@njit(cache=True)
def _next_venue(venue, vt, n):
    """The next bar a venue event falls in (a table version, a funding
    charge; ``vt``: the next of each), ``n`` when none is left."""
    k = n
    if vt[0] < venue.table_from.shape[0]:
        k = min(k, venue.table_from[vt[0]])
    if vt[1] < venue.funding_bar.shape[0]:
        k = min(k, venue.funding_bar[vt[1]])
    return k


@njit(cache=True, inline="always")
def _quiet_band(cfg, hb, hq, db, dq, long_, stops, entry, best, level):
    """(band_lo, band_hi, q_lo, q_hi, trail) of the account ``hb, hq, db,
    dq`` (held, owed) after a bar's events, above health ``level``: a quiet bar's mark open and
    close lie strictly inside the band, its mark low and high inside
    ``q_lo``..``q_hi`` (the band narrowed by the stop-loss and take-profit
    levels of ``entry``, with ``stops``), and with ``trail`` the trailing
    level is tested on it (from ``best``).  Scalars in: an inlined function
    with array arguments costs reference counting on every event."""
    band_lo, band_hi = safe_band(hb, hq, db, dq, level)
    return _stop_band(cfg, band_lo, band_hi, long_, stops, entry, best)


@njit(cache=True, inline="always")
def _stop_band(cfg, band_lo, band_hi, long_, stops, entry, best):
    """``_quiet_band`` from the venue's safe band ``band_lo``..``band_hi``."""
    q_lo, q_hi = band_lo, band_hi  # the band the quiet bars' lows and highs must stay in
    trail = False
    if stops:  # a stop or take-profit level also ends the quiet run
        s_lv, _, g_lv = stop_levels(entry, best, long_, cfg.stop_loss, cfg.take_profit, 0.0)
        lo_lv, hi_lv = (s_lv, g_lv) if long_ else (g_lv, s_lv)
        if lo_lv == lo_lv:
            q_lo = max(q_lo, lo_lv)
        if hi_lv == hi_lv:
            q_hi = min(q_hi, hi_lv)
        trail = cfg.trailing_stop > 0.0 and best == best
    return band_lo, band_hi, q_lo, q_hi, trail


