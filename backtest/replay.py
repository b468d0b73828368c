"""Step 5 on a bar's finer bars (``--detail``): each sub-bar walked as if
it were the bar, with a standing limit order, stops or the liquidation
check (docs/model-choices.md "Finer bars settle the path").  Apart from
``intrabar.py`` because it also walks limit orders (``limits.py``, which
builds on ``intrabar.py``)."""
from numba import njit

from .account import _position
from .intrabar import (LIM_SIDE, MAX_LIQUIDATIONS_PER_BAR, N_LIQS, N_ORDERS, N_TOT, RECORD, STOPS_ON, _liquidations,
                       _walk)
from .limits import _walk_limit
from .venues.plug import exposed


@njit(cache=True)
def _replay(st, fs, ns, tot, sub, cfg, i, detail, orders, liqs, pv):
    """Step 5 of bar ``i`` on its finer bars ``detail.start[i] ..
    detail.end[i] - 1``, each as if it were the bar (docs/model-choices.md
    "Finer bars settle the path"): the limit order's walk while one stands,
    the walk while a position is open with stops on, else the liquidation
    check.  Each finer bar's totals are taken in ``sub`` and added to ``tot``.

    Returns (forced exit?, ambiguous?, short): ``short`` True when a record
    buffer ran short (the run must be redone with larger ones).
    """
    record = ns[RECORD] != 0
    forced = False
    ambiguous = False
    for j in range(detail.start[i], detail.end[i]):
        if record and (ns[N_ORDERS] + MAX_LIQUIDATIONS_PER_BAR + 2 > orders.shape[0]  # (a limit fill, a stop)
                       or ns[N_LIQS] + MAX_LIQUIDATIONS_PER_BAR + 1 > liqs.shape[0]):
            return forced, ambiguous, True
        sub[:] = 0.0
        px = (detail.open[j], detail.high[j], detail.low[j], detail.close[j])
        if ns[LIM_SIDE] != 0 or (ns[STOPS_ON] and _position(st) != 0.0):
            n0 = ns[N_ORDERS]
            if ns[LIM_SIDE] != 0:  # the order as one more level of the sub-bar's walk
                # (no mark with finer bars: j < 0, False as a bool computed, not the literal False, for which
                # numba compiled _walk_limit once more, ~2 s of a first run with stops)
                f, amb = _walk_limit(st, fs, ns, sub, cfg, i, px, px, j < 0, orders, liqs, pv)
            else:
                f, amb = _walk(st, fs, ns, sub, cfg, i, px, orders, liqs, pv)
            ambiguous = ambiguous or amb
            if record and amb and ns[N_ORDERS] > n0:
                orders[ns[N_ORDERS] - 1].ambiguous = True  # the forced fill the path inside the sub-bar decided
        elif exposed(st, pv):
            # (entry and best are kept even with stops off: a buy-back can leave a position)
            f = _liquidations(st, fs, ns, sub, cfg, i, (detail.open[j], detail.high[j], detail.low[j]),
                              detail.high[j], detail.low[j], orders, liqs, pv)
        else:
            continue
        forced = forced or f
        for k in range(N_TOT):
            tot[k] += sub[k]
    return forced, ambiguous, False
