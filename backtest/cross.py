"""A cross account holding several symbols: its state and its moves.

The account's quote numbers live in ``aq[a] = (held, principal, interest)``
and each symbol's base numbers in ``sb[s]`` (same order).  A buy or a sell
copies the symbol's three and the account's three into the six-number
scratch state of ``account.py`` and runs the one-symbol move on it, so the
arithmetic of an order is the one-symbol kernel's; only the borrow cap sees
the other symbols (``rules.max_buy_cross``).  The joint liquidation
(docs/model-choices.md "Cross liquidation") cuts every position by one
fraction, ``rules.cross_cut``.
"""
import numpy as np
from numba import njit

from .account import DUST, HB, HQ, IB, IQ, PB, PQ, _buy, _net, _position, _repay, _sell
from .rules import borrow_limit_cap, cross_cut, margin_level, max_buy_cross, max_sell_cross

HELD, PRINCIPAL, INTEREST = 0, 1, 2  # columns of ``sb`` (base of a symbol) and ``aq`` (quote of an account)


@njit(cache=True, inline="always")
def debt_of(book, r):
    """What row ``r`` of ``sb`` or ``aq`` owes: its principal and interest."""
    return book[r, PRINCIPAL] + book[r, INTEREST]


@njit(cache=True, inline="always")
def net_of(book, r):
    """Row ``r``'s holding less what it owes: a symbol's position (``sb``)."""
    return book[r, HELD] - debt_of(book, r)


@njit(cache=True, inline="always")
def held_over(book, r, level):
    """Row ``r``'s holding less ``level`` times what it owes: its term of the
    account's margin test at ``level`` (per unit of its price)."""
    return book[r, HELD] - level * debt_of(book, r)


@njit(cache=True, inline="always")
def load(st, sb, aq, s, a):
    """The six numbers of symbol ``s`` in account ``a`` into ``st``."""
    st[HB] = sb[s, HELD]
    st[PB] = sb[s, PRINCIPAL]
    st[IB] = sb[s, INTEREST]
    st[HQ] = aq[a, HELD]
    st[PQ] = aq[a, PRINCIPAL]
    st[IQ] = aq[a, INTEREST]


@njit(cache=True, inline="always")
def store(st, sb, aq, s, a):
    sb[s, HELD] = st[HB]
    sb[s, PRINCIPAL] = st[PB]
    sb[s, INTEREST] = st[IB]
    aq[a, HELD] = st[HQ]
    aq[a, PRINCIPAL] = st[PQ]
    aq[a, INTEREST] = st[IQ]


@njit(cache=True, inline="always")
def book_value(sb, aq, a, syms, m, px, row):
    """(assets, debt) of account ``a`` with symbols ``syms[a, :m]`` at prices
    ``px[row, :m]`` (2-D arguments indexed, not sliced: no view per bar)."""
    assets = aq[a, HELD]
    debt = debt_of(aq, a)
    for k in range(m):
        s = syms[a, k]
        assets += sb[s, HELD] * px[row, k]
        debt += debt_of(sb, s) * px[row, k]
    return assets, debt


@njit(cache=True)
def others_term(sb, syms, a, m, px, row, skip, m0):
    """Σ (hb_j − m0·db_j)·P_j over the account's symbols but ``skip``: what
    they add to the borrow gate (docs "Cross borrow cap")."""
    w = 0.0
    for k in range(m):
        if k != skip:
            s = syms[a, k]
            w += held_over(sb, s, m0) * px[row, k]
    return w


@njit(cache=True, _nrt=False)
def trade_to_cross(st, x, o, gate, costs, rates, limits):
    """``account._trade_to`` with the whole-account borrow cap: ``gate`` =
    (the account's equity (all its symbols), the other symbols' term, the
    float slack of the gate (1e-9 of the account's assets + debt), M0);
    ``costs`` = (fee, slippage, round interest up, auto-repay, repay on
    flat); ``rates`` = (base, quote), hourly; ``limits`` = the most
    principal of (base, quote) the account may owe (+inf: none; docs "Max
    borrow in a cross account of several symbols").  Same returns.  With
    auto-repay off what a fill receives is held, and with repay on flat a
    fill that leaves the symbol flat nets its base and the account's quote
    (docs/model-choices.md "Auto-repay off in a cross account of several
    symbols")."""
    eq, others, tol, m0 = gate
    fee, slip, round_up, repay, on_flat = costs
    rate_b, rate_q = rates
    limit_b, limit_q = limits
    if eq <= 0.0:
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    delta = x * eq / o - _position(st)
    if abs(delta) * o <= 1e-9 * eq:  # already there, up to float noise: no dust order
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    db = st[PB] + st[IB]
    dq = st[PQ] + st[IQ]
    if delta > 0.0:
        price = o * (1.0 + slip)
        q = delta / (1.0 - fee)
        cap = max_buy_cross(st[HB], st[HQ], db, dq, others, o, price, fee, rate_q, m0, tol, repay)
        lim, room = borrow_limit_cap(st[HQ], st[PQ], limit_q, price)
    elif delta < 0.0:
        price = o * (1.0 - slip)
        q = -delta
        cap = max_sell_cross(st[HB], st[HQ], db, dq, others, o, price, fee, rate_b, m0, tol, repay)
        lim, room = borrow_limit_cap(st[HB], st[PB], limit_b, 1.0)
    else:
        return 0, 0.0, 0.0, 0.0, False, 0.0, 0.0
    borrows = True
    if lim < cap:  # the profile's max borrow binds first: what is held plus the room left
        cap = lim
        borrows = room
    capped = cap < q * (1.0 - 1e-9)
    # at the account's limit the cap is 0 up to float noise (another symbol
    # took the room): a cap below 1e-9 of the order is nothing, not a dust fill
    q = min(q, cap) if cap > q * 1e-9 else 0.0
    held = st[HQ] / price if delta > 0.0 else st[HB]
    if held < q <= held + 1e-9 * q:  # nor a dust loan: a borrow that small is float noise
        q = held
    if q <= 0.0:
        return 0, 0.0, 0.0, 0.0, capped, 0.0, 0.0
    if delta > 0.0:
        side, fee_value, cb, cq = 1, q * fee * price, 0.0, _buy(st, q, price, fee, rate_q, round_up, borrows, repay)
    else:
        side, fee_value, cb, cq = -1, q * price * fee, _sell(st, q, price, fee, rate_b, round_up, borrows, repay), 0.0
    if on_flat and not repay and _position(st) == 0.0:
        _net(st)
    return side, q, price, fee_value, capped, cb, cq


@njit(cache=True)
def _value1(sb, aq, a, syms, m, prices):
    """``book_value`` with 1-D symbols and prices (the rare liquidation path)."""
    assets = aq[a, HELD]
    debt = debt_of(aq, a)
    for k in range(m):
        s = syms[k]
        assets += sb[s, HELD] * prices[k]
        debt += debt_of(sb, s) * prices[k]
    return assets, debt


@njit(cache=True)
def _clean_book(sb, aq, a, syms, m):
    for k in range(m):
        for j in range(3):
            if abs(sb[syms[k], j]) < DUST:
                sb[syms[k], j] = 0.0
    for j in range(3):
        if abs(aq[a, j]) < DUST:
            aq[a, j] = 0.0


@njit(cache=True, _nrt=True)  # (allocates: counts references though kernel_multi._loop does not)
def net_book(sb, aq, a, syms, m):
    """Auto-repay off, before a cross liquidation: ``account._net`` on each
    symbol's six numbers (each balance repays its own asset's debt; a flat
    symbol's base held and owed cancel outright).  The rare path: its
    scratch state is made here."""
    st = np.empty(6)
    for k in range(m):
        load(st, sb, aq, syms[k], a)
        _net(st)
        store(st, sb, aq, syms[k], a)


@njit(cache=True)
def liquidate_cross(sb, aq, a, syms, m, at, terms, rec, out):
    """Liquidate account ``a`` (``at`` = (trig, traded, tradable)) at trigger
    prices ``trig[:m]`` (its margin level and fee), filling at the traded
    prices ``traded[:m]`` ± slippage (the triggers themselves unless a mark
    series triggers), the symbols ``tradable`` (a bar) only; ``terms`` =
    (slippage, fee rate, restore ML, full, nets: auto-repay off, the
    balances repay their own debts first, after the record's level and
    fee); fill ``rec`` (the event) and,
    ``out`` = (qty, fill, side), per symbol k ``side[k]`` (+1 bought back, −1
    sold, 0 no fill), ``qty[k]`` and ``fill[k]``.  Returns (fee, bad debt,
    done): not done when it would fill and write off nothing
    (docs/model-choices.md "No empty liquidations"), the books untouched (but
    netted, with ``nets``: that changes no equity)."""
    trig, traded, tradable = at
    slip, fee_rate, m_restore, full, nets = terms
    qty, fill, side = out
    assets, debt = _value1(sb, aq, a, syms, m, trig)
    rec.margin_level = margin_level(assets, debt)
    rec.equity_before = assets - debt
    fee = fee_rate * assets
    if nets:
        net_book(sb, aq, a, syms, m)
    longs = 0.0
    shorts = 0.0
    frozen_a = 0.0
    frozen_d = 0.0
    for k in range(m):
        s = syms[k]
        side[k] = 0
        qty[k] = 0.0
        fill[k] = traded[k] * (1.0 - slip) if sb[s, HELD] > 0.0 else traded[k] * (1.0 + slip)
        db = debt_of(sb, s)
        if tradable[k]:
            longs += sb[s, HELD] * fill[k]
            shorts += db * fill[k]
        else:
            frozen_a += sb[s, HELD] * trig[k]
            frozen_d += db * trig[k]
    net_quote = aq[a, HELD] - aq[a, PRINCIPAL] - aq[a, INTEREST]
    lam = 1.0 if full else cross_cut(longs, shorts, frozen_a, frozen_d, net_quote, fee, m_restore)
    if lam <= 0.0 or longs + shorts <= 0.0:  # nothing it could fill
        any_held = False
        for k in range(m):
            any_held = any_held or sb[syms[k], HELD] > 0.0
        if any_held or aq[a, HELD] >= debt_of(aq, a):
            return 0.0, 0.0, False  # nor write off: no liquidation, no fee
    cash = aq[a, HELD]
    for k in range(m):  # sells first: they raise the quote the fee and the buy-backs need
        s = syms[k]
        if tradable[k] and sb[s, HELD] > 0.0:
            q = sb[s, HELD] if lam == 1.0 else lam * sb[s, HELD]
            sb[s, HELD] -= q
            cash += q * fill[k]
            qty[k] = q
            side[k] = -1
    cash -= fee
    if cash < 0.0:  # the fee only as far as collateral covers it
        fee += cash
        cash = 0.0
    cost = 0.0
    for k in range(m):
        s = syms[k]
        db = debt_of(sb, s)
        if tradable[k] and db > 0.0:
            qty[k] = db if lam == 1.0 else lam * db
            cost += qty[k] * fill[k]
            side[k] = 1
    cut = cost > cash
    scale = cash / cost if cut else 1.0  # the quote runs out: it buys this much, the insurance fund the rest
    if cut:
        cost = cash
    cash -= cost
    for k in range(m):
        if side[k] == 1:
            s = syms[k]
            bought = qty[k] * scale
            if cut:  # the record closes the whole debt: what the quote did not buy is bad debt
                qty[k] = debt_of(sb, s)
            sb[s, HELD] += _repay(bought, sb[s], INTEREST, PRINCIPAL)  # (a row: the symbol's own numbers)
    aq[a, HELD] = _repay(cash, aq[a], INTEREST, PRINCIPAL)
    _clean_book(sb, aq, a, syms, m)
    any_held = False
    for k in range(m):
        if sb[syms[k], HELD] > 0.0:
            any_held = True
    bad = 0.0
    for k in range(m):  # the prices the account is valued at after the fills
        if not tradable[k]:
            fill[k] = trig[k]
    if cut or (not any_held and debt_of(aq, a) > 0.0):
        bad = debt_of(aq, a)
        aq[a, PRINCIPAL] = 0.0
        aq[a, INTEREST] = 0.0
        for k in range(m):
            s = syms[k]
            bad += debt_of(sb, s) * fill[k]
            sb[s, PRINCIPAL] = 0.0
            sb[s, INTEREST] = 0.0
    assets, debt = _value1(sb, aq, a, syms, m, fill)
    rec.fee = fee
    rec.bad_debt = bad
    rec.equity_after = max(0.0, assets - debt)
    rec.trigger_price = np.nan  # per symbol: in the fills
    rec.fill_price = np.nan
    rec.quantity = np.nan
    return fee, bad, True
