"""The margin account's state and the moves on it: buy, sell, repay,
liquidate, trade to a target, and writing a fill or forced exit down.

State is a float64[6] array indexed by the constants below, so the moves
update it in place and the loop keeps it in registers.  The numbers each
move uses (charges, caps, liquidation sizes) come from ``rules.py``.
"""
import numpy as np
from numba import njit

from .records import LIQUIDATION
from .rules import (
    borrow_limit_cap,
    falling_price_hurts,
    interest_charge,
    margin_level,
    max_borrow,
    max_buy,
    max_sell,
    partial_buy_short,
    partial_sell_long,
)

HB, HQ, PB, IB, PQ, IQ = 0, 1, 2, 3, 4, 5  # base/quote held, principal, interest owed
DUST = 1e-12  # amounts this small left after a trade are float noise, not balances


@njit(cache=True, inline="always")
def _assets(st, price):
    return st[HB] * price + st[HQ]


@njit(cache=True, inline="always")
def _debt(st, price):
    return owed_at(st[PB], st[IB], st[PQ], st[IQ], price)


@njit(cache=True, inline="always")
def owed_at(pb, ib, pq, iq, price):
    """What principal ``pb``, ``pq`` and interest ``ib``, ``iq`` owed come to at ``price``."""
    return (pb + ib) * price + pq + iq


@njit(cache=True, inline="always")
def _position(st):
    """Net base position: held less owed (interest included)."""
    return net_base(st[HB], st[PB], st[IB])


@njit(cache=True, inline="always")
def net_base(hb, pb, ib):
    return hb - (pb + ib)


@njit(cache=True)
def _snap_flat(st):
    """Auto-repay off: base held and owed that cancel up to float noise
    (within 1e-9 of what is held) are made to cancel exactly, so that a
    closed position is exactly flat (the hot loop then needs no tolerance)."""
    n = _position(st)
    if n != 0.0 and abs(n) <= 1e-9 * st[HB]:
        st[HB] = st[PB] + st[IB]


@njit(cache=True)
def _clean(st):
    for j in range(6):
        if abs(st[j]) < DUST:
            st[j] = 0.0


@njit(cache=True, inline="always")  # (its columns are literal ints: called apart, it compiled once per pair)
def _repay(amount, st, i_interest, i_principal):
    """Repay interest first, then principal; return what is left of amount."""
    x = min(amount, st[i_interest])
    st[i_interest] -= x
    amount -= x
    y = min(amount, st[i_principal])
    st[i_principal] -= y
    return amount - y


@njit(cache=True)
def _net(st):
    """Auto-repay off: each asset's balance repays that asset's debt; at a
    flat position the base held and owed cancel outright (a repayment could
    leave float noise of their size as a dust position)."""
    if _position(st) == 0.0:
        st[HB] = 0.0
        st[PB] = 0.0
        st[IB] = 0.0
    else:
        st[HB] = _repay(st[HB], st, IB, PB)
    st[HQ] = _repay(st[HQ], st, IQ, PQ)
    _clean(st)


@njit(cache=True, inline="always")
def _pay(st, i_held, i_principal, i_interest, amount, rate, round_up, may_borrow):
    """Pay ``amount`` of an asset from what is held, auto-borrowing the rest
    with its first hour of interest charged at once; return that charge.
    Without ``may_borrow`` it pays at most what is held."""
    take = min(st[i_held], amount)
    left = st[i_held] - take
    st[i_held] = 0.0 if left <= 1e-9 * st[i_held] else left  # float noise of spending it all
    borrowed = amount - take
    charge = 0.0
    if borrowed > 0.0 and may_borrow:
        st[i_principal] += borrowed
        charge = interest_charge(borrowed, rate, round_up)
        st[i_interest] += charge
    return charge


@njit(cache=True)
def _buy(st, q, price, fee, rate_q, round_up, may_borrow, auto_repay):
    """Buy q base at price with auto-borrow (and auto-repay from the base
    received, when on); return the quote interest charged."""
    charge = _pay(st, HQ, PQ, IQ, q * price, rate_q, round_up, may_borrow)
    got = q * (1.0 - fee)
    st[HB] += _repay(got, st, IB, PB) if auto_repay else got
    _clean(st)
    if not auto_repay:
        _snap_flat(st)
    return charge


@njit(cache=True)
def _sell(st, q, price, fee, rate_b, round_up, may_borrow, auto_repay):
    """Sell q base at price with auto-borrow (and auto-repay from the
    proceeds, when on); return the base interest charged."""
    charge = _pay(st, HB, PB, IB, q, rate_b, round_up, may_borrow)
    got = q * price * (1.0 - fee)
    st[HQ] += _repay(got, st, IQ, PQ) if auto_repay else got
    _clean(st)
    if not auto_repay:
        _snap_flat(st)
    return charge


@njit(cache=True)
def _liquidate(st, trigger, traded, slip, fee_rate, m_restore, full, mlr, rec, auto_repay):
    """Liquidate at ``trigger``, filling at the traded price ``traded`` (the
    trigger itself unless a mark series triggers), and fill ``rec``.  With
    auto-repay off, balances first repay their own asset's debt (netting).

    Returns (side, quantity, fill price) of the forced fill; side 0 when
    the fill would be empty and nothing is written off (no liquidation, no
    fee: docs/model-choices.md "No empty liquidations").  When the quote runs
    out buying back a short, the record's quantity is the whole debt closed:
    the account's quote buys part, the rest is the bad debt.
    """
    assets = _assets(st, trigger)
    debt = _debt(st, trigger)
    rec.trigger_price = trigger
    rec.margin_level = margin_level(assets, debt)
    rec.equity_before = assets - debt
    fee = fee_rate * assets
    bad = 0.0
    if not auto_repay:
        _net(st)
    if falling_price_hurts(st[HB], st[PB] + st[IB], mlr):  # long-like: sell base for quote
        side = -1
        fill = traded * (1.0 - slip)
        if full:
            s = st[HB]
        else:
            s = partial_sell_long(st[HB], st[HQ], st[PQ] + st[IQ], fee, fill, m_restore)
        if s <= 0.0 and (st[HB] > 0.0 or st[HQ] >= st[PQ] + st[IQ]):
            return 0, 0.0, fill  # nothing to sell, nothing to write off: no liquidation
        st[HB] -= s
        cash = st[HQ] + s * fill - fee
        if cash < 0.0:  # the fee is taken only as far as collateral covers it
            fee += cash
            cash = 0.0
        st[HQ] = _repay(cash, st, IQ, PQ)
        _clean(st)
        if st[HB] == 0.0 and st[PQ] + st[IQ] + st[PB] + st[IB] > 0.0:  # base owed too (a limit's leftover)
            bad = _debt(st, fill)
            st[PQ] = 0.0
            st[IQ] = 0.0
            st[PB] = 0.0
            st[IB] = 0.0
    else:  # short-like: buy base back with quote
        side = 1
        fill = traded * (1.0 + slip)
        db = st[PB] + st[IB]
        if full:
            s = db
        else:
            s = partial_buy_short(db, st[HQ], fee, fill, m_restore)
        cut = s * fill + fee > st[HQ]
        bought = s
        if s <= 0.0 and not cut:
            return 0, 0.0, fill  # nothing to buy back: no liquidation
        if cut:  # the quote runs out: it buys what it can, the insurance fund the rest of the debt (bad debt)
            bought = max(0.0, (st[HQ] - fee) / fill)
            fee = min(fee, st[HQ])
            s = db
        st[HQ] = 0.0 if cut else st[HQ] - (s * fill + fee)  # a cut spends all of it, exactly
        left = _repay(bought, st, IB, PB)
        st[HB] += left
        _clean(st)
        if cut and st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0:  # quote owed too (auto-repay off, a limit's leftover)
            bad = _debt(st, fill)
            st[PB] = 0.0
            st[IB] = 0.0
            st[PQ] = 0.0
            st[IQ] = 0.0
    rec.fill_price = fill
    rec.fee = fee
    rec.quantity = s
    rec.bad_debt = bad
    rec.equity_after = max(0.0, _assets(st, fill) - _debt(st, fill))
    return side, s, fill


@njit(cache=True)
def _record_order(orders, k, bar, kind, fill, st, before, interest=0.0, charge=0.0):
    """Order row ``k``: ``fill`` = (side, quantity, price, fee, capped), the
    position ``before`` and after it (``st``), its interest and charge."""
    side, q, price, fee, capped = fill
    o = orders[k]
    o.bar = bar
    o.side = side
    o.kind = kind
    o.capped = capped
    o.ambiguous = False
    o.quantity = q
    o.price = price
    o.fee = fee
    o.position_before = before
    o.position = _position(st)
    o.interest = interest
    o.charge = charge


@njit(cache=True)
def _forced_exit(st, bar, trigger, traded, cfg, mlr, orders, n_orders, liqs, n_liqs):
    """Liquidate (``cfg``: the run's ``inputs.Settings``), recording the event
    and its fill; return (fee, bad debt, row), row −1 when nothing was
    liquidated (``_liquidate``'s side 0).

    The record buffers may be a one-row scratch (summary-only runs): the
    liquidation is then computed in row 0 and overwritten by the next one.
    """
    n_liqs = min(n_liqs, liqs.shape[0] - 1)
    n_orders = min(n_orders, orders.shape[0] - 1)
    rec = liqs[n_liqs]
    rec.bar = bar
    before = _position(st)
    side, s, fill = _liquidate(st, trigger, traded, cfg.slippage, cfg.liquidation_fee, cfg.restore_ml,
                               cfg.full_liquidation, mlr, rec, not nets_at_liquidation(cfg))
    if side == 0:
        return 0.0, 0.0, -1
    _record_order(orders, n_orders, bar, LIQUIDATION, (side, s, fill, rec.fee, False), st, before)
    return rec.fee, rec.bad_debt, n_liqs


@njit(cache=True, inline="always")
def borrow_limits(st, cfg):
    """The most principal an order may owe of (base, quote): the profile's
    max borrow; with auto-borrow off what is owed already (no room: an order
    never borrows, docs/model-choices.md "Manual loans")."""
    if cfg.auto_borrow:
        return cfg.max_borrow_base, cfg.max_borrow_quote
    return min(cfg.max_borrow_base, st[PB]), min(cfg.max_borrow_quote, st[PQ])


@njit(cache=True, inline="always")
def nets_at_liquidation(cfg):
    """A liquidation first nets each balance against its own debt: with
    auto-repay off, and with manual loans (an asset held beside its loan)."""
    return not cfg.auto_repay or cfg.manual_loans


@njit(cache=True)
def _trade_to(st, x, o, cfg, rates, limits):
    """Market order at open ``o`` towards target exposure ``x`` with the
    run's settings ``cfg`` (``inputs.Settings``: fee, slippage, initial ML,
    rounding, auto-repay) at the hourly ``rates`` (base, quote).  With
    auto-repay off and ``repay_on_flat``, a fill that leaves the position
    flat nets every balance against its debt.  ``limits``: the most
    principal each asset (base, quote) may be borrowed up to (+inf: no
    limit).

    Returns (side, quantity, price, fee value, capped, base interest,
    quote interest); side 0 when nothing traded.
    """
    fee, slip, m0, round_up, auto_repay = cfg.fee, cfg.slippage, cfg.initial_ml, cfg.round_interest, cfg.auto_repay
    rate_b, rate_q = rates
    limit_b, limit_q = limits
    eq = _assets(st, o) - _debt(st, o)
    if eq <= 0.0:
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    target = x * eq / o
    pos = _position(st)
    delta = target - pos
    if abs(delta) <= 1e-9 * max(abs(target), abs(pos)):  # float noise: already at the target
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    db = st[PB] + st[IB]
    dq = st[PQ] + st[IQ]
    if delta > 0.0:
        price = o * (1.0 + slip)
        q = delta / (1.0 - fee)  # the fee is taken from the base received
        cap, borrows = max_buy(st[HB], st[HQ], db, dq, o, price, fee, rate_q, m0, auto_repay)
        lim, room = borrow_limit_cap(st[HQ], st[PQ], limit_q, price)
        if lim < cap:
            cap = lim
            borrows = room
    elif delta < 0.0:
        price = o * (1.0 - slip)
        q = -delta
        cap, borrows = max_sell(st[HB], st[HQ], db, dq, o, price, fee, rate_b, m0, auto_repay)
        lim, room = borrow_limit_cap(st[HB], st[PB], limit_b, 1.0)
        if lim < cap:
            cap = lim
            borrows = room
    else:
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    capped = cap < q * (1.0 - 1e-9)
    q = min(q, cap)
    if q <= 1e-12 * max(abs(target), abs(pos)):  # nothing, or float noise, left to trade
        return 0, 0.0, 0.0, 0.0, capped, 0.0, 0.0
    cb = 0.0
    cq = 0.0
    if delta > 0.0:
        fee_value = q * fee * price
        cq = _buy(st, q, price, fee, rate_q, round_up, borrows, auto_repay)
    else:
        fee_value = q * price * fee
        cb = _sell(st, q, price, fee, rate_b, round_up, borrows, auto_repay)
    if cfg.repay_on_flat and not auto_repay and _position(st) == 0.0:
        _net(st)
    return (1 if delta > 0.0 else -1), q, price, fee_value, capped, cb, cq



# ---- the trader's own moves on spot margin (flows.py through venues/plug.py;
# docs/model-choices.md "Transfers and a reserve")
@njit(cache=True)
def lift_to(st, p, m, repay):
    """The quote that lifts ML at ``p`` to ``m`` (≤ 0: none needed): ``m·D
    − A``; with ``repay`` (auto-repay: the money repays the quote loan
    first) ``D − A/m`` while it only repays, else ``m·Db·p + Dq − A``."""
    assets = _assets(st, p)
    debt_b = (st[PB] + st[IB]) * p
    dq = st[PQ] + st[IQ]
    if repay and debt_b + dq - assets / m <= dq:
        return debt_b + dq - assets / m
    if repay:
        return m * debt_b + dq - assets
    return m * (debt_b + dq) - assets


@njit(cache=True)
def deposit(st, amount, repay):
    """Quote into (``amount`` > 0, with ``repay`` the quote loan first) or out of ``hq``."""
    if repay and amount > 0.0:
        amount = _repay(amount, st, IQ, PQ)
    st[HQ] = max(st[HQ] + amount, 0.0)


@njit(cache=True)
def withdrawable(st, o, m0):
    """The quote that may leave at ``o``: ``hq``, less what keeps ML at ``m0``."""
    debt = _debt(st, o)
    if debt <= 0.0:
        return st[HQ]
    return max(min(st[HQ], _assets(st, o) - m0 * debt), 0.0)


@njit(cache=True)
def deleverage_size(st, p, f, fee, m0):
    """The safety buffer's reduction at ``p`` back to ML ``m0``, filled at
    ``f`` (auto-repay on): a long sells, a short buys back; (side,
    quantity, cut to the position or the quote held?)."""
    db = st[PB] + st[IB]
    if db > 0.0:  # a short: buy back
        num = m0 * db * p - st[HQ]
        den = m0 * p * (1.0 - fee) - f
        if num <= 0.0 or den <= 0.0:
            return 1, 0.0, False
        cap = min(db / (1.0 - fee), st[HQ] / f)
        return 1, min(num / den, cap), num / den > cap
    num = m0 * (st[PQ] + st[IQ]) - st[HB] * p
    den = m0 * f * (1.0 - fee) - p
    if num <= 0.0 or den <= 0.0:
        return -1, 0.0, False
    return -1, min(num / den, st[HB]), num / den > st[HB]


@njit(cache=True)
def repay_by_hand(st, base, amount):
    """A manual repay of ``amount`` (+inf: all owed) of the base (``base``)
    or quote from what is held of it, interest first, then dust cleaned;
    (moved, requested: +inf is what was owed)."""
    held, interest, principal = (HB, IB, PB) if base else (HQ, IQ, PQ)
    owed = st[interest] + st[principal]
    requested = amount if amount < np.inf else owed
    moved = min(amount, st[held], owed)
    if moved > 0.0:
        st[held] -= moved
        _repay(moved, st, interest, principal)
        _clean(st)
    return moved, requested


@njit(cache=True)
def borrow_by_hand(st, base, amount, o, rate, m0, limit):
    """A manual borrow of ``amount`` of the base (valued at the open ``o``)
    or quote, held and owed: at most what keeps ML ≥ ``m0`` once it and its
    first hour at ``rate`` are held and owed, and the room under ``limit``;
    returns the amount taken (its charge is the caller's to owe)."""
    held, principal = (HB, PB) if base else (HQ, PQ)
    assets, debt = _assets(st, o), _debt(st, o)
    ml_cap = 0.0  # (an account at m0 up to float noise, as after a capped borrow: none)
    if assets - m0 * debt > 1e-9 * m0 * debt:
        ml_cap = max_borrow(assets, debt, o if base else 1.0, rate, m0)
    room = borrow_limit_cap(0.0, st[principal], limit, 1.0)[0]  # (what is held plays no part)
    taken = min(amount, ml_cap, room)
    if taken > 0.0:
        st[held] += taken
        st[principal] += taken
    return max(taken, 0.0)
