"""The margin rules of spec §2–§5 as small compiled functions.

Every formula of the margin model lives here once: margin level, the
liquidation price, the interest charge, the borrow cap and the partial
liquidation sizes.  The kernel calls them; so can a user checking a number.
All values are plain floats in asset units; prices are quote per base.

Notation: ``hb``/``hq`` base/quote held, ``db``/``dq`` base/quote owed
(principal + unpaid interest), ``M`` a margin level, ``P`` a price.
"""

import numpy as np
from numba import njit

from ._numba_cache import configure

configure()  # numba's cache folder, set before any @njit here is defined

HOUR = 3600  # seconds; interest falls due at every whole hour (HH:00 UTC)


@njit(cache=True)
def margin_level(assets, debt):
    """ML = total asset value / total debt value; +inf without debt (spec §2)."""
    if debt <= 0.0:
        return np.inf
    return assets / debt


@njit(cache=True)
def interest_charge(principal, hourly_rate, round_up):
    """One hour's simple interest on ``principal``.

    Rounded up to 1e-8 of the asset when ``round_up`` (spec §4).  The 1e-6
    slack (in units of 1e-8) keeps float noise on an exact value, such as
    1,000 × 0.00001 = 0.01, from adding a spurious 1e-8.
    """
    raw = principal * hourly_rate
    if raw <= 0.0:
        return 0.0
    if round_up:  # np.ceil stays a float: math.ceil's int64 overflows above 9.2e10 of interest
        return max(0.0, np.ceil(raw * 1e8 - 1e-6) / 1e8)
    return raw


@njit(cache=True)
def hour_boundaries_between(t0, t1):
    """Count of whole hours h with t0 < h < t1 (integer seconds)."""
    if t1 <= t0:
        return 0
    return (t1 - 1) // HOUR - t0 // HOUR


def hourly_rate(daily_rate):
    """Binance quotes daily rates; interest falls due hourly (spec §4)."""
    return daily_rate / 24.0


def pro_margin_level(assets_ml, mmr):
    """Cross Margin Pro's ML = (assets − debt) / (mmr · debt), from the
    classic ML = assets / debt, with one maintenance-margin rate for every
    asset (spec §2, default 5 %)."""
    return (assets_ml - 1.0) / mmr


def classic_margin_level(pro_ml, mmr):
    """The classic ML (assets / debt) at which Pro's ML equals ``pro_ml``:
    a Pro threshold in the terms the account's arithmetic uses."""
    return 1.0 + mmr * pro_ml


@njit(cache=True)
def falling_price_hurts(hb, db, mlr):
    """True when a lower price lowers ML at the liquidation level: the account
    is long-like (base held beyond ``mlr`` times base owed, or only quote
    owed); False when it is short-like and the high is its adverse extreme."""
    return hb - mlr * db >= 0.0


@njit(cache=True)
def liquidation_price(hb, hq, db, dq, mlr):
    """Price at which ML(P) = ``mlr``: ``(mlr·dq − hq) / (hb − mlr·db)``.

    Returns ``(price, side)``: side +1 when a falling price lowers ML (long-
    like), −1 when a rising one does (short-like), 0 when no positive price
    can trigger (then ``price`` is meaningless).
    """
    a = hb - mlr * db
    if a == 0.0:
        return 0.0, 0
    p = (mlr * dq - hq) / a
    if p <= 0.0:
        return p, 0
    return p, (1 if a > 0.0 else -1)


@njit(cache=True)
def liquidation_level(hb, hq, db, dq, mlr):
    """``liquidation_price`` as the checks on the path take it (step 5, the
    walks, the moves of step 5'): an account at or below ``mlr`` at every
    positive price gets ``(0.0, −1)``, a level every price is at or above, so
    it fires at the open: a short-like one (``hb < mlr·db``) whose price
    comes out ≤ 0 (``hq ≤ mlr·dq``: e.g. a buy-back that spent all its quote,
    base still owed), or one whose level does not move with the price
    (``hb = mlr·db``: in practice quote loans and no base, e.g. a long closed
    with auto-repay off) with ``hq ≤ mlr·dq`` and a debt.  (A long-like
    one's price ≤ 0 is never reached: side 0.)"""
    p, side = liquidation_price(hb, hq, db, dq, mlr)
    a = hb - mlr * db
    if side == 0 and (a < 0.0 or (a == 0.0 and hq <= mlr * dq and (db > 0.0 or dq > 0.0))):
        return 0.0, -1
    return p, side


@njit(cache=True)
def liquidation_trigger(hb, hq, db, dq, mlr, o, h, lo):
    """Where a bar from open ``o`` reaching ``h``/``lo`` triggers liquidation
    (spec §5): the liquidation price, or the open when the bar opens beyond
    it (an account below the level at every price: the open); NaN when the
    bar does not reach it."""
    p_liq, side = liquidation_level(hb, hq, db, dq, mlr)
    if side == 1 and lo <= p_liq:
        return min(o, p_liq)
    if side == -1 and h >= p_liq:
        return max(o, p_liq)
    return np.nan


@njit(cache=True)
def safe_band(hb, hq, db, dq, m):
    """Prices ``(lo, hi)`` strictly between which ML > ``m`` with room to
    spare: outside them ML may be ≤ ``m`` and must be computed.

    ML ≤ m ⇔ ``(hb − m·db)·P ≤ m·dq − hq`` (debt > 0): a half-line in P.  The
    band stops a relative 1e-9 short of its edge, far more than float error,
    so a price inside it never needs the exact check; when ML barely moves
    with the price (base held and owed nearly cancel, or the edge is lost in
    float noise) the band is empty.
    Without debt ML is +inf: every price is inside.
    """
    if db <= 0.0 and dq <= 0.0:
        return -np.inf, np.inf
    a = hb - m * db
    b = m * dq - hq
    slope = hb + m * db
    if slope == 0.0:  # quote only: ML does not depend on the price
        return (-np.inf, np.inf) if hq > m * dq * (1.0 + 1e-9) else (np.inf, -np.inf)
    if abs(a) <= 1e-6 * slope:  # ML hardly moves with the price (or a = 0): always check exactly
        return np.inf, -np.inf
    r = b / a
    room = abs(r) * 1e-9
    scale = slope * abs(r) + abs(hq) + m * dq  # the size of the sums float error scales with
    if abs(a) * room < 1e-12 * scale:
        return np.inf, -np.inf
    if a > 0.0:  # ML ≤ m at or below r
        return r + room, np.inf
    return -np.inf, r - room


@njit(cache=True)
def max_buy(hb, hq, db, dq, mark, price, fee, rate, m0, repay):
    """Largest base quantity a buy may take so that ML stays ≥ ``m0``, and
    whether it may borrow.

    The buy pays ``q·price`` from ``hq`` and borrows the rest (with its first
    hour of interest at ``rate``); it receives ``q·(1−fee)`` base, which first
    repays ``db`` when ``repay`` (auto-repay), else is held.  Only borrowing
    is capped: a buy paid from ``hq`` is free.  Valued at ``mark``.  Returns
    ``(cap, borrows)``: cap +inf when any size is allowed; ``borrows`` False
    when the cap is ``hq / price`` (the buy then pays at most ``hq``).
    """
    k = m0 * (1.0 + rate)
    denom = k * price - (1.0 - fee) * mark
    if denom <= 0.0:
        return np.inf, True
    own = hq / price
    if repay:
        q = ((hb - db) * mark + k * hq - m0 * dq) / denom
        if q >= own and q * (1.0 - fee) >= db * (1.0 - 1e-9):  # (float noise below the break is at it)
            return max(q, db / (1.0 - fee)), True
    else:  # the base bought stays held, the debt stays owed
        q = ((hb - m0 * db) * mark + k * hq - m0 * dq) / denom
        if q >= own:
            return q, True
    return own, False


@njit(cache=True)
def max_sell(hb, hq, db, dq, mark, price, fee, rate, m0, repay):
    """Largest base quantity a sell may take so that ML stays ≥ ``m0``, and
    whether it may borrow.

    The sell takes base from ``hb`` and borrows the rest (with its first hour
    of interest); its proceeds ``q·price·(1−fee)`` first repay ``dq`` when
    ``repay``, else are held.  Only borrowing is capped.  Valued at ``mark``.
    """
    k = m0 * (1.0 + rate)
    denom = k * mark - (1.0 - fee) * price
    if denom <= 0.0:
        return np.inf, True
    if repay:
        q = (hq - dq - m0 * db * mark + k * hb * mark) / denom
        if q >= hb and q * (1.0 - fee) * price >= dq * (1.0 - 1e-9):  # (float noise below the break is at it)
            return max(q, dq / ((1.0 - fee) * price)), True
    else:
        q = (hq - m0 * dq - m0 * db * mark + k * hb * mark) / denom
        if q >= hb:
            return q, True
    return hb, False


@njit(cache=True)
def borrow_limit_cap(held, principal, limit, price):
    """Largest base quantity an order may take when at most ``limit`` of the
    asset it pays in may be owed in principal (a profile's per-asset max
    borrow): what is held plus the room left under the limit, at ``price``
    (1 when the order pays in base); and whether any room is left.  A room
    within 1e-9 of the limit is none: a loan at its limit is float noise
    away from it.  +inf without a limit."""
    if limit == np.inf:
        return np.inf, True
    room = limit - principal
    if room <= 1e-9 * limit:
        return held / price, False
    return (held + room) / price, True


@njit(cache=True)
def max_borrow(assets, debt, value, rate, m0):
    """Largest amount of an asset worth ``value`` (quote per unit) that can be
    borrowed and held, with its first hour of interest at ``rate``, so that
    ML = (assets + b·value) / (debt + b·value·(1 + rate)) stays ≥ ``m0``;
    0 when ML is already below it.  A limit order's borrow at placement."""
    room = assets - m0 * debt
    k = m0 * (1.0 + rate) - 1.0
    if room <= 0.0:
        return 0.0
    if k <= 0.0:
        return np.inf
    return room / (value * k)


@njit(cache=True)
def partial_sell_long(hb, hq, dq, fee_value, price, m):
    """Base to sell so a long-like account is back at ML ``m`` (spec §5)."""
    s = (m * (dq + fee_value) - (hb * price + hq)) / (price * (m - 1.0))
    return min(max(s, 0.0), hb)


@njit(cache=True)
def partial_buy_short(db, hq, fee_value, price, m):
    """Base to buy back so a short-like account is back at ML ``m`` (spec §5)."""
    s = (m * db * price + fee_value - hq) / (price * (m - 1.0))
    return min(max(s, 0.0), db)


@njit(cache=True)
def stop_levels(entry, best, long_, sl, tp, tr):
    """(stop-loss, trailing, take-profit) price levels of a position
    with average entry ``entry`` and best price since opening ``best``, from
    fractions ``sl``, ``tp``, ``tr`` (0 = off → NaN).  A long's stop and
    trailing lie below, its take-profit above; a short's the other way."""
    d = 1.0 if long_ else -1.0
    s = entry * (1.0 - d * sl) if sl > 0.0 else np.nan
    t = best * (1.0 - d * tr) if tr > 0.0 else np.nan
    g = entry * (1.0 + d * tp) if tp > 0.0 else np.nan
    return s, t, g


# --- several symbols in one cross account (docs/model-choices.md "Several symbols") ---

@njit(cache=True)
def _gate_root(q1, qb, f1, fb, q_star, slope_mid, tol):
    """The largest q ≥ q1 where a decreasing piecewise-linear gate F (F(q1) =
    f1, F(qb) = fb, root ``q_star`` of its last piece) is still ≥ −tol;
    ``q1`` when F(q1) is already below."""
    if f1 < -tol:
        return q1
    if fb >= -tol:
        return max(qb, q_star)
    if slope_mid >= 0.0 or f1 <= tol:  # at the gate already: the middle piece's slope is tiny, noise would blow up
        return q1
    return min(max(q1 - f1 / slope_mid, q1), qb)


@njit(cache=True)
def max_buy_cross(hb, hq, db, dq, others, mark, price, fee, rate, m0, tol, repay=True):
    """Largest base quantity a buy of one symbol of a cross account may take
    so that the account's ML stays ≥ ``m0`` (docs "Cross borrow cap").

    ``others`` = Σ (hb_j − m0·db_j)·P_j over the account's other symbols.
    F(q) = assets − m0·debt after the buy is decreasing and piecewise linear
    past ``hq/price`` (the quote held), with a break where the base received
    covers ``db``; the cap is where F reaches 0 (−``tol`` for float noise),
    at least ``hq/price`` (a buy paid from what is held is never capped).
    Without ``repay`` (auto-repay off) the base received is held: F is
    linear past ``hq/price``, no break (the one-symbol rule plus ``others``).
    """
    k = m0 * (1.0 + rate)
    q1 = hq / price
    if not repay:
        denom = k * price - (1.0 - fee) * mark
        return np.inf if denom <= 0.0 else max((others + (hb - m0 * db) * mark + k * hq - m0 * dq) / denom, q1)
    q2 = db / (1.0 - fee)
    qb = max(q1, q2)
    denom = k * price - (1.0 - fee) * mark
    q_star = np.inf if denom <= 0.0 else ((hb - db) * mark + k * hq - m0 * dq + others) / denom

    def gate(q):
        g = q * (1.0 - fee)
        fq = -m0 * (dq + (1.0 + rate) * (q * price - hq))
        fb = mark * hb - m0 * mark * (db - g) if g <= db else mark * (hb + g - db)
        return others + fq + fb

    return _gate_root(q1, qb, gate(q1), gate(qb), q_star, m0 * (1.0 - fee) * mark - k * price, tol)


@njit(cache=True)
def max_sell_cross(hb, hq, db, dq, others, mark, price, fee, rate, m0, tol, repay=True):
    """``max_buy_cross`` for a sell: past ``hb`` the base is borrowed; the
    break is where the proceeds cover ``dq``; at least ``hb``."""
    k = m0 * (1.0 + rate)
    q1 = hb
    if not repay:
        denom = k * mark - (1.0 - fee) * price
        return np.inf if denom <= 0.0 else max((others + hq - m0 * dq - m0 * db * mark + k * hb * mark) / denom, q1)
    q2 = dq / ((1.0 - fee) * price)
    qb = max(q1, q2)
    denom = k * mark - (1.0 - fee) * price
    q_star = np.inf if denom <= 0.0 else (hq - dq - m0 * db * mark + k * hb * mark + others) / denom

    def gate(q):
        g = q * price * (1.0 - fee)
        fb = -m0 * mark * (db + (1.0 + rate) * (q - hb))
        fq = hq - m0 * (dq - g) if g <= dq else hq + g - dq
        return others + fq + fb

    return _gate_root(q1, qb, gate(q1), gate(qb), q_star, m0 * (1.0 - fee) * price - k * mark, tol)


@njit(cache=True, inline="always")
def path_prices(px, a_row, b_row, theta, row, m):
    """The joint path's prices at ``theta`` (spec §5: every symbol at ``A +
    θ·(B − A)``, from ``px[a_row]`` to ``px[b_row]``) into ``px[row]``."""
    for k in range(m):
        px[row, k] = px[a_row, k] + theta * (px[b_row, k] - px[a_row, k])


@njit(cache=True)
def joint_theta(f0, g):
    """First θ in [0, 1] of the joint path (spec §5) at which ML reaches the
    level, from ``f0 = Σ (a_i − M·d_i)·O_i + c − M·e`` and ``g = Σ (a_i −
    M·d_i)·Δ_i``: ``θ = −f0 / g`` (the spec's closed form), 0 when already
    there at the open; −1 when the bar does not reach it."""
    if g == 0.0 or f0 + g > 0.0:
        return -1.0
    return max(0.0, -f0 / g)


@njit(cache=True)
def leg_theta(f0, g):
    """First θ in [0, 1] at which a later leg of the joint walk with stops
    (docs/model-choices.md "Stops on a joint path": toward the favourable
    extremes, then the closes) reaches the level: 0 when already there at
    its start (``f0 ≤ 0``), else ``−f0 / g`` where the level falls within
    the leg; −1 when it does not."""
    if f0 <= 0.0:
        return 0.0
    if g < 0.0 and f0 + g <= 0.0:
        return -f0 / g
    return -1.0


@njit(cache=True)
def cross_cut(longs, shorts, frozen_assets, frozen_debt, net_quote, fee_value, m):
    """Fraction λ of every position a partial cross liquidation closes so the
    account is back at ML ``m`` (docs/model-choices.md "Cross liquidation"):
    ``longs``/``shorts`` the tradable base held / owed at the fill prices,
    ``frozen_*`` the untradable symbols' values, ``net_quote`` = quote held −
    quote owed.  Clamped to [0, 1]."""
    lam = 1.0
    done = False
    if longs > 0.0:
        l1 = (m * (shorts + frozen_debt - net_quote + fee_value) - longs - frozen_assets) / (longs * (m - 1.0))
        if net_quote + l1 * (longs - shorts) - fee_value <= 0.0:
            lam = l1
            done = True
    if not done and shorts > 0.0:
        lam = (m * (shorts + frozen_debt) + fee_value - longs - frozen_assets - net_quote) / (shorts * (m - 1.0))
    return min(max(lam, 0.0), 1.0)
