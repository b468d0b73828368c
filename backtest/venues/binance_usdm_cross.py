"""Binance USDⓈ-M perpetual futures, a cross account holding several symbols:
the venue's joint rules as compiled functions (docs/model-choices.md
"A cross perp account holding several symbols").

The several-symbol loop keeps the account as it keeps a spot cross account:
each symbol's position ``N_s`` in ``sb[s, 0]`` and the account's net quote
``K = WC − Σ N_s·EP_s`` in ``aq[a, 0]``, so the equity, which is the margin
balance, is ``K + Σ N_s·P_s``.  Each symbol's bracket table in force is in
its row of ``fsv`` (``binance_usdm``'s slots), so a symbol's own rules are
``binance_usdm``'s on that row.
"""
import numpy as np
from numba import njit

from ..rules import path_prices
from . import binance_usdm as usdm

DUST = usdm.DUST


@njit(cache=True)
def balance(sb, k_net, own, m, fsv, prices):
    """(margin balance, maintenance margin) of the account of symbols
    ``own[:m]`` at ``prices[:m]``.  (Rows, not a table and a row number:
    the callers' row numbers are literal constants, which numba types by
    value, so it compiled this function once for each: seven times.)"""
    mb = k_net
    mm = 0.0
    for k in range(m):
        s = own[k]
        n = sb[s, 0]
        if n != 0.0:
            p = prices[k]
            mb += n * p
            mm += usdm.maintenance(fsv[s], abs(n) * p)
    return mb, mm


@njit(cache=True, inline="always")
def above_call(mb, mm, room):
    """The account's health above the margin call, ``room`` (≥ 1) times over:
    MB > CALL·room·MM; an account with no maintenance margin (flat) is."""
    return mm <= 0.0 or mb > usdm.CALL * room * mm


@njit(cache=True, inline="always")
def _tier(fs, notional):
    """The index of the tier holding ``notional`` (the top one beyond its cap)."""
    n = int(fs[usdm.TAB_N])
    for j in range(n):
        if notional < fs[usdm.TAB0 + 5 * j + 1]:
            return j
    return n - 1


@njit(cache=True)
def _piece(sb, syms, a, m, fsv, px, o_row, x_row, theta):
    """On the piece of the joint path starting at ``theta`` (every symbol in
    the tier it enters): d(MB − MM)/dθ and the θ of the next tier change
    (> theta; +inf for none)."""
    slope = 0.0
    nxt = np.inf
    for k in range(m):
        s = syms[a, k]
        n = sb[s, 0]
        d = px[x_row, k] - px[o_row, k]
        if n == 0.0 or d == 0.0:
            continue
        q = abs(n)
        fs = fsv[s]
        # the tier the path enters: the notional nudged in its direction (at a boundary, up to float
        # rounding, the one beyond it; else the piece would end where it starts)
        x = q * (px[o_row, k] + theta * d) * (1.0 + (1e-12 if d > 0.0 else -1e-12))
        j = _tier(fs, x)
        b = usdm.TAB0 + 5 * j
        slope += d * (n - q * fs[b + 2])
        if d > 0.0 and j < int(fs[usdm.TAB_N]) - 1:
            nxt = min(nxt, (fs[b + 1] / q - px[o_row, k]) / d)
        elif d < 0.0 and j > 0:
            nxt = min(nxt, (fs[b] / q - px[o_row, k]) / d)
    return slope, max(nxt, theta)


@njit(cache=True, _nrt=False)
def joint_theta(sb, k_net, syms, a, m, fsv, path, after):
    """The smallest θ in [``after``, 1] where ``MB ≤ MM`` on the joint path
    ``P_s(θ) = O_s + θ·(X_s − O_s)`` (``path`` = (px, the row of O, the row
    of X, a scratch row)), ``after`` when already there, −1 when the path
    does not reach it (or the account is flat): step 5, ``after`` 0, or a
    leg of the joint walk after its last event at θ ``after``
    (docs/model-choices.md "A cross perp account holding several symbols",
    *Stops*).  ``MB − MM`` is concave along a straight joint path (``MB``
    linear, each ``MM_s`` convex in its notional), so an end above the
    level means no root, also where a limit fill made a position move
    against the others; it is linear between tier changes: the root is
    found piece by piece, exactly."""
    px, o_row, x_row, scratch_row = path
    row = o_row
    if after > 0.0:
        path_prices(px, o_row, x_row, after, scratch_row, m)
        row = scratch_row
    mb, mm = balance(sb, k_net, syms[a], m, fsv, px[row])
    if mm <= 0.0:
        return -1.0
    if mb <= mm:
        return after
    mb1, mm1 = balance(sb, k_net, syms[a], m, fsv, px[x_row])
    if mb1 > mm1:
        return -1.0
    theta, f = after, mb - mm
    for _ in range(4 * usdm.MAX_TIERS * m + 4):
        slope, nxt = _piece(sb, syms, a, m, fsv, px, o_row, x_row, theta)
        end = min(nxt, 1.0)
        if slope < 0.0 and f + slope * (end - theta) <= 0.0:
            return min(max(theta - f / slope, theta), end)
        if end >= 1.0:
            return 1.0
        theta = end
        path_prices(px, o_row, x_row, theta, scratch_row, m)  # MB − MM exactly at the tier change
        mb, mm = balance(sb, k_net, syms[a], m, fsv, px[scratch_row])
        f = mb - mm
        if f <= 0.0:
            return theta
    return 1.0


@njit(cache=True)
def liquidate_all(sb, aq, a, syms, m, fsv, px, row, rate, rec, qty, side):
    """Close every position of the account at the trigger marks ``px[row]``
    (no slippage, no trading fee): the clearance fee ``rate·Σ|N|·X`` and the
    loss come out of the cross wallet, never beyond it.  Fills ``rec`` and
    per symbol ``side[k]``, ``qty[k]``; returns (fee taken, bad debt)."""
    mb, mm = balance(sb, aq[a, 0], syms[a], m, fsv, px[row])
    notional = 0.0
    for k in range(m):
        s = syms[a, k]
        n = sb[s, 0]
        notional += abs(n) * px[row, k]
        side[k] = -1 if n > 0.0 else (1 if n < 0.0 else 0)
        qty[k] = abs(n)
        sb[s, 0] = 0.0
    fee_full = rate * notional
    keep = max(0.0, mb - fee_full)
    aq[a, 0] = keep if keep >= DUST else 0.0
    fee = min(fee_full, max(mb, 0.0))
    bad = max(0.0, -mb)
    rec.margin_level = mb / mm if mm > 0.0 else np.inf
    rec.equity_before = mb
    rec.equity_after = aq[a, 0]
    rec.fee = fee
    rec.bad_debt = bad
    rec.trigger_price = np.nan  # per symbol: in the fills
    rec.fill_price = np.nan
    rec.quantity = np.nan
    return fee, bad


@njit(cache=True)
def close_columns(position, equity, close, ver, table_start, table_rows, ratio, lp):
    """Per bar at the closes: the account's margin ratio MM / MB (0 flat,
    +inf at MB ≤ 0) into ``ratio``, and per symbol the mark price where MB
    = MM with the other symbols held at their closes (spec §4.2 with TMM1
    and UPNL1; NaN flat or unreachable) into ``lp[k]``.  ``position``,
    ``close`` (last closes where a symbol has no bar), ``ver`` (the bracket
    version of each symbol in force): ``[m, n]``."""
    m, n = position.shape
    fsv = np.zeros((m, usdm.N_SLOTS))
    loaded = np.full(m, -1)
    mmk = np.zeros(m)
    for j in range(n):
        mm = 0.0
        for k in range(m):
            v = ver[k, j]
            if v != loaded[k]:
                loaded[k] = v
                usdm.load_table(fsv[k], table_rows, table_start[v], table_start[v + 1])
            q = position[k, j]
            mmk[k] = usdm.maintenance_row(fsv, k, abs(q) * close[k, j]) if q != 0.0 else 0.0
            mm += mmk[k]
        mb = equity[j]
        ratio[j] = 0.0 if mm == 0.0 else (mm / mb if mb != 0.0 else np.inf)
        for k in range(m):
            q = position[k, j]
            if q == 0.0:
                lp[k, j] = np.nan
                continue
            p, s = usdm.liquidation_price_of(q, mb - q * close[k, j] - (mm - mmk[k]), fsv[k], 1.0)
            lp[k, j] = p if s != 0 else np.nan
