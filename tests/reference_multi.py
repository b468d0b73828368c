"""Independent reference model of several symbols in cross and isolated accounts.

Written from ``docs/model-choices.md`` ("Several symbols", and the one-symbol
rules it builds on), without looking at ``backtest/kernel_multi.py``.  Plain
Python, one grid time at a time, one account at a time.  An account with one
symbol is ``reference.Account`` itself (the one-symbol rules); an account
with several keeps its quote numbers and each symbol's base numbers apart
and borrows ``reference.Account`` as a six-number view for a buy or a sell.

Scope: market orders to a target exposure, classic profiles (cross-3x,
cross-5x, isolated-*), constant rates or rate histories, mark series,
partial or full liquidation; stop-loss, take-profit and trailing stop
(the run's fractions, and a strategy's own levels per symbol: fractions
replacing the run's for that symbol, stop-loss / take-profit prices on the
symbol's own bars, MC "Levels from a strategy"): "Stops on a joint path"
in an account of several symbols, with or without mark series (with them,
its "With mark series": the stop levels on the traded joint path, the
liquidation on the paired joint path of the marks, which ends at the mark
closes); the one-symbol walk ("Stops, take-profits and the path inside a
bar", ported from ``reference.simulate`` without marks, limits or finer
bars) in an account of one symbol, without mark series (an account of one
symbol with stops and a mark series is not modelled here: the engine runs
it through its one-symbol kernel, which ``reference.simulate`` models);
finer bars in a cross account of several symbols (MC "Finer bars on a
joint path": step 5 on each sub-step, with or without stops or limit
orders, no mark series; ``detail_missing_bars``, each liquidation's
``theta``); auto-repay
off, with or without repay on flat (``auto_repay=False``,
``repay_on_flat``): an account of one symbol by the one-symbol rules of
"Auto-repay off" (``reference.Account``'s), a cross account of several by
"Auto-repay off in a cross account of several symbols" (fills keep what
they receive, the cross borrow cap without repayment, repay on flat of a
symbol's market fill, the netting before a cross liquidation), also with
stops and mark series; ``debt_base`` per symbol; a custom profile's max
borrow per asset (``max_borrow``): an account of one symbol by the
one-symbol rule of "Market order", **Max borrow per asset**
(``reference.Account``'s), a cross account of several by "Max borrow in a
cross account of several symbols" (the quote limit on the account's one
quote principal, each base limit on its own symbol's), with auto-repay on
or off, for step 3's orders and stop exits alike; a strategy's limit orders
(``limits``): an account of one symbol by the one-symbol rules of "Limit
orders" (without mark series), a cross account of several by "Limit orders
in a cross account of several symbols" (placement with borrowing, expiry
in the symbol's own bars, the orders as levels on the joint walk, with or
without stops and mark series, cancels at a liquidation or a stop; the quote
a standing buy order locks, which the account's other symbols do not spend;
a level a fill sets fires where the path reaches it after the fill).
"""
from __future__ import annotations

import math

from reference import (Account, Profile, _is_long_like, charge, hour_boundaries_between, path_hit,
                       repay_cancelled)

INF = math.inf
DUST = 1e-12


class Book:
    """An account with several symbols: quote ``hq, pq, iq``; per symbol
    ``[hb, pb, ib]`` in ``base``."""

    def __init__(self, capital, n, round_interest, auto_repay=True):
        self.hq, self.pq, self.iq = float(capital), 0.0, 0.0
        self.base = [[0.0, 0.0, 0.0] for _ in range(n)]
        self.round_interest = round_interest
        self.auto_repay = auto_repay  # MC "Auto-repay off in a cross account of several symbols"
        # MC "Max borrow in a cross account of several symbols": the quote limit on the account's one ``pq``,
        # each base limit on its own symbol's ``pb_s`` (+inf: none)
        self.limit_q = INF
        self.limit_b = [INF] * n

    # summed from the quote, then symbol by symbol: the same order as the
    # kernel's, so equal states give equal sums to the last bit (an order's
    # size is a difference of such sums)
    def assets(self, prices):
        total = self.hq
        for b, p in zip(self.base, prices):
            total += b[0] * p
        return total

    def debt(self, prices):
        total = self.pq + self.iq
        for b, p in zip(self.base, prices):
            total += (b[1] + b[2]) * p
        return total

    def has_debt(self):
        return self.pq + self.iq + sum(b[1] + b[2] for b in self.base) > 0.0

    def ml(self, prices):
        d = self.debt(prices)
        return INF if d == 0.0 else self.assets(prices) / d

    def position(self, k):
        """``N_s = hb_s − (pb_s + ib_s)`` (MC "State"; with auto-repay off the
        flat rule makes ``hb = pb + ib``, so this order of the sums is 0)."""
        b = self.base[k]
        return b[0] - (b[1] + b[2])

    def view(self, k, rb, rq):
        """The symbol's six numbers as a one-symbol Account."""
        a = Account(0.0, rb, rq, self.round_interest, self.auto_repay)
        a.hb, a.pb, a.ib = self.base[k]
        a.hq, a.pq, a.iq = self.hq, self.pq, self.iq
        a.max_borrow_base, a.max_borrow_quote = self.limit_b[k], self.limit_q  # the symbol's and the account's
        return a

    def store(self, k, a):
        self.base[k] = [a.hb, a.pb, a.ib]
        self.hq, self.pq, self.iq = a.hq, a.pq, a.iq

    def net(self):
        """MC "Auto-repay off in a cross account of several symbols", *Cross
        liquidation*: every symbol netted (base held and owed cancel at
        ``N_s = 0``, else ``hb_s`` repays ``ib_s``, then ``pb_s``), then the
        account's ``hq`` repays ``iq``, then ``pq``; dust cleaned."""
        for k, b in enumerate(self.base):
            if self.position(k) == 0.0:
                b[0] = b[1] = b[2] = 0.0
            else:
                owed = [b[2], b[1]]
                b[0] = _repay(b[0], owed)
                b[2], b[1] = owed
        owed = [self.iq, self.pq]
        self.hq = _repay(self.hq, owed)
        self.iq, self.pq = owed
        self.clean()

    def clean(self):
        for b in self.base:
            for j in range(3):
                if abs(b[j]) < DUST:
                    b[j] = 0.0
        for name in ("hq", "pq", "iq"):
            if abs(getattr(self, name)) < DUST:
                setattr(self, name, 0.0)


# MC "Stops, take-profits and the path inside a bar": who goes first at equal prices (one symbol) or at
# equal θ (several symbols; then symbol order)
PRIORITY = {"liquidation": 0, "stop_loss": 1, "trailing_stop": 2, "take_profit": 3, "limit": 4}


class Stops:
    """The stop settings per symbol and, per symbol, its entry and best price
    (MC "Entry and best price").

    Per symbol ``s``: fractions ``sl[s]``, ``tp[s]``, ``tr[s]`` (the run's, or
    the symbol's own from its strategy, MC "Levels from a strategy") and
    price arrays ``sl_price[s]`` / ``tp_price[s]`` on the symbol's own bars
    (None: none).  ``own[s][i]``: the symbol's own bar number at grid bar
    ``i`` (None where it has no bar)."""

    def __init__(self, n_symbols, stop_loss, take_profit, trailing_stop, path, levels=None, has=None):
        assert path in ("ohlc-heuristic", "pessimistic")
        self.path = path
        self.sl = [float(stop_loss)] * n_symbols
        self.tp = [float(take_profit)] * n_symbols
        self.tr = [float(trailing_stop)] * n_symbols
        self.sl_price = [None] * n_symbols
        self.tp_price = [None] * n_symbols
        self.own = [None] * n_symbols
        if has is not None:
            for s in range(n_symbols):
                j, own = 0, []
                for present in has[s]:
                    own.append(j if present else None)
                    j += bool(present)
                self.own[s] = own
        levels = levels if levels is not None else [None] * n_symbols
        assert len(levels) == n_symbols, "reference_multi: levels needs one entry per symbol"
        for s, lv in enumerate(levels):
            if not lv:
                continue
            unknown = set(lv) - {"stop_loss", "take_profit", "trailing_stop"}
            assert not unknown, f"reference_multi: unknown level keys {sorted(unknown)}"
            for key, frac, prices in (("stop_loss", self.sl, self.sl_price), ("take_profit", self.tp, self.tp_price),
                                      ("trailing_stop", self.tr, None)):
                v = lv.get(key)
                if v is None:
                    continue
                if _is_number(v):  # a fraction: replaces the run's for this symbol only
                    frac[s] = float(v)
                    continue
                assert prices is not None, "reference_multi: a trailing stop is a fraction only"
                arr = [float(x) for x in v]
                n_own = sum(bool(x) for x in has[s]) if has is not None else None
                assert n_own is None or len(arr) == n_own, (
                    f"reference_multi: symbol {s}'s {key} prices: {len(arr)} for its {n_own} own bars")
                prices[s] = arr
        # MC "Levels from a strategy": a symbol "has a price level" when its arrays give any price (not NaN)
        self.priced = [any(not math.isnan(x) for a in (self.sl_price[s], self.tp_price[s]) if a is not None
                           for x in a) for s in range(n_symbols)]
        self.on = any(self.on_for([s]) for s in range(n_symbols))
        self.entry = [None] * n_symbols
        self.best = [None] * n_symbols
        self.n_ambiguous = 0

    def on_for(self, syms):
        """An account has stops on when a fraction of one of its symbols is
        above 0 or one of its symbols has a price level."""
        return any(self.sl[s] > 0.0 or self.tp[s] > 0.0 or self.tr[s] > 0.0 or self.priced[s] for s in syms)

    def price_at(self, prices, s, i):
        """The price of ``prices[s]`` in force at grid bar ``i``: the one given
        at the symbol's own bar before (its previous own bar, decided at its
        close), or None (no array, NaN, the symbol's first bar, no bar)."""
        if prices[s] is None or i is None or self.own[s] is None:
            return None
        j = self.own[s][i]
        if j is None or j == 0:
            return None
        v = prices[s][j - 1]
        return None if math.isnan(v) else v

    def track(self, s, n0, n1, price, mkt):
        """After a fill of symbol ``s`` at (slipped) ``price``, the bar's (or
        the trigger's) market price ``mkt``: N1 == 0 unsets; a new position
        (from 0, a flip, or none tracked) starts at the fill, best at the
        market; an increase averages the entry; a reduction keeps both."""
        if n1 == 0.0:
            self.entry[s] = self.best[s] = None
        elif n0 == 0.0 or (n0 > 0.0) != (n1 > 0.0) or self.entry[s] is None:
            self.entry[s], self.best[s] = price, mkt
        elif abs(n1) > abs(n0):
            self.entry[s] = (self.entry[s] * abs(n0) + price * (abs(n1) - abs(n0))) / abs(n1)

    def move_best(self, s, n, p):
        """``best`` of a held symbol follows the price ``p`` in its favour."""
        if self.best[s] is not None and n != 0.0:
            self.best[s] = max(self.best[s], p) if n > 0.0 else min(self.best[s], p)

    def levels(self, s, n, i=None):
        """(kind, level, fires when falling) of symbol ``s``'s stop levels for
        position ``n`` in grid bar ``i`` (MC "Levels"): the symbol's fractions,
        a price of its strategy in force in this bar replacing the stop-loss /
        take-profit fraction's level; none without an entry price."""
        entry = self.entry[s]
        if entry is None or n == 0.0:
            return []
        d = 1.0 if n > 0.0 else -1.0
        out = []
        slp, tpp = self.price_at(self.sl_price, s, i), self.price_at(self.tp_price, s, i)
        if slp is not None:
            out.append(("stop_loss", slp, d > 0.0))
        elif self.sl[s] > 0.0:
            out.append(("stop_loss", entry * (1.0 - d * self.sl[s]), d > 0.0))
        if self.tr[s] > 0.0:
            out.append(("trailing_stop", self.best[s] * (1.0 - d * self.tr[s]), d > 0.0))
        if tpp is not None:
            out.append(("take_profit", tpp, d < 0.0))
        elif self.tp[s] > 0.0:
            out.append(("take_profit", entry * (1.0 + d * self.tp[s]), d < 0.0))
        return out


class Limits:
    """A strategy's limit orders per symbol (MC "Limit orders", "Limit orders
    in a cross account of several symbols"): the limit prices on the grid and
    the expiry (in the symbol's own bars) per symbol, and per symbol its
    standing order ``{"side", "q", "L", "b", "placed", "capped"}`` (``placed``:
    the symbol's own bar number), or None."""

    def __init__(self, limits, n_symbols, n):
        limits = list(limits) if limits is not None else [None] * n_symbols
        assert len(limits) == n_symbols, "reference_multi: limits needs one entry per symbol"
        self.prices = [None] * n_symbols
        self.expiry = [1] * n_symbols
        for s, lim in enumerate(limits):
            if lim is None:
                continue
            prices, e = lim
            assert len(prices) == n, f"reference_multi: symbol {s}'s limit prices: one per grid bar"
            assert int(e) == e and e >= 1, f"reference_multi: symbol {s}'s expiry {e!r}: an int >= 1"
            self.prices[s] = [float(v) for v in prices]
            self.expiry[s] = int(e)
        self.standing = [None] * n_symbols
        self.n_cancelled = 0

    def given(self, s):
        return self.prices[s] is not None

    def at(self, s, i):
        """The limit price given at grid bar ``i`` for symbol ``s``, or None
        (market).  Choice (as ``reference.simulate``): NaN, or a price that is
        not above 0, is a market order."""
        if self.prices[s] is None:
            return None
        v = self.prices[s][i]
        return v if v == v and v > 0.0 else None

    def expired(self, s, own_bar):
        """MC "Limit orders", step 3: the order has had its ``e`` bars
        ``placed … placed + e − 1`` (the symbol's own bars)."""
        od = self.standing[s]
        return od is not None and own_bar >= od["placed"] + self.expiry[s]

    def cancel(self, acct, s):
        """MC "Limit orders", *Cancel* (``autoRepayAtCancel``), on the
        symbol's six numbers ``acct`` (an Account, or a cross account's view):
        ``r = min(b, held, principal)`` of the borrowed asset taken from the
        holding and the principal; dust cleaned; the interest charged stays
        owed.  Counted in ``n_cancelled``."""
        od = self.standing[s]
        repay_cancelled(acct, od["side"], od["b"])
        self.standing[s] = None
        self.n_cancelled += 1


def _place(acct, o, x, lim, fee, m0, assets, debt, cross=False):
    """MC "Limit orders", step 3, *Place* and *Borrow at placement*, on the
    symbol's six numbers ``acct`` (its rates those of the bar's hour) at its
    open ``o``; ``assets``, ``debt``: the account's at the current prices
    (one symbol: its own at ``o``; a cross account: every symbol at its open
    or last close, MC "Limit orders in a cross account of several symbols").
    ``E = A − D`` (nothing if ``E ≤ 0``), ``T = x·E/L``, ``δ = T − N``
    (nothing if 0); ``q`` capped by ``b_max = (A − M0·D) / (v·(M0·(1+r) −
    1))`` and the max borrow per asset; the shortfall borrowed now and held.
    ``cross``: a symbol of a cross account with several symbols, with the
    float-noise rules of its *Step 3* ("as for a cross market order"): no
    room to borrow when ``A − M0·D ≤ 1e-9·(A + D)``; a cap of at most
    ``1e-9·q`` is none (nothing stands); a shortfall of at most ``1e-9·q·L``
    (a sell: ``1e-9·q``) is not borrowed (``b = 0``, no charge).
    Returns (the standing order without ``placed``, the borrow charge in the
    borrowed asset) or None (nothing stands)."""
    e = assets - debt
    if e <= 0.0:
        return None
    delta = x * e / lim - acct.position()
    if delta == 0.0:
        return None
    room = assets - m0 * debt
    if cross and room <= 1e-9 * (assets + debt):  # MC "... cross account of several symbols", Step 3: noise
        room = 0.0
    if delta > 0.0:
        side, q = "buy", delta / (1.0 - fee)
        k = m0 * (1.0 + acct.rq) - 1.0
        b_max = 0.0 if room <= 0.0 else (INF if k <= 0.0 else room / k)
        cap = (acct.hq + b_max) / lim
        if acct.max_borrow_quote != INF:  # the account's quote limit (MC "Max borrow in a cross account ...")
            cap = min(cap, (acct.hq + _room(acct.max_borrow_quote, acct.pq)) / lim)
    else:
        side, q = "sell", -delta
        k = m0 * (1.0 + acct.rb) - 1.0
        b_max = 0.0 if room <= 0.0 else (INF if k <= 0.0 else room / (o * k))
        cap = acct.hb + b_max
        if acct.max_borrow_base != INF:  # the symbol's own base limit
            cap = min(cap, acct.hb + _room(acct.max_borrow_base, acct.pb))
    capped = cap < q * (1.0 - 1e-9)
    if cross and cap <= 1e-9 * q:  # a cap of at most 1e-9·q is none: nothing stands (capped)
        return None
    q = min(q, cap)
    if q <= 0.0:
        return None
    c = 0.0
    if side == "buy":
        b = q * lim - acct.hq
        if cross and b <= 1e-9 * q * lim:  # a shortfall of float noise is not borrowed
            b = 0.0
        if b > 0.0:
            c = acct.borrow("quote", b)
            acct.hq += b
    else:
        b = q - acct.hb
        if cross and b <= 1e-9 * q:
            b = 0.0
        if b > 0.0:
            c = acct.borrow("base", b)
            acct.hb += b
    acct.clean()
    return {"side": side, "q": q, "L": lim, "b": max(b, 0.0), "capped": capped}, c


def _fill_limit(i, s, acct, od, price, fee, orders, stops):
    """MC "Limit orders", *Fill* at ``price`` on the symbol's six numbers
    ``acct``: no slippage, the trading fee, never borrows (a buy pays from
    ``hq``, ``hq = max(hq − q·P, 0)`` and the relative-dust rule; a sell the
    same from ``hb``); what it receives repays (auto-repay).  Recorded with
    kind "limit"; entry and best tracked with ``price`` as the market.
    Returns the fee value."""
    n0 = acct.position()
    if od["side"] == "buy":
        fv, _ = acct.buy(od["q"], price, fee, may_borrow=False)
    else:
        fv, _ = acct.sell(od["q"], price, fee, may_borrow=False)
    orders.append({"bar": i, "symbol": s, "side": od["side"], "quantity": od["q"], "price": price, "fee": fv,
                   "kind": "limit", "capped": od["capped"]})
    stops.track(s, n0, acct.position(), price, price)
    return fv


def _is_number(v):
    """A fraction (a plain or NumPy number), not a sequence of prices."""
    if isinstance(v, (int, float)):
        return True
    return getattr(v, "ndim", None) == 0


def _repay(amount, owed):
    """Repay ``owed = [interest, principal]`` (a list, changed in place)
    interest first; return what is left."""
    x = min(amount, owed[0])
    owed[0] -= x
    amount -= x
    y = min(amount, owed[1])
    owed[1] -= y
    return amount - y


def simulate_multi(timestamps, opens, highs, lows, closes, targets, *, accounts, fee, slippage,
                   rates_base_daily, rate_quote_daily, liquidation="partial", rebalance=0.0,
                   round_interest=True, stop_on_liquidation=False, rate_history=None, marks=None,
                   stop_loss=0.0, take_profit=0.0, trailing_stop=0.0, path="ohlc-heuristic", levels=None,
                   detail=None, auto_repay=True, repay_on_flat=False, max_borrow=None, limits=None):
    """Run S symbols on the union grid ``timestamps`` (int seconds).

    ``opens[s][i]`` … ``closes[s][i]``: symbol s's bar at grid time i, NaN
    where it has none; ``targets[s][i]`` its target (NaN holds).
    ``accounts``: a list of ``(profile name, [symbol indices], capital)``.
    Returns per-bar lists per account (``equity``, ``debt``,
    ``margin_level``, ``interest_paid`` cumulative quote value,
    ``interest_owed``), per symbol ``position``, and the events
    ``liquidations`` (bar, account, margin_level, fee, equity_before,
    equity_after, bad_debt, gap), ``orders`` (bar, symbol, side, quantity,
    price, fee, kind, capped), ``margin_calls`` (bar, account, margin_level),
    and ``interest_base`` per symbol / ``interest_quote`` per account (asset units).

    ``rate_history``: the rows of a rate file, ``{key: [(time, daily rate),
    ...]}`` with key a symbol index (its base asset) or ``"quote"``; an asset
    it names pays, at each whole hour, the rate of its last row at or before
    that hour (MC "Interest", "Rate histories"), the others their constant
    rate.  ``marks``: per symbol None or (open, high, low[, close]) lists on
    the grid, NaN where the mark series has no bar (the traded bar stands in
    there, and is counted in ``mark_missing``); liquidation is checked on
    them, orders fill on the traded bars (MC "Mark price", "Several
    symbols").  The close is needed only with stops on in a cross account of
    several symbols (its mark path's third leg ends at the mark close);
    without stops (open, high, low) is enough.

    ``stop_loss``, ``take_profit``, ``trailing_stop``: fractions, the same for
    every symbol (0 = off).  With any of them on, an account with several
    symbols walks "Stops on a joint path" (three legs, events by θ) and an
    account of one symbol the one-symbol walk of "Stops, take-profits and the
    path inside a bar" along ``path`` ("ohlc-heuristic" or "pessimistic"; it
    changes nothing in an account of several symbols).  Stop orders are
    recorded with kind "stop_loss" / "trailing_stop" / "take_profit" and their
    ``trigger``; ``ambiguous`` counts the ambiguous bars (accounts of one
    symbol only).

    Stops with mark series (MC "Stops on a joint path", "With mark series"):
    a cross account of several symbols walks two paired joint paths, the
    traded one (``O → L → H → C`` for ``d_s = +1``, ``O → H → L → C`` for
    ``d_s = −1``) for the stop levels and the mark one (``Om → Lm → Hm →
    Cm`` / ``Om → Hm → Lm → Cm``, the same order; a symbol without a series,
    or a bar its series lacks, the traded bar; ``d_s = 0``: its current mark
    the whole bar) for the liquidation, leg ``k`` with leg ``k``, both at
    the same θ.  The liquidation's θ is the joint path's rule on the mark
    leg; a stop's θ is its level's on the traded leg; the smallest θ first
    (ties: liquidation, stop-loss, trailing, take-profit, then symbol
    order).  A liquidation's trigger prices (its margin level, fee, equity
    before) are the marks at θ; each tradable symbol fills at its mark at θ
    clamped into its traded bar's ``[low, high]`` (± slippage).  A stop's
    order, its equity and cap are at the traded path's prices at θ;
    ``best`` follows the traded path.  The margin call stays at every
    mark's adverse extreme.  Every marked symbol of such an account needs
    its close list.  An account of ONE symbol with stops on and a mark
    series is refused (assertion): not modelled here.

    ``levels``: a strategy's own levels per symbol (MC "Levels from a
    strategy", "Stops on a joint path"): None (none), or a list with one
    entry per symbol, each None / ``{}`` (the symbol has none) or a dict with
    any of the keys

    - ``"stop_loss"``, ``"take_profit"``: a number (a fraction of the entry
      price that replaces the run's ``stop_loss`` / ``take_profit`` for this
      symbol only), or a sequence of prices **on the symbol's own bars**
      (its length the number of grid bars where the symbol has a bar, in
      time order): the price given at the symbol's own bar ``j`` is the
      level in force during its own bar ``j + 1`` only (on the grid, the
      next grid bar where the symbol has a bar), replacing that fraction's
      level there; NaN means the fraction's level (or none);
    - ``"trailing_stop"``: a number, replacing the run's ``trailing_stop``
      for this symbol only.

    No levels at all without an entry price (a position no fill opened).  An
    account has stops on (walks the path) when one of its symbols has a
    fraction above 0 or a price level (an array with at least one price
    that is not NaN).

    ``detail``: finer bars (MC "Finer bars on a joint path"), only for the
    symbols of a cross account holding several symbols, without mark series:
    None, or per symbol None or ``(sub_open, sub_high, sub_low, sub_close)``,
    each a list over the grid bars of None (no usable sub-bars there, or no
    bar) or the bar's ``T/τ`` sub-bar values in time order.  The lists are
    trusted (the caller decides usability: None is "not usable"); every
    symbol of such an account has detail or none has, and the symbols with a
    bar give the same number of sub-bars.  Bar i of the account has usable
    detail when every symbol with a bar there has sub-bars; then step 5 runs
    on each sub-step j in turn (the joint path, or with stops on the joint
    walk, as if the sub-bars j were the bar: directions from the state at
    the start of sub-step j, a symbol with a bar and ``d_s = 0`` at its
    sub-bar's open, one without a bar at its last close); everything else
    stays on the bar.  An account of one symbol with detail raises
    NotImplementedError (the one-symbol kernel's "Finer bars settle the
    path" is ``reference.simulate``'s).  Also returns ``detail_missing_bars``
    (an int: over the accounts of several symbols that have detail, the bars
    without usable detail where step 5 on the bar could fire something: a
    stop level of a held symbol with a bar inside that bar's range, the
    trailing level at the best price the bar can bring, or the margin level
    at every symbol's adverse extreme at once, state after step 4, at or
    below the liquidation level × (1 + 1e-9)) and ``detail_bars`` per symbol
    (its bars with sub-bars, in accounts of several symbols).

    ``auto_repay=False`` (MC "Auto-repay off", and for a cross account of
    several symbols its "Auto-repay off in a cross account of several
    symbols"): what a fill receives is held (nothing repaid), the borrow caps
    without repayment, the flat rule of "State" after every buy or sell, and
    every liquidation nets each asset first (its ML, equity before and fee
    taken before the netting).  ``repay_on_flat`` (only with auto-repay off):
    a market fill (step 3's order or a stop's exit, not a liquidation) that
    leaves its symbol's position at 0 cancels the symbol's base held and owed
    and lets the account's quote held repay its quote debt, interest first.
    Also returns ``debt_base`` per symbol: its base owed ``pb + ib`` at each
    close (with auto-repay on a base debt is a short itself: ``−position``
    of a short, 0 otherwise).

    ``max_borrow``: a custom profile's max borrow per asset (principal, in
    asset units; interest owed does not count): None (none), one dict for
    every account, or a list with one dict (or None) per account; a dict's
    keys are ``"quote"`` (the quote asset) and symbol indices (that
    symbol's base asset; a key of a symbol outside the account is ignored),
    an asset not named has no limit.  An account of one symbol takes MC
    "Market order", **Max borrow per asset** (``reference.Account``'s
    ``max_borrow_base`` / ``max_borrow_quote``); a cross account of several
    symbols MC "Max borrow in a cross account of several symbols": an order
    of symbol ``s`` takes that rule on its six numbers, ``room_q = limit_q
    − pq`` (the account's one quote principal, which every symbol's buys
    borrow from), ``room_b = limit_b − pb_s`` (each taken as 0 when at most
    ``1e-9`` of its limit); a buy's cap is ``(hq + room_q) / P`` when that
    is below the cross borrow cap, and the buy may borrow only if ``room_q >
    0``; a sell the same with ``hb_s + room_b``.  Step 3's orders and stop
    exits alike (a stop's exit is a market order); a liquidation's buy-back
    is not a borrow.

    Every liquidation (and write-off) of an account with several symbols
    records ``theta``, where on the bar's joint path it happened: 0 at the
    gap (step 2); θ without stops; ``(k − 1) + θ`` on leg k with stops; with
    finer bars ``j + θ`` / ``3j + (k − 1) + θ`` in sub-step j.  A stop order
    of such an account records ``path_prices``: every symbol's price (in the
    account's symbol order) its equity and cap were taken at.

    ``limits``: a strategy's limit orders (MC "Limit orders", and for a
    cross account of several symbols its "Limit orders in a cross account of
    several symbols"): None, or per symbol None or ``(limit_prices, expiry)``,
    ``limit_prices[i]`` the limit price given at grid bar ``i`` (NaN: a
    market order; read only where the symbol's target changes) and
    ``expiry`` an int ≥ 1 counted in the symbol's own bars.  A new target
    with a limit price is placed at the symbol's next bar (step 3: a
    standing order cancelled first when a new order is pending or its ``e``
    own bars are up; the shortfall borrowed at placement into the account's
    ``pq`` or the symbol's ``pb``, capped so the account stays at ``M0`` and
    by the max borrow per asset), fills on the path (a cross account of
    several symbols: one more level of its symbol in the joint walk of
    "Stops on a joint path", run on every bar where an order of the account
    stands; an account of one symbol: the one-symbol walk) at ``L`` or a
    better leg start, no slippage, kind "limit"; a liquidation cancels the
    account's orders first, a stop its symbol's; cancelling repays the
    principal the order borrowed.  No rebalance while a symbol's order
    stands; with finer bars each sub-step an order stands at the start of
    is walked so.  Needs ``auto_repay`` (refused, as the engine does); an
    account of ONE symbol with limits and a mark series raises
    NotImplementedError (its one-symbol walk on the mark is
    ``reference.simulate``'s).  With mark series in a cross account of
    several symbols every marked symbol needs its close list (the walk).
    Also returns ``n_cancelled`` (every account).
    """
    S = len(opens)
    n = len(timestamps)
    assert not (auto_repay and repay_on_flat), "reference_multi: repay_on_flat needs auto_repay=False"
    has = [[opens[s][i] == opens[s][i] for i in range(n)] for s in range(S)]
    stops = Stops(S, stop_loss, take_profit, trailing_stop, path, levels=levels, has=has)
    history = {k: sorted(v) for k, v in (rate_history or {}).items()}
    marks = marks or [None] * S
    mark_missing = [0] * S
    lims = Limits(limits, S, n)
    if limits is not None and any(lims.given(s) for s in range(S)):
        # MC "Limit orders": defined with auto-repay only; MC "Limit orders in a cross account of several
        # symbols": refused with --no-auto-repay (the engine refuses it)
        assert auto_repay, "reference_multi: limit orders with auto-repay off are refused"

    def rate(key, h):
        """Hourly rate of asset ``key`` (a symbol's base, or "quote") in force at whole hour ``h``."""
        daily = rate_quote_daily if key == "quote" else rates_base_daily[key]
        for t_row, r in history.get(key, ()):
            if t_row <= h:
                daily = r
        return daily / 24.0

    for s, mk in enumerate(marks):
        assert mk is None or len(mk) in (3, 4), \
            f"reference_multi: symbol {s}'s mark series: (open, high, low) or (open, high, low, close) lists"

    def mark_bar(s, i):
        """(open, high, low, close) liquidation is checked on: the mark bar, or the traded one where it has
        none; the close None when the series gives no close (3 lists)."""
        mk = marks[s]
        if mk is not None and mk[0][i] == mk[0][i]:
            if len(mk) < 4:
                return mk[0][i], mk[1][i], mk[2][i], None
            assert mk[3][i] == mk[3][i], f"reference_multi: symbol {s}'s mark bar {i} has an open but no close"
            return mk[0][i], mk[1][i], mk[2][i], mk[3][i]
        if mk is not None:
            mark_missing[s] += 1
        return opens[s][i], highs[s][i], lows[s][i], closes[s][i]

    mk_bars = [[mark_bar(s, i) if has[s][i] else None for i in range(n)] for s in range(S)]

    # MC "Finer bars on a joint path": per symbol None or its sub-bar lists; refused with a mark series and
    # (not modelled here) in an account of one symbol; every symbol of an account of several or none
    detail = list(detail) if detail is not None else [None] * S
    assert len(detail) == S, "reference_multi: detail needs one entry per symbol"
    for s, d in enumerate(detail):
        assert d is None or (len(d) == 4 and all(len(col) == n for col in d)), \
            f"reference_multi: symbol {s}'s detail: (sub_open, sub_high, sub_low, sub_close), one entry per bar"
        assert d is None or marks[s] is None, f"reference_multi: symbol {s}: --detail with --mark is refused"
    for _, syms, _ in accounts:
        given = [detail[s] is not None for s in syms]
        if len(syms) == 1 and given[0]:
            raise NotImplementedError("reference_multi: finer bars in an account of one symbol "
                                      "(reference.simulate models them)")
        assert all(given) or not any(given), \
            f"reference_multi: symbols {list(syms)}: finer bars for some symbols of the account and not others"
    detail_bars = [0] * S

    def sub_bars(s, i):
        """Symbol s's sub-bars at grid bar i, [(O_j, H_j, L_j, C_j), ...], or None (none usable, no bar)."""
        d = detail[s]
        if d is None or not has[s][i] or any(col[i] is None for col in d):
            return None
        return [(float(o), float(h), float(lo), float(c)) for o, h, lo, c in zip(d[0][i], d[1][i], d[2][i], d[3][i])]

    out = {"equity": [[] for _ in accounts], "debt": [[] for _ in accounts],
           "margin_level": [[] for _ in accounts], "interest_paid": [[] for _ in accounts],
           "interest_owed": [[] for _ in accounts], "position": [[] for _ in range(S)],
           "debt_base": [[] for _ in range(S)]}
    liquidations, orders, margin_calls = [], [], []
    int_base = [0.0] * S
    int_quote = [0.0] * len(accounts)
    fees_paid = 0.0

    last_close = [0.0] * S
    pending = [None] * S
    last_target = [None] * S
    suspended = [False] * S

    limits = _limits_per_account(max_borrow, accounts, S)
    states = []
    for (prof_name, syms, cap), lim in zip(accounts, limits):
        prof = Profile.get(prof_name)
        if len(syms) == 1:
            acct = Account(cap, 0.0, 0.0, round_interest, auto_repay)  # its rates are set per hour
            # MC "Market order", **Max borrow per asset**: the one-symbol rule
            acct.max_borrow_base, acct.max_borrow_quote = lim.get(syms[0], INF), lim.get("quote", INF)
        else:
            acct = Book(cap, len(syms), round_interest, auto_repay)
            # MC "Max borrow in a cross account of several symbols"
            acct.limit_q = lim.get("quote", INF)
            acct.limit_b = [lim.get(s, INF) for s in syms]
        on = stops.on_for(syms)
        marked = [s for s in syms if marks[s] is not None]
        if on and marked:
            # MC "Several symbols": an account of one symbol runs the one-symbol kernel (its walk on the
            # mark is reference.simulate's); not ported here
            assert len(syms) > 1, \
                "reference_multi: stops with a mark series in an account of ONE symbol are not modelled here"
            for s in marked:  # MC "Stops on a joint path", "With mark series": the mark's third leg ends at Cm
                assert len(marks[s]) == 4, (
                    f"reference_multi: symbol {s}'s mark series needs its close (open, high, low, close lists) "
                    "with stops on in a cross account of several symbols")
        limited = any(lims.given(s) for s in syms)
        if limited and len(syms) == 1 and marks[syms[0]] is not None:
            # MC "Several symbols": the one-symbol kernel's walk with a mark series (reference.simulate's); the
            # account-of-one-symbol walk here has no mark path
            raise NotImplementedError("reference_multi: limit orders with a mark series in an account of ONE "
                                      "symbol (reference.simulate models them)")
        if limited and len(syms) > 1:
            for s in marked:  # the joint walk runs: the mark's third leg ends at Cm
                assert len(marks[s]) == 4, (
                    f"reference_multi: symbol {s}'s mark series needs its close (open, high, low, close lists) "
                    "with limit orders in a cross account of several symbols")
        states.append({"prof": prof, "syms": list(syms), "acct": acct, "t_prev": None, "paid": 0.0,
                       "prev_close_ml": INF, "halted": False, "eq": float(cap), "debt": 0.0, "owed": 0.0,
                       "ml": INF, "suspended": suspended, "stop": stop_on_liquidation, "stops": stops,
                       "stops_on": on, "marked": bool(marked), "detailed": detail[syms[0]] is not None,
                       "detail_missing": 0, "repay_on_flat": bool(repay_on_flat and not auto_repay),
                       "limits": lims, "limited": limited})

    for i in range(n):
        t = int(timestamps[i])
        for a, stt in enumerate(states):
            syms = stt["syms"]
            if not any(has[s][i] for s in syms):
                # inactive: its last close values stand
                for key, col in (("eq", "equity"), ("debt", "debt"), ("ml", "margin_level"),
                                 ("paid", "interest_paid"), ("owed", "interest_owed")):
                    out[col][a].append(stt[key])
                continue
            prof = stt["prof"]
            if len(syms) == 1:
                liquidated = _step_one(i, t, a, stt, syms[0], opens, highs, lows, closes, mk_bars, slippage, fee,
                                       prof, liquidation, pending, orders, liquidations, margin_calls, int_base,
                                       int_quote, rate, out)
                fees_paid += stt.pop("fees", 0.0)
            else:
                # MC "Finer bars on a joint path": usable detail when every symbol with a bar has sub-bars; the
                # sub-steps j, each symbol's (O_j, H_j, L_j, C_j), a symbol without a bar at its last close
                subs = None
                if stt["detailed"]:
                    per = {s: sub_bars(s, i) for s in syms if has[s][i]}
                    for s, sb in per.items():
                        detail_bars[s] += sb is not None
                    if all(sb is not None for sb in per.values()):
                        n_sub = {len(sb) for sb in per.values()}
                        assert len(n_sub) == 1, f"reference_multi: bar {i}: the symbols' sub-bars do not pair up"
                        subs = [[per[s][j] if has[s][i] else (last_close[s],) * 4 for s in syms]
                                for j in range(n_sub.pop())]
                liquidated = _step_cross(i, t, a, stt, syms, has, opens, highs, lows, closes, mk_bars, last_close,
                                         slippage, fee, prof, liquidation, pending, orders, liquidations,
                                         margin_calls, int_base, int_quote, rate, out, subs)
                fees_paid += stt.pop("fees", 0.0)
            stt["t_prev"] = t
            # 8. decisions, per symbol of the account
            for s in syms:
                if has[s][i]:
                    last_close[s] = closes[s][i]
            if liquidated:
                for s in syms:
                    suspended[s] = True
                    if pending[s] is not None and pending[s][1] == "rebalance":
                        pending[s] = None  # MC step 8: a rebalance still waiting for its symbol's bar is dropped
                if stop_on_liquidation:
                    stt["halted"] = True
                    for s in syms:  # MC step 8: a stopped account trades no more, not even an order still
                        pending[s] = None  # waiting for its symbol's next bar
            if stt["halted"] or i == n - 1:
                continue
            for k, s in enumerate(syms):
                x = float(targets[s][i])
                if math.isnan(x):
                    continue
                if last_target[s] is None or x != last_target[s]:
                    # MC "Limit orders", *Decision*: a new target whose bar carries a limit price is a limit
                    # order at it (choice: the price given at the grid bar where the target is read)
                    pending[s] = (x, "signal", lims.at(s, i))
                    last_target[s] = x
                    suspended[s] = False
                elif rebalance > 0.0 and not suspended[s] and lims.standing[s] is None:
                    # no rebalance while the symbol's limit order stands (other symbols do rebalance)
                    e = stt["eq"]
                    pos = _position(stt["acct"], syms, s)
                    if e > 0.0 and abs(pos * last_close[s] / e - x) > rebalance * abs(x):
                        pending[s] = (x, "rebalance", None)
        for s in range(S):
            stt_s = states[_account_of(states, s)]
            out["position"][s].append(_position(stt_s["acct"], stt_s["syms"], s))
            out["debt_base"][s].append(_debt_base(stt_s["acct"], stt_s["syms"], s))
            if has[s][i]:
                last_close[s] = closes[s][i]

    # MC "No empty liquidations": an event that filled nothing (an account with nothing to sell, its debt
    # written off) is a write-off, not a liquidation
    filled = {o["event"] for o in orders if o["kind"] == "liquidation" and o["quantity"] > 0.0}
    write_offs = [e for j, e in enumerate(liquidations) if j not in filled]
    liquidations = [e for j, e in enumerate(liquidations) if j in filled]
    for o in orders:
        o.pop("event", None)
        if o["kind"] == "liquidation" and o["quantity"] == 0.0:
            o["kind"] = "write_off"
    out.update(liquidations=liquidations, write_offs=write_offs, orders=orders, margin_calls=margin_calls,
               interest_base=int_base,
               interest_quote=int_quote, fees_paid=fees_paid, mark_missing=mark_missing, ambiguous=stops.n_ambiguous,
               detail_missing_bars=sum(stt["detail_missing"] for stt in states), detail_bars=detail_bars,
               n_cancelled=lims.n_cancelled)
    return out


def _limits_per_account(max_borrow, accounts, n_symbols):
    """``max_borrow`` (None, one dict, or one dict or None per account) as
    one dict per account, checked: keys ``"quote"`` or a symbol index,
    limits above 0 (+inf: none)."""
    if max_borrow is None or isinstance(max_borrow, dict):
        per = [max_borrow] * len(accounts)
    else:
        per = list(max_borrow)
        assert len(per) == len(accounts), "reference_multi: max_borrow needs one entry per account"
    out = []
    for lim in per:
        lim = dict(lim or {})
        for key, v in lim.items():
            assert key == "quote" or (isinstance(key, int) and 0 <= key < n_symbols), \
                f"reference_multi: max_borrow key {key!r}: 'quote' or a symbol index"
            assert float(v) > 0.0, f"reference_multi: max_borrow[{key!r}] = {v!r} must be > 0"
        out.append({key: float(v) for key, v in lim.items()})
    return out


def _room(limit, principal):
    """MC "Max borrow per asset": ``limit − principal``, 0 when at most
    ``1e-9·limit`` (a loan at its limit is float noise away from it)."""
    room = limit - principal
    return 0.0 if room <= 1e-9 * limit else room


def _limit_cross_cap(acct, side, p, cap):
    """MC "Max borrow in a cross account of several symbols" on a symbol's
    six numbers (``acct``: its view, whose ``max_borrow_quote`` is the
    account's quote limit and ``max_borrow_base`` the symbol's base limit):
    (cap, may borrow) when the room under the limit is below the cross
    borrow cap ``cap``, else None (the cap stands)."""
    if side == "buy":
        if acct.max_borrow_quote == INF:
            return None
        room = _room(acct.max_borrow_quote, acct.pq)
        lim = (acct.hq + room) / p
    else:
        if acct.max_borrow_base == INF:
            return None
        room = _room(acct.max_borrow_base, acct.pb)
        lim = acct.hb + room
    if lim < cap:
        return lim, room > 0.0
    return None


def _account_of(states, s):
    return next(a for a, stt in enumerate(states) if s in stt["syms"])


def _position(acct, syms, s):
    if isinstance(acct, Account):
        return acct.position()
    return acct.position(syms.index(s))


def _debt_base(acct, syms, s):
    """Symbol s's base owed ``pb + ib``."""
    if isinstance(acct, Account):
        return acct.pb + acct.ib
    b = acct.base[syms.index(s)]
    return b[1] + b[2]


def _flat_repay(stt, acct):
    """MC "Repay on flat": after a market fill that leaves the symbol's
    position at 0 (``acct`` the one-symbol Account, or a symbol's six-number
    view of a cross account), its base held and owed cancel and the quote
    held repays the quote debt, interest first; dust cleaned."""
    if stt["repay_on_flat"] and acct.position() == 0.0:
        acct.net()


# ------------------------------------------------------------------ one symbol
def _after_gap(stt, syms, pending):
    """A gap liquidation comes before the orders at that open, which then
    follow: a symbol's new target (a signal) still executes; a rebalance is
    dropped and the symbol suspended.  If the run stops at a liquidation,
    nothing follows.  Returns whether the run halts."""
    for s in syms:
        if stt["stop"] or pending[s] is None or pending[s][1] == "rebalance":
            pending[s] = None
            stt["suspended"][s] = True
    return stt["stop"]


def _step_one(i, t, a, stt, s, opens, highs, lows, closes, mk_bars, slippage, fee, prof, mode, pending, orders,
              liquidations, margin_calls, int_base, int_quote, rate, out):
    """MC "Order of events in bar i" for an account with one symbol; the
    liquidation checks on the mark bar (MC "Mark price")."""
    acct = stt["acct"]
    o, h, lo, c = opens[s][i], highs[s][i], lows[s][i], closes[s][i]
    mo, mh, mlo = mk_bars[s][i][:3]
    mlr = prof.liquidation_ml
    liquidated = False

    def note(cb, cq, price):
        int_base[s] += cb
        int_quote[a] += cq
        stt["paid"] += cb * price + cq

    def rates_at(h_):
        acct.rb, acct.rq = rate(s, h_), rate("quote", h_)

    # 1. each boundary passed at the rates in force at it
    if stt["t_prev"] is not None:
        first = (stt["t_prev"] // 3600 + 1) * 3600
        for k in range(hour_boundaries_between(stt["t_prev"], t)):
            rates_at(first + 3600 * k)
            cb, cq = acct.charge_interest()
            note(cb, cq, o)
    rates_at(t - t % 3600)  # this bar's hour: the order's borrow and cap, the boundary at the open
    lims = stt["limits"]
    # 2. at the mark open; the fill at the traded open
    if acct.has_debt() and acct.margin_level(mo) <= mlr:
        if lims.standing[s] is not None:  # MC "Limit orders", step 2: the check with the order, then cancelled
            lims.cancel(acct, s)
        long_like = _long_like(acct.hb, acct.pb + acct.ib, mlr)
        if _liq_one(i, a, s, acct, mo, long_like, True, slippage, prof, mode, orders, liquidations, traded=o,
                    stops=stt["stops"], mkt=o):
            liquidated = _after_gap(stt, [s], pending)
    # 3. (MC "Limit orders": a standing order cancelled first when a new order is pending or its bars are up;
    # a pending limit order is placed, borrowing at once)
    pb0, pq0 = acct.pb, acct.pq
    if lims.standing[s] is not None and (pending[s] is not None or lims.expired(s, stt["stops"].own[s][i])):
        lims.cancel(acct, s)
    if pending[s] is not None and pending[s][2] is not None:
        x, _, lp = pending[s]
        pending[s] = None
        placed = _place(acct, o, x, lp, fee, prof.initial_ml, acct.assets(o), acct.debt(o))
        if placed is not None:
            od, ci = placed
            od["placed"] = stt["stops"].own[s][i]
            lims.standing[s] = od
            note(ci if od["side"] == "sell" else 0.0, ci if od["side"] == "buy" else 0.0, o)
    if pending[s] is not None:
        x, kind, _ = pending[s]
        pending[s] = None
        n0 = acct.position()
        q = _market(acct, o, x, fee, slippage, prof.initial_ml, 0.0)  # the one-symbol rules
        if q is not None:
            side, qty, p, fv, capped, ci = q
            _flat_repay(stt, acct)  # before step 4
            stt["stops"].track(s, n0, acct.position(), p, o)
            note(ci if side == "sell" else 0.0, ci if side == "buy" else 0.0, o)
            stt["fees"] = fv
            orders.append({"bar": i, "symbol": s, "side": side, "quantity": qty, "price": p, "fee": fv,
                           "kind": kind, "capped": capped})
    # 4.
    if t % 3600 == 0:
        cb, cq = acct.charge_interest(min(pb0, acct.pb), min(pq0, acct.pq))
        note(cb, cq, o)
    # 6. (state before step 5), at the mark's adverse extreme
    ml_x = None
    if acct.has_debt():
        x_ = mlo if _long_like(acct.hb, acct.pb + acct.ib, mlr) else mh
        ml_x = acct.margin_level(x_)
    # 5. with stops on and a position open, or a limit order standing: the one-symbol walk along the path
    walked = (stt["stops_on"] and acct.position() != 0.0) or lims.standing[s] is not None
    if walked:
        liquidated = _walk_one(i, a, stt, s, acct, o, h, lo, c, slippage, fee, prof, mode, orders, liquidations,
                               note) or liquidated
    # 5. on the mark bar; a fill where the market traded: the trigger clamped into [lo, h]
    for _ in range(0 if walked else 8):
        ap, p_liq = acct.liquidation_price(mlr)
        if p_liq is None:
            break
        if ap > 0.0 and mlo <= p_liq:
            trigger = min(mo, p_liq)
        elif ap <= 0.0 and mh >= p_liq:
            trigger = max(mo, p_liq)
        else:
            break
        traded = lo if trigger < lo else (h if trigger > h else trigger)
        if not _liq_one(i, a, s, acct, trigger, _is_long_like(acct, mlr), trigger == mo, slippage, prof, mode, orders,
                        liquidations, traded=traded, stops=stt["stops"]):
            break  # MC "No empty liquidations"
        liquidated = True
    if ml_x is not None and ml_x <= prof.margin_call_ml and stt["prev_close_ml"] > prof.margin_call_ml:
        margin_calls.append({"bar": i, "account": a, "margin_level": ml_x})
    # 7.
    _close(stt, acct.assets(c), acct.debt(c), acct.ib * c + acct.iq, a, out)
    return liquidated


def _walk_one(i, a, stt, s, acct, o, h, lo, c, slippage, fee, prof, mode, orders, liquidations, note):
    """MC "Step 5 with stops on" for an account of one symbol (no mark
    series): the path O → X1 → X2 → C, the levels at the open, then each
    segment; a liquidation goes on from its trigger (at most 8), a stop,
    trailing or take-profit exit is a market order to 0 at its trigger and
    ends the walk.  Returns whether a liquidation happened."""
    stops = stt["stops"]
    lims = stt["limits"]
    mlr = prof.liquidation_ml
    liquidated = False

    def levels():
        out = []
        ap, p_liq = acct.liquidation_price(mlr)
        if p_liq is not None:
            out.append(("liquidation", p_liq, ap > 0.0))
        return out + stops.levels(s, acct.position(), i)

    long_ = acct.position() > 0.0
    stops.move_best(s, acct.position(), o)
    # MC "Ambiguous bar": the range reaches an adverse level (after best's update at O) and the take-profit
    adverse = favourable = False
    # (MC "Limit orders": the count needs stops on and N != 0 when the walk starts; the order takes no part)
    for kind, lv, falls in (levels() if stt["stops_on"] and acct.position() != 0.0 else ()):
        reached = lo <= lv if falls else h >= lv
        if kind == "take_profit":
            favourable = reached
        elif reached:
            adverse = True
    if adverse and favourable:
        stops.n_ambiguous += 1
    low_first = long_ if stops.path == "pessimistic" else c >= o
    x1, x2 = (lo, h) if low_first else (h, lo)
    cur = o
    n_liq = 0
    liq_off = False  # MC "No empty liquidations": the level is off for the rest of the bar
    for k, p in enumerate((o, x1, x2, c)):
        while True:
            od = lims.standing[s]
            if acct.position() == 0.0 and od is None:  # the walk goes on while a position or the order is left
                return liquidated
            hits = []
            for kind, lv, falls in levels():
                if kind == "liquidation" and liq_off:
                    continue
                hits += path_hit(kind, lv, falls, k, o, cur, p)
            if od is not None:  # the order, one more level (a buy fires falling to L, a sell rising)
                hits += path_hit("limit", od["L"], od["side"] == "buy", k, o, cur, p)
            if not hits:
                break
            _, _, kind, trigger = min(hits)
            if kind == "limit":  # filled at L or the better open; the walk goes on from there
                stt["fees"] = stt.get("fees", 0.0) + _fill_limit(i, s, acct, od, trigger, fee, orders, stops)
                lims.standing[s] = None
                cur = trigger
                continue
            if od is not None:  # a liquidation or a stop's exit cancels the order first
                lims.cancel(acct, s)
            if kind == "liquidation":
                if not _liq_one(i, a, s, acct, trigger, _is_long_like(acct, mlr), k == 0, slippage, prof, mode,
                                orders, liquidations, stops=stops):
                    liq_off = True
                    continue
                liquidated = True
                cur = trigger
                n_liq += 1
                if n_liq == 8:
                    return liquidated
                continue
            # a stop, trailing or take-profit exit: the market order to 0 at the trigger
            stt["suspended"][s] = True
            n0 = acct.position()
            res = _market(acct, trigger, 0.0, fee, slippage, prof.initial_ml, 0.0)
            if res is not None:
                side, qty, price, fv, capped, ci = res
                _flat_repay(stt, acct)
                note(ci if side == "sell" else 0.0, ci if side == "buy" else 0.0, trigger)
                stt["fees"] = stt.get("fees", 0.0) + fv
                orders.append({"bar": i, "symbol": s, "side": side, "quantity": qty, "price": price, "fee": fv,
                               "kind": kind, "capped": capped, "trigger": trigger})
                stops.track(s, n0, acct.position(), price, trigger)
            return liquidated
        stops.move_best(s, acct.position(), p)
        cur = p
    return liquidated


def _long_like(hb, db, mlr):
    return hb - mlr * db >= 0.0


def _liq_one(i, a, s, acct, trigger, long_like, gap, slippage, prof, mode, orders, liquidations, traded=None,
             stops=None, mkt=None):
    """``stops``: tracks entry and best at the fill (``mkt`` the market a
    position it leaves starts from, default the trigger)."""
    n0 = acct.position()
    ev = acct.liquidate(trigger, slippage, prof.liquidation_fee, prof.restore_ml, mode, long_like, traded,
                        prof.liquidation_ml)
    if ev is None:
        return False
    if stops is not None:
        stops.track(s, n0, acct.position(), ev["fill_price"], trigger if mkt is None else mkt)
    liquidations.append({"bar": i, "account": a, "margin_level": prof.report(ev["margin_level"]), "fee": ev["fee"],
                         "equity_before": ev["equity_before"], "equity_after": ev["equity_after"],
                         "bad_debt": ev["bad_debt"], "gap": gap})
    orders.append({"bar": i, "symbol": s, "side": ev["side"], "quantity": ev["quantity"],
                   "price": ev["fill_price"], "fee": ev["fee"], "kind": "liquidation", "capped": False,
                   "event": len(liquidations) - 1})
    return True


def _gate(acct, side, q, p, o, fee, m0, w):
    """MC "Cross borrow cap": assets − m0·debt of the whole account after
    trading q (the borrowed amount with its first hour, unrounded)."""
    hb, hq, db, dq = acct.hb, acct.hq, acct.pb + acct.ib, acct.pq + acct.iq
    if side == "buy":
        own = min(hq, q * p)
        hq, dq = hq - own, dq + (q * p - own) * (1.0 + acct.rq)
        g = q * (1.0 - fee)
        rep = min(g, db)
        db, hb = db - rep, hb + g - rep
    else:
        own = min(hb, q)
        hb, db = hb - own, db + (q - own) * (1.0 + acct.rb)
        g = q * p * (1.0 - fee)
        rep = min(g, dq)
        dq, hq = dq - rep, hq + g - rep
    return w + hq + hb * o - m0 * (dq + db * o)


def _cross_cap_norepay(acct, side, p, o, fee, m0, w):
    """MC "Auto-repay off in a cross account of several symbols", *Cross
    borrow cap without repayment*: nothing received repays, so the gate is
    linear past q1 with no break; the cap is ``max(q*, q1)``, the one-symbol
    no-repay ``q*`` with ``W`` added to its numerator (no cap when its
    denominator is not positive)."""
    db, dq = acct.pb + acct.ib, acct.pq + acct.iq
    if side == "buy":
        k = m0 * (1.0 + acct.rq)
        den = k * p - (1.0 - fee) * o
        q1 = acct.hq / p
        num = w + (acct.hb - m0 * db) * o + k * acct.hq - m0 * dq
    else:
        k = m0 * (1.0 + acct.rb)
        den = k * o - (1.0 - fee) * p
        q1 = acct.hb
        num = w + acct.hq - m0 * dq - m0 * db * o + k * acct.hb * o
    if den <= 0.0:
        return INF
    return max(num / den, q1)


def _cross_cap(acct, side, p, o, fee, m0, w, tol):
    """MC "Cross borrow cap": the largest q past what is held (q1) where the
    gate is still >= -tol; the gate is linear between q1, the break qb and
    beyond.  With auto-repay off: ``_cross_cap_norepay``."""
    if not acct.auto_repay:
        return _cross_cap_norepay(acct, side, p, o, fee, m0, w)
    if side == "buy":
        q1, q2 = acct.hq / p, (acct.pb + acct.ib) / (1.0 - fee)
    else:
        q1, q2 = acct.hb, (acct.pq + acct.iq) / ((1.0 - fee) * p)
    qb = max(q1, q2)
    f1, fb = _gate(acct, side, q1, p, o, fee, m0, w), _gate(acct, side, qb, p, o, fee, m0, w)
    if f1 < -tol:
        return q1
    if fb >= -tol:  # the root of the last piece: the one-symbol q* with w in its numerator
        db, dq = acct.pb + acct.ib, acct.pq + acct.iq
        if side == "buy":
            k = m0 * (1.0 + acct.rq)
            den = k * p - (1.0 - fee) * o
            qstar = ((acct.hb - db) * o + k * acct.hq - m0 * dq + w) / den if den > 0.0 else INF
        else:
            k = m0 * (1.0 + acct.rb)
            den = k * o - (1.0 - fee) * p
            qstar = (acct.hq - dq - m0 * db * o + k * acct.hb * o + w) / den if den > 0.0 else INF
        return max(qb, qstar)
    if f1 <= tol:  # already at the gate
        return q1
    return min(max(q1 + f1 * (qb - q1) / (f1 - fb), q1), qb)


def _market(acct, o, x, fee, slippage, m0, w, equity=None, cross=False, tol=0.0):
    """MC "Market order to target x at open O" on a six-number Account.
    ``cross``: a symbol of a cross account with several symbols (MC "Cross
    borrow cap", ``w`` the other symbols' term, ``equity`` the account's).
    Returns (side, q, price, fee value, capped, interest charge) or None."""
    e = acct.value(o) if equity is None else equity
    if e <= 0.0:
        return None
    t = x * e / o
    n = acct.position()
    delta = t - n
    if delta == 0.0 or (cross and abs(delta) * o <= 1e-9 * e):  # MC "Cross borrow cap": no dust order
        return None
    if not cross and abs(delta) <= 1e-9 * max(abs(t), abs(n)):  # MC: float noise, nothing to trade
        return None
    limited = None  # MC "Max borrow in a cross account of several symbols": (cap, may borrow) when it binds
    if delta > 0.0:
        side, p, q = "buy", o * (1.0 + slippage), delta / (1.0 - fee)
        if cross:
            cap = _cross_cap(acct, side, p, o, fee, m0, w, tol)
            borrows = cap > acct.hq / p
        else:  # one symbol in its account: the one-symbol model's cap (MC "Borrow cap"), its max borrow too
            cap, borrows = acct.buy_cap(q, p, o, fee, m0)
    else:
        side, p, q = "sell", o * (1.0 - slippage), -delta
        if cross:
            cap = _cross_cap(acct, side, p, o, fee, m0, w, tol)
            borrows = cap > acct.hb
        else:
            cap, borrows = acct.sell_cap(q, p, o, fee, m0)
    if cross:
        limited = _limit_cross_cap(acct, side, p, cap)
        if limited is not None:
            cap, borrows = limited
    capped = cap < q * (1.0 - 1e-9)
    if cross and cap <= q * 1e-9:  # MC "Cross borrow cap": a cap below 1e-9 of the order is nothing
        return None
    q = min(q, cap)
    if not cross and q <= 1e-12 * max(abs(t), abs(n)):  # MC "Borrow cap": cut to float noise, no fill recorded
        return None
    if cross:  # MC "Cross borrow cap": no loan of at most 1e-9 of the order
        held = acct.hq / p if side == "buy" else acct.hb
        if held < q <= held + 1e-9 * q:
            q = held
    if q <= 0.0:
        return None
    if limited is not None:  # MC "Max borrow ...": the buy (sell) may borrow only if there is room
        may = borrows
    else:
        may = borrows or (cross and (q * p > acct.hq if side == "buy" else q > acct.hb))
    if side == "buy":
        fv, ci = acct.buy(q, p, fee, may_borrow=may)
    else:
        fv, ci = acct.sell(q, p, fee, may_borrow=may)
    return side, q, p, fv, capped, ci


def _close(stt, assets, debt, owed, a, out):
    prof = stt["prof"]
    ml = INF if debt == 0.0 else assets / debt
    stt.update(eq=assets - debt, debt=debt, owed=owed, ml=prof.report(ml), prev_close_ml=ml)
    for key, col in (("eq", "equity"), ("debt", "debt"), ("ml", "margin_level"), ("paid", "interest_paid"),
                     ("owed", "interest_owed")):
        out[col][a].append(stt[key])


# ------------------------------------------------------------ several symbols
def _step_cross(i, t, a, stt, syms, has, opens, highs, lows, closes, mk_bars, last_close, slippage, fee, prof, mode,
                pending, orders, liquidations, margin_calls, int_base, int_quote, rate, out, subs=None):
    """MC "Several symbols", order of events, for an account with several
    symbols; its liquidation checks (gap, joint path, margin call) on the
    mark bars, orders and fills on the traded bars (MC "Mark price").
    ``subs``: the bar's usable finer bars (MC "Finer bars on a joint path"),
    per sub-step j the account's symbols' ``(O_j, H_j, L_j, C_j)`` (a symbol
    without a bar: its last close four times), or None."""
    book = stt["acct"]
    m = len(syms)
    tradable = [has[s][i] for s in syms]
    cur = [opens[s][i] if has[s][i] else last_close[s] for s in syms]
    cl = [closes[s][i] if has[s][i] else last_close[s] for s in syms]
    # the mark bars (a symbol without a bar: its last close, which does not move)
    m_open = [mk_bars[s][i][0] if has[s][i] else last_close[s] for s in syms]
    m_hi = [mk_bars[s][i][1] if has[s][i] else m_open[k] for k, s in enumerate(syms)]
    m_lo = [mk_bars[s][i][2] if has[s][i] else m_open[k] for k, s in enumerate(syms)]
    m_cl = [mk_bars[s][i][3] if has[s][i] else m_open[k] for k, s in enumerate(syms)]
    mlr = prof.liquidation_ml
    liquidated = False
    hour = t - t % 3600

    def charge_all(principals_b, principal_q, h):
        for k, s in enumerate(syms):
            cb = charge(principals_b[k], rate(s, h), book.round_interest) if principals_b[k] > 0.0 else 0.0
            book.base[k][2] += cb
            int_base[s] += cb
            stt["paid"] += cb * cur[k]
        cq = charge(principal_q, rate("quote", h), book.round_interest) if principal_q > 0.0 else 0.0
        book.iq += cq
        int_quote[a] += cq
        stt["paid"] += cq

    # 1. past hour boundaries since the account's last active time, each at the rates in force at it
    if stt["t_prev"] is not None:
        first = (stt["t_prev"] // 3600 + 1) * 3600
        for k in range(hour_boundaries_between(stt["t_prev"], t)):
            charge_all([b[1] for b in book.base], book.pq, first + 3600 * k)
    stops = stt["stops"]

    lims = stt["limits"]

    def set_aside(k, view):
        """MC "Limit orders in a cross account of several symbols", *Locked quote*: symbol k spends only the
        quote held beyond what the OTHER symbols' standing buy orders lock (``q·L`` each; a symbol's own order
        never locks against itself): the view's ``hq`` becomes ``max(hq − locked, 0)``.  Returns the amount
        set aside (0 without such orders), added back to ``hq`` after the operation (``restore``)."""
        locked = 0.0
        for j, sj in enumerate(syms):
            od = lims.standing[sj]
            if j != k and od is not None and od["side"] == "buy":
                locked += od["q"] * od["L"]
        if locked <= 0.0 or view.hq <= 0.0:
            return 0.0
        spendable = max(view.hq - locked, 0.0)
        aside = view.hq - spendable
        view.hq = spendable
        return aside

    def restore(view, aside):
        if aside != 0.0:
            view.hq += aside

    def order(k, prices, x, kind, trigger=None):
        """MC "Market order to target x" on symbol k at ``prices[k]``, the
        account's equity and the cross borrow cap with every symbol at
        ``prices``; recorded (with ``trigger`` for a stop's exit) and
        tracked (MC "Entry and best price").  The quote the other symbols'
        standing buy orders lock is set aside (MC "Limit orders in a cross
        account of several symbols", *Locked quote*): it stays in the
        account's equity and, in the cap, joins the other symbols' term
        ``W``."""
        s = syms[k]
        w = sum((book.base[j][0] - prof.initial_ml * (book.base[j][1] + book.base[j][2])) * prices[j]
                for j in range(m) if j != k)
        view = book.view(k, rate(s, hour), rate("quote", hour))
        a_, d_ = book.assets(prices), book.debt(prices)
        n0 = book.position(k)
        aside = set_aside(k, view)
        res = _market(view, prices[k], x, fee, slippage, prof.initial_ml, w + aside, equity=a_ - d_, cross=True,
                      tol=1e-9 * (a_ + d_))
        if res is None:
            return
        restore(view, aside)
        _flat_repay(stt, view)  # MC "Auto-repay off in a cross account of several symbols", *Repay on flat*
        book.store(k, view)
        side, qty, p, fv, capped, ci = res
        if side == "sell":
            int_base[s] += ci
            stt["paid"] += ci * prices[k]
        else:
            int_quote[a] += ci
            stt["paid"] += ci
        stt["fees"] = stt.get("fees", 0.0) + fv
        rec = {"bar": i, "symbol": s, "side": side, "quantity": qty, "price": p, "fee": fv, "kind": kind,
               "capped": capped}
        if trigger is not None:
            rec["trigger"] = trigger
            rec["path_prices"] = list(prices)  # where the equity and the cap were taken
        orders.append(rec)
        stops.track(s, n0, book.position(k), p, prices[k])

    def cancel(k):
        """MC "Limit orders", *Cancel*, of symbol k's standing order on its six numbers."""
        view = book.view(k, 0.0, 0.0)
        lims.cancel(view, syms[k])
        book.store(k, view)

    def place(k, x, lp):
        """MC "Limit orders in a cross account of several symbols", step 3: symbol k's limit order placed at
        its open, ``E``, ``A`` and ``D`` the account's at the current prices (after earlier symbols' orders);
        the shortfall borrowed into the account's ``pq`` (a buy) or the symbol's ``pb`` (a sell), its first
        hour at the bar's rate."""
        s = syms[k]
        view = book.view(k, rate(s, hour), rate("quote", hour))
        # *Locked quote*: the cap (hq + b_max)/L and the shortfall q·L − hq with hq less the other symbols'
        # locks; E, A and D (and so b_max) on the whole account
        aside = set_aside(k, view)
        placed = _place(view, cur[k], x, lp, fee, prof.initial_ml, book.assets(cur), book.debt(cur),
                        cross=True)
        if placed is None:
            return
        restore(view, aside)
        book.store(k, view)
        od, ci = placed
        od["placed"] = stops.own[s][i]
        lims.standing[s] = od
        if od["side"] == "sell":
            int_base[s] += ci
            stt["paid"] += ci * cur[k]
        else:
            int_quote[a] += ci
            stt["paid"] += ci

    def fill(k, price):
        """MC "Limit orders", *Fill*, of symbol k's standing order at ``price`` on its six numbers."""
        s = syms[k]
        view = book.view(k, rate(s, hour), rate("quote", hour))
        aside = set_aside(k, view)  # *Locked quote*: a buy pays from hq less the other symbols' locks
        stt["fees"] = stt.get("fees", 0.0) + _fill_limit(i, s, view, lims.standing[s], price, fee, orders, stops)
        restore(view, aside)
        book.store(k, view)
        lims.standing[s] = None

    # 2. gap liquidation at the current (mark) prices, filled at the traded opens
    if book.has_debt() and book.ml(m_open) <= mlr:
        # MC "Limit orders in a cross account of several symbols", step 2: the check with the orders; every
        # standing order of the account cancelled first (symbol order), then the liquidation
        for k, s in enumerate(syms):
            if lims.standing[s] is not None:
                cancel(k)
        if _liq_cross(i, a, syms, book, m_open, cur, tradable, True, slippage, prof, mode, orders, liquidations,
                      stops=stops, mkt=cur):
            liquidated = _after_gap(stt, syms, pending)
    # 3. pending orders in symbol order; each symbol's standing limit order cancelled first when a new order is
    # pending or its e own bars are up (MC "Limit orders in a cross account of several symbols")
    pb0 = [b[1] for b in book.base]
    pq0 = book.pq
    for k, s in enumerate(syms):
        if not tradable[k]:
            continue
        if lims.standing[s] is not None and (pending[s] is not None or lims.expired(s, stops.own[s][i])):
            cancel(k)
        if pending[s] is None:
            continue
        x, kind, lp = pending[s]
        pending[s] = None
        if lp is None:
            order(k, cur, x, kind)
        else:
            place(k, x, lp)
    # 4. the whole hour at this open
    if t % 3600 == 0:
        charge_all([min(pb0[k], book.base[k][1]) for k in range(m)], min(pq0, book.pq), hour)
    # 6. margin call level of the state after step 4 (θ = 1), at the marks' adverse extremes
    ml_x = None
    if book.has_debt():
        ext = _extremes(book, m_open, m_hi, m_lo, mlr)
        ml_x = book.ml(ext)
    hi = [highs[s][i] if has[s][i] else cur[k] for k, s in enumerate(syms)]
    lo = [lows[s][i] if has[s][i] else cur[k] for k, s in enumerate(syms)]
    if subs is None and stt["detailed"]:
        # MC "Finer bars on a joint path", detail_missing_bars: no usable detail, and step 5 on the bar could
        # fire something (a stop level inside the bar, a standing limit order's price inside its symbol's bar,
        # or the margin level at the adverse extremes at or below the liquidation level up to 1e-9)
        if (ml_x is not None and ml_x <= mlr * (1.0 + 1e-9)) or (
                stt["stops_on"] and _could_stop(stt["stops"], syms, book, tradable, hi, lo, i)) or (
                _could_fill(stt["limits"], syms, tradable, hi, lo)):
            stt["detail_missing"] += 1
    if subs is not None:
        # 5. MC "Finer bars on a joint path": step 5 on each sub-step j in time order, with the state the one
        # before left, as if the sub-bars j were the bar (no mark series here: the traded sub-bars are the
        # marks); its liquidations record theta j + θ (without stops) or 3j + (k − 1) + θ (with stops); no step 2
        # before a sub-step after the first: there opens at or beyond the level fire (sub-step 0's are the bar's)
        for j, sub in enumerate(subs):
            so, sh, sl, sc = ([x[p] for x in sub] for p in range(4))
            # with stops on, or a limit order of the account standing at the start of sub-step j: the joint walk
            # on the sub-bars, each standing order one more level of its symbol
            if stt["stops_on"] or any(lims.standing[s] is not None for s in syms):
                ops = (cancel, fill) if stt["limited"] else None
                liquidated = _walk_cross(i, a, stt, syms, book, tradable, so, sh, sl, sc, slippage, prof, mode,
                                         orders, liquidations, order, theta0=3.0 * j, opens_fire=j > 0,
                                         limit_ops=ops) or liquidated
            else:  # (theta 3j + θ when the account has stops or limit orders: MC, one scale a bar)
                liquidated = _joint_path(i, a, syms, book, tradable, so, sh, sl, sh, sl, slippage, prof, mode,
                                         orders, liquidations, theta0=3.0 * j if stt["limited"] else float(j),
                                         opens_fire=j > 0) or liquidated
    elif stt["stops_on"] or any(lims.standing[s] is not None for s in syms):
        # 5. with stops on, or a limit order of the account standing (MC "Limit orders in a cross account of
        # several symbols", step 5: also without stops): "Stops on a joint path" (with mark series: the
        # liquidation on the paired mark path), the orders levels of their symbols on the traded path
        mk = (m_open, m_hi, m_lo, m_cl) if stt["marked"] else None
        ops = (cancel, fill) if stt["limited"] else None
        liquidated = _walk_cross(i, a, stt, syms, book, tradable, cur, hi, lo, cl, slippage, prof, mode, orders,
                                 liquidations, order, marks=mk, limit_ops=ops) or liquidated
    else:
        # 5. the joint path of the marks, up to 8 times
        liquidated = _joint_path(i, a, syms, book, tradable, m_open, m_hi, m_lo, hi, lo, slippage, prof, mode,
                                 orders, liquidations) or liquidated
    if ml_x is not None and ml_x <= prof.margin_call_ml and stt["prev_close_ml"] > prof.margin_call_ml:
        margin_calls.append({"bar": i, "account": a, "margin_level": ml_x})
    # 7.
    owed = book.iq + sum(book.base[k][2] * cl[k] for k in range(m))
    _close(stt, book.assets(cl), book.debt(cl), owed, a, out)
    return liquidated


def _joint_path(i, a, syms, book, tradable, m_open, m_hi, m_lo, hi, lo, slippage, prof, mode, orders, liquidations,
                theta0=0.0, opens_fire=False):
    """MC "Joint path": step 5 of an account with several symbols without
    stops, on the (mark) bars ``m_open``, ``m_hi``, ``m_lo`` (a symbol with
    ``a_s − M·d_s = 0``, or without a bar, at its current price), up to 8
    times; each symbol fills at its mark at θ clamped into its traded bar's
    ``[lo, hi]`` (a symbol without a bar is not traded).  ``theta0``: what
    the recorded theta adds to θ (the sub-step j with finer bars).
    ``opens_fire`` (a sub-step after the first: MC "Finer bars on a joint path" read with
    "Finer bars settle the path"): opens at or beyond the level (``f0 ≤ 0``)
    are liquidated there (θ = 0) also when ``g == 0`` (the sub-bars' opens
    at their adverse extremes), as one symbol's sub-bar opening beyond
    ``P_liq`` is; on a bar step 2 has checked the opens.  Returns whether a
    liquidation happened."""
    m = len(syms)
    mlr = prof.liquidation_ml
    liquidated = False
    for _ in range(8):
        if not book.has_debt():
            break
        ext = _extremes(book, m_open, m_hi, m_lo, mlr)
        coef = [b[0] - mlr * (b[1] + b[2]) for b in book.base]
        f0 = sum(coef[k] * m_open[k] for k in range(m)) + book.hq - mlr * (book.pq + book.iq)
        g = sum(coef[k] * (ext[k] - m_open[k]) for k in range(m))
        if (g == 0.0 and not (opens_fire and f0 <= 0.0)) or f0 + g > 0.0:
            break
        theta = max(0.0, -f0 / g) if g != 0.0 else 0.0
        trig = [m_open[k] + theta * (ext[k] - m_open[k]) for k in range(m)]
        at = [min(max(trig[k], lo[k]), hi[k]) if tradable[k] else trig[k] for k in range(m)]
        if not _liq_cross(i, a, syms, book, trig, at, tradable, theta == 0.0, slippage, prof, mode, orders,
                          liquidations, theta=theta0 + theta):
            break  # MC "No empty liquidations"
        liquidated = True
    return liquidated


def _could_stop(stops, syms, book, tradable, hi, lo, i):
    """MC "Stops on a joint path", the quiet bar's test of the levels: a held
    symbol with a bar has a level inside its bar (a level firing as the price
    falls at or above its low, one firing as it rises at or below its high;
    the trailing level taken at the best price the bar can bring)."""
    for k, s in enumerate(syms):
        n = book.position(k)
        if not tradable[k] or n == 0.0:
            continue
        for kind, lv, falls in stops.levels(s, n, i):
            if kind == "trailing_stop":
                best = max(stops.best[s], hi[k]) if n > 0.0 else min(stops.best[s], lo[k])
                lv = best * (1.0 - stops.tr[s]) if n > 0.0 else best * (1.0 + stops.tr[s])
            if (lo[k] <= lv) if falls else (hi[k] >= lv):
                return True
    return False


def _could_fill(lims, syms, tradable, hi, lo):
    """MC "Finer bars on a joint path", ``detail_missing_bars``: a symbol with
    a bar whose range reaches its standing limit order's price (a buy's at
    or above the low, a sell's at or below the high)."""
    for k, s in enumerate(syms):
        od = lims.standing[s]
        if tradable[k] and od is not None and ((lo[k] <= od["L"]) if od["side"] == "buy" else (hi[k] >= od["L"])):
            return True
    return False


def _leg_hit(leg, a_, b_, lv, falls):
    """MC "Stops on a joint path", *Events on a leg*: where the level ``lv``
    (firing as the price falls to it, ``falls``, else rises) is reached on a
    leg from ``a_`` to ``b_``: (θ, trigger) or None.  On leg 1 a level the
    open is already beyond fires at θ = 0, trigger the open; a falling leg
    reaches a falling-fire level ``lv ≥ b_`` at ``θ = (a_ − lv)/(a_ − b_)``,
    trigger ``lv`` (θ = 0, trigger ``a_`` when ``lv ≥ a_``); a rising leg
    mirrored; a leg that does not move, none."""
    if leg == 1 and ((lv >= a_) if falls else (lv <= a_)):
        return 0.0, a_  # at the open: every level the open is already beyond
    if b_ < a_ and falls and lv >= b_:
        return (0.0, a_) if lv >= a_ else ((a_ - lv) / (a_ - b_), lv)
    if b_ > a_ and not falls and lv <= b_:
        return (0.0, a_) if lv <= a_ else ((lv - a_) / (b_ - a_), lv)
    return None


def _extremes(book, cur, hi, lo, mlr):
    ext = []
    for k, b in enumerate(book.base):
        coef = b[0] - mlr * (b[1] + b[2])
        ext.append(lo[k] if coef > 0.0 else (hi[k] if coef < 0.0 else cur[k]))
    return ext


def _liq_cross(i, a, syms, book, trig, at, tradable, gap, slippage, prof, mode, orders, liquidations, stops=None,
               mkt=None, theta=0.0):
    """MC "Cross liquidation" at trigger prices ``trig`` (its margin level and
    fee), the fills at the traded prices ``at`` ± slippage (MC "Mark price":
    the triggers themselves without a mark series).  ``stops``: entry and
    best tracked at each symbol's fill (the market: ``mkt``, the traded
    prices the fills are at before slippage, default the triggers; a cross
    liquidation only reduces, so it never sets a new entry with auto-repay
    on).  ``theta``: where on the
    bar's joint path (recorded; 0 at the gap)."""
    m = len(syms)
    n0 = [book.position(k) for k in range(m)]
    assets = book.assets(trig)
    debt = book.debt(trig)
    if debt == 0.0:
        # nothing owed (a standing order's loan repaid by the cancel a liquidation makes first, MC "Limit orders
        # in a cross account of several symbols", step 5): nothing to liquidate (MC "No empty liquidations")
        return False
    ml_before = assets / debt
    eq_before = assets - debt
    fee_value = prof.liquidation_fee * assets
    if not book.auto_repay:
        # MC "Auto-repay off in a cross account of several symbols", *Cross liquidation*: the ML, equity before
        # and fee above on the books before the netting; then every asset nets, and what follows runs on the
        # netted books (the netting stays also when nothing is then filled or written off)
        book.net()
    pf = [at[k] * (1.0 - slippage) if book.base[k][0] > 0.0 else at[k] * (1.0 + slippage)
          for k in range(m)]
    L = sum(book.base[k][0] * pf[k] for k in range(m) if tradable[k])
    Sh = sum((book.base[k][1] + book.base[k][2]) * pf[k] for k in range(m) if tradable[k])
    A2 = sum(book.base[k][0] * trig[k] for k in range(m) if not tradable[k])
    D2 = sum((book.base[k][1] + book.base[k][2]) * trig[k] for k in range(m) if not tradable[k])
    K = book.hq - book.pq - book.iq
    M = prof.restore_ml
    if mode == "full":
        lam = 1.0
    else:
        lam = None
        if L > 0.0:
            l1 = (M * (Sh + D2 - K + fee_value) - L - A2) / (L * (M - 1.0))
            if K + l1 * (L - Sh) - fee_value <= 0.0:
                lam = l1
        if lam is None:
            lam = (M * (Sh + D2) + fee_value - L - A2 - K) / (Sh * (M - 1.0)) if Sh > 0.0 else 1.0
        lam = min(max(lam, 0.0), 1.0)
    if (lam <= 0.0 or L + Sh <= 0.0) and (any(b[0] > 0.0 for b in book.base) or book.hq >= book.pq + book.iq):
        return False  # MC "No empty liquidations": it would fill nothing and write nothing off
    qty = [0.0] * m
    filled = []
    cash = book.hq
    for k in range(m):
        b = book.base[k]
        if tradable[k] and b[0] > 0.0:
            qty[k] = b[0] if lam == 1.0 else lam * b[0]
            b[0] -= qty[k]
            cash += qty[k] * pf[k]
            filled.append(k)
    cash -= fee_value
    if cash < 0.0:
        fee_value += cash
        cash = 0.0
    cost = 0.0
    shorts = []
    for k in range(m):
        b = book.base[k]
        if tradable[k] and b[1] + b[2] > 0.0:
            qty[k] = (b[1] + b[2]) if lam == 1.0 else lam * (b[1] + b[2])
            cost += qty[k] * pf[k]
            shorts.append(k)
    cut = cost > cash
    scale = cash / cost if cut else 1.0
    if cut:
        cost = cash
    cash -= cost
    for k in shorts:
        b = book.base[k]
        bought = qty[k] * scale
        if cut:  # MC "No empty liquidations": the record closes the whole debt, the shortfall is bad debt
            qty[k] = b[1] + b[2]
        owed = [b[2], b[1]]
        left = _repay(bought, owed)
        b[2], b[1] = owed
        b[0] += left
        filled.append(k)
    owed = [book.iq, book.pq]
    book.hq = _repay(cash, owed)
    book.iq, book.pq = owed
    book.clean()
    bad = 0.0
    price_after = [pf[k] if tradable[k] else trig[k] for k in range(m)]
    if cut or (all(b[0] == 0.0 for b in book.base) and book.pq + book.iq > 0.0):
        bad = book.debt(price_after)
        book.pq = book.iq = 0.0
        for b in book.base:
            b[1] = b[2] = 0.0
    eq_after = max(book.assets(price_after) - book.debt(price_after), 0.0)
    liquidations.append({"bar": i, "account": a, "margin_level": prof.report(ml_before), "fee": fee_value,
                         "equity_before": eq_before, "equity_after": eq_after, "bad_debt": bad, "gap": gap,
                         "theta": theta})
    # MC "Cross liquidation": "one liquidation fill per symbol that traded".  A symbol that both sold and bought
    # back (base held and base interest owed at once: with limit orders, what a cancelled sell order's borrowing
    # was charged stays owed, MC "Limit orders", *Cancel*) both sells and buys back; its one fill record has the
    # buy-back's side and quantity (MC "Limit orders in a cross account of several symbols", step 5), at the
    # symbol's one fill price
    for k in sorted(set(filled)):
        orders.append({"bar": i, "symbol": syms[k], "side": "sell" if k not in shorts else "buy",
                       "quantity": qty[k], "price": pf[k], "fee": 0.0, "kind": "liquidation", "capped": False,
                       "event": len(liquidations) - 1})
        if stops is not None:
            stops.track(syms[k], n0[k], book.position(k), pf[k], trig[k] if mkt is None else mkt[k])
    return True


def _walk_cross(i, a, stt, syms, book, tradable, cur, hi, lo, cl, slippage, prof, mode, orders, liquidations,
                order, marks=None, theta0=0.0, opens_fire=False, limit_ops=None):
    """MC "Stops on a joint path", steps 5 of an account with several
    symbols (the margin call, step 6, was taken before on the state after
    step 4).  Directions fixed from that state; three legs along which every
    symbol moves together; on each leg the events by θ (ties: liquidation,
    stop-loss, trailing, take-profit, then symbol order), each on the state
    the one before left; ``best`` moves at each leg's end.  ``order(k,
    prices, x, kind, trigger)`` is the account's market order.  Returns
    whether a liquidation happened.

    ``marks``: None (no mark series in the account: one path), or the mark
    bars ``(open, high, low, close)`` per symbol (the traded bar where a
    symbol has no series or its series lacks the bar; the last close without
    a bar): MC "With mark series", the liquidation's θ on the mark path
    (the same directions, leg k paired with the traded leg k), its trigger
    prices the marks at θ, its fills the marks at θ clamped into the traded
    ``[lo, hi]``.

    ``theta0``: what a liquidation's recorded theta adds to ``(k − 1) + θ``
    on leg k (``3j`` in sub-step j with finer bars, the walk then on the
    sub-bars j: MC "Finer bars on a joint path").  ``opens_fire`` (a
    sub-step after the first): on leg 1 the liquidation also fires at θ = 0 when the opens
    are at or beyond its level (``f0 ≤ 0``) and ``g == 0``, "a level an open
    is already beyond firing there" as in one symbol's sub-bar walk.

    ``limit_ops``: None (the account has no limit orders), or ``(cancel(k),
    fill(k, price))`` on symbol k's standing order (``stt["limits"]``): MC
    "Limit orders in a cross account of several symbols", step 5.  Each
    standing order of a symbol with a bar is one more level of its symbol
    on the traded path (a buy fires where the price falls to ``L``, a sell
    where it rises to it; on leg 1 at θ = 0, trigger the open, when the
    open is already at or beyond ``L``; the trigger ``L`` or the leg's start
    when that is already beyond it); ties after the stops, then symbol
    order.  A flat symbol (``d`` would be 0) with a bar and a standing order
    walks ``O → H → L → C``.  A liquidation cancels every order of the
    account first, a stop its symbol's; a fill is no stop event."""
    stops = stt["stops"]
    lims = stt["limits"] if limit_ops is not None else None
    m = len(syms)
    mlr = prof.liquidation_ml
    liquidated = False
    # 2. directions, from the state after step 4: the position's adverse extreme first ("pessimistic");
    # d = 0 (flat, or no bar): the current price the whole bar.  The mark path in the same order (Lm first
    # when d = +1), ending at the mark close; d = 0: the current mark the whole bar
    pts, mpts = [], []
    for k in range(m):
        b = book.base[k]
        coef = b[0] - mlr * (b[1] + b[2])
        mo_k, mh_k, ml_k, mc_k = (marks[0][k], marks[1][k], marks[2][k], marks[3][k]) if marks else (None,) * 4
        # a flat symbol with a standing order: d = −1 (the one-symbol walk counts no position as short)
        standing = lims is not None and lims.standing[syms[k]] is not None
        if tradable[k] and coef > 0.0:
            pts.append((cur[k], lo[k], hi[k], cl[k]))
            mpts.append((mo_k, ml_k, mh_k, mc_k))
        elif tradable[k] and (coef < 0.0 or (coef == 0.0 and standing)):
            pts.append((cur[k], hi[k], lo[k], cl[k]))
            mpts.append((mo_k, mh_k, ml_k, mc_k))
        else:
            pts.append((cur[k],) * 4)
            mpts.append((mo_k,) * 4)
    if marks is None:  # both paths are the traded one
        mpts = pts
    # 3. before leg 1, best of each held symbol at its open (its current price)
    for k, s in enumerate(syms):
        stops.move_best(s, book.position(k), pts[k][0])
    stopped = [False] * m  # a symbol has at most one stop event in a bar
    # a symbol whose limit order filled in this bar: its levels from then on are the fill's, not levels that
    # stood at the open
    filled = [False] * m
    n_liq = 0
    liq_off = False  # MC "No empty liquidations": the level is off for the rest of the bar
    for leg in (1, 2, 3):
        A = [pts[k][leg - 1] for k in range(m)]
        B = [pts[k][leg] for k in range(m)]
        Am = [mpts[k][leg - 1] for k in range(m)]  # the mark leg paired with it
        Bm = [mpts[k][leg] for k in range(m)]

        def at(theta):
            return [A[k] + theta * (B[k] - A[k]) for k in range(m)]

        def mark_at(theta):
            return [Am[k] + theta * (Bm[k] - Am[k]) for k in range(m)]

        last = 0.0  # θ of the last event on this leg
        while True:
            events = []  # (θ, priority, symbol order, kind, trigger)
            # liquidation, on the mark leg: leg 1 the joint path's rule (nothing when g == 0, else
            # θ = max(0, −f0/g) when f0 + g <= 0); legs 2 and 3 the first θ with f0 + g·θ <= 0
            # (θ = 0 when f0 <= 0 already, whatever g)
            if not liq_off and book.has_debt():
                coef = [b[0] - mlr * (b[1] + b[2]) for b in book.base]
                f0 = sum(coef[k] * Am[k] for k in range(m)) + book.hq - mlr * (book.pq + book.iq)
                g = sum(coef[k] * (Bm[k] - Am[k]) for k in range(m))
                theta = None
                if (leg > 1 or opens_fire) and f0 <= 0.0:
                    theta = 0.0
                elif g < 0.0:
                    # leg 1 "(where g ≤ 0)": the joint path's rule, nothing when g = 0.  After a stop's exit with
                    # auto-repay off (a flat symbol still owing base, d fixed at the bar's start) g can be > 0
                    # on leg 1: then f is lowest at the leg's start and nothing fires on leg 1 (read
                    # literally: f0 + g <= 0 would put θ = −f0/g at or past its end); leg 2 at θ = 0 fires
                    # when f0 <= 0 there
                    if f0 <= 0.0:
                        theta = 0.0
                    elif f0 + g <= 0.0:
                        theta = -f0 / g
                if theta is not None:
                    events.append((max(theta, last), PRIORITY["liquidation"], -1, "liquidation", None))
            # stop levels of each symbol with a bar, still held, no stop event yet in this bar
            for k, s in enumerate(syms):
                n = book.position(k)
                if not tradable[k] or stopped[k] or n == 0.0:
                    continue
                a_, b_ = A[k], B[k]
                # MC "Limit orders in a cross account of several symbols", step 5: "a level the fill sets fires
                # where the symbol's path reaches it after the fill, moving in the leg's direction (leg 1's rule
                # for a level the open is already beyond is for the levels that stood at the open)".  After the
                # symbol's fill (also one at θ = 0: its levels did not stand at the open either) its levels take
                # the rule of a leg after the first: at the leg's start only when the leg moves toward the level
                # and the start is already beyond it, else where the path crosses it; one the path is already
                # beyond at the fill, moving toward it, fires at the fill's θ (the clamp below)
                at_open = leg == 1 and not filled[k]
                for kind, lv, falls in stops.levels(s, n, i):
                    hit = _leg_hit(1 if at_open else 2, a_, b_, lv, falls)
                    if hit is None:
                        continue
                    theta, trigger = hit
                    if theta < last:  # a level found before the last event's θ (e.g. of a position a limit
                        theta, trigger = last, at(last)[k]  # fill opened there) happens there
                    events.append((theta, PRIORITY[kind], k, kind, trigger))
            # the standing limit orders of the symbols with a bar, at their limit price on the traded leg
            for k, s in enumerate(syms):
                od = lims.standing[s] if lims is not None else None
                if od is None or not tradable[k]:
                    continue
                hit = _leg_hit(leg, A[k], B[k], od["L"], od["side"] == "buy")
                if hit is None:
                    continue
                theta, trigger = hit
                if theta < last:  # (never: the limit does not move and events come in θ order)
                    theta, trigger = last, at(last)[k]
                events.append((theta, PRIORITY["limit"], k, "limit", trigger))
            if not events:
                break
            theta, _, k, kind, trigger = min(events)
            prices = at(theta)
            if kind == "limit":  # filled at its trigger, no stop event; the leg goes on with the new state
                limit_ops[1](k, trigger)
                filled[k] = True
                last = theta
                continue
            if kind == "liquidation" and lims is not None:  # every standing order of the account cancelled first
                for j, sj in enumerate(syms):
                    if lims.standing[sj] is not None:
                        limit_ops[0](j)
            if kind == "liquidation":
                if marks is None:  # one path: triggered and filled at the path's prices
                    trig = fills = prices
                else:  # the marks at θ; each tradable symbol fills at its mark clamped into its traded bar
                    trig = mark_at(theta)
                    fills = [min(max(trig[k], lo[k]), hi[k]) if tradable[k] else trig[k] for k in range(m)]
                # a position the liquidation leaves with no entry price (base interest alone, auto-repay off)
                # starts its best at its fill before slippage, the mark at θ clamped into the traded bar (MC
                # "Stops on a joint path": "for a liquidation's fill the symbol's traded price there before
                # slippage"; "Cross liquidation": with mark series that traded price is the clamped mark), not
                # at the traded path's price at θ
                if not _liq_cross(i, a, syms, book, trig, fills, tradable, leg == 1 and theta == 0.0, slippage,
                                  prof, mode, orders, liquidations, stops=stops, mkt=fills,
                                  theta=theta0 + (leg - 1) + theta):
                    liq_off = True
                    continue
                liquidated = True
                last = theta
                n_liq += 1
                if n_liq == 8:  # at most 8 in a bar; then the bar's walk stops
                    return liquidated
                continue
            # a stop, trailing or take-profit exit: the symbol's market order to 0 at its trigger, the others
            # at their path prices
            s = syms[k]
            if lims is not None and lims.standing[s] is not None:  # the symbol's standing order cancelled first
                limit_ops[0](k)
            stopped[k] = True
            stt["suspended"][s] = True
            prices[k] = trigger
            order(k, prices, 0.0, kind, trigger)
            last = theta
        # at the leg's end, best of the symbols still held
        for k, s in enumerate(syms):
            stops.move_best(s, book.position(k), B[k])
    return liquidated
