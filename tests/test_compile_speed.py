"""backtest/_compile_speed.py: numba's compile, sped up where it repeats work, gives what numba's own
code gives; the bar loop's compile waits for warm's helper just before its type inference."""
import copy
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba.core import compiler, inline_closurecall, targetconfig
from numba.core.typed_passes import NopythonTypeInference
from numba.extending import overload

from backtest import _compile_speed, kernel, kernel_multi, warm
from backtest._compile_speed import AwaitHelper, JoinedCompiler, _SharedMemo


def _numba_values(flags):
    """``TargetConfig.values`` as numba writes it: every option, read through its property."""
    return {k: getattr(flags, k) for k in flags.options}


def test_the_flags_values_are_numbas():
    plain, tuned, same = compiler.Flags(), compiler.Flags(), compiler.Flags()
    tuned.nrt, tuned.boundscheck, tuned.fastmath = True, True, True
    same.nrt = compiler.Flags.options["nrt"].default  # set, to its default: equal to unset
    assert isinstance(plain, targetconfig.TargetConfig) and targetconfig.TargetConfig.values is _compile_speed._flag_values
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


def _scaled_sum(x, k):
    pass


@overload(_scaled_sum, inline="always")  # (inlined by the typed pass, in SSA form)
def _scaled_sum_impl(x, k):
    def impl(x, k):
        s = 0.0
        for v in x:
            if v > 0.0:
                s += k * v
            else:
                s -= v
        return s
    return impl


def _two_sites(x):
    return (_clipped_sum(x, 0.0, 1.0) - 2.0 * _clipped_sum(x[::-1], -1.0, 0.5)
            + _scaled_sum(x, 3.0) - _scaled_sum(x[1:], 0.5))


# (numba warns of a variable out of scope when it inlines an overload in SSA form, with its own copies too)
@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaIRAssumptionWarning")
def test_functions_inlined_twice_compute_as_written_each_copy_with_one_scope(monkeypatch):
    """Each inlining's copy of the callee's blocks shares one scope (numba's own per-block copies make
    one scope each), the memo is left unset after the compile, and the result is as written."""
    scopes, worker = [], inline_closurecall.InlineWorker
    inline_ir = worker.inline_ir

    def spy(self, *args, **kwargs):
        out = inline_ir(self, *args, **kwargs)
        callee_copy = out[0]  # (the unmutated copy numba returns)
        scopes.append(len({id(b.scope) for b in callee_copy.blocks.values()}) if len(callee_copy.blocks) > 1 else 1)
        return out

    monkeypatch.setattr(worker, "inline_ir", spy)
    x = np.array([-2.0, -0.5, 0.25, 0.75, 3.0])
    clip = lambda y, lo, hi: float(np.clip(y, lo, hi).sum())  # noqa: E731
    scaled = lambda y, k: float(np.where(y > 0.0, k * y, -y).sum())  # noqa: E731
    assert numba.njit(_two_sites)(x) == clip(x, 0.0, 1.0) - 2.0 * clip(x[::-1], -1.0, 0.5) + scaled(x, 3.0) - scaled(
        x[1:], 0.5)
    assert len(scopes) == 4 and set(scopes) == {1}
    assert inline_closurecall.copy.memo is None


def test_the_loop_waits_for_the_helper_just_before_type_inference():
    joined = JoinedCompiler.__new__(JoinedCompiler)  # (only its pipeline: no compile)
    joined.state = compiler.StateDict()
    joined.state.flags, joined.state.func_ir = compiler.Flags(), None
    passes = [p for p, _ in joined.define_pipelines()[0].passes]
    k = passes.index(AwaitHelper)
    assert passes[k + 1] is NopythonTypeInference
    for loop in (kernel._loop, kernel_multi._loop):
        assert loop._compiler.pipeline_class is JoinedCompiler


def test_a_deferred_wait_runs_once_at_the_next_joined_compile():
    seen = []

    @numba.njit(pipeline_class=JoinedCompiler)
    def f(x):
        return x + 1

    _compile_speed.defer("helper", lambda: seen.append("waited"))
    assert f(1) == 2 and seen == ["waited"] and not _compile_speed._pending
    assert f(2.5) == 3.5 and seen == ["waited"]  # (a second compile: nothing left to wait for)


def _fake_helper(code, after=True):
    """A process standing for warm's helper: prints what ``code`` prints."""
    helper = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              text=True)
    helper.walk, helper.after = False, after
    return helper


@pytest.mark.parametrize("code", [
    f"print({warm.WALK_DONE!r}); print({warm.AFTER_DONE!r}); import time; time.sleep(30)",  # says it, then lingers
    f"print({warm.WALK_DONE!r}); import sys; sys.exit(3)",  # fails before its passes
    "pass",  # says nothing
])
def test_finish_lets_a_helper_go_whatever_it_said(code):
    """``finish`` after a loop loaded from the cache (its deferred wait never ran), or a helper that
    failed: the wait is dropped, the run waits for AFTER_DONE or the helper's end, not for its exit, and the pipe
    is closed."""
    helper = _fake_helper(code)
    try:
        _compile_speed.defer(helper, lambda: warm._wait(helper))
        warm.finish(helper)
        assert helper not in _compile_speed._pending and helper.stdout.closed
        if "sleep" in code:
            assert helper.poll() is None  # (it said AFTER_DONE: not waited for to the end)
        warm.finish(helper)  # (twice: nothing left to do)
    finally:
        helper.kill()
        helper.wait()


def test_finish_without_passes_only_closes_the_pipe():
    helper = _fake_helper(f"import time; time.sleep(30); print({warm.AFTER_DONE!r})", after=False)
    try:
        warm.finish(helper)  # (a sweep's helper: no passes after the kernel to wait for)
        assert helper.stdout.closed and helper.poll() is None
    finally:
        helper.kill()
        helper.wait()


def test_a_failed_run_releases_its_helper_without_waiting():
    """An interrupted or failed run (``warm.release``) waits for none of the helper's passes: its
    deferred wait is dropped and the pipe closed while the helper still compiles."""
    helper = _fake_helper(f"import time; time.sleep(30); print({warm.AFTER_DONE!r})")
    try:
        _compile_speed.defer(helper, lambda: warm._wait(helper))
        warm.release(helper)
        assert helper not in _compile_speed._pending and helper.stdout.closed and helper.poll() is None
    finally:
        helper.kill()
        helper.wait()
