"""numba types an array's writability, so the one-symbol kernel takes its
inputs read-only whatever the caller holds (``inputs.read_only``): a run on
a Parquet file's columns (read-only) and one on NumPy arrays (writable)
share one compiled loop instead of compiling it twice (~15 s each on a
fresh environment; the test suite had compiled 27 signatures of
``kernel._loop``)."""
import numpy as np

from backtest import kernel
from backtest.bench import busy_targets, kernel_args, synthetic_bars
from backtest.engine import simulate_arrays
from backtest.inputs import Bars, Given, read_only


def _frozen(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def test_writable_and_read_only_inputs_share_one_compiled_loop():
    bars = synthetic_bars(2_000)
    *arrays, config = kernel_args(bars, busy_targets(2_000))
    seconds, o, h, lo, c, targets = (np.array(a) for a in arrays)  # writable copies (pandas' are read-only)
    first = simulate_arrays(seconds, o, h, lo, c, targets, config)
    n = len(kernel._loop.signatures)
    again = simulate_arrays(*(_frozen(x) for x in (seconds, o, h, lo, c, targets)), config)
    assert len(kernel._loop.signatures) == n  # no second compile for read-only inputs
    for sig in kernel._loop.signatures:  # (and whatever ran before in this process: every one read-only)
        bars_t, marks_t, given_t = sig[0], sig[1], sig[5]
        assert not any(t.mutable for t in (*bars_t, *marks_t, given_t[0])), sig  # (given_t[0]: Given.target)
    assert len(first[1]) > 5  # (orders: the run trades)
    np.testing.assert_array_equal(first[0], again[0])
    for a, b in zip(first[1:4], again[1:4]):  # (per field: a record's padding bytes are never written)
        assert a.shape == b.shape
        for name in a.dtype.names:
            np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(first[4], again[4])
    assert o.flags.writeable and targets.flags.writeable  # the caller's arrays are not changed


def test_read_only_views_without_copies():
    ts, x = np.arange(3, dtype=np.int64), np.ones(3)
    ro = read_only(Bars(ts, x, x, x, x))
    assert not any(v.flags.writeable for v in ro)
    assert all(np.shares_memory(v, w) for v, w in zip(ro, (ts, x, x, x, x)))
    assert ts.flags.writeable and x.flags.writeable
    g = read_only(Given(x, np.empty(0), 3, np.empty(0), np.empty(0)))
    assert g.expiry == 3 and not g.target.flags.writeable
    assert read_only(None) is None
