"""Independent reference model of the single-symbol margin account.

Written from ``shared/spec/margin-model.md`` (the exchange rules) and
``docs/model-choices.md`` (the choices the kernel makes where the spec is
open) alone, without looking at the compiled kernel.  Plain Python, one bar
at a time, one step at a time, so that each line can be checked against the
two documents.  Section references ("MC step 3", "spec §4") point at them.

Scope: one symbol, one account (cross and isolated behave the same), market
orders to a target exposure, Classic and isolated profiles.
"""

from __future__ import annotations

import bisect
import math

INF = math.inf

# Amounts below this (in units of the asset) left after a repayment are dust
# and set to 0 (MC "State").  Read here as: after every trade or liquidation
# (each one repays something), each of the six state numbers below it is 0.
DUST = 1e-12

# name -> (max leverage L, margin-call ML, liquidation ML, liquidation fee)
# The initial ML is L/(L-1) (spec §2); partial liquidation restores it.
PROFILES = {
    "cross-3x": (3.0, 1.3, 1.1, 0.02),
    "cross-5x": (5.0, 1.16, 1.1, 0.02),
    "isolated-3x": (3.0, 1.22, 1.18, 0.02),
    "isolated-5x": (5.0, 1.19, 1.15, 0.02),
    "isolated-10x": (10.0, 1.1, 1.05, 0.02),
    # Cross Margin Pro: no margin call, liquidation at Pro ML <= 1.0, fee 3 %, MMR 5 %
    "cross-pro-10x": (10.0, None, 1.0, 0.03, 0.05),
    "cross-pro-20x": (20.0, None, 1.0, 0.03, 0.05),
}


class Profile:
    """Levels as assets / debt ratios, the terms the account works in.

    Cross Margin Pro (spec §2) measures ML_pro = (A − D) / (mmr·D) with one
    MMR for every asset, so ML_pro = m  <=>  A / D = 1 + mmr·m: liquidation
    at ML_pro <= 1 is A/D <= 1 + mmr; the partial liquidation restores
    ML_pro = 2, A/D = 1 + 2·mmr; the borrow gate "net equity >= debt/(L-1)"
    is A/D >= L/(L-1), the classic initial ML. Pro has no margin call.
    ``report`` turns an A/D ratio into the ML the profile shows.
    """

    def __init__(self, leverage, margin_call_ml, liquidation_ml, liquidation_fee, mmr=None,
                 max_borrow_base=INF, max_borrow_quote=INF):
        self.leverage = float(leverage)
        # MC "Borrow cap": the most principal of each asset owed at once (custom profiles)
        self.max_borrow_base = float(max_borrow_base)
        self.max_borrow_quote = float(max_borrow_quote)
        self.initial_ml = self.leverage / (self.leverage - 1.0)
        self.liquidation_fee = float(liquidation_fee)
        if mmr:
            self.margin_call_ml = -math.inf if margin_call_ml is None else 1.0 + mmr * float(margin_call_ml)
            self.liquidation_ml = 1.0 + mmr * float(liquidation_ml)
            self.restore_ml = 1.0 + 2.0 * mmr
            self.report = lambda ml: (ml - 1.0) / mmr
        else:
            self.margin_call_ml = -math.inf if margin_call_ml is None else float(margin_call_ml)
            self.liquidation_ml = float(liquidation_ml)
            self.restore_ml = self.initial_ml
            self.report = lambda ml: ml

    @classmethod
    def get(cls, profile):
        if isinstance(profile, Profile):
            return profile
        return cls(*PROFILES[profile])


def charge(principal, hourly_rate, round_up=True):
    """One hour's interest on ``principal`` (MC "Interest")."""
    if round_up:
        return math.ceil(principal * hourly_rate * 1e8 - 1e-6) / 1e8
    return principal * hourly_rate


def hour_boundaries_between(t_prev, t_now):
    """Number of whole hours h (h = k*3600) with t_prev < h < t_now."""
    if t_now <= t_prev:
        return 0
    return (t_now - 1) // 3600 - t_prev // 3600


class Account:
    """The six state numbers of MC "State", in asset units.

    hb base held, hq quote held, pb base principal, ib base interest owed,
    pq quote principal, iq quote interest owed.
    """

    def __init__(self, capital, rate_base_hourly=0.0, rate_quote_hourly=0.0,
                 round_interest=True, auto_repay=True):
        self.hb = 0.0
        self.hq = float(capital)
        self.pb = 0.0
        self.ib = 0.0
        self.pq = 0.0
        self.iq = 0.0
        self.rb = float(rate_base_hourly)
        self.rq = float(rate_quote_hourly)
        self.round_interest = round_interest
        self.max_borrow_base = INF  # MC "Borrow cap": per-asset max borrow, set by simulate
        self.max_borrow_quote = INF
        self.auto_repay = auto_repay  # MC "Auto-repay off": proceeds stay as balance
        self.manual_loans = False  # MC "Manual loans": a liquidation nets first (set by simulate)

    # ------------------------------------------------------------ valuation
    def assets(self, price):
        return self.hb * price + self.hq

    def debt(self, price):
        return (self.pb + self.ib) * price + self.pq + self.iq

    def has_debt(self):
        return (self.pb + self.ib + self.pq + self.iq) > 0.0

    def value(self, price):
        """Equity E = A - D at ``price``."""
        return self.assets(price) - self.debt(price)

    def margin_level(self, price):
        d = self.debt(price)
        if d == 0.0:
            return INF
        return self.assets(price) / d

    def position(self):
        """Net base N = hb - (pb + ib)."""
        return self.hb - (self.pb + self.ib)

    def snap_flat(self):
        """MC "State": after a fill with auto-repay off, base held and owed
        within 1e-9*hb of each other cancel exactly (hb = pb + ib)."""
        n = self.position()
        if n != 0.0 and abs(n) <= 1e-9 * self.hb:
            self.hb = self.pb + self.ib

    def net(self):
        """MC "Auto-repay off": each asset's balance repays that asset's debt.
        At a flat position the base held and owed cancel outright."""
        if self.position() == 0.0:
            self.hb = self.pb = self.ib = 0.0
        else:
            self.hb = self.repay("base", self.hb)
        self.hq = self.repay("quote", self.hq)
        self.clean()

    def liquidation_price(self, mlr):
        """MC step 5: (a, P_liq) with a = hb - MLR*(pb+ib).

        Returns (a, None) when nothing is to be checked (no debt, or a == 0
        with ML above MLR at every price) or when P_liq <= 0 with a > 0 (no
        liquidation possible).  With a < 0 and P_liq <= 0, or a == 0 and
        hq <= MLR*dq, ML is at or below MLR at every price (e.g. a buy-back
        that spent all the quote, base still owed; loans left running while
        flat): (a, 0.0), a level every price reaches, so it fires at the open.
        """
        a = self.hb - mlr * (self.pb + self.ib)
        if not self.has_debt():
            return a, None
        if a == 0.0:  # ML - MLR = (hq - MLR*dq) / (db*P + dq): its sign does not depend on the price
            return a, (0.0 if self.hq <= mlr * (self.pq + self.iq) else None)
        p = (mlr * (self.pq + self.iq) - self.hq) / a
        if p <= 0.0:
            return a, (0.0 if a < 0.0 else None)
        return a, p

    def clean(self):
        """Dust rule: after a trade or a liquidation (each repays), any of the
        six numbers below DUST is set to 0."""
        for name in ("hb", "hq", "pb", "ib", "pq", "iq"):
            if abs(getattr(self, name)) < DUST:
                setattr(self, name, 0.0)

    # ------------------------------------------------------- borrow / repay
    def _charge(self, principal, rate):
        return charge(principal, rate, self.round_interest)

    def borrow(self, asset, amount):
        """Borrow ``amount`` of 'base' or 'quote'; one hour's interest is added
        at once (spec §4, MC "Buy q at P").  Returns the charge (asset units)."""
        if amount <= 0.0:
            return 0.0
        if asset == "base":
            c = self._charge(amount, self.rb)
            self.pb += amount
            self.ib += c
        else:
            c = self._charge(amount, self.rq)
            self.pq += amount
            self.iq += c
        return c

    def repay(self, asset, amount):
        """Repay with ``amount`` of the asset: interest first, then principal.
        Returns what is left of ``amount``.  Debt left below DUST is zeroed."""
        if amount <= 0.0:
            return amount
        if asset == "base":
            x = min(amount, self.ib)
            self.ib -= x
            amount -= x
            y = min(amount, self.pb)
            self.pb -= y
            amount -= y
            if self.ib < DUST:
                self.ib = 0.0
            if self.pb < DUST:
                self.pb = 0.0
        else:
            x = min(amount, self.iq)
            self.iq -= x
            amount -= x
            y = min(amount, self.pq)
            self.pq -= y
            amount -= y
            if self.iq < DUST:
                self.iq = 0.0
            if self.pq < DUST:
                self.pq = 0.0
        return amount

    def charge_interest(self, base_principal=None, quote_principal=None):
        """One hour's interest on the given principals (default: outstanding
        now), each asset charged and rounded separately.  Returns
        (base charge, quote charge) in asset units."""
        if base_principal is None:
            base_principal = self.pb
        if quote_principal is None:
            quote_principal = self.pq
        cb = self._charge(base_principal, self.rb) if base_principal > 0.0 else 0.0
        cq = self._charge(quote_principal, self.rq) if quote_principal > 0.0 else 0.0
        self.ib += cb
        self.iq += cq
        return cb, cq

    # --------------------------------------------------------------- trades
    def buy_cap(self, q, price, open_price, fee, m0):
        """MC "Borrow cap", buy side: (cap, borrows) for a buy of q at price,
        within the per-asset max borrow of quote."""
        if q * price <= self.hq:
            return q, False
        cap, borrows = self._buy_cap_ml(q, price, open_price, fee, m0)
        if self.max_borrow_quote == INF:
            return cap, borrows
        room = self.max_borrow_quote - self.pq
        if room <= 1e-9 * self.max_borrow_quote:  # MC: a loan at its limit (float noise) has no room
            room = 0.0
        if (self.hq + room) / price < cap:
            return (self.hq + room) / price, room > 0.0
        return cap, borrows

    def _buy_cap_ml(self, q, price, open_price, fee, m0):
        db = self.pb + self.ib
        dq = self.pq + self.iq
        if not self.auto_repay:  # MC "Auto-repay off": the base bought repays nothing
            qstar = ((self.hb - m0 * db) * open_price + m0 * (1.0 + self.rq) * self.hq - m0 * dq) / (
                m0 * (1.0 + self.rq) * price - (1.0 - fee) * open_price)
            if qstar >= self.hq / price:
                return qstar, True
            return self.hq / price, False
        qstar = ((self.hb - db) * open_price + m0 * (1.0 + self.rq) * self.hq - m0 * dq) / (
            m0 * (1.0 + self.rq) * price - (1.0 - fee) * open_price)
        # MC "Borrow cap": q* >= hq/P and q*·(1−f) >= Db·(1 − 1e-9), then at least Db/(1−f)
        if qstar >= self.hq / price and qstar * (1.0 - fee) >= db * (1.0 - 1e-9):
            return max(qstar, db / (1.0 - fee)), True
        return self.hq / price, False

    def sell_cap(self, q, price, open_price, fee, m0):
        """MC "Borrow cap", sell side: (cap, borrows) for a sell of q at price,
        within the per-asset max borrow of base."""
        if q <= self.hb:
            return q, False
        cap, borrows = self._sell_cap_ml(q, price, open_price, fee, m0)
        if self.max_borrow_base == INF:
            return cap, borrows
        room = self.max_borrow_base - self.pb
        if room <= 1e-9 * self.max_borrow_base:
            room = 0.0
        if self.hb + room < cap:
            return self.hb + room, room > 0.0
        return cap, borrows

    def _sell_cap_ml(self, q, price, open_price, fee, m0):
        db = self.pb + self.ib
        dq = self.pq + self.iq
        if not self.auto_repay:  # MC "Auto-repay off": the proceeds repay nothing
            qstar = (self.hq - m0 * dq - m0 * db * open_price + m0 * (1.0 + self.rb) * self.hb * open_price) / (
                m0 * (1.0 + self.rb) * open_price - (1.0 - fee) * price)
            if qstar >= self.hb:
                return qstar, True
            return self.hb, False
        qstar = (self.hq - dq - m0 * db * open_price + m0 * (1.0 + self.rb) * self.hb * open_price) / (
            m0 * (1.0 + self.rb) * open_price - (1.0 - fee) * price)
        # MC "Borrow cap": q* >= hb and q*·(1−f)·P >= dq·(1 − 1e-9), then at least dq/((1−f)·P)
        if qstar >= self.hb and qstar * (1.0 - fee) * price >= dq * (1.0 - 1e-9):
            return max(qstar, dq / ((1.0 - fee) * price)), True
        return self.hb, False

    def buy(self, q, price, fee, may_borrow=True):
        """Buy q base at price: pay q*P quote (shortfall borrowed), receive
        q*(1-f) base which repays ib, then pb, the rest is held.
        Returns (fee value in quote, quote interest charged)."""
        cost = q * price
        c = 0.0
        if cost <= self.hq or not may_borrow:
            left = max(self.hq - cost, 0.0)
            self.hq = 0.0 if left <= 1e-9 * self.hq else left  # MC "State": relative dust of the payment
        else:
            b = cost - self.hq
            self.hq = 0.0
            c = self.borrow("quote", b)
        got = q * (1.0 - fee)
        self.hb += self.repay("base", got) if self.auto_repay else got
        self.clean()
        if not self.auto_repay:
            self.snap_flat()
        return q * fee * price, c

    def sell(self, q, price, fee, may_borrow=True):
        """Sell q base at price: take q from hb (shortfall borrowed), receive
        q*P*(1-f) quote which repays iq, then pq, the rest is held.
        Returns (fee value in quote, base interest charged)."""
        c = 0.0
        if q <= self.hb or not may_borrow:
            left = max(self.hb - q, 0.0)
            self.hb = 0.0 if left <= 1e-9 * self.hb else left
        else:
            b = q - self.hb
            self.hb = 0.0
            c = self.borrow("base", b)
        got = q * price * (1.0 - fee)
        self.hq += self.repay("quote", got) if self.auto_repay else got
        self.clean()
        if not self.auto_repay:
            self.snap_flat()
        return q * price * fee, c

    # ---------------------------------------------------------- liquidation
    def liquidate(self, trigger, slippage, fee_rate, restore_ml, mode, long_like, traded=None, mlr=None):
        """MC "Liquidation".  Returns the event dict (without 'bar'), or None
        when there is nothing to liquidate (MC "No empty liquidations").
        ``traded``: the traded price the fill is at (MC "Mark price"); default the trigger."""
        pt = trigger
        base_price = pt if traded is None else traded
        ml_before = self.margin_level(pt)
        eq_before = self.value(pt)
        fee_value = fee_rate * self.assets(pt)
        m = restore_ml
        bad_debt = 0.0
        # MC "Auto-repay off": net first, side from what is left; MC "Manual loans", A liquidation: so too in a
        # run with manual loans, also with auto-repay on
        if not self.auto_repay or self.manual_loans:
            self.net()
            long_like = _is_long_like(self, mlr)
        if long_like:
            pf = base_price * (1.0 - slippage)
            b_held = self.hb
            q_held = self.hq
            dq = self.pq + self.iq
            if mode == "full":
                s = b_held
            else:
                s = (m * (dq + fee_value) - (b_held * pf + q_held)) / (pf * (m - 1.0))
                s = min(max(s, 0.0), b_held)
            if s <= 0.0 and (b_held > 0.0 or q_held >= dq):
                return None  # MC "No empty liquidations": nothing to sell, nothing written off
            self.hb = max(self.hb - s, 0.0)
            cash = self.hq + s * pf - fee_value
            if cash < 0.0:  # MC "Liquidation": the fee only as far as collateral covers it
                fee_value += cash
                cash = 0.0
            self.hq = 0.0
            self.hq = self.repay("quote", cash)
            self.clean()
            if self.hb == 0.0 and self.has_debt():
                bad_debt = self.debt(pf)
                self.pb = self.ib = self.pq = self.iq = 0.0
            side = "sell"
        else:
            pf = base_price * (1.0 + slippage)
            db = self.pb + self.ib
            if mode == "full":
                s = db
            else:
                s = (m * db * pf + fee_value - self.hq) / (pf * (m - 1.0))
                s = min(max(s, 0.0), db)
            cut = s * pf + fee_value > self.hq
            if s <= 0.0 and not cut:
                return None  # MC "No empty liquidations": nothing to buy back
            bought = s
            if cut:  # MC "No empty liquidations": the record closes the whole debt, the shortfall is bad debt
                bought = max((self.hq - fee_value) / pf, 0.0)
                fee_value = min(fee_value, self.hq)  # MC "Liquidation": the fee is then at most hq
                s = db
            self.hq = 0.0 if cut else self.hq - (bought * pf + fee_value)
            left = self.repay("base", bought)
            self.hb += left
            self.clean()
            if cut and self.has_debt():
                bad_debt = self.debt(pf)
                self.pb = self.ib = self.pq = self.iq = 0.0
            side = "buy"
        eq_after = max(self.value(pf), 0.0)
        return {
            "trigger_price": pt,
            "fill_price": pf,
            "margin_level": ml_before,
            "fee": fee_value,
            "equity_before": eq_before,
            "equity_after": eq_after,
            "bad_debt": bad_debt,
            "quantity": s,
            "side": side,
        }


def repay_cancelled(acct, side, b):
    """MC "Limit orders", Cancel: the principal ``b`` a limit order borrowed
    (quote for a buy, base for a sell) repaid from the holding, ``min(b,
    held, principal)``; dust cleaned; interest charged stays owed."""
    if b > 0.0:
        if side == "buy":
            r = min(b, acct.hq, acct.pq)
            acct.hq -= r
            acct.pq -= r
        else:
            r = min(b, acct.hb, acct.pb)
            acct.hb -= r
            acct.pb -= r
        acct.clean()


def _is_long_like(acct, mlr):
    a = acct.hb - mlr * (acct.pb + acct.ib)
    if a > 0.0:
        return True
    if a < 0.0:
        return False
    return (acct.pb + acct.ib) == 0.0


def path_hit(kind, lv, falls, k, o, cur, p):
    """MC "Step 5 with stops on": the level ``lv`` (firing when the price
    falls to it, ``falls``, else rises) on segment ``k`` of the path, from
    ``cur`` to ``p`` (k = 0: at the open ``o``, every level already
    passed): ``[]``, or ``[(order key, priority, kind, trigger)]``."""
    if k == 0:
        return [(0.0, PRIORITY[kind], kind, o)] if ((lv >= o) if falls else (lv <= o)) else []
    if p < cur and falls and lv >= p:  # falling: the highest first
        return [(-lv, PRIORITY[kind], kind, min(lv, cur))]
    if p > cur and not falls and lv <= p:  # rising: the lowest first
        return [(lv, PRIORITY[kind], kind, max(lv, cur))]
    return []


# MC "Stops, take-profits and the path inside a bar": who goes first when
# several levels are at the same price, or all passed at the open
PRIORITY = {"liquidation": 0, "stop_loss": 1, "trailing_stop": 2, "take_profit": 3, "limit": 4}


def _price(values, i):
    """A strategy's per-bar price ``values[i]``, or None (no array, NaN, i < 0)."""
    if values is None or i < 0:
        return None
    v = float(values[i])
    return None if math.isnan(v) else v


def simulate(timestamps, open, high, low, close, targets, *, profile, capital, fee,
             slippage, rate_base_daily, rate_quote_daily, liquidation="partial",
             rebalance=0.0, round_interest=True, stop_loss=0.0, take_profit=0.0,
             trailing_stop=0.0, path="ohlc-heuristic", mark=None, rate_hours=None, detail=None,
             limit=None, expiry=1, sl_price=None, tp_price=None, auto_repay=True, repay_on_flat=False,
             transfers=(), reserve=0.0, top_up=None, keep_ml=None, auto_borrow=True, borrow=None,
             repay=None):
    """Run one symbol through the bars (MC "Order of events in bar i").

    ``timestamps`` are int seconds (UTC); ``targets`` one float per bar, NaN
    holds.  Returns per-bar lists ``equity, margin_level, position, debt,
    interest_owed, interest_paid`` (cumulative charges valued at each bar's
    open) and ``fees_paid`` (cumulative trading fees, quote; liquidation fees
    are reported in the events), and event lists ``liquidations`` (bar,
    trigger_price, fill_price, margin_level, fee, equity_before, equity_after,
    bad_debt, quantity), ``margin_calls`` (bar, margin_level) and ``orders``
    (bar, side, quantity, price, fee in quote, kind, capped), and per bar
    ``ambiguous`` (MC "Ambiguous bar").  ``mark``: (open, high, low) lists
    of the mark price per bar (MC "Mark price"), default the traded bars.
    ``rate_hours``: (h0, base rates, quote rates), hourly rates of the whole
    hours h0, h0+1, ... (in hours since the epoch) (MC "Rate histories");
    default the constant daily rates / 24.  ``auto_repay=False``: MC
    "Auto-repay off"; ``repay_on_flat``: its repayment at a flat fill.
    ``detail``: (timeframe, detail timeframe, times, opens, highs, lows,
    closes), the finer bars (MC "Finer bars settle the path"), times and
    timeframes in seconds.
    ``limit``: a limit price per bar (NaN = market) for the target decided
    there, standing ``expiry`` bars (MC "Limit orders"); ``sl_price``,
    ``tp_price``: a strategy's stop-loss / take-profit price per bar (NaN =
    the fraction), in force in the next bar (MC "Levels from a strategy").
    Also returns ``n_cancelled``.
    ``transfers``: scheduled moves ``(time_seconds, amount)`` (+ a deposit into
    ``hq``, − a withdrawal), ``reserve``: the trader's money kept outside the
    account, ``top_up``: None (with a reserve: ``("ml", M0)``), ``("ml", X)``
    or ``("amount", A)`` (MC "Transfers and a reserve").  Also returns
    ``transfers`` (one dict per move: bar, amount (signed, + into the
    account), requested (signed likewise), reason 'scheduled' | 'withdrawal' |
    'top-up', price, margin_level_before, margin_level_after (as reported,
    ``Profile.report``), capped, reserve_after) and per bar ``reserve`` (R at
    the close) and ``net_transfers`` (F at the close).
    ``keep_ml``: the safety buffer X (MC Transfers, "A safety buffer"; auto-repay on, liquidation ML
    < X < M0, in the account's A/D terms): a deleverage order back to M0 where ML reaches X, at the
    open (0b) and on the path (5'), recorded in ``orders`` with kind 'deleverage'.
    ``auto_borrow=False``: an order never borrows (MC Transfers, "Manual loans", ``--no-auto-borrow``): a
    buy takes at most ``hq/P``, a sell at most ``hb``, a cut order is recorded capped.  ``borrow``,
    ``repay``: None or ``{"base": amounts, "quote": amounts}`` (either key optional, one amount per bar in
    that asset; NaN or 0 nothing, else > 0; a repay may be +inf, all that is owed): the amount at bar t is
    done at the open of bar t+1 (step 0c).  Also returns ``loans`` (one dict per row of loans.csv: bar,
    asset 'base' | 'quote', amount (>= 0, what moved), requested, reason 'borrow' | 'repay', price (the
    traded open), margin_level_before, margin_level_after (as reported, ``Profile.report``, at the open),
    capped).  A loan is no transfer: ``transfers`` and ``net_transfers`` do not see it.
    """
    given = any(_price(a, k) is not None for a in (sl_price, tp_price) if a is not None for k in range(len(a)))
    stops_on = stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0 or given
    prof = Profile.get(profile)
    m0 = prof.initial_ml
    mlr = prof.liquidation_ml
    mcl = prof.margin_call_ml
    n = len(timestamps)

    # MC "Transfers and a reserve": the reserve R (quote, outside the account) and the net scheduled
    # transfers F.  "Not yet" with stops, take-profit, trailing, a strategy's limit orders or levels and
    # --detail: the engine refuses the combination, so the reference does not define it.
    if transfers or reserve > 0.0 or keep_ml is not None:
        has_limit = limit is not None and any(_price(limit, k) is not None for k in range(len(limit)))
        assert not stops_on and not has_limit and detail is None, \
            "MC Transfers: not with stops, take-profit, trailing, limit orders or finer bars"
    # MC Transfers, "Manual loans": the amounts per bar, checked (NaN or 0: nothing; otherwise > 0; only a
    # repay may be +inf); "Not yet" with stops, take-profit, trailing, limit orders or levels and --detail
    loan_plan = {}
    for reason, given_ in (("repay", repay), ("borrow", borrow)):
        for asset, amounts in (given_ or {}).items():
            assert asset in ("base", "quote"), "MC Manual loans: the symbol's base or quote"
            assert len(amounts) == n, "MC Manual loans: one amount per bar"
            vals = [float(v) for v in amounts]
            for v in vals:
                assert math.isnan(v) or v >= 0.0, "MC Manual loans: an amount is NaN, 0 or > 0"
                # MC Manual loans: "otherwise > 0; repay may be +inf": a negative amount or a borrow of +inf is refused
                assert reason == "repay" or v != INF, "MC Manual loans: only a repay may be +inf"
            loan_plan[(reason, asset)] = vals
    if not auto_borrow or loan_plan:
        assert keep_ml is None, "MC Manual loans: --keep-ml is not combined with manual loans"
        has_limit = limit is not None and any(_price(limit, k) is not None for k in range(len(limit)))
        assert not stops_on and not has_limit and detail is None, \
            "MC Manual loans: not with stops, take-profit, trailing, limit orders or levels or finer bars"
    if top_up is None:
        top_up = ("ml", m0)  # MC Transfers: --top-up alone is ml=M0 on spot margin (A/D terms)
    tu_kind, tu_x = top_up[0], float(top_up[1])
    assert tu_kind in ("ml", "amount")
    if tu_kind == "ml":
        assert tu_x > mcl, "MC Transfers: --top-up ml=X needs X above the margin-call level"
    else:
        assert tu_x > 0.0
    if keep_ml is not None:  # MC Transfers, "A safety buffer": spot margin with auto-repay on, MLR < X < M0
        keep_ml = float(keep_ml)
        assert auto_repay, "MC Transfers: --keep-ml needs auto-repay"
        assert mlr < keep_ml < m0, "MC Transfers: --keep-ml X needs the liquidation level < X < M0"
    # in date order, then in the order given (sorted() is stable)
    schedule = sorted(((float(d), float(a)) for d, a in transfers), key=lambda r: r[0])

    acct = Account(capital, rate_base_daily / 24.0, rate_quote_daily / 24.0, round_interest, auto_repay)
    acct.max_borrow_base, acct.max_borrow_quote = prof.max_borrow_base, prof.max_borrow_quote
    acct.manual_loans = not auto_borrow or bool(loan_plan)

    def set_rates(t):
        """MC "Rate histories": the rates in force at the whole hour of ``t``."""
        if rate_hours is not None:
            h0, rbs, rqs = rate_hours
            k = t // 3600 - h0
            acct.rb, acct.rq = float(rbs[k]), float(rqs[k])

    out = {k: [] for k in ("equity", "margin_level", "position", "debt",
                           "interest_owed", "interest_paid", "fees_paid", "ambiguous",
                           "reserve", "net_transfers")}
    liquidations, margin_calls, orders = [], [], []
    flows = []                  # MC Transfers: the rows of transfers.csv
    loans = []                  # MC Transfers, "Manual loans": the rows of loans.csv
    reserve_left = float(reserve)  # R
    net_flows = 0.0             # F
    next_flow = 0               # the next scheduled transfer not yet made

    interest_paid = 0.0
    fees_paid = 0.0
    pending = None          # (target, kind) decided at the previous close
    last_target = None      # None: no target yet
    suspended = False       # rebalancing suspended by a liquidation
    prev_close_ml = INF     # "no debt" before the first bar
    entry = None            # average entry price of the open position
    best = None             # best price since it opened
    order = None            # the standing limit order (MC "Limit orders")
    n_cancelled = 0

    def track(n0, n1, price, mkt):
        """MC "Entry and best price", after a fill at ``price`` (market ``mkt``)."""
        nonlocal entry, best
        if n1 == 0.0:
            entry = best = None
        elif n0 == 0.0 or (n0 > 0.0) != (n1 > 0.0) or entry is None:
            entry, best = price, mkt
        elif abs(n1) > abs(n0):
            entry = (entry * abs(n0) + price * (abs(n1) - abs(n0))) / abs(n1)

    def do_liquidation(i, trigger, long_like, traded=None, mkt=None):
        """``mkt``: the market price a position it leaves starts from (MC
        "Entry and best price"; default the trigger)."""
        n0 = acct.position()
        ev = acct.liquidate(trigger, slippage, prof.liquidation_fee, prof.restore_ml, liquidation, long_like, traded,
                            mlr)
        if ev is None:
            return False
        ev["margin_level"] = prof.report(ev["margin_level"])
        side = ev.pop("side")
        ev["bar"] = i
        liquidations.append(ev)
        orders.append({"bar": i, "side": side, "quantity": ev["quantity"],
                       "price": ev["fill_price"], "fee": ev["fee"],
                       "kind": "liquidation", "capped": False})
        track(n0, acct.position(), ev["fill_price"], trigger if mkt is None else mkt)
        return True
        # fees_paid counts trading fees only; liquidation fees are in the events

    def execute_order(i, o, x, kind):
        """MC "Market order to target x at open O"."""
        nonlocal fees_paid, interest_paid
        e = acct.value(o)
        if e <= 0.0:
            return
        t = x * e / o
        n = acct.position()
        delta = t - n
        if abs(delta) <= 1e-9 * max(abs(t), abs(n)):  # MC: float noise, nothing to trade
            return
        if delta > 0.0:
            side = "buy"
            p = o * (1.0 + slippage)
            q = delta / (1.0 - fee)
            if auto_borrow:
                cap, borrows = acct.buy_cap(q, p, o, fee, m0)
            else:  # MC "Manual loans", --no-auto-borrow: at most what the quote held pays, hq/P
                cap, borrows = (q if q * p <= acct.hq else acct.hq / p), False
        else:
            side = "sell"
            p = o * (1.0 - slippage)
            q = -delta
            if auto_borrow:
                cap, borrows = acct.sell_cap(q, p, o, fee, m0)
            else:  # MC "Manual loans", --no-auto-borrow: at most the base held, hb
                cap, borrows = min(q, acct.hb), False
        capped = cap < q * (1.0 - 1e-9)
        q = min(q, cap)
        if q <= 1e-12 * max(abs(t), abs(n)):
            # cut to nothing (already at the borrow limit), or to float noise (MC "Borrow cap"): no fill, no record
            return
        n0 = acct.position()
        if side == "buy":
            fv, ci = acct.buy(q, p, fee, may_borrow=borrows)
            interest_paid += ci
        else:
            fv, ci = acct.sell(q, p, fee, may_borrow=borrows)
            interest_paid += ci * o
        fees_paid += fv
        if repay_on_flat and not auto_repay and acct.position() == 0.0:
            acct.net()  # MC "Repay on flat": before step 4
        orders.append({"bar": i, "side": side, "quantity": q, "price": p,
                       "fee": fv, "kind": kind, "capped": capped})
        track(n0, acct.position(), p, o)

    def flow_row(i, moved, requested, reason, price, before):
        """MC Transfers, "Records": one row per move; capped when less moved than asked (1e-12 relative)."""
        flows.append({"bar": i, "amount": moved, "requested": requested, "reason": reason, "price": price,
                      "margin_level_before": prof.report(before),
                      "margin_level_after": prof.report(acct.margin_level(price)),
                      "capped": abs(moved) < abs(requested) * (1.0 - 1e-12), "reserve_after": reserve_left})

    def loan_row(i, asset, moved, requested, reason, o, before):
        """MC "Manual loans", Records: one row per repay or borrow asked, levels at the traded open O;
        capped when less moved than asked (1e-12 relative, as transfers.csv)."""
        loans.append({"bar": i, "asset": asset, "amount": moved, "requested": requested, "reason": reason,
                      "price": o, "margin_level_before": prof.report(before),
                      "margin_level_after": prof.report(acct.margin_level(o)),
                      "capped": moved < requested * (1.0 - 1e-12)})

    def manual_repay(i, o, asset, r):
        """MC "Manual loans", Repay r: what is held of the asset repays its debt, interest first, then
        principal: x = min(r, held, interest owed + principal); then dust is cleaned.  With r = +inf the
        request is what is owed before the repay (nothing owed: no row)."""
        held, owed = (acct.hb, acct.ib + acct.pb) if asset == "base" else (acct.hq, acct.iq + acct.pq)
        if r == INF:
            if owed <= 0.0:
                return
            r = owed
        # MC Manual loans: a finite repay with nothing owed (or nothing held) is still a row, moving 0 (capped)
        before = acct.margin_level(o)
        x = min(r, held, owed)
        if x > 0.0:
            acct.repay(asset, x)  # interest first, then principal (x <= owed: nothing left over)
            if asset == "base":
                acct.hb -= x
            else:
                acct.hq -= x
            acct.clean()  # MC "Manual loans": when x > 0 (a repay that moves nothing changes nothing)
        loan_row(i, asset, x, r, "repay", o, before)

    def manual_borrow(i, o, asset, b):
        """MC "Manual loans", Borrow b: at most (A − M0·D)/(v·(M0·(1 + r_a) − 1)) at O (v = O for base,
        1 for quote; none when A <= M0·D, no limit when M0·(1 + r_a) <= 1) and at most the room under the
        profile's max borrow, limit − principal (a room of at most 1e-9·limit is none).  What is taken is
        held and owed, with one hour's interest at once (counted as interest paid, valued at O)."""
        nonlocal interest_paid
        v, rate, limit_, principal = ((o, acct.rb, acct.max_borrow_base, acct.pb) if asset == "base"
                                      else (1.0, acct.rq, acct.max_borrow_quote, acct.pq))
        before = acct.margin_level(o)
        room = acct.assets(o) - m0 * acct.debt(o)
        k = m0 * (1.0 + rate) - 1.0
        # MC "Manual loans": none when A − M0·D <= 1e-9·M0·D (an account at M0 up to float noise)
        cap = 0.0 if room <= 1e-9 * m0 * acct.debt(o) else (INF if k <= 0.0 else room / (v * k))
        if limit_ != INF:
            left = limit_ - principal
            cap = min(cap, 0.0 if left <= 1e-9 * limit_ else left)
        taken = min(b, cap)
        # MC Manual loans: a borrow the caps cut to nothing is still a row (amount 0, capped), with no charge
        if taken > 0.0:
            c = acct.borrow(asset, taken)  # principal += b', interest owed += charge(b') (rounded up)
            if asset == "base":
                acct.hb += taken
                interest_paid += c * o
            else:
                acct.hq += taken
                interest_paid += c
        # MC Manual loans: the doc cleans dust after a repay only; a borrow is no order, so no cleaning here
        loan_row(i, asset, taken, b, "borrow", o, before)

    def scheduled_transfer(i, o, amount):
        """MC Transfers, step 0a: a deposit goes into hq; a withdrawal leaves hq, capped at the traded
        open O to hq without debt, else to min(hq, A(O) − M0·D(O)) (>= 0: only quote held leaves and ML
        stays at or above the initial level)."""
        nonlocal net_flows
        before = acct.margin_level(o)
        if amount >= 0.0:
            moved = amount
        else:
            room = acct.hq if not acct.has_debt() else min(acct.hq, acct.assets(o) - m0 * acct.debt(o))
            moved = -min(-amount, max(room, 0.0))
        receive(moved)
        net_flows += moved
        flow_row(i, moved, amount, "scheduled" if amount >= 0.0 else "withdrawal", o, before)

    def receive(amount):
        """MC Transfers: money into the account repays the quote loan first with auto-repay on
        (interest, then principal), the rest is hq; out of it (< 0) leaves hq."""
        acct.hq += acct.repay("quote", amount) if (amount > 0.0 and acct.auto_repay) else amount

    def wanted(p):
        """MC Transfers, "A top-up at price P": T = X·D(P) − A(P) (ml=X); with auto-repay, money that
        repays: T = D(P) − A(P)/X when that is at most the quote owed Dq, else X·Db·P + Dq − A(P);
        T = A (amount=A)."""
        if tu_kind != "ml":
            return tu_x
        if not acct.auto_repay:
            return tu_x * acct.debt(p) - acct.assets(p)
        dq = acct.pq + acct.iq
        t = acct.debt(p) - acct.assets(p) / tu_x
        return t if t <= dq else tu_x * (acct.pb + acct.ib) * p + dq - acct.assets(p)

    def do_top_up(i, p):
        """MC Transfers, "A top-up at price P": min(T, R) moves from the reserve into the account
        (``receive``; not part of F).  Returns whether anything moved."""
        nonlocal reserve_left
        want = wanted(p)
        if want <= 0.0 or reserve_left <= 0.0:
            return False
        before = acct.margin_level(p)
        moved = min(want, reserve_left)
        reserve_left -= moved
        if reserve_left <= 1e-12 * moved:  # MC Transfers: what is left at float-residue size is 0
            reserve_left = 0.0
        receive(moved)
        flow_row(i, moved, want, "top-up", p, before)
        return True

    def deleverage(i, pk):
        """MC Transfers, "A safety buffer": a deleverage order at Pk that brings ML at Pk back to M0,
        filled at Pf = Pk·(1 ∓ slippage) with the trading fee (in the asset received), never borrowing.
        Long (owing quote Dq, holding B, hq = 0): sell s = (M0·Dq − B·Pk)/(M0·Pf·(1−f) − Pk), at most B;
        the proceeds repay iq, then pq.  Short (holding Q, owing base Db): buy
        q = (M0·Db·Pk − Q)/(M0·Pk·(1−f) − Pf), at most what closes the base debt (q·(1−f) = Db) and
        what hq pays (q·Pf <= hq); the base received repays ib, then pb.  Nothing when the amount is
        <= 0 (or the fill cannot raise ML: a denominator <= 0).  Returns whether it filled."""
        nonlocal fees_paid
        n0 = acct.position()
        db = acct.pb + acct.ib
        if acct.hb - keep_ml * db > 0.0:  # long-like: falling prices hurt
            side = "sell"
            pf = pk * (1.0 - slippage)
            num = m0 * (acct.pq + acct.iq) - acct.hb * pk
            den = m0 * pf * (1.0 - fee) - pk
            if num <= 0.0 or den <= 0.0:
                return False
            want = num / den
            q = min(want, acct.hb)
        else:
            side = "buy"
            pf = pk * (1.0 + slippage)
            num = m0 * db * pk - acct.hq
            den = m0 * pk * (1.0 - fee) - pf
            if num <= 0.0 or den <= 0.0:
                return False
            want = num / den
            q = min(want, db / (1.0 - fee), acct.hq / pf)
        if q <= 1e-9 * (acct.hb if side == "sell" else db):  # MC "A safety buffer": float noise is no fill
            return False
        if side == "sell":
            fv, _ = acct.sell(q, pf, fee, may_borrow=False)
        else:
            fv, _ = acct.buy(q, pf, fee, may_borrow=False)
        fees_paid += fv
        orders.append({"bar": i, "side": side, "quantity": q, "price": pf, "fee": fv, "kind": "deleverage",
                       "capped": q < want * (1.0 - 1e-9)})
        track(n0, acct.position(), pf, pk)
        return True

    def path_top_ups(i, mo, mh, ml_):
        """MC Transfers, step 5': at most 64 moves in a bar.  Each pass: while R > 0, the price Pc where
        ML = Mc (the liquidation-price formula with Mc for MLR), and with a safety buffer the price Pk
        where ML = X, on the side the position loses on (the sign of a, as in step 5); of those the
        adverse (mark) extreme reaches (long Ml <= P, short Mh >= P), the one the path reaches first
        (long: the higher trigger, short: the lower; a top-up on a tie), at the (mark) open when the bar
        opens past it.  A move that does nothing turns its kind off for the rest of the bar."""
        tops = mcl > 0.0  # no margin-call level (Cross Margin Pro): never a top-up
        keeps = keep_ml is not None
        for _ in range(64):
            if not acct.has_debt():  # MC Transfers: an account that can be liquidated
                return
            hits = []  # (order key, kind, price): the smallest key first
            if tops and reserve_left > 0.0:
                a, pc = acct.liquidation_price(mcl)
                if pc is not None and a > 0.0 and ml_ <= pc:
                    hits.append((-min(mo, pc), 0, min(mo, pc)))
                elif pc is not None and a <= 0.0 and mh >= pc:
                    hits.append((max(mo, pc), 0, max(mo, pc)))
            if keeps:
                a, pk = acct.liquidation_price(keep_ml)
                if pk is not None and a > 0.0 and ml_ <= pk:
                    hits.append((-min(mo, pk), 1, min(mo, pk)))
                elif pk is not None and a <= 0.0 and mh >= pk:
                    hits.append((max(mo, pk), 1, max(mo, pk)))
            if not hits:
                return
            _, kind, price = min(hits)
            if kind == 0:
                if not do_top_up(i, price):
                    tops = False
            elif not deleverage(i, price):
                keeps = False

    def levels(i):
        """(kind, level, fires when falling) of the open position in bar i."""
        d = 1.0 if acct.position() > 0.0 else -1.0
        out_ = []
        a, p_liq = acct.liquidation_price(mlr)
        if p_liq is not None:
            out_.append(("liquidation", p_liq, a > 0.0))
        if entry is None:  # a position no fill opened (interest on a zero net position)
            return out_
        slp, tpp = _price(sl_price, i - 1), _price(tp_price, i - 1)  # decided at the last close
        if slp is not None:
            out_.append(("stop_loss", slp, d > 0.0))
        elif stop_loss > 0.0:
            out_.append(("stop_loss", entry * (1.0 - d * stop_loss), d > 0.0))
        if trailing_stop > 0.0:
            out_.append(("trailing_stop", best * (1.0 - d * trailing_stop), d > 0.0))
        if tpp is not None:
            out_.append(("take_profit", tpp, d < 0.0))
        elif take_profit > 0.0:
            out_.append(("take_profit", entry * (1.0 + d * take_profit), d < 0.0))
        return out_

    def place(i, o, x, lim):
        """MC "Limit orders", step 3: place a limit order, borrowing at once."""
        nonlocal order, interest_paid
        e = acct.value(o)
        if e <= 0.0:
            return
        delta = x * e / lim - acct.position()
        if delta == 0.0:
            return
        # the borrow cap: what is borrowed is held and owed, ML at O stays >= M0:
        # (A + b*v) / (D + b*v*(1 + r)) >= M0, v the borrowed asset's price
        room = acct.assets(o) - m0 * acct.debt(o)
        if delta > 0.0:
            q = delta / (1.0 - fee)
            k = m0 * (1.0 + acct.rq) - 1.0
            b_max = 0.0 if room <= 0.0 else (INF if k <= 0.0 else room / k)
            cap = (acct.hq + b_max) / lim
            if acct.max_borrow_quote != INF:  # MC "Borrow cap": the per-asset max borrow caps it too
                left = acct.max_borrow_quote - acct.pq
                left = 0.0 if left <= 1e-9 * acct.max_borrow_quote else left
                cap = min(cap, (acct.hq + left) / lim)
        else:
            q = -delta
            k = m0 * (1.0 + acct.rb) - 1.0
            b_max = 0.0 if room <= 0.0 else (INF if k <= 0.0 else room / (o * k))
            cap = acct.hb + b_max
            if acct.max_borrow_base != INF:
                left = acct.max_borrow_base - acct.pb
                left = 0.0 if left <= 1e-9 * acct.max_borrow_base else left
                cap = min(cap, acct.hb + left)
        capped = cap < q * (1.0 - 1e-9)
        q = min(q, cap)
        if q <= 0.0:
            return
        if delta > 0.0:
            b = q * lim - acct.hq
            if b > 0.0:
                c = acct.borrow("quote", b)
                acct.hq += b
                interest_paid += c
        else:
            b = q - acct.hb
            if b > 0.0:
                c = acct.borrow("base", b)
                acct.hb += b
                interest_paid += c * o
        acct.clean()
        order = {"side": "buy" if delta > 0.0 else "sell", "q": q, "L": lim, "b": max(b, 0.0),
                 "placed": i, "capped": capped}

    def cancel():
        """MC "Limit orders", Cancel: the principal it borrowed is repaid."""
        nonlocal order, n_cancelled
        repay_cancelled(acct, order["side"], order["b"])
        order = None
        n_cancelled += 1

    def fill_limit(i, price):
        """MC "Limit orders", Fill: at ``price``, no slippage, never borrows."""
        nonlocal order, fees_paid
        n0 = acct.position()
        q = order["q"]
        if order["side"] == "buy":
            fv, _ = acct.buy(q, price, fee, may_borrow=False)
        else:
            fv, _ = acct.sell(q, price, fee, may_borrow=False)
        fees_paid += fv
        orders.append({"bar": i, "side": order["side"], "quantity": q, "price": price, "fee": fv,
                       "kind": "limit", "capped": order["capped"]})
        track(n0, acct.position(), price, price)
        order = None

    def sub_bars(i, t, o, h, lo, c):
        """MC "Finer bars": the usable sub-bars of bar i, or None."""
        if detail is None:
            return None
        tf, dtf, dts, do, dh, dl, dc = detail
        js = range(bisect.bisect_left(dts, t), bisect.bisect_left(dts, t + tf))  # times increase
        if len(js) != tf // dtf:
            return None
        subs = [(float(do[j]), float(dh[j]), float(dl[j]), float(dc[j])) for j in js]
        if (subs[0][0], max(s[1] for s in subs), min(s[2] for s in subs), subs[-1][3]) != (o, h, lo, c):
            return None
        return subs

    def intrabar_liquidations(i, mo, mh, ml_, lo, h):
        """MC step 5 without the walk: liquidation at the adverse extreme, up to 8 times."""
        nonlocal suspended
        for _ in range(8):
            a, p_liq = acct.liquidation_price(mlr)
            if p_liq is None:
                break
            if a > 0.0:
                if ml_ <= p_liq:
                    trigger = min(mo, p_liq)
                    if not do_liquidation(i, trigger, True, min(max(trigger, lo), h)):
                        break
                    suspended = True
                    continue
            else:
                if mh >= p_liq:
                    trigger = max(mo, p_liq)
                    # (a == 0, below at every price: long-like, as step 2 and the walk take it)
                    if not do_liquidation(i, trigger, _is_long_like(acct, mlr), min(max(trigger, lo), h)):
                        break
                    suspended = True
                    continue
            break

    def walk(i, o, h, lo, c, mk=None):
        """MC step 5 with stops on or a limit order standing; returns whether
        the bar is ambiguous.  ``mk``: the mark bar (open, high, low, close)
        the liquidation level is walked on (MC "Mark price"), or None."""
        nonlocal best, suspended
        long_ = acct.position() > 0.0
        if best is not None:
            best = max(best, o) if long_ else min(best, o)
        # ambiguous: the range reaches an adverse level and the take-profit
        adverse = favourable = False
        for kind, lv, falls in (levels(i) if stops_on and acct.position() != 0.0 else ()):
            if kind == "liquidation" and mk is not None:  # on the mark's range
                reached = mk[2] <= lv if falls else mk[1] >= lv
            else:
                reached = lo <= lv if falls else h >= lv
            if kind == "take_profit":
                favourable = reached
            elif reached:
                adverse = True
        ambiguous = adverse and favourable
        low_first = long_ if path == "pessimistic" else c >= o
        x1, x2 = (lo, h) if low_first else (h, lo)
        cur = o
        n_liq = 0
        liq_off = False  # an empty liquidation turns the level off for the rest of the bar
        if mk is not None:  # the mark's extremes in the traded path's order
            mo_, mh_, ml_, mc_ = mk
            mpath = (mo_, ml_, mh_, mc_) if low_first else (mo_, mh_, ml_, mc_)
            cm = mo_
        for k, p in enumerate((o, x1, x2, c)):
            while True:
                if acct.position() == 0.0 and order is None:
                    return ambiguous
                hits = []
                lv_all = [x for x in levels(i) if not (liq_off and x[0] == "liquidation")]
                if order is not None:
                    lv_all.append(("limit", order["L"], order["side"] == "buy"))
                for kind, lv, falls in lv_all:
                    if mk is not None:
                        on_mark = kind == "liquidation"
                        a, b = (cm, mpath[k]) if on_mark else (cur, p)
                        if k == 0:  # at the open: the mark open for liquidation, O for the rest
                            if (lv >= a) if falls else (lv <= a):
                                hits.append((0.0, PRIORITY[kind], kind, a))
                        elif b < a and falls and lv >= b:  # theta: the share of the segment's move
                            hits.append((max(a - lv, 0.0) / (a - b), PRIORITY[kind], kind, min(lv, a)))
                        elif b > a and not falls and lv <= b:
                            hits.append((max(lv - a, 0.0) / (b - a), PRIORITY[kind], kind, max(lv, a)))
                    else:
                        hits += path_hit(kind, lv, falls, k, o, cur, p)
                if not hits:
                    break
                hit = min(hits)
                kind, trigger = hit[-2], hit[-1]
                theta = hit[0] if mk is not None else 0.0
                if kind == "limit":
                    fill_limit(i, trigger)
                    if mk is not None and k > 0:
                        cm = cm + theta * (mpath[k] - cm)
                    cur = trigger
                    continue
                was = suspended
                suspended = True
                if order is not None:  # a forced exit cancels the standing order first
                    cancel()
                if kind == "liquidation":
                    traded = None if mk is None else min(max(trigger, lo), h)  # a mark trigger fills where it traded
                    if not do_liquidation(i, trigger, _is_long_like(acct, mlr), traded):
                        suspended = was  # nothing to liquidate (a cancelled order stays cancelled)
                        liq_off = True
                        continue
                    if mk is None:
                        cur = trigger
                    else:
                        if k > 0:
                            cur = cur + theta * (p - cur)
                        cm = trigger
                    n_liq += 1
                    if n_liq == 8:
                        return ambiguous
                else:
                    execute_order(i, trigger, 0.0, kind)
                    return ambiguous
            if best is not None:
                best = max(best, p) if acct.position() > 0.0 else min(best, p)
            cur = p
            if mk is not None:
                cm = mpath[k]
        return ambiguous

    for i in range(n):
        t = int(timestamps[i])
        o, h, lo, c = float(open[i]), float(high[i]), float(low[i]), float(close[i])
        if mark is None:
            mo, mh, ml_, mc = o, h, lo, c
        else:
            mo, mh, ml_ = float(mark[0][i]), float(mark[1][i]), float(mark[2][i])
            mc = float(mark[3][i]) if len(mark) > 3 else c

        # 1. past hour boundaries (inside the previous bar or in a data gap)
        if i > 0:
            t_prev = int(timestamps[i - 1])
            for k in range(hour_boundaries_between(t_prev, t)):
                set_rates((t_prev // 3600 + 1 + k) * 3600)  # the rate in force at that boundary
                cb, cq = acct.charge_interest()
                interest_paid += cb * o + cq
        set_rates(t)  # this bar's hour: borrows, the cap and the boundary at the open

        # 0a. MC Transfers: scheduled transfers due (first bar with t_i >= date), at the traded open
        while next_flow < len(schedule) and schedule[next_flow][0] <= t:
            scheduled_transfer(i, o, schedule[next_flow][1])
            next_flow += 1
        # 0c. MC Transfers, "Manual loans": the amounts of bar i−1 at the traded open, the repays first
        # (base, then quote), then the borrows (base, then quote)
        if i > 0:
            for asset in ("base", "quote"):
                r_ = loan_plan.get(("repay", asset), [0.0] * n)[i - 1]
                if r_ > 0.0:  # NaN or 0: nothing
                    manual_repay(i, o, asset, r_)
        # step 4's hour at the open: the principal after 0c's repays (before its borrows) counts too
        pb_repaid, pq_repaid = acct.pb, acct.pq
        if i > 0:
            for asset in ("base", "quote"):
                b_ = loan_plan.get(("borrow", asset), [0.0] * n)[i - 1]
                if b_ > 0.0:
                    manual_borrow(i, o, asset, b_)

        # 0b. MC Transfers: a top-up at the (mark) open when ML there is at or below the margin-call level
        if reserve_left > 0.0 and acct.has_debt() and acct.margin_level(mo) <= mcl:
            do_top_up(i, mo)
        # 0b. MC Transfers, "A safety buffer": a deleverage at the (mark) open when ML there is at or below X
        if keep_ml is not None and acct.has_debt() and acct.margin_level(mo) <= keep_ml:
            deleverage(i, mo)

        # 2. gap liquidation at the open (a standing limit order is cancelled first)
        if acct.has_debt() and acct.margin_level(mo) <= mlr:
            if order is not None:
                cancel()
            if do_liquidation(i, mo, _is_long_like(acct, mlr), o, o):  # best from the traded open
                # the strategy's new target still executes after it (step 3); a rebalance does not
                if pending is None or pending[1] == "rebalance":
                    pending = None
                    suspended = True

        # 3. pending market order at the open
        pb_before, pq_before = acct.pb, acct.pq
        if order is not None and (pending is not None or i >= order["placed"] + expiry):
            cancel()  # replaced by a new order, or its bars are up
        if pending is not None:
            x, kind, lim = pending
            pending = None
            if lim is None:
                execute_order(i, o, x, kind)
            else:
                place(i, o, x, lim)

        # 4. hour boundary at the open: on the least of the principal after 0c's repays (MC "Manual loans",
        # "The hour at that open"; without loans it is never below the one before step 3), before step 3
        # and after it
        if t % 3600 == 0:
            cb, cq = acct.charge_interest(min(pb_repaid, pb_before, acct.pb), min(pq_repaid, pq_before, acct.pq))
            interest_paid += cb * o + cq

        # state for the margin-call check (before step 5)
        if not acct.has_debt():
            ml_x = INF
        else:
            a = acct.hb - mlr * (acct.pb + acct.ib)
            if a > 0.0:
                ml_x = acct.margin_level(ml_)
            elif a < 0.0:
                ml_x = acct.margin_level(mh)
            else:  # not reachable with one symbol; take the worse extreme
                ml_x = min(acct.margin_level(ml_), acct.margin_level(mh))

        # 5'. MC Transfers: top-ups on the path, before step 5's liquidation check (the margin call of
        # step 6 keeps the state after step 4, before them)
        path_top_ups(i, mo, mh, ml_)

        # 5. with usable finer bars: step 5 on each sub-bar in turn (MC "Finer bars")
        ambiguous = False
        subs = sub_bars(i, t, o, h, lo, c)
        for so, sh, sl, sc in subs or ():
            if (stops_on and acct.position() != 0.0) or order is not None:  # MC "Finer bars": a standing order walks
                ambiguous = walk(i, so, sh, sl, sc) or ambiguous
            else:
                intrabar_liquidations(i, so, sh, sl, sl, sh)
        # 5. with stops on and a position open, or a limit order standing: the walk along the path
        if subs is None and ((stops_on and acct.position() != 0.0) or order is not None):
            ambiguous = walk(i, o, h, lo, c, None if mark is None else (mo, mh, ml_, mc))
        # 5. otherwise: intrabar liquidation at the adverse extreme, up to 8 times
        elif subs is None:
            intrabar_liquidations(i, mo, mh, ml_, lo, h)

        # 6. margin call: entry into the band
        if ml_x <= mcl and prev_close_ml > mcl:
            margin_calls.append({"bar": i, "margin_level": ml_x})

        # 7. close
        ml_c = acct.margin_level(c)
        out["equity"].append(acct.value(c))
        out["margin_level"].append(prof.report(ml_c))
        out["position"].append(acct.position())
        out["debt"].append(acct.debt(c))
        out["interest_owed"].append(acct.ib * c + acct.iq)
        out["interest_paid"].append(interest_paid)
        out["fees_paid"].append(fees_paid)
        out["ambiguous"].append(ambiguous)
        out["reserve"].append(reserve_left)
        out["net_transfers"].append(net_flows)
        prev_close_ml = ml_c

        # 8. decision (the last bar's is never executed)
        x = float(targets[i])
        if i == n - 1 or math.isnan(x):
            continue
        if last_target is None or x != last_target:
            lim = _price(limit, i)
            pending = (x, "signal", lim if lim is not None and lim > 0.0 else None)
            last_target = x
            suspended = False
        elif rebalance > 0.0 and not suspended and order is None:
            e = acct.value(c)
            if e > 0.0 and abs(acct.position() * c / e - x) > rebalance * abs(x):
                pending = (x, "rebalance", None)

    # MC "No empty liquidations": an event that sold nothing (an account with nothing to sell, its debt
    # written off) is a write-off, not a liquidation
    out["liquidations"] = [e for e in liquidations if e["quantity"] > 0.0]
    out["write_offs"] = [e for e in liquidations if e["quantity"] == 0.0]
    for o_ in orders:
        if o_["kind"] == "liquidation" and o_["quantity"] == 0.0:
            o_["kind"] = "write_off"
    out["margin_calls"] = margin_calls
    out["orders"] = orders
    out["n_cancelled"] = n_cancelled
    out["transfers"] = flows
    out["loans"] = loans
    return out
