"""backtest/_compile_speed.py: numba's compile, sped up where it repeats work, gives what numba's own
code gives; the bar loop's compile waits for warm's helper just before its type inference."""
import copy

import numba
import numpy as np
from numba.core import compiler, inline_closurecall, targetconfig
from numba.core.typed_passes import NopythonTypeInference

from backtest import _compile_speed, kernel
from backtest._compile_speed import AwaitHelper, JoinedCompiler, _SharedMemo


def _numba_values(flags):
    """``TargetConfig.values`` as numba writes it: every option, read through its property."""
    return {k: getattr(flags, k) for k in flags.options}


def test_the_flags_values_are_numbas():
    plain, tuned, same = compiler.Flags(), compiler.Flags(), compiler.Flags()
    tuned.nrt, tuned.boundscheck, tuned.fastmath = True, True, True
    same.nrt = compiler.Flags.options["nrt"].default  # set, to its default: equal to unset
    assert isinstance(plain, targetconfig.TargetConfig) and targetconfig.TargetConfig.values is _compile_speed._values
    for flags in (plain, tuned, same):
        assert flags.values() == _numba_values(flags)
        assert len(flags.values()) == len(flags.options) > 10
    assert plain == same and hash(plain) == hash(same)
    assert plain != tuned
    assert {plain: 1}[same] == 1


def test_one_inlining_copies_shared_objects_once():
    shim = inline_closurecall.copy
    assert isinstance(shim, _SharedMemo)  # installed in place of numba's ``copy``
    scope = {"vars": list(range(5))}
    blocks = [{"scope": scope, "body": [1]}, {"scope": scope, "body": [2]}]
    apart = [shim.deepcopy(b) for b in blocks]  # no inlining under way: a memo per call, as numba's
    assert apart[0]["scope"] is not apart[1]["scope"]
    shim.memo = {}
    try:
        shared = [shim.deepcopy(b) for b in blocks]
    finally:
        shim.memo = None
    assert shared[0]["scope"] is shared[1]["scope"] and shared[0]["scope"] == scope and shared[0]["scope"] is not scope
    assert shared == blocks and copy.deepcopy(blocks) == shared  # (the same copy one deepcopy makes)


@numba.njit(inline="always")
def _clipped_sum(x, lo, hi):
    s = 0.0
    for v in x:
        if v < lo:
            s += lo
        elif v > hi:
            s += hi
        else:
            s += v
    return s


@numba.njit
def _two_sites(x):
    return _clipped_sum(x, 0.0, 1.0) - 2.0 * _clipped_sum(x[::-1], -1.0, 0.5)


def test_a_function_inlined_twice_computes_as_written():
    x = np.array([-2.0, -0.5, 0.25, 0.75, 3.0])
    clip = lambda y, lo, hi: float(np.clip(y, lo, hi).sum())  # noqa: E731
    assert _two_sites(x) == clip(x, 0.0, 1.0) - 2.0 * clip(x[::-1], -1.0, 0.5)


def test_the_loop_waits_for_the_helper_just_before_type_inference():
    joined = JoinedCompiler.__new__(JoinedCompiler)  # (only its pipeline: no compile)
    joined.state = compiler.StateDict()
    joined.state.flags, joined.state.func_ir = compiler.Flags(), None
    passes = [p for p, _ in joined.define_pipelines()[0].passes]
    k = passes.index(AwaitHelper)
    assert passes[k + 1] is NopythonTypeInference
    assert kernel._loop.targetoptions.get("nogil") and kernel._loop._compiler.pipeline_class is JoinedCompiler


def test_a_deferred_wait_runs_once_at_the_next_joined_compile():
    seen = []

    @numba.njit(pipeline_class=JoinedCompiler)
    def f(x):
        return x + 1

    _compile_speed.defer(lambda: seen.append("waited"))
    assert f(1) == 2 and seen == ["waited"] and not _compile_speed._pending
    assert f(2.5) == 3.5 and seen == ["waited"]  # (a second compile: nothing left to wait for)
    _compile_speed.defer(lambda: seen.append("again"))
    _compile_speed.await_pending()  # (warm.finish: a run whose loop was cached waits here)
    assert seen == ["waited", "again"] and not _compile_speed._pending
