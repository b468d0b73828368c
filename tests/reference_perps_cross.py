"""Independent reference model of a Binance USDⓈ-M **cross** perp account holding several symbols.

Written from ``docs/perps-model.md`` (the exchange spec, cited "spec §x") and ``docs/model-choices.md``
(cited "MC"): its section "Several symbols" (union grid, bars a symbol lacks, last closes, per-symbol
decisions and pending orders, suspension, stop-on-liquidation) and its section "Perpetual futures",
subsection "A cross perp account holding several symbols" (cited "MC cross-perp"), plus the one-symbol
rules that subsection refers to.  The engine under ``backtest/`` was not read.  Plain Python floats, one
grid bar at a time, one step at a time.

With ``stop_loss``, ``take_profit`` or ``trailing_stop`` above 0 steps (4)-(5) are the walk of MC
cross-perp *Stops* ("Stops on a joint path" and its *With mark series*, "Entry and best price", "Levels"):
three legs of the traded path for the stop levels paired with three legs of the mark path for the
liquidation, whose first root on a leg ``first_theta`` finds piece by piece.

With ``limits`` (a strategy's limit prices and expiry per symbol) the orders follow MC cross-perp *Limit
orders* (items 1-4), with "Limit orders in a cross account of several symbols" for when an order is decided,
cancelled and expires, the one-symbol perp **Limit orders** for its size and fill, and the spot "Limit orders"
for the walk with the order as one more level: placed at step (2) (nothing reserved or borrowed), walked at
step (5) (also without stops), filled at its trigger with the taker fee, kind "limit".

The one-symbol helpers (bracket versions, tiers, MM, bracket notional) come from ``reference_perps``,
which is written from the same docs.
"""

from __future__ import annotations

import math

from reference_multi import Limits
from reference_perps import bracket_version, maintenance, max_notional, tier_of

INF = math.inf
NAN = math.nan
MARGIN_CALL_H = 1.25  # MC "Perpetual futures" State: margin call at h <= 1.25 (margin ratio 80 %)
NOISE = 1e-9          # MC "Market order to target x": relative float noise
DUST = 1e-12          # MC "Perpetual futures": a wallet or position below 1e-12 is 0


# ------------------------------------------------------------------ account
class CrossBook:
    """MC cross-perp *State*: the cross wallet WC, per symbol N_s (signed base) and EP_s."""

    def __init__(self, capital, nsym):
        self.wc = float(capital)
        self.n = [0.0] * nsym
        self.ep = [0.0] * nsym

    def flat(self):
        return all(q == 0.0 for q in self.n)

    def mb(self, prices):
        """Spec §1 / MC: equity = margin balance MB = WC + Σ N_s·(P_s − EP_s)."""
        return self.wc + sum(q * (p - e) for q, p, e in zip(self.n, prices, self.ep) if q != 0.0)

    def mm(self, tiers, prices):
        """Spec §3 / MC: MM = Σ_s MM_s(|N_s|·P_s), each on its own bracket table (the version at t_i)."""
        return sum(maintenance(tiers[s], abs(q) * prices[s]) for s, q in enumerate(self.n) if q != 0.0)

    def health(self, tiers, prices):
        """MC: h = MB/MM; +inf when flat."""
        if self.flat():
            return INF
        return self.mb(prices) / self.mm(tiers, prices)

    def dust(self):
        """MC "Perpetual futures": after every fill, liquidation and funding charge a wallet or a position
        below 1e-12 is 0 (float residue)."""
        if abs(self.wc) < DUST:
            self.wc = 0.0
        for s, q in enumerate(self.n):
            if abs(q) < DUST:
                self.n[s] = 0.0

    def reduce(self, s, r, f):
        """Spec §1: close r units of symbol s at f; realised r·(F − EP)·sign(N) goes into WC; EP is kept."""
        q = self.n[s]
        side = 1.0 if q > 0.0 else -1.0
        self.wc += r * (f - self.ep[s]) * side
        if r >= abs(q):
            self.n[s], self.ep[s] = 0.0, 0.0
        else:
            self.n[s] = q - side * r

    def add(self, s, u, f, side):
        """Spec §1: open u units at f on ``side``; EP is the quantity-weighted average."""
        a = abs(self.n[s])
        self.ep[s] = f if a == 0.0 else (self.ep[s] * a + f * u) / (a + u)
        self.n[s] += side * u


# ------------------------------------------------------------- static helpers
def cross_margin_ratio(wallet, positions, entries, marks, tiers):
    """MC cross-perp outputs / spec §1: margin ratio MM/MB at the given marks (0 when flat)."""
    book = CrossBook(wallet, len(positions))
    book.n, book.ep = [float(q) for q in positions], [float(e) for e in entries]
    if book.flat():
        return 0.0
    h = book.health(tiers, marks)
    return 1.0 / h if h != 0.0 else INF


def cross_liquidation_price(s, wallet, positions, entries, marks, tiers):
    """Spec §4.2 (cross, one-way): the mark of symbol ``s`` where MB = MM with every other position held at
    its mark in ``marks`` (TMM1 = their MM, UPNL1 = their uPnL), the bracket taken at the liquidation
    notional: for each tier LP = (WB − TMM1 + UPNL1 + cum − N·EP)/(|N|·mmr − N), the one with
    floor <= |N|·LP < cap (top tier open above) and LP > 0 (MC "Liquidation price"); none: NaN.
    NaN when symbol s is flat."""
    q = float(positions[s])
    if q == 0.0:
        return NAN
    tmm1 = sum(maintenance(tiers[j], abs(positions[j]) * marks[j])
               for j in range(len(positions)) if j != s and positions[j] != 0.0)
    upnl1 = sum(positions[j] * (marks[j] - entries[j])
                for j in range(len(positions)) if j != s and positions[j] != 0.0)
    c = wallet - tmm1 + upnl1 - q * entries[s]  # MB(P) − MM_others − N·P, constant in P
    a = abs(q)
    tab = tiers[s]
    for j, (floor, cap, mmr, cum, maxlev) in enumerate(tab):
        lp = (c + cum) / (a * mmr - q)
        top = INF if j == len(tab) - 1 else cap
        if lp > 0.0 and floor <= a * lp < top:
            return lp
    return NAN


def joint_theta(book, tiers, start, extreme):
    """MC cross-perp step (5): the smallest θ in [0, 1] with MB(θ) <= MM(θ) on the joint path
    P_s(θ) = start_s + θ·(extreme_s − start_s); None when MB > MM along the whole path.

    MB − MM is continuous and piecewise linear in θ (spec §3: MM(N) continuous, piecewise linear); its
    pieces end where a symbol's notional |N_s|·P_s(θ) crosses one of its tier caps.  The root is found
    exactly by ``first_theta`` (MC: MB − MM falls along the path, so the root is unique)."""
    return first_theta(book, tiers, start, extreme)


def first_theta(book, tiers, start, end, lo=0.0):
    """MC cross-perp *Stops* 3: the smallest θ in [lo, 1] with MB(θ) <= MM(θ) on the leg
    P_s(θ) = start_s + θ·(end_s − start_s) (the marks); ``lo`` when MB <= MM there already (with lo = 0: 0
    when MB <= MM at the leg's start); None when MB > MM on the whole of [lo, 1].  The walk passes the last
    event's θ on the leg as ``lo`` (MC: the next event is looked for "from θ_e on").

    MB − MM is linear in θ between the θ where a symbol's notional |N_s|·P_s(θ) crosses one of its tier
    boundaries; no monotonicity is assumed here (MC says MB − MM falls along legs 1 and 3 and rises along
    leg 2; this search does not rely on it): f at
    every break in θ order, the first piece whose end has f <= 0 holds the first root (f > 0 at both ends of
    a linear piece means f > 0 on all of it), solved on that piece with its tiers fixed."""
    m = len(book.n)
    delta = [end[s] - start[s] for s in range(m)]

    def prices(th):
        return [start[s] + th * delta[s] for s in range(m)]

    def f(th):
        p = prices(th)
        return book.mb(p) - book.mm(tiers, p)

    if f(lo) <= 0.0:
        return lo
    breaks = {lo, 1.0}
    for s in range(m):
        a = abs(book.n[s])
        if a == 0.0 or delta[s] == 0.0:
            continue
        for (floor, cap, mmr, cum, maxlev) in tiers[s][:-1]:  # the top tier is open above
            th = (cap / a - start[s]) / delta[s]
            if lo < th < 1.0:
                breaks.add(th)
    pts = sorted(breaks)
    for a_, b_ in zip(pts, pts[1:]):
        if f(b_) > 0.0:
            continue
        # on [a_, b_] every symbol stays in one tier: f(θ) = c0 + g·θ exactly (f(a_) > 0 >= f(b_))
        mid = prices(0.5 * (a_ + b_))
        c0, g = book.wc, 0.0
        for s in range(m):
            q = book.n[s]
            if q == 0.0:
                continue
            mmr, cum = tier_of(tiers[s], abs(q) * mid[s])
            c0 += q * (start[s] - book.ep[s]) - (abs(q) * start[s] * mmr - cum)
            g += delta[s] * (q - abs(q) * mmr)
        th = -c0 / g if g < 0.0 else b_
        return min(max(th, a_), b_)
    return None


# ---------------------------------------------------------------- simulation
# MC "Stops on a joint path" 4: equal θ fire in the order liquidation, stop-loss, trailing, take-profit; MC
# "Limit orders in a cross account of several symbols", step 5 / MC cross-perp *Limit orders* 2: the limit
# order after those ("ties after the liquidation and the stops, then symbol order")
PRIORITY = {"liquidation": 0, "stop_loss": 1, "trailing_stop": 2, "take_profit": 3, "limit": 4}


class PerpLimits(Limits):
    """A strategy's limit orders per symbol (MC cross-perp *Limit orders*): the limit prices on the grid and
    the expiry ``e`` (the symbol's own bars) per symbol, and per symbol its standing order or None, read as
    ``reference_multi.Limits`` reads them (``at``: NaN or a price not above 0 is a market order;
    ``expired``: it has had its ``e`` own bars ``placed … placed + e − 1``).

    A standing order is ``{"side": ±1, "r": closing part, "u": opening part, "L": limit price, "placed": the
    symbol's own bar number at placement, "capped": cut at placement, "scale": max(|T|, |N_s|) at placement
    (the noise rule's scale)}``.  A perp order reserves and borrows nothing (MC "Perpetual futures",
    **Limit orders**), so a cancel only removes it."""

    def cancel(self, s):
        """Remove symbol s's standing order, counted in ``n_cancelled``.  Choice (as ``reference_multi``):
        every cancel counts, also one a liquidation or a stop makes (MC names ``n_cancelled`` only at step
        (2)'s cancel; the count is the run's cancelled orders)."""
        if self.standing[s] is not None:
            self.standing[s] = None
            self.n_cancelled += 1

    def any_standing(self):
        return any(od is not None for od in self.standing)


def simulate_perps_cross(ts, bars, targets, *, capital, leverage, fee, slippage=0.0, clearance=0.0125,
                         brackets, funding, marks=None, rebalance=0.0, stop_on_liquidation=False,
                         stop_loss=0.0, take_profit=0.0, trailing_stop=0.0, limits=None):
    """One cross perp account holding every symbol, on the union grid ``ts`` (int seconds, increasing).

    ``bars[s]`` = (open, high, low, close) lists on the grid, all NaN where symbol s has no bar;
    ``targets[s]`` per-grid-bar target exposures (NaN = hold); ``brackets[s]`` the one-symbol versioned
    tables; ``funding[s]`` rows (T_seconds, rate); ``marks`` None or per symbol None or (mo, mh, ml, mc)
    lists on the grid (a NaN where the symbol has a traded bar: the mark lacks it, the traded bar is used).

    ``stop_loss``, ``take_profit``, ``trailing_stop``: fractions in [0, 1), the same for every symbol (MC
    cross-perp *Stops*); all 0: no stops, steps (4)-(5) as without.  A stop's exit is an order of kind
    "stop_loss" / "trailing_stop" / "take_profit" with its "trigger"; a liquidation on the walk is recorded
    with theta = k − 1 + θ on leg k.

    ``limits``: None, or per symbol None or ``(prices, expiry)``: ``prices`` one per grid bar, the limit
    price read at the grid bar where a new target is read (NaN or <= 0: a market order), ``expiry`` an int
    >= 1 in the symbol's own bars (as ``reference_multi.simulate_multi``'s ``limits``).  MC cross-perp
    *Limit orders*: placed at step (2) (size from T = x·E/L, the opening part cut at L), walked at step (5)
    as one more level of its symbol (the walk then runs also without stops), filled at its trigger with the
    taker fee and no slippage (kind "limit"); cancelled by a new order, at expiry, by a liquidation (every
    order) or a stop of its symbol.

    Returns a dict: per-grid-bar 'equity', 'funding_paid', 'margin_ratio'; per symbol per bar 'position',
    'funding_paid_sym', 'liquidation_price'; events 'orders', 'liquidations', 'fundings', 'margin_calls';
    totals 'final_equity', 'fees_paid', 'liquidation_fees', 'bad_debt', 'n_cancelled' (limit orders
    cancelled), 'n_capped' (orders cut: market orders and limit orders, once per order)."""
    n = len(ts)
    S = len(bars)
    L = float(leverage)
    ts = [int(t) for t in ts]
    opens = [[float(v) for v in bars[s][0]] for s in range(S)]
    highs = [[float(v) for v in bars[s][1]] for s in range(S)]
    lows = [[float(v) for v in bars[s][2]] for s in range(S)]
    closes = [[float(v) for v in bars[s][3]] for s in range(S)]
    marks = marks if marks is not None else [None] * S
    # MC "Several symbols" Bars: a symbol has a bar only where its own data has one
    has = [[not math.isnan(opens[s][i]) for i in range(n)] for s in range(S)]
    own = [[i for i in range(n) if has[s][i]] for s in range(S)]  # each symbol's own bars (grid indices)

    def mark_bar(s, i):
        """MC "Mark prices": symbol s's mark bar at grid bar i (where it has a traded bar), or the traded bar
        where the mark lacks it (any NaN)."""
        traded = (opens[s][i], highs[s][i], lows[s][i], closes[s][i])
        mk = marks[s]
        if mk is None:
            return traded
        m = tuple(float(mk[k][i]) for k in range(4))
        return traded if any(math.isnan(v) for v in m) else m

    # MC cross-perp (3) / one-symbol step 3: funding times rounded to the second, paid in time order
    rows = [sorted((int(round(T)), float(r)) for T, r in funding[s]) for s in range(S)]
    fptr = [0] * S

    book = CrossBook(capital, S)
    out = {"equity": [], "funding_paid": [], "margin_ratio": [],
           "position": [[] for _ in range(S)], "funding_paid_sym": [[] for _ in range(S)],
           "liquidation_price": [[] for _ in range(S)]}
    orders, liquidations, fundings, margin_calls = [], [], [], []
    tot = {"fees_paid": 0.0, "liquidation_fees": 0.0, "bad_debt": 0.0, "funding": 0.0, "n_capped": 0}
    lims = PerpLimits(limits, S, n)
    fund_sym = [0.0] * S

    last_close = [0.0] * S       # MC "Several symbols": before its first bar a symbol's price is 0
    pending = [None] * S         # (target, kind, limit price or None), waits for the symbol's next bar
    last_target = [None] * S
    suspended = [False] * S
    halted = False               # stop_on_liquidation: the account stops
    prev_close_h = INF           # flat counts as above the margin-call level

    # MC cross-perp *Stops*: stops are on when a fraction is above 0 (the same for every symbol)
    sl, tp, tr = float(stop_loss), float(take_profit), float(trailing_stop)
    stops_on = sl > 0.0 or tp > 0.0 or tr > 0.0
    entry = [None] * S  # MC "Entry and best price", per symbol on N_s; None: unset
    best = [None] * S

    def track(s, n0, n1, price, mkt):
        """MC "Entry and best price" at a fill of symbol s at the slipped ``price``, ``mkt`` the bar's open
        O: N1 == 0 unsets; from 0, a flip or no entry set: entry = P, best = O; an increase averages the
        entry (best kept); a reduction keeps both."""
        if n1 == 0.0:
            entry[s] = best[s] = None
        elif n0 == 0.0 or (n0 > 0.0) != (n1 > 0.0) or entry[s] is None:
            entry[s], best[s] = price, mkt
        elif abs(n1) > abs(n0):
            entry[s] = (entry[s] * abs(n0) + price * (abs(n1) - abs(n0))) / abs(n1)

    def move_best(s, p):
        """MC "Stops on a joint path" 3: a held symbol's best follows p in its favour."""
        q = book.n[s]
        if best[s] is not None and q != 0.0:
            best[s] = max(best[s], p) if q > 0.0 else min(best[s], p)

    def levels(s):
        """MC "Levels": (kind, level, fires when the price falls) of symbol s, d = sign(N_s): stop-loss
        entry·(1 − d·sl), take-profit entry·(1 + d·tp), trailing best·(1 − d·tr); a long's stop-loss and
        trailing fire falling, its take-profit rising; a short's the other way.  None without an entry."""
        q = book.n[s]
        if entry[s] is None or q == 0.0:
            return []
        d = 1.0 if q > 0.0 else -1.0
        out = []
        if sl > 0.0:
            out.append(("stop_loss", entry[s] * (1.0 - d * sl), d > 0.0))
        if tr > 0.0:
            out.append(("trailing_stop", best[s] * (1.0 - d * tr), d > 0.0))
        if tp > 0.0:
            out.append(("take_profit", entry[s] * (1.0 + d * tp), d < 0.0))
        return out

    def liquidate(i, trig, tiers):
        """MC cross-perp *Liquidation* at trigger marks ``trig`` (no slippage, no trading fee): every
        position closes at its trigger; clearance fee f = rate·Σ|N_s|·X_s; WC = max(0, MB(X) − f)."""
        mb = book.mb(trig)
        h = mb / book.mm(tiers, trig)
        f = clearance * sum(abs(q) * trig[s] for s, q in enumerate(book.n))
        taken = min(f, max(mb, 0.0))
        bad = max(0.0, -mb)
        fills = []
        for s, q in enumerate(book.n):
            if q != 0.0:
                fills.append({"bar": i, "symbol": s, "side": -1 if q > 0.0 else 1, "quantity": abs(q),
                              "price": trig[s], "fee": 0.0, "capped": False, "kind": "liquidation"})
                book.n[s], book.ep[s] = 0.0, 0.0
            entry[s] = best[s] = None  # MC cross-perp *Stops*: a liquidation closes it and unsets them
        book.wc = max(0.0, mb - f)
        book.dust()
        tot["liquidation_fees"] += taken
        tot["bad_debt"] += bad
        liquidations.append({"bar": i, "margin_level": h, "equity_before": mb, "equity_after": book.wc,
                             "fee": taken, "bad_debt": bad, "trigger_prices": list(trig)})
        orders.extend(fills)  # one fill per symbol with a position, fee 0: the event carries it

    def execute(i, s, x, kind, cur, tiers, trigger=None):
        """MC cross-perp *Market order* on symbol s to target x at its traded open cur[s]: the one-symbol
        rule ("Perpetual futures", Market order to target x) with the account's equity E.  A stop's exit
        (MC cross-perp *Stops* 5) is this order to target 0 with ``cur[s]`` its trigger (the others at
        their traded path prices), recorded with its ``trigger``."""
        o = cur[s]
        e = book.mb(cur)  # every symbol at its current traded price, after earlier symbols' orders
        if e <= 0.0:
            return  # MC "Market order to target x": E <= 0, nothing trades
        target = x * e / o
        n0 = book.n[s]
        delta = target - n0
        if abs(delta) <= NOISE * max(abs(target), abs(n0)):
            return  # the one-symbol noise rule: already at the target
        side = 1 if delta > 0.0 else -1
        fp = o * (1.0 + side * slippage)
        close_q = min(abs(delta), abs(n0)) if n0 * side < 0.0 else 0.0
        open_q = abs(delta) - close_q
        if close_q > 0.0:  # closing part first; a flip's close costs its fee and slippage
            book.reduce(s, close_q, fp)
            book.wc -= close_q * fp * fee
        u, capped = 0.0, False
        if open_q > 0.0:
            # A = E − Σ_j |N_j|·P_j/L over every symbol after the closing part (current traded prices)
            avail = book.mb(cur) - sum(abs(book.n[j]) * cur[j] for j in range(S) if book.n[j] != 0.0) / L
            k = fp * (1.0 / L + fee)
            cut_money = avail / k if avail > 0.0 else 0.0
            # spec §2: |N*|·O at most the bracket's largest notional at leverage L
            cut_bracket = max(0.0, max_notional(tiers[s], L) / o - abs(book.n[s]))
            cut = min(cut_money, cut_bracket)
            capped = cut < open_q * (1.0 - NOISE)
            u = min(open_q, cut)
            if u <= NOISE * max(abs(target), abs(n0)):
                u = 0.0  # an opening part of float-noise size is no fill
            if u > 0.0:
                book.add(s, u, fp, side)
                book.wc -= u * fp * fee
        if capped:
            # README / MC "Market order to target x": summary.json counts the capped orders (n_capped), also
            # one the cap leaves nothing to fill (no record then)
            tot["n_capped"] += 1
        book.dust()
        q = close_q + u
        if q <= 0.0:
            return  # cut to nothing: no fill, no record
        tot["fees_paid"] += q * fp * fee
        rec = {"bar": i, "symbol": s, "side": side, "quantity": q, "price": fp, "fee": q * fp * fee,
               "capped": capped, "kind": kind}
        if trigger is not None:
            rec["trigger"] = trigger
        orders.append(rec)
        track(s, n0, book.n[s], fp, o)  # MC "Entry and best price": P the slipped fill, O the open

    def place(s, x, lim, cur, tiers):
        """MC cross-perp *Limit orders* 1: symbol s's pending limit order to target x at ``lim`` placed at
        step (2) (after its standing order's cancel, after earlier symbols' orders), ``cur`` the current
        traded prices (the opens; a symbol without a bar at its last close).  The placement changes nothing
        in the account; it sets the order's closing part r and opening part u."""
        e = book.mb(cur)  # E: the margin balance at the current traded prices
        if e <= 0.0:
            # Choice: MC "Limit orders" (spot) *Place*: "nothing if E <= 0" (the perp bullet does not repeat it;
            # a market order trades nothing then either, MC "Market order to target x")
            return
        target = x * e / lim  # T = x·E/L
        n0 = book.n[s]
        delta = target - n0
        scale = max(abs(target), abs(n0))
        if abs(delta) <= NOISE * scale:
            return  # "nothing within the market order's float noise"
        side = 1 if delta > 0.0 else -1  # the side is δ's
        r = min(abs(delta), abs(n0)) if n0 * side < 0.0 else 0.0  # the closing part, when δ is against N_s
        open_q = abs(delta) - r
        u, capped = 0.0, False
        if open_q > 0.0:
            # "after the closing part (done at L with the taker fee on the account as a fill would do it)": on
            # a copy of the account, the real one is not touched ("the placement itself changes nothing")
            tmp = CrossBook(book.wc, S)
            tmp.n, tmp.ep = list(book.n), list(book.ep)
            if r > 0.0:
                tmp.reduce(s, r, lim)
                tmp.wc -= r * lim * fee
            # A = MB − Σ_j |N_j|·P_j/Lv, every symbol (s too) at its current traded price
            avail = tmp.mb(cur) - sum(abs(tmp.n[j]) * cur[j] for j in range(S) if tmp.n[j] != 0.0) / L
            cut_money = max(avail, 0.0) / (lim * (1.0 / L + fee))
            # the bracket: notional_max(Lv)/O_s − |N_s| (at least 0).  Choice: |N_s| after the closing part
            # (as the market order's cap on |N*|·O; an opening part exists only when N_s is on δ's side, where
            # the two agree, or after a flip's close, where N_s is 0)
            cut_bracket = max(0.0, max_notional(tiers[s], L) / cur[s] - abs(tmp.n[s]))
            cut = min(cut_money, cut_bracket)
            capped = cut < open_q * (1.0 - NOISE)  # "cut when the cap is below u·(1 − 1e-9)"
            u = min(open_q, cut)
            if u <= NOISE * scale:
                u = 0.0  # an opening part left at most 1e-9·max(|T|, |N_s|) is none
        if capped:
            # "a cut counts in n_capped"; choice: also when nothing stands then (as a market order the cap
            # leaves nothing to fill, MC "Market order to target x")
            tot["n_capped"] += 1
        if r + u <= 0.0:
            return  # nothing stands when q <= 0
        lims.standing[s] = {"side": side, "r": r, "u": u, "L": lim, "placed": own_pos[s], "capped": capped,
                            "scale": scale}

    def fill_limit(i, s, p, prices, tiers):
        """MC cross-perp *Limit orders* 3: symbol s's standing order filled at the trigger ``p`` on the walk,
        ``prices`` the traded path prices at θ (``prices[s] = p``): no slippage, the taker fee out of WC; the
        closing part first (realised into WC), then the opening part cut again at ``p`` (the money with the
        other symbols at their path prices, the bracket at ``p``).  Kind "limit"; entry and best with ``p``
        as the market price.  The order is gone."""
        od = lims.standing[s]
        lims.standing[s] = None  # filled: gone (not a cancel)
        side = od["side"]
        n0 = book.n[s]
        # the closing part (N_s has not changed since the placement: only s's own orders, stops and
        # liquidations move it, and each cancels the order first)
        r = min(od["r"], abs(n0)) if n0 * side < 0.0 else 0.0
        if r > 0.0:
            book.reduce(s, r, p)
            book.wc -= r * p * fee
        u, cut_again = od["u"], False
        if u > 0.0:
            avail = book.mb(prices) - sum(abs(book.n[j]) * prices[j] for j in range(S) if book.n[j] != 0.0) / L
            cut_money = max(avail, 0.0) / (p * (1.0 / L + fee))
            cut_bracket = max(0.0, max_notional(tiers[s], L) / p - abs(book.n[s]))
            cut = min(cut_money, cut_bracket)
            cut_again = cut < u * (1.0 - NOISE)
            u = min(u, cut)
            if u <= NOISE * od["scale"]:
                u = 0.0  # the same noise rule (scale max(|T|, |N_s|) of the placement)
            if u > 0.0:
                book.add(s, u, p, side)
                book.wc -= u * p * fee
        if cut_again and not od["capped"]:
            tot["n_capped"] += 1  # "a cut counts in n_capped once per order"
        book.dust()
        q = r + u
        if q <= 0.0:
            # Choice: cut to nothing at the fill: no fill record (as a market order cut to nothing); the order
            # is gone all the same
            return
        fv = q * p * fee  # the taker fee on what fills
        tot["fees_paid"] += fv
        orders.append({"bar": i, "symbol": s, "side": side, "quantity": q, "price": p, "fee": fv,
                       "capped": od["capped"] or cut_again, "kind": "limit"})
        track(s, n0, book.n[s], p, p)  # "Entry and best price" with P as the market price

    def funding_window_end(s, k):
        """One-symbol step 3 on the symbol's own bars: own bar k pays t <= T < t_next; its last own bar
        T < t + (t − previous own bar time); a symbol with a single bar pays nothing."""
        idx = own[s]
        t = ts[idx[k]]
        if k + 1 < len(idx):
            return ts[idx[k + 1]]
        return t + (t - ts[idx[k - 1]]) if k > 0 else t

    def funding_mark(s, k, T):
        """MC step 3 (as reference_perps.funding_mark) on the symbol's own bars: the mark open of its bar
        opening at T, else the mark close of its own bar before (the last close before T); its first bar:
        that bar's open."""
        idx = own[s]
        if ts[idx[k]] == T:
            return mark_bar(s, idx[k])[0]
        return mark_bar(s, idx[k - 1])[3] if k > 0 else mark_bar(s, idx[k])[0]

    def leg_hit(open_rule, a_, b_, lv, falls):
        """MC "Stops on a joint path", *Events on a leg*: where the level ``lv`` (firing as the price falls to
        it, ``falls``, else as it rises) is reached on a leg from ``a_`` to ``b_``: (θ, trigger) or None.  With
        ``open_rule`` (leg 1, a level that stood at the open) a level the open is already beyond fires at
        θ = 0, trigger the open; a falling leg reaches a falling-fire level lv >= b_ at θ = (a_ − lv)/(a_ − b_),
        trigger lv (θ = 0, trigger a_, when lv >= a_); a rising leg mirrored; a leg that does not move: none."""
        if open_rule and ((lv >= a_) if falls else (lv <= a_)):
            return 0.0, a_  # "at the open": a level the open is already beyond, trigger O
        if b_ < a_ and falls and lv >= b_:
            return (0.0, a_) if lv >= a_ else ((a_ - lv) / (a_ - b_), lv)
        if b_ > a_ and not falls and lv <= b_:
            return (0.0, a_) if lv <= a_ else ((lv - a_) / (b_ - a_), lv)
        return None

    def walk(i, tiers, cur, mbar):
        """MC cross-perp *Stops* 2-5 (the margin call, 1, is taken before as without stops): the traded path
        for the stop levels paired leg by leg with the mark path for the liquidation; on each leg the events
        by θ (ties: liquidation, stop-loss, trailing, take-profit, then symbol order), each with the state
        the one before left.  Returns whether a liquidation happened (it closes everything: the walk ends).

        With limit orders (MC cross-perp *Limit orders* 2-4) each standing order of a symbol with a bar is one
        more level of its symbol on the traded path (ties after the liquidation and the stops, then symbol
        order); a flat symbol with a bar and a standing order walks O -> H -> L -> C; a fill is no stop
        event and the walk goes on from its θ with the new position; a liquidation cancels every order
        first, a stop its symbol's."""
        # 2. directions from the state after funding: d_s = sign(N_s), 0 when flat or without a bar; the
        # traded path O -> X1 -> X2 -> C (L first for d = +1, H first for d = −1) and the mark path
        # Mo -> X1m -> X2m -> Mc (the mark bar's low and high in the same order; a bar the mark lacks: the
        # traded bar, which mark_bar gives); d = 0: the current price / current mark throughout
        pts, mpts = [], []
        for s in range(S):
            q = book.n[s]
            mo, mh, ml, mc = mbar[s]
            # MC cross-perp *Limit orders* 2: "a flat symbol with a bar and a standing order walks O -> H -> L ->
            # C (d = −1 for its path; it still has no position for the liquidation)".  Choice: its mark path
            # takes the same order (Mo -> Mh -> Ml -> Mc, "the mark bar's low and high in the order the traded
            # path takes its own"); flat, it adds nothing to MB or MM until a fill gives it a position
            standing = lims.standing[s] is not None
            if has[s][i] and q > 0.0:
                pts.append((cur[s], lows[s][i], highs[s][i], closes[s][i]))
                mpts.append((mo, ml, mh, mc))
            elif has[s][i] and (q < 0.0 or standing):
                pts.append((cur[s], highs[s][i], lows[s][i], closes[s][i]))
                mpts.append((mo, mh, ml, mc))
            else:
                pts.append((cur[s],) * 4)
                mpts.append((mo,) * 4)
        # MC "Stops on a joint path" 3: before leg 1 each held symbol's best becomes max(best, O) / min(best, O)
        for s in range(S):
            move_best(s, pts[s][0])
        stopped = [False] * S  # one stop event per symbol per bar
        # a symbol whose limit order filled in this bar: its levels are the fill's, not levels that stood at
        # the open, so leg 1's "at the open" rule is not theirs (MC "Limit orders in a cross account of several
        # symbols", step 5: "leg 1's rule for a level the open is already beyond is for the levels that stood
        # at the open"; the perp walk is "as on spot margin")
        filled = [False] * S
        for leg in (1, 2, 3):
            A = [pts[s][leg - 1] for s in range(S)]
            B = [pts[s][leg] for s in range(S)]
            Am = [mpts[s][leg - 1] for s in range(S)]  # the mark leg paired with traded leg k
            Bm = [mpts[s][leg] for s in range(S)]
            last = 0.0  # θ of the last event on this leg: the next one is looked for there at the earliest
            while True:
                events = []  # (θ, priority, symbol order, kind, trigger)
                # 3. the liquidation: the first θ with MB <= MM at the marks Pm_s(θ), while held, looked for
                # "at the last event's θ at the earliest": in [last, 1] with the new state (at last itself when
                # MB <= MM there, e.g. brought nearer by a stop's fill; a root the new state would have had
                # before last, with MB > MM at last, is no liquidation: MB − MM can rise on a leg)
                if not book.flat():
                    th = first_theta(book, tiers, Am, Bm, last)
                    if th is not None:
                        events.append((th, PRIORITY["liquidation"], -1, "liquidation", None))
                # the stop levels of each symbol with a bar, a position and no stop event yet in this bar, on
                # its traded leg (MC "Stops on a joint path" 4, "Events on a leg")
                for s in range(S):
                    if not has[s][i] or stopped[s] or book.n[s] == 0.0:
                        continue
                    a_, b_ = A[s], B[s]
                    at_open = leg == 1 and not filled[s]
                    for kind, lv, falls in levels(s):
                        hit = leg_hit(at_open, a_, b_, lv, falls)
                        if hit is None:
                            continue
                        th, trig = hit
                        if th < last:  # a level of a position a limit fill opened at last, already beyond
                            th, trig = last, a_ + last * (b_ - a_)  # it there: fires at the fill's θ
                        events.append((th, PRIORITY[kind], s, kind, trig))
                # MC cross-perp *Limit orders* 2: the standing order of each symbol with a bar, at its price
                # on the traded leg: a buy where the price falls to L, a sell where it rises to L; on leg 1 at
                # θ = 0, trigger the open, when the open is at or beyond L; else trigger L, or the leg's start
                # when that is already beyond it
                for s in range(S):
                    od = lims.standing[s]
                    if od is None or not has[s][i]:
                        continue
                    a_, b_ = A[s], B[s]
                    hit = leg_hit(leg == 1, a_, b_, od["L"], od["side"] > 0)
                    if hit is None:
                        continue
                    th, trig = hit
                    if th < last:  # (never: the limit does not move and events come in θ order)
                        th, trig = last, a_ + last * (b_ - a_)
                    events.append((th, PRIORITY["limit"], s, "limit", trig))
                if not events:
                    break
                th, _, s, kind, trig = min(events)
                if kind == "limit":
                    # *Limit orders* 3: filled at the trigger, the other symbols at their traded path prices at
                    # θ; no stop event; the leg goes on from θ with the new position
                    prices = [A[j] + th * (B[j] - A[j]) for j in range(S)]
                    prices[s] = trig
                    fill_limit(i, s, trig, prices, tiers)
                    filled[s] = True
                    last = th
                    continue
                if kind == "liquidation":
                    # *Limit orders* 4: a liquidation cancels every standing order of the account first
                    for j in range(S):
                        lims.cancel(j)
                    # 4. "Liquidation" at the marks Pm_s(θ), recorded at θ = k − 1 + θ
                    liquidate(i, [Am[j] + th * (Bm[j] - Am[j]) for j in range(S)], tiers)
                    theta = leg - 1 + th
                    liquidations[-1].update(theta=theta, gap=theta == 0.0)
                    return True
                # 5. a stop: the market order to target 0 at the trigger, the others at their traded path
                # prices P_j(θ); it suspends s's rebalancing, and s has no more stop events in this bar
                lims.cancel(s)  # *Limit orders* 4: a stop exit of s cancels s's order first
                stopped[s] = True
                suspended[s] = True
                prices = [A[j] + th * (B[j] - A[j]) for j in range(S)]
                prices[s] = trig
                execute(i, s, 0.0, kind, prices, tiers, trigger=trig)
                last = th
            # at the end of each leg max(best, B) / min(best, B) for the symbols still held
            for s in range(S):
                move_best(s, B[s])
        return False

    own_pos = [0] * S  # index into own[s] of the symbol's current own bar

    for i in range(n):
        t = ts[i]
        # MC cross-perp State: each symbol's bracket version in force at the grid time t_i
        tiers = [bracket_version(brackets[s], t) for s in range(S)]
        # current traded prices (open; last close without a bar) and current marks / adverse extremes
        cur = [opens[s][i] if has[s][i] else last_close[s] for s in range(S)]
        cls = [closes[s][i] if has[s][i] else last_close[s] for s in range(S)]
        mbar = [mark_bar(s, i) if has[s][i] else (last_close[s],) * 4 for s in range(S)]
        m_open = [mbar[s][0] for s in range(S)]

        # (1) gap liquidation when h <= 1 at the current marks, every position closed at those marks
        if not book.flat() and book.health(tiers, m_open) <= 1.0:
            # MC cross-perp *Limit orders* 4: the gap liquidation cancels every standing order first (the
            # check is on the state with the orders, which a perp order does not change)
            for s in range(S):
                lims.cancel(s)
            liquidate(i, m_open, tiers)
            liquidations[-1].update(theta=0.0, gap=True)
            # MC "Several symbols" step 2 / one-symbol step 2: a new target still executes (not suspended),
            # a rebalance is dropped; with stop-on-liquidation nothing follows
            for s in range(S):
                if stop_on_liquidation or pending[s] is None or pending[s][1] == "rebalance":
                    pending[s] = None
                    suspended[s] = True
            if stop_on_liquidation:
                halted = True
        if halted:
            pending = [None] * S

        # (2) pending orders in symbol order, each symbol that has a bar, at its traded open.  MC cross-perp
        # *Limit orders* 1: before its pending order the symbol's standing order is cancelled when a new order
        # is pending or it has had its e own bars; then a pending limit order is placed (a market one executes)
        for s in range(S):
            if not has[s][i]:
                continue
            if lims.standing[s] is not None and (pending[s] is not None or lims.expired(s, own_pos[s])):
                lims.cancel(s)
            if pending[s] is not None:
                x, kind, lim = pending[s]
                pending[s] = None
                if lim is not None:
                    place(s, x, lim, cur, tiers)
                else:
                    execute(i, s, x, kind, cur, tiers)

        # (3) funding, symbol by symbol, each symbol's charges in time order, on its own bars
        for s in range(S):
            if not has[s][i]:
                continue
            k = own_pos[s]
            end = funding_window_end(s, k)
            r = rows[s]
            while fptr[s] < len(r) and r[fptr[s]][0] < t:
                fptr[s] += 1  # before the symbol's first bar: never paid
            while fptr[s] < len(r) and r[fptr[s]][0] < end:
                T, rate = r[fptr[s]]
                fptr[s] += 1
                q = book.n[s]
                if q == 0.0:
                    continue
                p = funding_mark(s, k, T)
                pay = q * p * rate  # spec §5: ΔWB = −q·P_mark(T)·rate (longs pay a positive rate)
                book.wc -= pay
                book.dust()
                tot["funding"] += pay
                fund_sym[s] += pay
                fundings.append({"time": T, "bar": i, "symbol": s, "rate": rate, "mark_price": p,
                                 "position": q, "payment": pay})
            own_pos[s] = k + 1

        # adverse mark extremes: Ml long, Mh short; flat or no bar: the current mark
        ext = [mbar[s][2] if book.n[s] > 0.0 else (mbar[s][1] if book.n[s] < 0.0 else m_open[s])
               for s in range(S)]

        # (4) margin call: h at every adverse extreme at once, state after (3), before (5)
        h_x = book.health(tiers, ext)
        if h_x <= MARGIN_CALL_H and prev_close_h > MARGIN_CALL_H:
            margin_calls.append({"bar": i, "margin_level": h_x})

        hit = False
        if lims.any_standing():
            # MC cross-perp *Limit orders* 2: a bar where one of the account's symbols has a standing order runs
            # the walk of *Stops* (also without stops), the order one more level of its symbol
            hit = walk(i, tiers, cur, mbar)
        elif stops_on:
            # MC cross-perp *Stops*: (5) becomes the walk of the three paired legs
            hit = not book.flat() and walk(i, tiers, cur, mbar)
        # (5) intrabar liquidation on the joint path of the marks
        elif not book.flat():
            th = joint_theta(book, tiers, m_open, ext)
            if th is not None:
                trig = [m_open[s] + th * (ext[s] - m_open[s]) for s in range(S)]
                liquidate(i, trig, tiers)
                liquidations[-1].update(theta=th, gap=False)
                hit = True
        if hit:
            # MC "Several symbols" step 8: a liquidation suspends rebalancing of all symbols until each
            # one's target changes; a rebalance still waiting (symbol without a bar) is dropped
            for s in range(S):
                suspended[s] = True
                if pending[s] is not None and pending[s][1] == "rebalance":
                    pending[s] = None
            if stop_on_liquidation:
                halted = True
                pending = [None] * S

        # (6) close at the traded closes (last closes for symbols without a bar)
        for s in range(S):
            if has[s][i]:
                last_close[s] = closes[s][i]
        eq = book.mb(cls)
        h_c = book.health(tiers, cls)
        out["equity"].append(eq)
        out["funding_paid"].append(tot["funding"])
        out["margin_ratio"].append(0.0 if book.flat() else (1.0 / h_c if h_c != 0.0 else INF))
        for s in range(S):
            out["position"][s].append(book.n[s])
            out["funding_paid_sym"][s].append(fund_sym[s])
            # MC cross-perp Outputs: the mark of s where MB = MM, the others at their closes
            out["liquidation_price"][s].append(cross_liquidation_price(s, book.wc, book.n, book.ep, cls, tiers))
        prev_close_h = h_c

        # (8) decisions, per symbol (the last bar's decision is never executed)
        if halted or i == n - 1:
            continue
        for s in range(S):
            x = float(targets[s][i])
            if math.isnan(x):
                continue
            if last_target[s] is None or x != last_target[s]:
                # replaces a target still waiting for the symbol's bar; MC "Limit orders in a cross account of
                # several symbols", *Decision*: a new target whose bar carries a limit price is a limit order at
                # it (choice, as reference_multi: the price given at the grid bar where the target is read)
                pending[s] = (x, "signal", lims.at(s, i))
                last_target[s] = x
                suspended[s] = False
            elif rebalance > 0.0 and not suspended[s] and lims.standing[s] is None:
                # no rebalance order while the symbol's limit order stands (other symbols do rebalance)
                if eq > 0.0 and abs(book.n[s] * cls[s] / eq - x) > rebalance * abs(x):
                    pending[s] = (x, "rebalance", None)

    out.update(orders=orders, liquidations=liquidations, fundings=fundings, margin_calls=margin_calls,
               final_equity=out["equity"][-1] if n else float(capital),
               fees_paid=tot["fees_paid"], liquidation_fees=tot["liquidation_fees"], bad_debt=tot["bad_debt"],
               n_cancelled=lims.n_cancelled, n_capped=tot["n_capped"])
    return out
