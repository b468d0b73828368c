"""The trader's own moves inside the bar loop: scheduled transfers in and
out of the margin account and top-ups from a reserve kept outside it
(docs/model-choices.md "Transfers and a reserve").  Venue-neutral: the
levels, what may leave and where money goes are the venue's, asked through
the plug point (``venues/plug.py``).  The run's ``inputs.Flows`` record
holds the schedule, the reserve and the log of moves.
"""
from numba import njit

from .intrabar import ENTRY
from .records import SCHEDULED, TOP_UP, WITHDRAWAL
from .venues.plug import deposit, exposed, level_at, level_price, lift_to, lift_to_initial, withdrawable

MAX_TOP_UPS_PER_BAR = 64
RESERVE, NET, TOPPED = range(3)  # ``flows.state``
ROWS, NEXT = range(2)  # ``flows.count``: log rows written, the next scheduled transfer


@njit(cache=True)
def room(flows):
    """Log rows a bar may need beyond those written: every scheduled move
    left, a top-up at the open and those on the path."""
    return flows.count[ROWS] + flows.bar.shape[0] - flows.count[NEXT] + MAX_TOP_UPS_PER_BAR + 1


@njit(cache=True)
def next_bar(flows, n):
    """The bar of the next scheduled transfer (``n``: none left)."""
    k = flows.count[NEXT]
    return flows.bar[k] if k < flows.bar.shape[0] else n


@njit(cache=True)
def _log(flows, i, reason, amount, requested, price, before, after):
    rec = flows.log[flows.count[ROWS]]
    rec.bar = i
    rec.reason = reason
    rec.amount = amount
    rec.requested = requested
    rec.price = price
    rec.level_before = before
    rec.level_after = after
    rec.capped = abs(amount) < abs(requested) * (1.0 - 1e-12)
    rec.reserve_after = flows.state[RESERVE]
    flows.count[ROWS] += 1


@njit(cache=True)
def scheduled(st, fs, pv, cfg, flows, i, o):
    """0a. The transfers due at bar ``i`` (open ``o``), in their order: a
    deposit whole, a withdrawal capped to what may leave."""
    k = flows.count[NEXT]
    while k < flows.bar.shape[0] and flows.bar[k] <= i:
        a = flows.amount[k]
        before = level_at(st, fs, pv, o)
        moved = a if a >= 0.0 else -min(-a, withdrawable(st, fs, pv, cfg, o, fs[ENTRY]))
        if moved != 0.0:
            deposit(st, fs, pv, moved, cfg.isolated, cfg.auto_repay)
        flows.state[NET] += moved
        _log(flows, i, SCHEDULED if a >= 0.0 else WITHDRAWAL, moved, a, o, before, level_at(st, fs, pv, o))
        k += 1
    flows.count[NEXT] = k


@njit(cache=True)
def _top_up(st, fs, pv, cfg, flows, i, p):
    """One top-up at price ``p``: what lifts the level to the rule's (``top_ml``
    < 0: the initial level), or the fixed amount, as far as the reserve
    goes; False when nothing moved."""
    if flows.top_ml != flows.top_ml:
        want = flows.top_amount
    elif flows.top_ml < 0.0:
        want = lift_to_initial(st, fs, pv, cfg, p)
    else:
        want = lift_to(st, fs, pv, p, flows.top_ml, cfg.auto_repay)
    moved = min(want, flows.state[RESERVE])
    if moved <= 0.0:
        return False
    before = level_at(st, fs, pv, p)
    deposit(st, fs, pv, moved, False, cfg.auto_repay)
    left = flows.state[RESERVE] - moved
    flows.state[RESERVE] = left if left > 1e-12 * moved else 0.0  # (all of it, up to float noise)
    flows.state[TOPPED] += moved
    _log(flows, i, TOP_UP, moved, want, p, before, level_at(st, fs, pv, p))
    return True


@njit(cache=True)
def top_up_at_open(st, fs, pv, cfg, flows, i, mo):
    """0b. A bar opening at or below the margin-call level is topped up there."""
    if flows.state[RESERVE] > 0.0 and exposed(st, pv) and level_at(st, fs, pv, mo) <= cfg.call_ml:
        _top_up(st, fs, pv, cfg, flows, i, mo)


@njit(cache=True)
def top_ups_on_path(st, fs, pv, cfg, flows, i, mo, mh, ml):
    """5'. Each time the bar's adverse extreme reaches the margin-call
    price of the state, a top-up there (at the open when it opens past it),
    while the reserve lasts; True when any happened."""
    any_ = False
    for _ in range(MAX_TOP_UPS_PER_BAR):
        if flows.state[RESERVE] <= 0.0 or not exposed(st, pv):
            break
        p, side = level_price(st, fs, pv, cfg.call_ml)
        if side == 1 and ml <= p:
            at = min(mo, p)
        elif side == -1 and mh >= p:
            at = max(mo, p)
        else:
            break
        if not _top_up(st, fs, pv, cfg, flows, i, at):
            break
        any_ = True
    return any_
