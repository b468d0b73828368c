"""A fresh environment's first run compiles on two cores.

numba compiles a function's callees before the function and caches each one
on its own; a callee found in the cache is loaded, not compiled.  So on a
cold cache (``_numba_cache.cold``) ``run`` starts a helper process that
compiles the kernel's step inside a bar (``kernel._intrabar``, the walk,
for a run with stops, limit orders or finer bars; else
``kernel._liquidation_step``: numba then compiles no walk at all) and then
the return block's sums (``_sums``: the kernel's body reaches them seconds
into its own compile) and the passes ``run`` calls after the kernel (round
trips, per-bar columns, liquidation prices), while ``run`` itself compiles
the steps at a bar's open (``_gap``, ``_order``).
The kernel then finds its callees cached and compiles only its own body.
A local sweep and the risk lab do the same (their rows need no passes after
the kernel), and ``run_multi`` when every account holds one symbol.  With a
cross account of several symbols on spot margin, ``run_multi``'s helper
compiles the callees the step at a bar reaches late (its limit order, the
fill, its books, the adverse extremes and their θ: ``_multi_step_late``)
and the steps ``kernel_multi``'s loop reaches last (the quiet run, the
close, the decision; with stops the joint walk: ``start_multi``) while the
run compiles the step's body and first callees (``join_multi``), then the
passes after the kernel (``_multi_after``) while the run compiles the
kernel's body.  With a cross perp account (no stops, no limit orders), the
helper compiles its late fill, the θ on its joint mark path and its quiet
run, then the passes, while the run compiles the loop
(``start_multi_perp``: nothing to join).  What a helper compiles apart says
``_nrt=False`` where the loop calls it (numba's cache is keyed on types
only: compiled at top level it would count references inside the loop).

A part is compiled for the types of dummy inputs built as the kernel's
(``_steps``, ``_walk``; ``_after`` calls the passes on two bars).  Were a
type here to drift from the kernel's, nothing breaks: the kernel compiles that callee again, as it
would without this module (``tests/test_warm.py`` checks that none is).
"""
import atexit
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np

from . import _compile_speed, _numba_cache

WALK_DONE = "walk compiled"
AFTER_DONE = "passes compiled"  # (the passes after the kernel: the helper exits after, which takes a while)


def _inputs(perp: bool):
    """Dummy kernel state and inputs of the kernel's types (one bar)."""
    from .detail import NO_DETAIL
    from .inputs import Detail, Given, read_only
    from .intrabar import N_FS, N_NS, N_TOT
    from .profiles import resolve_profile
    from .rates import rate_table
    from .records import liquidation_dt, order_dt
    from .settings import RunSettings
    from .strategy import Orders

    seconds = np.array([0], dtype=np.int64)
    profile = resolve_profile("usdm-cross-5x" if perp else "cross-3x", None).for_pair("BTC", "USDT")
    cfg, rates = RunSettings(10_000.0).kernel_config(profile, rate_table(seconds, ("BTC", "USDT"),
                                                                         {"BTC": 0.0, "USDT": 0.0}, None))
    targets = np.full(1, np.nan)
    given = read_only(Given(targets, *Orders(targets).kernel_args()))  # (as kernel.simulate hands them)
    return dict(st=np.zeros(6), fs=np.zeros(N_FS), ns=np.zeros(N_NS, np.int64), bt=np.zeros((2, N_TOT)), cfg=cfg,
                given=given, detail=read_only(Detail(*NO_DETAIL)), orders=np.zeros(4, order_dt),
                liqs=np.zeros(4, liquidation_dt), pv=1 if perp else None)


def _compile(fn, *args):
    """Compile ``fn`` for the types of ``args`` (without running it); a perp's
    ``pv`` (last) is typed as the kernel types it, an optional integer."""
    sig = [numba.typeof(a) for a in args]
    if args[-1] is not None:
        sig[-1] = numba.types.Optional(numba.types.int64)
    fn.compile(tuple(sig))


def _steps(perp: bool, walk: bool):
    """The kernel's steps at a bar's open: with the walk in the helper the
    gap liquidation and the order; the market order and the last block's
    return sums (without a walk the halves then take about as long).  (Taking the
    walk's replay of finer bars here too, to even the halves, made the
    first run 2.5 s slower: the two processes then compiled more of the
    same callees.)"""
    from . import kernel

    a = _inputs(perp)
    st, fs, ns, bt, cfg, orders, liqs, pv = (a[k] for k in ("st", "fs", "ns", "bt", "cfg", "orders", "liqs", "pv"))
    if walk:
        _compile(kernel._gap, st, fs, ns, bt, cfg, 0, 1.0, 1.0, orders, liqs, pv)
        _compile(kernel._order, st, fs, ns, bt, cfg, 0, 1.0, a["given"].expiry, orders, pv)
    # (with a walk too: the loop compiles the market order's branch, never taken then, and the rest; this
    # process had waited ~7 s for the helper's walk)
    _compile(kernel._market_order, st, fs, ns, bt, cfg, 0, 1.0, orders, pv)
    kernel._add_returns.compile((numba.float64[::1], numba.int64, numba.float64, numba.float64, numba.float64))
    # and the small rules the kernel's own body calls (typed here, not inside its long compile)
    from . import rules

    rules.hour_boundaries_between.compile((numba.int64, numba.int64))
    rules.safe_band.compile((numba.float64,) * 5)
    rules.stop_levels.compile((numba.float64, numba.float64, numba.boolean, numba.float64, numba.float64,
                               numba.float64))


def _walk(perp: bool, walk: bool):
    """The steps liquidating: the walk inside a bar; or, in a run that
    walks nothing, the gap liquidation and the liquidation check inside a
    bar (without the walk these are about half)."""
    from . import kernel

    a = _inputs(perp)
    st, fs, ns, bt, cfg, orders, liqs, pv = (a[k] for k in ("st", "fs", "ns", "bt", "cfg", "orders", "liqs", "pv"))
    px = (1.0, 1.0, 1.0, 1.0)
    if walk:
        _compile(kernel._intrabar, st, fs, ns, bt, cfg, 0, (px, px), False, a["detail"], orders, liqs, pv)
        return
    _compile(kernel._gap, st, fs, ns, bt, cfg, 0, 1.0, 1.0, orders, liqs, pv)
    _compile(kernel._liquidation_step, st, fs, ns, bt, cfg, 0, px[:3], 1.0, 1.0, orders, liqs, pv)


def _sums():
    """The return block's sums and a wiped-out account's tail: not inlined
    (called once in 64 bars, once a run), so compiled apart; the helper
    compiles them after its first half, ahead of the kernel's body, which
    reaches them some seconds into its own compile and finds them cached
    (compiled inside it they took ~1.2-1.7 s of it)."""
    from . import kernel

    block = numba.typeof(np.zeros(1))  # (the type of simulate's block; its length is simulate's to say)
    kernel._add_block.compile((block,) + (numba.float64,) * 3)
    # (a perp run never reaches the wiped-out tail, but numba compiles it there too: ``venue is None`` is
    # pruned only where ``venue`` is typed None)
    kernel._zero_tail.compile((block, numba.int64, *(numba.float64,) * 3, numba.int64))


def _after():
    """What ``run`` computes from the kernel's outputs (two bars, no fill)."""
    import pandas as pd

    from .bar_rows import LOG, Rows
    from .engine import _trades
    from .liqprice import liquidation_columns
    from .medians import spacing_median
    from .per_bar import bar_columns
    from .records import order_dt
    from .trades import interest_by_asset

    orders, bars = np.zeros(0, order_dt), np.ones(2)
    bars.flags.writeable = False  # the bars' columns run() passes are read-only views
    times = pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC")
    spacing_median(np.array([0, 3600], dtype=np.int64))
    rows = Rows(np.zeros((2, LOG)), 1, bars, False, False)
    _trades(rows, orders, times, bars, bars, "BTCUSDT", np.zeros(0), False, False)
    out = rows.full()  # (the equity table's passes)
    bar_columns(out[0], out[1], out[2], bars, orders)
    interest_by_asset(out[4], orders, out[1], bars)
    liquidation_columns(out[1], out[0], out[2], bars, 1.1)


def start(perp: bool, after: bool = True, walk: bool = True):
    """The helper process compiling the step inside a bar (``walk``: the
    run has stops, limit orders or finer bars, ``detail.for_kernel``) and
    (``after``) the passes after the kernel, when the cache is cold; None
    otherwise (or when no process can be started: the run then compiles
    everything itself)."""
    from . import kernel

    if kernel._loop.overloads or not _numba_cache.cold():  # (in memory already: nothing to compile)
        return None
    return _spawn(perp, after, walk)


def _spawn(perp, after, walk, mode=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if numba.config.CACHE_DIR:
        env["NUMBA_CACHE_DIR"] = numba.config.CACHE_DIR  # the same folder, whatever configured it
    try:
        helper = subprocess.Popen([sys.executable, "-m", "backtest.warm", *(mode or ("perp" if perp else "spot",)),
                                   *(["after"] if after else []), *(["walk"] if walk else [])], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
    except OSError:
        return None
    helper.walk = walk  # (which half join compiles)
    helper.after = after or bool(mode)  # (it says AFTER_DONE: a several-symbol helper always compiles its passes)
    atexit.register(_drop, helper)  # (join's wait, registered later, runs first)
    return helper


def _drop(helper):
    """A helper no run joined (the command failed first) is stopped at exit."""
    if helper.poll() is None:
        helper.kill()
        helper.wait()


def start_for(profiles, after: bool = True, walk: bool = True):
    """``(start(...), perp)`` for a run over ``profiles`` all of one kind
    (spot margin, or perpetuals); ``(None, None)`` for a mix (no helper)."""
    kinds = {p.perp for p in profiles}
    perp = kinds.pop() if len(kinds) == 1 else None
    return (None if perp is None else start(perp, after, walk)), perp


def announce(helper, multi: bool = False, singles: bool = False):
    """The first-run notice (``_numba_cache.announce``), with the time it
    takes with a helper (two cores; a run that walks no bar's path compiles
    no walk) or without (``backtest bench --first-run`` measures the first);
    ``multi``: for the kernel of a cross account of several symbols, and
    ``singles``: accounts of one symbol beside it (their kernel too).  The
    seconds as measured: a cold default run compiled for 14–15 s on
    2026-12-06 (a slow day), 7.5–9.5 s since 2026-12-07 (12.5 s with
    stops: ``_compile_speed``); a cross account of two symbols for 31–38 s
    in one round, 24–28 s in another, where 519e237 took 24 s; on
    2026-12-07 b4966ef 23 s, where the commit before it took 27 s, 13.4 s
    after, 11.0–11.5 s since d0ca8a8 (``bench --first-run --symbols 2``)."""
    if multi:
        if singles and not _numba_cache.cold(MULTI):  # (only the one-symbol kernel's cache may be cold)
            _numba_cache.announce(seconds=25)
            return
        extra = 25 if singles and _numba_cache.cold() else 0
        _numba_cache.announce(seconds=(40 if helper is None else 25) + extra, kernel=MULTI)
        return
    _numba_cache.announce(seconds=30 if helper is None else (15 if helper.walk else 10))


def join(helper, perp: bool):
    """Compile the steps here while the helper compiles the walk; the
    kernel's loop then waits for the walk where its compile first needs it,
    at type inference (``_compile_speed.JoinedCompiler``: its untyped passes
    run meanwhile), not for the rest.  ``helper``: ``start``'s, None for
    nothing to do."""
    _join(helper, lambda: _steps(perp, helper.walk))


def _join(helper, compile_here):
    """``join``, ``join_multi``: ``compile_here()``, then leave the wait for
    ``helper`` to the loop's compile.  A failure here is the caller's to
    ``release`` (as one after it)."""
    if helper is None:
        return
    atexit.register(_reap, helper)  # no helper outlives the command (it is done by then, as a rule)
    compile_here()
    _compile_speed.defer(helper, lambda: _wait(helper))


@contextlib.contextmanager
def running(helper):
    """Around ``join`` and the kernel (``run``, ``run_multi``): ``finish``
    after a kernel that ran; on a failure or an interrupt ``release`` at
    once (no wait for the helper's passes)."""
    try:
        yield
    except BaseException:
        release(helper)
        raise
    finish(helper)


def finish(helper):
    """After the kernel (``run``, ``run_multi``): when the helper compiles
    the passes after it (``_after``, ``_multi_after``), wait until it says
    they are compiled (not for its exit, ~0.4 s more): a pass it has not
    written yet the run would compile again itself, taking longer than the
    wait (the loop, its compile waiting at type inference only, can be done
    first).  Then ``release``."""
    if helper is not None and not helper.stdout.closed and helper.after:
        for line in helper.stdout:  # (WALK_DONE if no wait read it) AFTER_DONE, or the end of a helper that failed
            if line.strip() == AFTER_DONE:
                break
    release(helper)


def release(helper):
    """Let ``helper`` go (a run that failed or was interrupted, a sweep's
    end, ``finish``): its wait, if it has not run (the loop was cached, or
    the run failed first), is dropped, and the pipe closed: nothing the
    helper prints later can block it.  It ends by itself (reaped at exit)."""
    if helper is None:
        return
    _compile_speed.forget(helper)
    if not helper.stdout.closed:
        helper.stdout.close()


def _wait(helper):
    """Wait for the helper's first half (or its end)."""
    if not helper.stdout.closed:
        helper.stdout.readline()  # WALK_DONE, or '' if the helper ended without it


def _reap(helper):
    try:
        helper.wait(timeout=120)
    except subprocess.TimeoutExpired:
        helper.kill()


# --- the kernel of a cross account holding several symbols (run_multi) ---
MULTI = "kernel_multi._loop"


def _multi_types(walk: bool) -> dict:
    """numba types of ``kernel_multi``'s inputs and state, as
    ``simulate_multi`` makes them (two symbols, one account, one bar)."""
    from . import kernel_multi as km
    from .inputs import Grid, JointStops, MultiOut
    from .records import liquidation_multi_dt, margin_call_multi_dt, order_multi_dt
    from .venues import binance_usdm as usdm

    t = numba.typeof
    grid = t(np.zeros((2, 1)))
    out = dict(i=numba.int64, f=numba.float64, b=numba.boolean, ts=t(np.zeros(1, np.int64)), grid=grid,
               syms=t(np.zeros((1, 2), np.int64)), out3=t(np.zeros((1, 4, 1))), vec=t(np.zeros(6)),
               fsv=t(np.zeros((0, usdm.N_SLOTS))), orders=t(np.zeros(1, order_multi_dt)),
               liqs=t(np.zeros(1, liquidation_multi_dt)), calls=t(np.zeros(1, margin_call_multi_dt)))
    if walk:
        out["stops"] = t(JointStops(np.zeros((2, 3)), np.zeros((2, 0)), np.zeros((2, 0)), np.zeros((2, 0)),
                                    np.zeros((2, 0)), np.zeros(0, np.int64)))
    out["g"] = t(Grid(np.zeros(1, np.int64), *(np.zeros((2, 1)),) * 8))  # simulate_multi's g
    out["out"] = t(MultiOut(np.zeros((1, 4, 1)), np.zeros((2, 2, 1)), np.zeros(2), np.zeros(1)))
    out["scr"] = t(np.zeros((km.N_SCRATCH, 3)))
    # simulate_multi's books (sb, aq, st, ss, sa, scr, tot), one tuple
    out["books"] = numba.types.Tuple((grid, grid, out["vec"], grid, grid, out["scr"], out["vec"]))
    return out


def _multi_late(walk: bool, fine: bool = False):
    """The helper's half of ``_loop``'s callees: those it
    reaches last (the quiet run, the close, the decision; with stops the
    joint walk; with finer bars their step 5), while ``join_multi``
    compiles the first (the step)."""
    from . import kernel_multi as km
    from .inputs import JointDetail

    y = _multi_types(walk)
    i, f, b, grid, syms, books, T = y["i"], y["f"], y["b"], y["grid"], y["syms"], y["books"], numba.types.Tuple
    if walk:
        bars = T((syms,) + (grid,) * 8)  # simulate_multi's walk_bars
        params = T((grid, y["vec"], grid, i, y["stops"]))
        at = T((i, i, f, numba.types.literal(False)))  # (bar i, its column, θ offset, not a sub-step)
        km._walk_joint.compile((at, i, i, bars, books, params, y["orders"], y["liqs"], numba.types.none))
    stops = y["stops"] if walk else numba.types.none
    if fine:  # _finer's types as _loop calls it
        detail = numba.typeof(JointDetail(*(np.zeros((2, 1)),) * 4, np.zeros((2, 1), np.int64), np.int64(1)))
        km._finer.compile((i, i, i, T((syms,) + (grid,) * 8), books, T((grid, y["vec"], grid, i, stops)),
                           T((y["orders"], y["liqs"], y["calls"])), detail, stops))
    km._close_quiet.compile((i, y["g"], syms, books, grid, grid, f, y["out"], T((i, grid)), b, stops))
    km._close.compile((i, i, i, syms, i, books, grid, y["fsv"], numba.types.none, y["out3"], f))
    km._decide.compile((i, i, syms, i, grid, grid, b, b, f, f, grid, grid))


def _multi_step_late():
    """The callees ``_step_cross`` reaches after its first ones (its limit
    order, the fill, its books, the adverse extremes and their θ), in the
    order it reaches them: the helper compiles them while the run compiles
    the step's body and its first callees (the hour's charge, the
    liquidation: ~4 s of its compile, numba's compile events), and the step
    finds them cached (they were the run's while the helper sat idle).  The
    joint path the run compiles itself: it calls the liquidation, which the
    helper would compile once more."""
    from . import cross, rules
    from . import kernel_multi as km

    y = _multi_types(False)
    i, f, b, grid, syms, vec, books = y["i"], y["f"], y["b"], y["grid"], y["syms"], y["vec"], y["books"]
    T, U = numba.types.Tuple, numba.types.UniTuple
    km._place_limit.compile((i, i, syms, i, books, grid, vec, T((grid, i))))
    cross.trade_to_cross.compile((vec, f, f, U(f, 4), T((f, f, b, b, b)), U(f, 2), U(f, 2)))
    km._book_order.compile((vec, i, i, i, T((i, f, f, f, b, f, f)), f, f, grid, grid, y["orders"], vec))
    km._toward_adverse.compile((i, i, syms, i, grid, grid, grid, grid, f, grid))
    rules.joint_theta.compile((f, f))


def _multi_first():
    """``join_multi``'s half: the step of a cross account with several symbols."""
    from . import kernel_multi as km

    y = _multi_types(False)
    i, grid, syms, T = y["i"], y["grid"], y["syms"], numba.types.Tuple
    km._step_cross.compile((i, i, i, syms, i, y["books"], T((grid,) * 6), grid, y["vec"], T((i, grid)),
                            T((y["orders"], y["liqs"], y["calls"])), numba.typeof(np.zeros(0, np.int64))))


def _multi_after():
    """What ``run_multi`` computes from ``kernel_multi``'s outputs (a cross
    account of two symbols, three bars, a buy of each)."""
    import pandas as pd

    from . import kernel_multi as km
    from .multi import _result
    from .multi_accounts import EXTRA_STATS
    from .profiles import get_profile
    from .records import SIGNAL, liquidation_multi_dt, margin_call_multi_dt, order_multi_dt

    symbols, n = ["BTCUSDT", "ETHUSDT"], 3
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="timestamp")
    seconds = (index.asi8 // 1_000_000_000).astype(np.int64)
    bars = pd.DataFrame(dict.fromkeys(("open", "high", "low", "close", "volume"), 1.0), index=index)
    cols = {k: np.ones((2, n)) for k in ("open", "high", "low", "close")}
    out_acct, out_sym = np.zeros((1, len(km.ACCOUNT_ROWS), n)), np.zeros((2, len(km.SYMBOL_ROWS), n))
    out_acct[0, 0] = 10_000.0
    out_sym[:, 0] = 1.0
    orders = np.zeros(2, order_multi_dt)
    orders["symbol"], orders["side"], orders["kind"], orders["event"] = [0, 1], 1, SIGNAL, -1
    orders["quantity"], orders["price"], orders["position"], orders["trigger"] = 1.0, 1.0, 1.0, np.nan
    stats = dict.fromkeys(km.STATS + EXTRA_STATS, 0.0)
    res = _result({s: bars for s in symbols}, symbols, [("cross", get_profile("cross-3x"), symbols)], index, seconds,
                  cols, out_acct, out_sym, np.zeros(2), np.zeros(1), orders, np.zeros(0, liquidation_multi_dt),
                  np.zeros(0, margin_call_multi_dt), stats, {}, "USDT", 10_000.0, {})
    res.equity, res.trades  # (its tables are built when read: the passes they call are compiled here)


def start_multi(walk: bool, fine: bool = False):
    """The helper process compiling the late half of ``kernel_multi`` for a
    run with a cross account of several symbols on spot margin (``walk``:
    with stops on there; ``fine``: with finer bars), when its cache is cold;
    else None."""
    from . import kernel_multi

    if kernel_multi._loop.overloads or not _numba_cache.cold(MULTI):
        return None
    return _spawn(False, False, walk, mode=("multi", "fine") if fine else ("multi",))


def start_multi_perp():
    """The helper process for a run with a cross perp account of several
    symbols without stops or limit orders, when its cache is cold: it
    compiles the fill the account's step reaches late, the θ on its joint
    mark path and the quiet run its loop reaches last
    (``_multi_perp_late``), then the passes after the
    kernel, while the run compiles the loop and its step: nothing to join
    (a step the helper is not done with, the run compiles itself); after
    the kernel ``finish`` waits for its passes.  None otherwise."""
    from . import kernel_multi

    if kernel_multi._loop.overloads or not _numba_cache.cold(MULTI):
        return None
    # (not waited for at exit: done with its passes by finish, else _spawn's _drop stops it, as for a
    # failed command)
    return _spawn(True, False, False, mode=("multi", "perp"))


def _multi_perp_late():
    """``start_multi_perp``'s half: the fill, the joint path's θ and the
    quiet run of a cross perp account, for the types ``simulate_multi``
    gives them."""
    from . import kernel_multi as km
    from .inputs import CrossVenue
    from .venues import binance_usdm_cross as usdm_cross

    y = _multi_types(False)
    i, f, grid, syms, vec, books, T = y["i"], y["f"], y["grid"], y["syms"], y["vec"], y["books"], numba.types.Tuple
    venue = numba.typeof(CrossVenue(1.0, np.zeros((1, 1), np.int64), np.zeros(1, np.int64), np.zeros((1, 1)),
                                    np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1), np.zeros(1),
                                    np.zeros((1, 1))))
    km._perp_trade.compile((i, i, i, syms, i, books, grid, venue, vec, y["orders"]))
    lit = numba.types.literal  # the step's θ on the joint mark path (it reaches it ~3 s into its compile: in time)
    usdm_cross.joint_theta.compile((grid, f, syms, i, i, y["fsv"], T((y["scr"], lit(km.MCUR), lit(km.EXT),
                                                                       lit(km.TRADED))), f))
    km._close_quiet_perp.compile((i, y["g"], syms, books, f, y["out"], T((venue, grid, y["ts"]))))


def join_multi(helper):
    """Compile the step here while the helper compiles the rest; ``_loop``
    waits for it at its type inference (as ``join``'s) and then finds every
    callee cached."""
    _join(helper, _multi_first)


def _main(argv):
    if argv[:2] == ["multi", "perp"]:
        _multi_perp_late()
        _multi_after()  # (its round trips are a perp account's too)
        print(AFTER_DONE, flush=True)
        return
    if argv[:1] == ["multi"]:
        try:
            _multi_step_late()
            _multi_late("walk" in argv, "fine" in argv)
        finally:
            print(WALK_DONE, flush=True)
        _multi_after()  # (the run compiles its kernel's body meanwhile)
        print(AFTER_DONE, flush=True)
        return
    perp = argv[:1] == ["perp"]
    try:
        _walk(perp, "walk" in argv)
    finally:
        print(WALK_DONE, flush=True)
    _sums()
    if "after" in argv:
        _after()
        print(AFTER_DONE, flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
