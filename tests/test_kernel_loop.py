"""``kernel._loop`` and ``kernel_multi._loop`` run without reference
counting (``_nrt=False``), as do the functions they call that way: they
may allocate nothing (numba refuses that at compile time; the few that
must say ``_nrt=True``), return no array and call nothing that returns
one, or an array would leak.  Checked on numba's own allocation counts
around runs that compile their shapes (spot margin, stops, finer bars and
limit orders, a perpetual, the trader's flows; a cross account of two
symbols on either venue, with stops, finer bars and limit orders): every
array allocated is freed; and on the return types of what the process
compiled (all of it on an empty cache; a function loaded from the cache
does not load what it calls apart, so a warm process sees less)."""
import gc
import importlib
from pathlib import Path

from numba.core import types
from numba.core.registry import CPUDispatcher
from numba.core.runtime import _nrt_python as nrt

import backtest
from backtest import kernel, kernel_multi
from backtest.multi import run_multi

DATA = Path(__file__).resolve().parents[1] / "data"
H1, M1, PERP = DATA / "BTCUSDT-1h.parquet", DATA / "BTCUSDT-1m-2025-06-16.parquet", DATA / "BTCUSDT_PERP-1h.parquet"
PAIR, PERPS = [H1, DATA / "ETHUSDT-1h.parquet"], [PERP, DATA / "ETHUSDT_PERP-1h.parquet"]
FINER = {"BTCUSDT": M1, "ETHUSDT": DATA / "ETHUSDT-1m-2025-06-16.parquet"}
WEEK = {"start": "2025-06-10", "end": "2025-06-20"}
LEV = {"fast": 10, "slow": 50, "leverage": 3.0}
RUNS = [
    (H1, "sma_cross", LEV, {}),
    (H1, "sma_cross", LEV, {"stop_loss": 0.03, "trailing_stop": 0.05}),
    (H1, "dip_entry", None, {"detail": M1, "start": "2025-06-14", "end": "2025-06-18"}),
    (PERP, "sma_cross", LEV, {"margin": "usdm-cross-5x"}),
    (H1, "sma_cross", LEV, {"reserve": 2000.0, "top_up": "ml=2.0", "keep_ml": 1.3}),
]
MULTI = [  # one cross account of two symbols: kernel_multi
    (PAIR, "sma_cross", LEV, {"margin": "cross-3x"}),
    (PAIR, "sma_cross", LEV, {"margin": "cross-3x", "stop_loss": 0.03, "trailing_stop": 0.05}),
    (PAIR, "dip_entry", None, {"margin": "cross-5x", "detail": FINER, **WEEK}),
    (PAIR, "sma_cross", LEV, {"margin": "cross-3x", "auto_repay": False}),
    (PERPS, "sma_cross", LEV, {"margin": "usdm-cross-5x"}),
    (PERPS, "sma_cross", LEV, {"margin": "usdm-cross-5x", "stop_loss": 0.03}),
]


def _run_all():
    for data, strategy, params, kw in RUNS:
        res = backtest.run(data, strategy, params, **kw)
        res.equity, res.trades  # (the tables built on first read)
        del res
    for data, strategy, params, kw in MULTI:
        res = run_multi(data, strategy, params, **kw)
        res.equity, res.trades
        del res
    gc.collect()


def test_runs_free_every_array_they_allocate():
    assert kernel._loop.targetoptions.get("_nrt") is False
    assert kernel_multi._loop.targetoptions.get("_nrt") is False
    _run_all()  # (compiled and warm: the counts below are the runs')
    was_on = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    try:
        live = nrt.memsys_get_stats_mi_alloc() - nrt.memsys_get_stats_mi_free()
        _run_all()
        allocated = nrt.memsys_get_stats_mi_alloc()
        assert allocated > 0  # (counted)
        assert nrt.memsys_get_stats_mi_alloc() - nrt.memsys_get_stats_mi_free() == live
    finally:
        if not was_on:
            nrt.memsys_disable_stats()


# the modules of what the loops reach, and their functions that return an array (called from Python
# only, never from a loop)
REACHED = ("kernel", "intrabar", "account", "limits", "replay", "flows", "rules", "bar_rows", "venues.plug",
           "venues.binance_usdm", "kernel_multi", "cross", "venues.binance_usdm_cross")
RETURN_ARRAYS = {"bar_rows.log_positions"}


def _holds_array(t):
    if isinstance(t, types.Optional):
        return _holds_array(t.type)
    return isinstance(t, types.Array) or any(_holds_array(x) for x in getattr(t, "types", ()))


def test_nothing_the_loop_reaches_returns_an_array():
    """Of the functions compiled in this process (all of them on an empty
    cache; what a cached one calls is not loaded apart)."""
    _run_all()
    seen, returning = 0, set()
    for name in REACHED:
        module = importlib.import_module(f"backtest.{name}")
        for fname, fn in vars(module).items():
            if isinstance(fn, CPUDispatcher) and fn.__module__ == module.__name__:
                for cres in fn.overloads.values():
                    seen += 1
                    if _holds_array(cres.signature.return_type):
                        returning.add(f"{name}.{fname}")
    assert seen >= 1  # (at least _loop, which Python calls)
    assert returning <= RETURN_ARRAYS, returning - RETURN_ARRAYS
