"""Values derived from a bars index, kept while the index lives.

A ``DatetimeIndex`` does not change (pandas caches what it derives from one
the same way), so what marginbt derives from it — the nanosecond UTC form
of a frame's index, its epoch seconds, its bar spacing — is made once per
index object: a loop running the same bars again (a notebook, a parameter
search through ``backtest.run``) pays ~2 ms less per 1M bars.  The bars'
prices are checked on every run; only the times are kept.
"""
import weakref

_KEPT: dict = {}  # (id(index), what) → (weak reference to the index, value)
_MOST = 32  # entries kept at once (the oldest goes first)


def derived(index, what: str, make):
    """``make(index)``, made once for each live ``index`` object and ``what``."""
    key = (id(index), what)
    hit = _KEPT.get(key)
    if hit is not None and hit[0]() is index:
        return hit[1]
    value = make(index)
    if len(_KEPT) >= _MOST:
        _KEPT.pop(next(iter(_KEPT)))
    # (the entry goes with its index: an id is reused only after its object is gone)
    _KEPT[key] = (weakref.ref(index, lambda _, key=key: _KEPT.pop(key, None)), value)
    return value
