"""Test setup: import ``backtest`` from this work tree (even when the installed
editable copy is stale) and ``reference`` from this folder."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for path in (HERE, os.path.dirname(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _compile_notice_said(monkeypatch):
    """The first-run notice ("compiling the kernels, once") goes to stderr
    once per process, in whichever test compiles first on a cold cache; with
    the tests spread over processes (xdist) that is any test, so a test
    reading stderr would see it or not by chance.  Here it counts as said;
    test_inputs resets it to check the notice itself."""
    from backtest import _numba_cache

    monkeypatch.setattr(_numba_cache, "_announced", ["kernel._loop", "kernel_multi._loop"])
