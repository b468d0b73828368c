"""Binance USDⓈ-M perpetual futures: the venue's rules as compiled functions
(docs/perps-model.md §1–§5; the choices it leaves open in
docs/model-choices.md "Perpetual futures").

The loop keeps a perp account in the spot account's six numbers (a venue
adds rules, not a loop): position ``N = hb − pb`` and net quote ``c = hq −
pq`` (wallets less what the position cost), so equity is ``N·P + c`` as on
spot margin; no interest is ever owed.  Isolated mode also keeps the cross
wallet apart, ``fs[FREE]``: the position's margin balance is then ``N·P + c
− fs[FREE]``.  The maintenance-bracket table in force sits in ``fs`` from
``TAB0`` on (``load_table``), so the rules read it from the state the loop
already hands them.

Health ``h = MB / MM`` (the margin ratio is ``1/h``): liquidation at
``h ≤ 1``, margin call at ``h ≤ 1.25``; the loop asks for a level ``m`` the
way it asks spot margin for a margin level.
"""
import numpy as np
from numba import njit
from numba.extending import overload

from ..account import HB, HQ, IB, IQ, PB, PQ

# ``fs`` slots of this venue, after the loop's own (intrabar.N_FS_LOOP)
FREE = 21  # isolated mode: the cross wallet, outside the position's margin
OTHERS = 22  # cross mode with several symbols: the other positions' initial margin
TAB_N = 23  # tiers in the table in force
TAB0 = 24  # then floor, cap, mmr, cum, max leverage per tier
MAX_TIERS = 24
N_SLOTS = TAB0 + 5 * MAX_TIERS

DUST = 1e-12
CALL = 1.25  # health at the margin call: a margin ratio of 80 %


@njit(cache=True)
def load_table(fs, rows, lo, hi):
    """Put tiers ``rows[lo:hi]`` (floor, cap, mmr, cum, max leverage) in force."""
    n = min(hi - lo, MAX_TIERS)
    fs[TAB_N] = n
    for k in range(n):
        for j in range(5):
            fs[TAB0 + 5 * k + j] = rows[lo + k, j]


@njit(cache=True)
def maintenance(fs, notional):
    """MM = notional·mmr − cum, the tier holding ``notional`` (spec §3; the
    top tier beyond its cap)."""
    return maintenance_row(fs, 0, notional)


@njit(cache=True, inline="always")
def maintenance_row(table, s, notional):
    """``maintenance`` of row ``s`` of a 2-D array of loaded tables (a cross
    account's, one row a symbol; a 1-D table: ``s`` unused), indexed, not
    sliced: a slice is a view, reference-counted, and a cross account's
    quiet run asks on every bar."""
    n = int(_cell(table, s, TAB_N))
    for k in range(n):
        b = TAB0 + 5 * k
        if notional < _cell(table, s, b + 1) or k == n - 1:
            return notional * _cell(table, s, b + 2) - _cell(table, s, b + 3)
    return 0.0


def _cell(table, s, j):
    """``table[s, j]``, or ``table[j]`` of a 1-D table."""


@overload(_cell, inline="always")
def _cell_typed(table, s, j):
    if table.ndim == 1:
        return lambda table, s, j: table[j]
    return lambda table, s, j: table[s, j]


@njit(cache=True)
def max_notional(fs, leverage):
    """The largest notional a position may have at ``leverage`` (spec §2):
    the highest cap of the tiers allowing it; 0 when none does."""
    best = 0.0
    for k in range(int(fs[TAB_N])):
        b = TAB0 + 5 * k
        if fs[b + 4] >= leverage:
            best = max(best, fs[b + 1])
    return best


@njit(cache=True, inline="always")
def _state(st, fs):
    """(position, net quote of the position's margin balance)."""
    return st[HB] - st[PB], st[HQ] - st[PQ] - fs[FREE]


@njit(cache=True)
def health_at_or_below(st, fs, price, m):
    """``h(price) ≤ m``, without a division."""
    n, c = _state(st, fs)
    if n == 0.0:
        return False
    return c + n * price <= m * maintenance(fs, abs(n) * price)


@njit(cache=True)
def health(st, fs, price):
    """h = MB / MM at ``price``; +inf when flat (or no maintenance)."""
    n, c = _state(st, fs)
    mm = maintenance(fs, abs(n) * price)
    if n == 0.0 or mm <= 0.0:
        return np.inf
    return (c + n * price) / mm


@njit(cache=True)
def liquidation_price_of(n, c, fs, m):
    """The price where ``MB = m·MM`` (spec §4.2, the bracket taken at that
    price's notional: the one tier whose range holds it) for position ``n``
    and net quote ``c``; ``(price, side)`` with side +1 when a falling price
    reaches it, −1 a rising one, 0 none (flat, or no positive price)."""
    if n == 0.0:
        return 0.0, 0
    a = abs(n)
    near, near_gap = 0.0, np.inf
    n_tiers = int(fs[TAB_N])
    for k in range(n_tiers):
        b = TAB0 + 5 * k
        lo, mmr, cum = fs[b], fs[b + 2], fs[b + 3]
        hi = fs[b + 1] if k < n_tiers - 1 else np.inf  # the top tier is open above its cap (as ``maintenance``)
        denom = m * a * mmr - n
        if denom == 0.0 or (n > 0.0) != (denom < 0.0):  # (a long whose m·MM grows faster than its MB on this
            continue  # tier, m·mmr ≥ 1: no price below meets the level; a buffer level that high, --keep-ml)
        p = (c + m * cum) / denom
        if p <= 0.0:
            continue
        x = a * p
        if lo <= x < hi:
            return p, (1 if n > 0.0 else -1)
        gap = (lo - x) / lo if x < lo else (x - hi) / hi
        if gap < near_gap:
            near, near_gap = p, gap
    if near_gap <= 1e-12:  # a boundary lost to rounding: both tiers give the same price there
        return near, (1 if n > 0.0 else -1)
    return 0.0, 0


@njit(cache=True)
def level_price(st, fs, m):
    """``liquidation_price_of`` the account's state."""
    n, c = _state(st, fs)
    return liquidation_price_of(n, c, fs, m)


@njit(cache=True)
def liquidation_trigger(st, fs, m, o, h, lo):
    """Where a mark bar (open ``o``, high ``h``, low ``lo``) reaches the
    price of health ``m``: that price, or the open when the bar opens
    beyond it; NaN when it does not."""
    p, side = level_price(st, fs, m)
    if side == 1 and lo <= p:
        return min(o, p)
    if side == -1 and h >= p:
        return max(o, p)
    return np.nan


@njit(cache=True)
def margin_check(st, fs, liq, call, lo, hi):
    """Health at the adverse mark extreme (``lo`` long, ``hi`` short)
    against the liquidation level ``liq`` and the call level ``call``:
    (at or near liquidation?, at or below the call?, health there)."""
    n, _ = _state(st, fs)
    if n == 0.0:
        return False, False, np.nan
    worst = lo if n > 0.0 else hi
    below_call = health_at_or_below(st, fs, worst, call)
    return (health_at_or_below(st, fs, worst, liq * (1.0 + 1e-9)), below_call,
            health(st, fs, worst) if below_call else np.nan)


@njit(cache=True)
def lift_to(st, fs, p, m):
    """The quote that lifts the health at ``p`` to ``m``: ``m·MM − MB``."""
    n, c = _state(st, fs)
    return m * maintenance(fs, abs(n) * p) - (c + n * p)


@njit(cache=True)
def lift_to_initial(st, fs, p, leverage):
    """The quote that lifts the margin balance at ``p`` to the position's
    initial margin ``|N|·p / L``."""
    n, c = _state(st, fs)
    return abs(n) * p / leverage - (c + n * p)


@njit(cache=True)
def deposit(st, fs, amount, free):
    """Quote into (or out of) the position's wallet, or with ``free`` the
    cross wallet outside an isolated position."""
    set_state(st, st[HB] - st[PB], st[HQ] - st[PQ] + amount)
    if free:
        fs[FREE] += amount


@njit(cache=True)
def withdrawable(st, fs, o, leverage, isolated, entry):
    """What may leave at ``o``: isolated, the cross wallet; cross, the
    available money, at most the wallet (unrealised profit stays)."""
    if isolated:
        return max(fs[FREE], 0.0)
    n, c = _state(st, fs)
    wallet = c + n * entry if n != 0.0 else c
    return max(min(n * o + c - abs(n) * o / leverage, wallet), 0.0)


@njit(cache=True)
def deleverage_size(st, fs, p, f, fee, leverage):
    """The safety buffer's reduction at ``p``, filled at ``f``: the margin
    balance back at the initial margin; (side, quantity, cut to the
    position?), quantity 0 when none."""
    n, c = _state(st, fs)
    a = abs(n)
    num = a * p / leverage - (c + n * p)
    den = p / leverage - abs(f - p) - f * fee
    side = -1 if n > 0.0 else 1
    if num <= 0.0 or den <= 0.0:
        return side, 0.0, False
    return side, min(num / den, a), num / den > a


@njit(cache=True)
def close_columns(position, mb, c, close, table_from, table_start, table_rows, ratio, lp):
    """Per bar at the close, into ``ratio`` and ``lp``: the margin ratio
    MM / MB (0 flat, +inf at MB = 0) and the liquidation price (NaN flat or
    unreachable) of position ``position`` with margin balance ``mb`` and
    net quote ``c`` (``MB − N·close``), the bracket table in force from bar
    ``table_from[v]`` on (``Venue``'s tables)."""
    fs = np.zeros(N_SLOTS)
    v = -1
    for j in range(position.shape[0]):
        while v + 1 < table_from.shape[0] and table_from[v + 1] <= j:
            v += 1
            load_table(fs, table_rows, table_start[v], table_start[v + 1])
        n = position[j]
        if n == 0.0:
            ratio[j] = 0.0
            lp[j] = np.nan
            continue
        mm = maintenance(fs, abs(n) * close[j])
        ratio[j] = mm / mb[j] if mb[j] != 0.0 else np.inf
        p, side = liquidation_price_of(n, c[j], fs, 1.0)
        lp[j] = p if side != 0 else np.nan


@njit(cache=True)
def band(st, fs, m):
    """Prices strictly between which ``h > m`` with room to spare (1e-9
    relative); the whole line when flat or no price reaches ``m``."""
    p, side = level_price(st, fs, m)
    if side == 1:
        return p * (1.0 + 1e-9), np.inf
    if side == -1:
        return -np.inf, p * (1.0 - 1e-9)
    return -np.inf, np.inf


@njit(cache=True)
def pay_funding(st, fs, mark, rate):
    """Funding at ``mark``: ``N·mark·rate`` leaves the position's wallet
    (spec §5: longs pay a positive rate); returns the payment."""
    n, _ = _state(st, fs)
    pay = n * mark * rate
    set_state(st, n, st[HQ] - st[PQ] - pay)
    return pay


@njit(cache=True, inline="always")
def set_state(st, n, c):
    """The six numbers of position ``n`` and net quote ``c``; either below
    1e-12 is float residue, 0 (as on spot margin)."""
    n = 0.0 if abs(n) < DUST else n
    c = 0.0 if abs(c) < DUST else c
    st[HB] = max(n, 0.0)
    st[PB] = max(-n, 0.0)
    st[HQ] = max(c, 0.0)
    st[PQ] = max(-c, 0.0)
    st[IB] = 0.0
    st[IQ] = 0.0


@njit(cache=True, inline="always")
def _dust(x):
    return 0.0 if abs(x) < DUST else x


@njit(cache=True)
def liquidate(st, fs, x, rate, isolated, rec):
    """Close the whole position at ``x`` (docs/model-choices.md): the
    clearance fee ``rate·|N|·x`` and the loss come out of the position's
    margin balance, never beyond it (the insurance fund takes the rest).
    Fills ``rec``; returns (side, quantity, fee taken, bad debt)."""
    n, c = _state(st, fs)
    if n == 0.0:
        return 0, 0.0, 0.0, 0.0
    mb = c + n * x
    free = fs[FREE]
    rec.trigger_price = x
    rec.fill_price = x
    mm = maintenance(fs, abs(n) * x)
    rec.margin_level = mb / mm if mm > 0.0 else np.inf
    rec.equity_before = mb + free
    fee_full = rate * abs(n) * x
    keep = max(0.0, mb - fee_full)
    fee = min(fee_full, max(mb, 0.0))
    bad = max(0.0, -mb)
    set_state(st, 0.0, free + keep)
    if isolated:
        fs[FREE] = _dust(free + keep)
    rec.fee = fee
    rec.quantity = abs(n)
    rec.bad_debt = bad
    rec.equity_after = free + keep
    return (-1 if n > 0.0 else 1), abs(n), fee, bad


@njit(cache=True, inline="always")
def _close_part(n, c, free, side, r, f, fee, isolated, entry, c_pos):
    """Close ``r`` units of position ``n`` at ``f`` (``side``: the fill's
    direction): the realised PnL and fee into the wallet; isolated, the
    released share of the position's wallet back to the cross wallet.
    Returns (position, net quote, cross wallet)."""
    realised = r * (f - entry) * (1.0 if n > 0.0 else -1.0)
    if isolated:
        wallet = c_pos + n * entry  # the position's wallet before the fill
        free += (r / abs(n)) * wallet + realised - r * f * fee
    n_after = n + side * r if r < abs(n) else 0.0
    c += side * -r * f - r * f * fee
    return n_after, c, free


@njit(cache=True, inline="always")
def _open_cap(n, c, free, o, f, fee, leverage, isolated, fs):
    """Units that may be opened at ``f`` (marked at ``o``): the available
    money (cross: less the initial margin of the account's other symbols)
    over a unit's initial margin and fee, and the bracket's largest notional
    at ``leverage``."""
    avail = free if isolated else n * o + c - abs(n) * o / leverage - fs[OTHERS]
    k = f * (1.0 / leverage + fee)  # what a unit opened takes: its initial margin and fee
    return min(max(avail, 0.0) / k, max(max_notional(fs, leverage) / o - abs(n), 0.0))


@njit(cache=True, inline="always")
def _cut(u, cap, scale):
    """(the opening part ``u`` cut to ``cap``, cut?); 0 when what is left
    is float noise of ``scale`` (an account at its cap)."""
    cut = cap < u * (1.0 - 1e-9)
    if cut:
        u = cap
    if u <= 1e-9 * scale:
        u = 0.0
    return u, cut


@njit(cache=True, inline="always")
def _open_part(n, c, free, side, u, f, fee, leverage, isolated):
    """Open ``u`` units at ``f``; isolated, their initial margin and fee
    leave the cross wallet (one left at noise size spent all of it)."""
    c -= side * u * f + u * f * fee
    if isolated:
        free -= u * f * (1.0 / leverage + fee)
        if abs(free) <= 1e-9 * u * f / leverage:
            free = 0.0
    return n + side * u, c, free


@njit(cache=True, inline="always")
def _store(st, fs, n, c, free, isolated):
    if isolated:
        fs[FREE] = _dust(free if n != 0.0 else c)  # flat: every wallet is the cross one
    set_state(st, n, c)


@njit(cache=True)
def _size(st, fs, x, o, f, fee, leverage, isolated, entry, fill):
    """An order towards exposure ``x`` (equity valued at ``o``) filled at
    ``f``: (side, closing units, opening units after the cap, capped).
    ``fill`` 1.0: a market order, its target quantity at ``o``, done here;
    0.0: a limit order sized at its price ``f`` and not done.  (A float: the
    literal True and False were typed apart, and numba compiled this twice.)"""
    market = fill != 0.0
    n, c_pos = _state(st, fs)
    c = st[HQ] - st[PQ]
    eq = n * o + c
    if eq <= 0.0:
        return 0.0, 0.0, 0.0, False
    target = x * eq / f if not market else x * eq / o
    delta = target - n
    if abs(delta) <= 1e-9 * max(abs(target), abs(n)):  # float noise: already at the target
        return 0.0, 0.0, 0.0, False
    side = 1.0 if delta > 0.0 else -1.0
    free = fs[FREE]
    r = 0.0  # the closing part
    if n != 0.0 and (n > 0.0) != (delta > 0.0):
        r = min(abs(delta), abs(n))
        n, c, free = _close_part(n, c, free, side, r, f, fee, isolated, entry, c_pos)
    opening = abs(delta) - r
    capped = False
    if opening > 0.0:
        opening, capped = _cut(opening, _open_cap(n, c, free, o, f, fee, leverage, isolated, fs),
                               max(abs(target), abs(n)))
        if opening > 0.0 and market:
            n, c, free = _open_part(n, c, free, side, opening, f, fee, leverage, isolated)
    if market and r + opening > 0.0:
        _store(st, fs, n, c, free, isolated)
    return side, r, opening, capped


@njit(cache=True)
def trade_to(st, fs, x, o, fee, slip, leverage, isolated, entry):
    """Market order at ``o`` towards exposure ``x`` (docs/model-choices.md
    "Market order to target"): the closing part first, then the opening
    part cut to what the available money and the bracket allow.
    ``entry``: the position's entry price.  Returns (side, quantity, price,
    fee value, capped)."""
    n, _ = _state(st, fs)
    eq = n * o + st[HQ] - st[PQ]
    if eq <= 0.0:
        return 0, 0.0, 0.0, 0.0, False
    side = 1.0 if x * eq / o - n > 0.0 else -1.0
    f = o * (1.0 + side * slip)
    side, r, opening, capped = _size(st, fs, x, o, f, fee, leverage, isolated, entry, 1.0)
    q = r + opening
    if q <= 0.0:
        return 0, 0.0, 0.0, 0.0, capped
    return (1 if side > 0.0 else -1), q, f, q * f * fee, capped


@njit(cache=True)
def limit_size(st, fs, x, o, lim, fee, leverage, isolated, entry):
    """A limit order at ``lim`` towards exposure ``x``, placed at the open
    ``o``: (side, quantity, capped), its quantity and cap as a market order
    filled at ``lim`` would have them (docs/model-choices.md "Perpetual
    futures"); nothing is reserved or borrowed."""
    side, r, opening, capped = _size(st, fs, x, o, lim, fee, leverage, isolated, entry, 0.0)
    q = r + opening
    if q <= 0.0:
        return 0, 0.0, capped
    return (1 if side > 0.0 else -1), q, capped


@njit(cache=True)
def fill(st, fs, side, q, f, fee, leverage, isolated, entry):
    """A limit order of ``q`` units on ``side`` filled at ``f`` (its price,
    or the open when the bar opened past it): the closing part, then the
    opening part cut again to what the money and the bracket allow at
    ``f`` (it was sized at the limit price; a sell filled higher takes more
    margin a unit).  Returns (quantity filled, fee value, cut here?)."""
    n, c_pos = _state(st, fs)
    c = st[HQ] - st[PQ]
    free = fs[FREE]
    sd = float(side)
    r = min(q, abs(n)) if n != 0.0 and (n > 0.0) != (side > 0) else 0.0
    if r > 0.0:
        n, c, free = _close_part(n, c, free, sd, r, f, fee, isolated, entry, c_pos)
    u = q - r
    cut = False
    if u > 0.0:
        u, cut = _cut(u, _open_cap(n, c, free, f, f, fee, leverage, isolated, fs), q)
        if u > 0.0:
            n, c, free = _open_part(n, c, free, sd, u, f, fee, leverage, isolated)
    if r + u > 0.0:
        _store(st, fs, n, c, free, isolated)
    return r + u, (r + u) * f * fee, cut
