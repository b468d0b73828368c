"""Values derived from a bars index, kept while its data lives.

A ``DatetimeIndex`` does not change (pandas caches what it derives from one
the same way), so what marginbt derives from it — the nanosecond UTC form
of a frame's index, its epoch seconds, its bar spacing — is made once per
index data: a loop running the same bars again (a notebook, a parameter
search through ``backtest.run``) pays ~2 ms less per 1M bars.  The key is
the index's array (``Index.array``), which every view of the index shares,
so the frames a run hands out get views of their own (renaming one changes
no other) and still find what was made.  The bars' prices are checked on
every run; only the times are kept.  Their order is checked on every run
too: pandas 3 hands out an index's own data writeable (``asi8``), and times
rewritten in place that still increase are not seen by what was kept here
(a known limit: no user code path writes an index so).
"""
import weakref

_KEPT: dict = {}  # (id(index.array), what) → (weak reference to that array, value)
_MOST = 32  # entries kept at once (the oldest goes first)


def derived(index, what: str, make):
    """``make(index)``, made once for the data of ``index`` and ``what``.
    Safe on threads (sweeps run on them): every change to the table is one
    dict operation, and a race costs at most a value made twice."""
    data = index.array
    key = (id(data), what)
    hit = _KEPT.get(key)
    if hit is not None and hit[0]() is data:
        return hit[1]
    value = make(index)
    if len(_KEPT) >= _MOST:
        try:
            _KEPT.pop(next(iter(_KEPT)), None)
        except (StopIteration, RuntimeError):  # emptied or changed by another thread meanwhile
            pass
    # (the entry goes with its data: an id is reused only after its object is gone; the table is bound
    # here, as the module's globals may be gone when the last array dies at exit)
    _KEPT[key] = (weakref.ref(data, lambda _, key=key, kept=_KEPT: kept.pop(key, None)), value)
    return value
