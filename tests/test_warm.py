"""A cold first run compiles the kernel's step inside a bar in a helper
process (backtest/warm.py): the walk for a run with stops, the liquidation
check alone for a run without (numba then compiles no walk at all).  The
kernel must find it cached, not compile it again, and the run's results are
those of any other run."""
import pytest
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
from backtest import _numba_cache, bar_rows, kernel, trades
from backtest import warm
from backtest.cli import main
cold = _numba_cache.cold()


def sums():
    # the signatures of the return sums after the helper's own compile of them here too: one each when
    # the helper's types are the kernel's (else the kernel compiled them again, and so does this)
    warm._sums()
    return [len(kernel._add_block.overloads), len(kernel._zero_tail.overloads)]
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
after = (trades._walk, trades._split_interest, bar_rows.expand, bar_rows.log_positions)  # the passes after the kernel
print(json.dumps({
    "cold": cold,
    "walk_hits": sum(kernel._intrabar.stats.cache_hits.values()),
    "walk_misses": sum(kernel._intrabar.stats.cache_misses.values()),
    "walk_compiled": len(kernel._intrabar.overloads),
    "liq_hits": sum(kernel._liquidation_step.stats.cache_hits.values()),
    "liq_misses": sum(kernel._liquidation_step.stats.cache_misses.values()),
    "liq_compiled": len(kernel._liquidation_step.overloads),
    "steps": [len(kernel._gap.overloads), len(kernel._order.overloads), len(kernel._market_order.overloads)],
    "after": [len(f.overloads) for f in after],
    "after_misses": sum(sum(f.stats.cache_misses.values()) for f in after),
    "sums": sums(),
}))
"""


def _cold_probe(code, args, env, out):
    """Run ``backtest args --out out`` inside ``code`` (a probe printing
    JSON last) in a new process: (what it printed, its stderr)."""
    done = subprocess.run([sys.executable, "-c", code, *args, "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _counts_no_references(cache, names):
    """Each of ``names`` (``module.function``) is cached, and its cached code
    calls none of numba's reference counting: the steps a helper compiles
    apart say ``_nrt=False``, as the loop (``_nrt=False``) compiles them
    (else the cache, keyed on types only, holds the helper's counting
    version, and the loop links it in)."""
    for name in names:
        files = list(cache.rglob(f"{name}-*.nbc"))
        assert files, name
        assert all(b"NRT_incref" not in f.read_bytes() and b"NRT_decref" not in f.read_bytes() for f in files), name


def _warm_rerun_agrees(args, env, out, tmp_path):
    """The same run on the now warm cache (no helper) gives the same summary."""
    again = subprocess.run([sys.executable, "-m", "backtest", *args, "--out", str(tmp_path / "again")], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    first, second = (json.loads((d / "summary.json").read_text()) for d in (out, tmp_path / "again"))
    assert first == second


@pytest.mark.parametrize("stops", [[], ["--stop-loss", "0.05"]])
def test_a_cold_run_finds_the_walk_compiled_by_the_helper(tmp_path, stops):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    out = tmp_path / "out"
    args = ["run", "--start", "2024-01-01", "--end", "2024-03-01", "--no-report", *stops]
    probe, _ = _cold_probe(PROBE, args, env, out)
    assert probe["cold"]
    step = "walk" if stops else "liq"
    assert probe[f"{step}_hits"] == 1 and probe[f"{step}_misses"] == 0  # loaded from the helper's cache entry
    if not stops:
        assert probe["walk_compiled"] == 0  # without stops numba compiles no walk at all
    # compiled once (here, by warm.join, or by the helper), not again by the kernel; no limit code without a walk
    assert probe["steps"] == ([1, 1, 1] if stops else [1, 0, 1])
    assert probe["after"] == [1, 1, 1, 1]  # one signature: the helper's dummies have the run's types
    assert probe["after_misses"] == 0  # loaded: the run waits for the helper to say so (warm.finish)
    assert probe["sums"] == [1, 1]  # (warm._sums: the helper's types are the kernel's)
    _counts_no_references(tmp_path / "cache", ["kernel._loop", "kernel._gap", "kernel._market_order"] + (
        ["kernel._order", "kernel._intrabar"] if stops else ["kernel._liquidation_step"]))
    # the same run on a warm cache (no helper) gives the same summary
    _warm_rerun_agrees(args, env, out, tmp_path)


def test_a_failing_command_stops_its_helper(tmp_path):
    """A run refused after its compile helper started (exit 2: the strategy
    is checked after) leaves no helper compiling behind."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    probe = ("import atexit, sys\n"
             "from backtest import warm\n"
             "from backtest.cli import main\n"
             "spawned = []\n"
             "spawn = warm._spawn\n"
             "warm._spawn = lambda *a: spawned.append(spawn(*a)) or spawned[-1]\n"
             "code = main(sys.argv[1:])\n"
             "assert code == 2, code\n"
             "assert len(spawned) == 1 and spawned[0].poll() is None  # started, still compiling\n"
             "atexit._run_exitfuncs()\n"
             "print(spawned[0].poll())\n")
    done = subprocess.run([sys.executable, "-c", probe, "run", "--strategy", "no_such_strategy", "--no-report",
                           "--out", str(tmp_path / "x")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] != "None"  # the helper has ended
    assert "no_such_strategy" in done.stderr and not (tmp_path / "x").exists()


# a cold run of kernel_multi, then what a probe reads
MULTI_RUN = """
import json, sys
from backtest import _numba_cache, cross, kernel_multi as km, liqprice, rules, trades, warm
from backtest.cli import main
cold = _numba_cache.cold("kernel_multi._loop")
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
"""
MULTI_PROBE = MULTI_RUN + """
fns = {n: getattr(km, n) for n in ("_close_quiet", "_close", "_decide", "_walk_joint")}
fns.update(round_trips=trades._walk, interest_split=trades._split_interest, liquidation_price=liqprice._columns)
# the step's late callees (the helper may or may not be done with them when the step reaches them): compiled
# here again by the helper's code, they keep one signature each when the helper's types are the run's
warm._multi_step_late()
step_late = [len(f.overloads) for f in (km._place_limit, cross.trade_to_cross, km._book_order, km._toward_adverse,
                                        rules.joint_theta)]
print(json.dumps({"cold": cold, "step_late": step_late, **{
    n: [sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()), len(f.overloads)]
    for n, f in fns.items()}}))
"""


@pytest.mark.parametrize("stops", [[], ["--stop-loss", "0.03"]])
def test_a_cold_cross_run_of_two_symbols_finds_the_late_steps_compiled_by_the_helper(tmp_path, stops):
    """run_multi with a cross account of two symbols on a cold cache: the
    helper compiles the steps the loop reaches last (with stops the joint
    walk) and the passes after the kernel, the run loads them (one signature
    each: the helper's types are the run's), and the results are those of
    the same run on a warm cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    args = ["run", "--data", str(ROOT / "data" / "BTCUSDT-1h.parquet"), "--data",
            str(ROOT / "data" / "ETHUSDT-1h.parquet"), "--margin", "cross-3x", "--start", "2024-01-01",
            "--end", "2024-03-01", "--no-report", *stops]
    out = tmp_path / "out"
    probe, stderr = _cold_probe(MULTI_PROBE, args, env, out)
    assert probe["cold"] and "compiling the kernels, once: ~25 s" in stderr
    late = ("_close_quiet", "_close", "_decide", "round_trips", "interest_split", "liquidation_price")
    for name in late + (("_walk_joint",) if stops else ()):
        assert probe[name] == [1, 0, 1], (name, probe[name])  # loaded from the helper's cache entry
    if not stops:
        assert probe["_walk_joint"] == [0, 0, 0]  # without stops no joint walk at all
    assert probe["step_late"] == [1, 1, 1, 1, 1]
    _counts_no_references(tmp_path / "cache", ["kernel_multi._place_limit", "cross.trade_to_cross",
                                               "kernel_multi._book_order", "kernel_multi._toward_adverse"])
    _warm_rerun_agrees(args, env, out, tmp_path)


PERP_PROBE = MULTI_RUN + """
# compiled here again by the helper's code, they keep one signature each when the helper's types are the run's
warm._multi_perp_late()
warm._multi_after()
from backtest.venues import binance_usdm_cross
late = (km._perp_trade, binance_usdm_cross.joint_theta, km._close_quiet_perp)
print(json.dumps({"cold": cold, "late": [len(f.overloads) for f in late], "round_trips": len(trades._walk.overloads)}))
"""


def test_a_cold_cross_perp_run_of_two_symbols_has_a_helper(tmp_path):
    """run_multi with a cross perp account of two symbols on a cold cache:
    a helper compiles the late fill, the joint mark path's θ, the quiet run
    and the passes after the kernel while the run compiles the loop (its
    first-run notice says so); its types are the run's, its steps count no
    references, and the results are those of the same run on a warm
    cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    args = ["run", "--data", str(ROOT / "data" / "BTCUSDT_PERP-1h.parquet"), "--data",
            str(ROOT / "data" / "ETHUSDT_PERP-1h.parquet"), "--margin", "usdm-cross-5x", "--start", "2024-01-01",
            "--end", "2024-03-01", "--no-report"]
    out = tmp_path / "out"
    probe, stderr = _cold_probe(PERP_PROBE, args, env, out)
    assert probe["cold"] and "compiling the kernels, once: ~25 s" in stderr  # (~40 s without a helper)
    assert probe["late"] == [1, 1, 1] and probe["round_trips"] == 1
    _counts_no_references(tmp_path / "cache", ["kernel_multi._perp_trade", "binance_usdm_cross.joint_theta"])
    _warm_rerun_agrees(args, env, out, tmp_path)


def test_the_walk_compiles_its_limit_step_once(tmp_path):
    """The walk inside a bar (the helper's half of a run with stops) reaches
    the limit order's walk from the bar and from each finer bar: one
    signature (replay's literal False for its mark compiled it a second
    time, ~2 s of a cold run with stops)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    code = ("from backtest import limits, warm\n"
            "warm._walk(False, True)\n"
            "print(len(limits._walk_limit.overloads))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "1"
