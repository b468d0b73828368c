"""The margin account's state and the moves on it: buy, sell, repay,
liquidate, trade to a target, and writing a fill or forced exit down.

State is a float64[6] array indexed by the constants below, so the moves
update it in place and the loop keeps it in registers.  The numbers each
move uses (charges, caps, liquidation sizes) come from ``rules.py``.
"""
from numba import njit

from .records import LIQUIDATION
from .rules import (
    falling_price_hurts,
    interest_charge,
    margin_level,
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
    return (st[PB] + st[IB]) * price + st[PQ] + st[IQ]


@njit(cache=True, inline="always")
def _position(st):
    """Net base position: held less owed (interest included)."""
    return st[HB] - st[PB] - st[IB]


@njit(cache=True)
def _clean(st):
    for j in range(6):
        if abs(st[j]) < DUST:
            st[j] = 0.0


@njit(cache=True)
def _repay(amount, st, i_interest, i_principal):
    """Repay interest first, then principal; return what is left of amount."""
    x = min(amount, st[i_interest])
    st[i_interest] -= x
    amount -= x
    y = min(amount, st[i_principal])
    st[i_principal] -= y
    return amount - y


@njit(cache=True, inline="always")
def _pay(st, i_held, i_principal, i_interest, amount, rate, round_up):
    """Pay ``amount`` of an asset from what is held, auto-borrowing the rest
    with its first hour of interest charged at once; return that charge."""
    take = min(st[i_held], amount)
    st[i_held] -= take
    borrowed = amount - take
    charge = 0.0
    if borrowed > 0.0:
        st[i_principal] += borrowed
        charge = interest_charge(borrowed, rate, round_up)
        st[i_interest] += charge
    return charge


@njit(cache=True)
def _buy(st, q, price, fee, rate_q, round_up):
    """Buy q base at price with auto-borrow/auto-repay; return the quote interest charged."""
    charge = _pay(st, HQ, PQ, IQ, q * price, rate_q, round_up)
    st[HB] += _repay(q * (1.0 - fee), st, IB, PB)
    _clean(st)
    return charge


@njit(cache=True)
def _sell(st, q, price, fee, rate_b, round_up):
    """Sell q base at price with auto-borrow/auto-repay; return the base interest charged."""
    charge = _pay(st, HB, PB, IB, q, rate_b, round_up)
    st[HQ] += _repay(q * price * (1.0 - fee), st, IQ, PQ)
    _clean(st)
    return charge


@njit(cache=True)
def _liquidate(st, trigger, traded, slip, fee_rate, m_restore, full, mlr, rec):
    """Liquidate at ``trigger``, filling at the traded price ``traded`` (the
    trigger itself unless a mark series triggers), and fill ``rec``.

    Returns (side, quantity, fill price) of the forced fill.
    """
    assets = _assets(st, trigger)
    debt = _debt(st, trigger)
    rec.trigger_price = trigger
    rec.margin_level = margin_level(assets, debt)
    rec.equity_before = assets - debt
    fee = fee_rate * assets
    bad = 0.0
    if falling_price_hurts(st[HB], st[PB] + st[IB], mlr):  # long-like: sell base for quote
        side = -1
        fill = traded * (1.0 - slip)
        if full:
            s = st[HB]
        else:
            s = partial_sell_long(st[HB], st[HQ], st[PQ] + st[IQ], fee, fill, m_restore)
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
        cut = False
        if s * fill + fee > st[HQ]:
            s = max(0.0, (st[HQ] - fee) / fill)
            fee = min(fee, st[HQ])
            cut = True
        st[HQ] = 0.0 if cut else st[HQ] - (s * fill + fee)  # a cut spends all of it, exactly
        left = _repay(s, st, IB, PB)
        st[HB] += left
        _clean(st)
        if cut and st[PB] + st[IB] + st[PQ] + st[IQ] > 0.0:  # quote owed too (a limit's leftover interest)
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
def _record_order(orders, k, bar, side, kind, capped, q, price, fee, st, interest, before, charge=0.0):
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
def _forced_exit(st, bar, trigger, traded, slip, fee_rate, m_restore, full, mlr, orders, n_orders, liqs, n_liqs):
    """Liquidate, recording the event and its fill; return (fee, bad debt, row).

    The record buffers may be a one-row scratch (summary-only runs): the
    liquidation is then computed in row 0 and overwritten by the next one.
    """
    n_liqs = min(n_liqs, liqs.shape[0] - 1)
    n_orders = min(n_orders, orders.shape[0] - 1)
    rec = liqs[n_liqs]
    rec.bar = bar
    before = _position(st)
    side, s, fill = _liquidate(st, trigger, traded, slip, fee_rate, m_restore, full, mlr, rec)
    _record_order(orders, n_orders, bar, side, LIQUIDATION, False, s, fill, rec.fee, st, 0.0, before)
    return rec.fee, rec.bad_debt, n_liqs


@njit(cache=True)
def _trade_to(st, x, o, fee, slip, rate_b, rate_q, m0, round_up):
    """Market order at open ``o`` towards target exposure ``x``.

    Returns (side, quantity, price, fee value, capped, base interest,
    quote interest); side 0 when nothing traded.
    """
    eq = _assets(st, o) - _debt(st, o)
    if eq <= 0.0:
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    delta = x * eq / o - (_position(st))
    db = st[PB] + st[IB]
    dq = st[PQ] + st[IQ]
    if delta > 0.0:
        price = o * (1.0 + slip)
        q = delta / (1.0 - fee)  # the fee is taken from the base received
        cap = max_buy(st[HB], st[HQ], db, dq, o, price, fee, rate_q, m0)
    elif delta < 0.0:
        price = o * (1.0 - slip)
        q = -delta
        cap = max_sell(st[HB], st[HQ], db, dq, o, price, fee, rate_b, m0)
    else:
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    capped = cap < q * (1.0 - 1e-9)
    q = min(q, cap)
    if q <= 0.0:
        return 0, 0.0, 0.0, 0.0, capped, 0.0, 0.0
    if delta > 0.0:
        return 1, q, price, q * fee * price, capped, 0.0, _buy(st, q, price, fee, rate_q, round_up)
    return -1, q, price, q * price * fee, capped, _sell(st, q, price, fee, rate_b, round_up), 0.0

