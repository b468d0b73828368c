"""A first run's compile, shorter: two repeats of work in numba's own Python, and a wait moved later.

numba compiles in Python, and two of its steps repeat work that the kernel's size makes costly
(measured on a cold default run: ``docs/performance-history.md``):

- inlining an ``inline="always"`` function deep-copies its IR block by block, and each block's copy
  copies the function's whole variable scope again (blocks x variables: the quiet run inlined into
  the bar loop is ~220 blocks of ~1,100 variables, ~0.7 s).  ``_SharedMemo`` gives the copies of one
  inlining one memo, so the scope is copied once: the same copy a single ``deepcopy`` of the blocks
  makes.  (One memo at a time suffices: numba holds its global compiler lock through every compile.)
- each typing lookup keyed on the compile's flags compares them by building the dict of all their
  options through properties (``TargetConfig.values``).  ``_flag_values`` builds the same dict from
  the set values and the options' defaults, read once per class; the hash stays what numba makes it.

Both change how fast numba gets to the same IR, not the IR: a numba whose internals differ from
what these expect (``install`` checks) is left as it is.

``AwaitHelper``: the bar loops' compile waits for ``warm``'s helper process only where it first
needs the helper's functions, at type inference (``JoinedCompiler``), not before it starts: its
untyped passes (inlining, SSA) run meanwhile.
"""
import copy as _copy
import functools

from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import AnalysisPass, register_pass
from numba.core.typed_passes import NopythonTypeInference

_pending = {}  # a helper process -> the call that waits for it (warm.join)


def defer(helper, wait):
    """Have the next ``JoinedCompiler`` compile (either bar loop, any
    signature, any thread) call ``wait`` before its type inference."""
    _pending[helper] = wait


def await_pending():
    """Run every deferred wait now (at type inference)."""
    while True:
        try:
            _, wait = _pending.popitem()
        except KeyError:  # (none left, or another thread took the last)
            return
        wait()


def forget(helper):
    """Drop ``helper``'s deferred wait, if it has not run (the loop was cached, or the run failed)."""
    _pending.pop(helper, None)


@register_pass(mutates_CFG=False, analysis_only=True)
class AwaitHelper(AnalysisPass):
    _name = "marginbt_await_helper"

    def __init__(self):
        AnalysisPass.__init__(self)

    def run_pass(self, state):
        await_pending()
        return False


class JoinedCompiler(CompilerBase):
    """numba's nopython pipeline with ``AwaitHelper`` just before type
    inference (numba's own pipeline where it has no such pass: the loop
    then waits for nothing, and a helper's work it compiles itself)."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        at = [k for k, (p, _) in enumerate(pm.passes) if p is NopythonTypeInference]
        if at:
            pm.passes.insert(at[0], (AwaitHelper, str(AwaitHelper)))
        pm.finalize()
        return [pm]


class _SharedMemo:
    """Stands for the ``copy`` module inside numba's inliner: a deepcopy with no memo of its own takes
    the one of the inlining under way (``install``'s wrapper of ``inline_ir``)."""
    memo = None

    def __getattr__(self, name):
        return getattr(_copy, name)

    def deepcopy(self, x, memo=None):
        return _copy.deepcopy(x, self.memo if memo is None else memo)


def _flag_values(self):
    vals, defaults = self._values, _DEFAULTS.get(type(self))
    if defaults is None:
        defaults = _DEFAULTS[type(self)] = tuple((k, o.default) for k, o in type(self).options.items())
    return {k: vals.get(k, d) for k, d in defaults}


_DEFAULTS = {}


def install():
    """Apply both, once, where numba's internals are as expected."""
    from numba.core import inline_closurecall as ic
    from numba.core import targetconfig as tc

    worker = getattr(ic, "InlineWorker", None)
    if getattr(ic, "copy", None) is _copy and worker is not None and hasattr(worker, "inline_ir"):
        shared = ic.copy = _SharedMemo()
        inline_ir = worker.inline_ir

        @functools.wraps(inline_ir)
        def _inline_ir(self, *args, **kwargs):
            outer, shared.memo = shared.memo, {}
            try:
                return inline_ir(self, *args, **kwargs)
            finally:
                shared.memo = outer

        worker.inline_ir = _inline_ir
    config = getattr(tc, "TargetConfig", None)
    if config is not None and "_values" in getattr(config, "__slots__", ()) and hasattr(config, "values"):
        config.values = _flag_values  # (__eq__ and __hash__ call it)
