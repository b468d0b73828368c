"""Independent reference model of one Binance USDⓈ-M perpetual (venue ``binance-usdm``).

Written from ``docs/perps-model.md`` (the exchange spec, cited "spec §x") and
the last section of ``docs/model-choices.md`` ("Perpetual futures", cited
"MC"), without looking at the compiled engine.  Plain Python floats, one bar
at a time, one step at a time.

Scope: one symbol, one account, cross or isolated, market orders to a target
exposure, the clearance-fee liquidation, funding from settlement rows.
"""

from __future__ import annotations

import bisect
import math

INF = math.inf
NAN = math.nan
MARGIN_CALL_H = 1.25  # MC "State": margin call at h <= 1.25 (a margin ratio of 80 %)
NOISE = 1e-9          # relative float noise: no trade below it, "capped" only beyond it


# ------------------------------------------------------------------ brackets
def bracket_version(brackets, t):
    """MC "State": the latest version with valid_from <= t; before the first, the first."""
    k = bisect.bisect_right([v for v, _ in brackets], t) - 1
    return brackets[max(k, 0)][1]


def tier_of(tiers, notional):
    """(mmr, cum) of the tier holding ``notional`` (floor <= n < cap; the top tier is open above)."""
    for j, (floor, cap, mmr, cum, maxlev) in enumerate(tiers):
        if notional < cap or j == len(tiers) - 1:
            return mmr, cum


def maintenance(tiers, notional):
    """Spec §3: MM = N·mmr − cum at the tier holding N."""
    mmr, cum = tier_of(tiers, notional)
    return notional * mmr - cum


def max_notional(tiers, leverage):
    """Spec §2: at leverage L the largest position is max{cap_i : maxLev_i >= L}."""
    caps = [cap for (floor, cap, mmr, cum, maxlev) in tiers if maxlev >= leverage]
    return max(caps) if caps else 0.0


# ------------------------------------------------------------------- account
class Perp:
    """MC "State": position N, entry EP, cross wallet WC, isolated wallet WI."""

    def __init__(self, capital, isolated):
        self.isolated = isolated
        self.wc = float(capital)
        self.wi = 0.0
        self.n = 0.0
        self.ep = 0.0

    def equity(self, p):
        return self.wc + self.wi + self.n * (p - self.ep)

    def dust(self):
        """MC "State": after every fill, liquidation and funding charge, a wallet
        or position below 1e-12 in size is 0 (float residue, as on spot margin)."""
        for k in ("wc", "wi", "n"):
            if abs(getattr(self, k)) < 1e-12:
                setattr(self, k, 0.0)

    def mb(self, p):
        """The position's margin balance: WC + uPnL (cross) or WI + uPnL (isolated)."""
        return (self.wi if self.isolated else self.wc) + self.n * (p - self.ep)

    def health(self, tiers, p):
        """h = MB/MM at p; +inf when flat."""
        if self.n == 0.0:
            return INF
        return self.mb(p) / maintenance(tiers, abs(self.n) * p)

    def liquidation_price(self, tiers):
        """MC "Liquidation price": c = MB(P) − N·P = wallet − N·EP; the tier whose
        LP = (c + cum)/(|N|·mmr − N) has its notional in [floor, cap) and LP > 0."""
        return self.level_price(tiers, 1.0)

    def level_price(self, tiers, k):
        """The price where MB = k·MM (spec §4.2 with MB = k·MM; k = 1 the liquidation price, k = 1.25
        the margin-call price of MC "Liquidation price"): (c + k·cum)/(k·|N|·mmr − N) at the tier
        holding that notional, > 0; NaN when none."""
        if self.n == 0.0:
            return NAN
        c = self.mb(0.0)
        a = abs(self.n)
        for j, (floor, cap, mmr, cum, maxlev) in enumerate(tiers):
            if self.n > 0.0 and k * a * mmr >= self.n:  # a long on a tier with k·mmr >= 1: k·MM grows as fast
                continue  # as MB or faster, no price below meets the level (spec §4.2 has no root there)
            lp = (c + k * cum) / (k * a * mmr - self.n)
            top = INF if j == len(tiers) - 1 else cap
            if lp > 0.0 and floor <= a * lp < top:
                return lp
        return NAN

    def reduce(self, r, f):
        """Close r units at f: realise r·(F − EP)·sign(N) into WC; isolated, also
        release (r/|N|)·WI from WI to WC (MC, spec §1 [U] default)."""
        s = 1.0 if self.n > 0.0 else -1.0
        realised = r * (f - self.ep) * s
        if self.isolated:
            released = self.wi if r >= abs(self.n) else (r / abs(self.n)) * self.wi
            self.wi -= released
            self.wc += released
        self.wc += realised
        if r >= abs(self.n):
            self.n, self.ep = 0.0, 0.0
        else:
            self.n -= s * r

    def add(self, u, f, side, leverage):
        """Open u units at f on ``side``: EP averages; isolated moves u·F/L from WC to WI."""
        a = abs(self.n)
        self.ep = f if a == 0.0 else (self.ep * a + f * u) / (a + u)
        self.n += side * u
        if self.isolated:
            self.wc -= u * f / leverage
            self.wi += u * f / leverage


# ---------------------------------------------------------------- simulation
def _bar(values, i):
    return float(values[i])


def simulate_perps(ts, open_, high, low, close, targets, *, capital, leverage, isolated, fee, slippage=0.0,
                   clearance=0.0125, brackets, funding=(), mark=None, rebalance=0.0, stop_on_liquidation=False,
                   transfers=(), reserve=0.0, top_up=None, keep_ml=None):
    """ts: list of int seconds (bar open times, increasing); open_/high/low/close: floats;
    targets: per-bar target exposure (float, NaN = hold), decided at bar i's close, executed at bar i+1's open;
    brackets: list of (valid_from_seconds, [(floor, cap, mmr, cum, maxlev), ...]) sorted by valid_from;
    funding: list of (T_seconds, rate); mark: None or (mopen, mhigh, mlow, mclose) lists aligned with the bars
    (a NaN in a mark bar means the mark lacks that bar: use the traded bar's values for it).
    Returns a dict: 'equity', 'position', 'funding_paid' (cumulative, positive = paid), 'margin_ratio' (1/h at the close, 0 when flat)
    as per-bar lists; 'orders' (list of dicts: bar, side +1/-1, quantity, price, fee, capped, kind 'signal'/'rebalance'/'liquidation'/'deleverage');
    'liquidations' (list of dicts: bar, trigger_price, fee, bad_debt, equity_before, equity_after, margin_level (= h at the trigger));
    'fundings' (list of dicts: time, bar, rate, mark_price, position, payment); 'final_equity'; 'fees_paid' (trading fees only);
    'liquidation_fees'; 'bad_debt'; 'n_margin_calls'.
    transfers: scheduled moves (time_seconds, amount), + a deposit into WC, − a withdrawal from WC; reserve: the
    trader's money outside the account; top_up: None (with a reserve: ("initial", 0.0), MB lifted to the
    position's initial margin |N|·P/L), ("ml", X) or ("amount", A) (MC "Transfers and a reserve").  Also returns
    'transfers' (list of dicts: bar, amount (signed, + into the account), requested (signed likewise), reason
    'scheduled'/'withdrawal'/'top-up', price, margin_level_before, margin_level_after (the health h = MB/MM at
    price; +inf flat), capped, reserve_after) and per bar 'reserve' (R at the close) and 'net_transfers' (F at
    the close).
    keep_ml: the safety buffer X, a health (MC Transfers, "A safety buffer"; cross mode only, X > 1): a
    deleverage order where h reaches X that brings MB at that price back to the initial margin |N|·P/L, at
    the mark open (0b) and on the path (5'), recorded in 'orders' with kind 'deleverage'."""
    n = len(ts)
    L = float(leverage)
    acct = Perp(capital, isolated)
    rows = sorted((int(round(t)), float(r)) for t, r in funding)  # MC step 3: rounded to the second, in time order
    out = {k: [] for k in ("equity", "position", "funding_paid", "margin_ratio", "reserve", "net_transfers")}
    orders, liquidations, fundings = [], [], []

    # MC "Transfers and a reserve": the reserve R (quote, outside the account), the net scheduled transfers F
    if top_up is None:
        top_up = ("initial", 0.0)  # MC Transfers: a reserve without a rule lifts MB to the initial margin |N|·P/L
    tu_kind, tu_x = top_up[0], float(top_up[1])
    assert tu_kind in ("ml", "amount", "initial")
    if tu_kind == "ml":
        assert tu_x > MARGIN_CALL_H, "MC Transfers: --top-up ml=X needs X above the margin-call level 1.25"
    elif tu_kind == "amount":
        assert tu_x > 0.0
    if keep_ml is not None:  # MC Transfers, "A safety buffer": cross mode, a health X > 1
        keep_ml = float(keep_ml)
        assert not isolated, "MC Transfers: --keep-ml is refused on an isolated perp"
        assert keep_ml > 1.0, "MC Transfers: --keep-ml X needs X > 1 on perps"
    schedule = sorted(((float(d), float(a)) for d, a in transfers), key=lambda r: r[0])  # stable: given order
    flows = []
    flow = {"R": float(reserve), "F": 0.0, "next": 0}
    tot = {"fees_paid": 0.0, "liquidation_fees": 0.0, "bad_debt": 0.0, "funding": 0.0}
    n_margin_calls = 0
    pending = None      # (target, kind) decided at the previous close
    last_target = None  # None: no target yet
    suspended = False   # rebalancing suspended by a liquidation, until the target changes
    halted = False      # stop_on_liquidation: nothing trades after a liquidation
    prev_close_h = INF
    fr = 0              # next funding row

    def mark_bar(i):
        """The mark bar i, or the traded bar where the mark lacks it (any NaN)."""
        traded = (_bar(open_, i), _bar(high, i), _bar(low, i), _bar(close, i))
        if mark is None:
            return traded
        m = tuple(float(mark[k][i]) for k in range(4))
        return traded if any(math.isnan(v) for v in m) else m

    def funding_mark(T, i):
        """MC step 3: the mark open at T, else the traded open at T, else the last mark close
        before T (the close of bar i−1, the last bar closed by t_i <= T; bar 0: its open)."""
        if ts[i] == T:
            return mark_bar(i)[0]
        return mark_bar(i - 1)[3] if i > 0 else mark_bar(i)[0]

    def liquidate(i, x, tiers):
        """MC "Liquidation" at the trigger x: full close, clearance fee, max(0, ...)."""
        nonlocal suspended, halted
        q = acct.n
        mb = acct.mb(x)
        h = mb / maintenance(tiers, abs(q) * x)
        before = acct.equity(x)
        f = clearance * abs(q) * x
        keep = max(0.0, mb - f)
        if acct.isolated:
            acct.wc += keep
            acct.wi = 0.0
        else:
            acct.wc = keep
        acct.n, acct.ep = 0.0, 0.0
        acct.dust()
        taken = min(f, max(mb, 0.0))
        bad = max(0.0, -mb)
        tot["liquidation_fees"] += taken
        tot["bad_debt"] += bad
        liquidations.append({"bar": i, "trigger_price": x, "fee": taken, "bad_debt": bad,
                             "equity_before": before, "equity_after": acct.equity(x), "margin_level": h})
        orders.append({"bar": i, "side": -1 if q > 0.0 else 1, "quantity": abs(q), "price": x, "fee": taken,
                       "capped": False, "kind": "liquidation"})
        suspended = True
        if stop_on_liquidation:
            halted = True

    def flow_row(i, moved, requested, reason, price, before, tiers):
        """MC Transfers, "Records": one row per move; capped when less moved than asked (1e-12 relative)."""
        flows.append({"bar": i, "amount": moved, "requested": requested, "reason": reason, "price": price,
                      "margin_level_before": before, "margin_level_after": acct.health(tiers, price),
                      "capped": abs(moved) < abs(requested) * (1.0 - 1e-12), "reserve_after": flow["R"]})

    def scheduled_transfer(i, o, amount, tiers):
        """MC Transfers, step 0a at the traded open O: a deposit goes into WC; a withdrawal leaves WC,
        capped in cross mode to min(E(O) − |N|·O/L, WC) (the available money, at most the wallet: unrealised
        profit does not leave), in isolated mode to WC (the position's wallet never leaves); >= 0."""
        before = acct.health(tiers, o)
        if amount >= 0.0:
            moved = amount
        else:
            # cross: the available money, at most the wallet (unrealised profit does not leave)
            room = acct.wc if acct.isolated else min(acct.equity(o) - abs(acct.n) * o / L, acct.wc)
            moved = -min(-amount, max(room, 0.0))
        acct.wc += moved
        flow["F"] += moved
        flow_row(i, moved, amount, "scheduled" if amount >= 0.0 else "withdrawal", o, before, tiers)

    def do_top_up(i, p, tiers):
        """MC Transfers, "A top-up at price P": T = X·MM(P) − MB(P) (ml=X), T = A (amount=A) or, with no rule,
        T = |N|·P/L − MB(P) (the position's initial margin at P); min(T, R)
        moves from the reserve into WC (cross) or the position's wallet WI (isolated, Binance's "add
        margin"); not part of F.  Returns whether anything moved."""
        if tu_kind == "ml":
            want = tu_x * maintenance(tiers, abs(acct.n) * p) - acct.mb(p)
        elif tu_kind == "initial":  # MC Transfers: back to the position's initial margin at P
            want = abs(acct.n) * p / L - acct.mb(p)
        else:
            want = tu_x
        if want <= 0.0 or flow["R"] <= 0.0:
            return False
        before = acct.health(tiers, p)
        moved = min(want, flow["R"])
        flow["R"] -= moved
        if flow["R"] <= 1e-12 * moved:  # MC Transfers: what is left at float-residue size is 0
            flow["R"] = 0.0
        if acct.isolated:
            acct.wi += moved
        else:
            acct.wc += moved
        flow_row(i, moved, want, "top-up", p, before, tiers)
        return True

    def deleverage(i, pk):
        """MC Transfers, "A safety buffer" (cross): reduce |N| by r = (|N|·Pk/L − MB(Pk))/(Pk/L − |Pf − Pk|
        − Pf·f) at Pf = Pk·(1 ∓ slippage) (a long sells below, a short buys above), at most |N|; nothing
        when r <= 0 (MB(Pk) already at the initial margin, or a denominator <= 0).  A normal reduction:
        realised PnL into WC, the taker fee r·Pf·f from WC.  Returns whether it filled."""
        side = -1 if acct.n > 0.0 else 1
        pf = pk * (1.0 + side * slippage)
        a = abs(acct.n)
        num = a * pk / L - acct.mb(pk)
        den = pk / L - abs(pf - pk) - pf * fee
        if num <= 0.0 or den <= 0.0:
            return False
        want = num / den
        r = min(want, a)
        if r <= 1e-9 * a:  # MC "A safety buffer": a reduction of float-noise size is none
            return False
        acct.reduce(r, pf)
        acct.wc -= r * pf * fee
        acct.dust()
        tot["fees_paid"] += r * pf * fee
        orders.append({"bar": i, "side": side, "quantity": r, "price": pf, "fee": r * pf * fee,
                       "capped": r < want * (1.0 - NOISE), "kind": "deleverage"})
        return True

    def path_top_ups(i, mo, mh, ml, tiers):
        """MC Transfers, step 5' (at most 64 moves in a bar): each pass, while R > 0, the margin-call price
        Pc (spec §4.2 with MB = 1.25·MM, the bracket at that notional) and, with a safety buffer, the price
        Pk where MB = X·MM; of those the adverse mark extreme reaches (long Ml <= P, short Mh >= P), the one
        the path reaches first (long: the higher trigger, short: the lower; a top-up on a tie), at the mark
        open when the bar opens past it.  A move that does nothing turns its kind off for the bar."""
        tops, keeps = True, keep_ml is not None
        for _ in range(64):
            if acct.n == 0.0:
                return
            hits = []  # (order key, kind, price): the smallest key first
            for kind, on, k in ((0, tops and flow["R"] > 0.0, MARGIN_CALL_H), (1, keeps, keep_ml)):
                if not on:
                    continue
                p = acct.level_price(tiers, k)
                if math.isnan(p):
                    continue
                if acct.n > 0.0 and ml <= p:
                    hits.append((-min(mo, p), kind, min(mo, p)))
                elif acct.n < 0.0 and mh >= p:
                    hits.append((max(mo, p), kind, max(mo, p)))
            if not hits:
                return
            _, kind, price = min(hits)
            if kind == 0:
                if not do_top_up(i, price, tiers):
                    tops = False
            elif not deleverage(i, price):
                keeps = False

    def execute(i, o, x, kind, tiers):
        """MC "Market order to target x" at the traded open o."""
        e = acct.equity(o)
        if e <= 0.0:
            return
        target = x * e / o
        n0 = acct.n
        delta = target - n0
        if abs(delta) <= NOISE * max(abs(target), abs(n0)):
            return
        side = 1 if delta > 0.0 else -1
        f = o * (1.0 + side * slippage)
        close_q = min(abs(delta), abs(n0)) if n0 * side < 0.0 else 0.0
        open_q = abs(delta) - close_q
        if close_q > 0.0:  # the closing part first (a flip's close costs its fee and slippage)
            acct.reduce(close_q, f)
            acct.wc -= close_q * f * fee
        u, capped = 0.0, False
        if open_q > 0.0:
            avail = acct.wc if acct.isolated else acct.equity(o) - abs(acct.n) * o / L
            k = f * (1.0 / L + fee)
            cut_money = avail / k if avail > 0.0 else 0.0
            cut_bracket = max(0.0, max_notional(tiers, L) / o - abs(acct.n))
            cut = min(cut_money, cut_bracket)
            capped = cut < open_q * (1.0 - NOISE)
            u = min(open_q, cut)
            if u <= NOISE * max(abs(target), abs(n0)):
                u = 0.0  # MC: an opening part of float-noise size is no fill
            if u > 0.0:
                acct.add(u, f, side, L)
                acct.wc -= u * f * fee
                if acct.isolated and abs(acct.wc) <= NOISE * u * f / L:
                    acct.wc = 0.0  # MC: an open that leaves the cross wallet at noise size spent all of it
        acct.dust()
        q = close_q + u
        if q <= 0.0:
            return  # cut to nothing: no fill, no record
        tot["fees_paid"] += q * f * fee
        orders.append({"bar": i, "side": side, "quantity": q, "price": f, "fee": q * f * fee,
                       "capped": capped, "kind": kind})

    for i in range(n):
        t = int(ts[i])
        tiers = bracket_version(brackets, t)
        o, c = _bar(open_, i), _bar(close, i)
        mo, mh, ml, mc = mark_bar(i)

        # 0a. MC Transfers: scheduled transfers due (first bar with t_i >= date), at the traded open, after
        # the bracket version of the bar is in force and before the gap liquidation
        while flow["next"] < len(schedule) and schedule[flow["next"]][0] <= t:
            scheduled_transfer(i, o, schedule[flow["next"]][1], tiers)
            flow["next"] += 1
        # 0b. MC Transfers: a top-up at the mark open when the health there is at or below 1.25
        if flow["R"] > 0.0 and acct.n != 0.0 and acct.health(tiers, mo) <= MARGIN_CALL_H:
            do_top_up(i, mo, tiers)
        # 0b. MC Transfers, "A safety buffer": a deleverage at the mark open when the health there is at or below X
        if keep_ml is not None and acct.n != 0.0 and acct.health(tiers, mo) <= keep_ml:
            deleverage(i, mo)

        # 1. gap liquidation at the mark open; a new target still executes, a rebalance is dropped
        if acct.n != 0.0 and acct.health(tiers, mo) <= 1.0:
            liquidate(i, mo, tiers)
            if pending is not None and pending[1] == "rebalance":
                pending = None
            elif pending is not None:
                suspended = False  # the target changed after the liquidation
        if halted:
            pending = None

        # 2. the pending order at the traded open
        if pending is not None:
            execute(i, o, pending[0], pending[1], tiers)
            pending = None

        # 3. funding for every T with t_i <= T < t_{i+1} (last bar: T < t_i + (t_i − t_{i−1}))
        end = int(ts[i + 1]) if i + 1 < n else (t + (t - int(ts[i - 1])) if n > 1 else t)
        while fr < len(rows) and rows[fr][0] < t:
            fr += 1  # before the first bar (or skipped): never paid
        while fr < len(rows) and rows[fr][0] < end:
            T, rate = rows[fr]
            fr += 1
            if acct.n == 0.0:
                continue
            p = funding_mark(T, i)
            pay = acct.n * p * rate  # longs pay a positive rate
            if acct.isolated:
                acct.wi -= pay
            else:
                acct.wc -= pay
            acct.dust()
            tot["funding"] += pay
            fundings.append({"time": T, "bar": i, "rate": rate, "mark_price": p, "position": acct.n,
                             "payment": pay})

        # 5. margin call: h at the adverse mark extreme enters the band (the state after step 3, before step 4)
        h_x = acct.health(tiers, ml if acct.n > 0.0 else mh)
        if h_x <= MARGIN_CALL_H and prev_close_h > MARGIN_CALL_H:
            n_margin_calls += 1

        # 5'. MC Transfers: top-ups on the path, before step 4's liquidation check (after the margin call,
        # which keeps the state after step 3)
        path_top_ups(i, mo, mh, ml, tiers)

        # 4. intrabar liquidation on the mark at the liquidation price
        if acct.n != 0.0:
            lp = acct.liquidation_price(tiers)
            if not math.isnan(lp):
                if acct.n > 0.0 and ml <= lp:
                    liquidate(i, min(mo, lp), tiers)
                elif acct.n < 0.0 and mh >= lp:
                    liquidate(i, max(mo, lp), tiers)

        # 6. close at the traded close
        h_c = acct.health(tiers, c)
        out["equity"].append(acct.equity(c))
        out["position"].append(acct.n)
        out["funding_paid"].append(tot["funding"])
        out["margin_ratio"].append(0.0 if acct.n == 0.0 else (1.0 / h_c if h_c != 0.0 else INF))
        out["reserve"].append(flow["R"])
        out["net_transfers"].append(flow["F"])
        prev_close_h = h_c

        # decision (the last bar's is never executed)
        x = float(targets[i])
        if i == n - 1 or math.isnan(x) or halted:
            continue
        if last_target is None or x != last_target:
            pending = (x, "signal")
            last_target = x
            suspended = False
        elif rebalance > 0.0 and not suspended:
            e = acct.equity(c)
            if e > 0.0 and abs(acct.n * c / e - x) > rebalance * abs(x):
                pending = (x, "rebalance")

    out.update(orders=orders, liquidations=liquidations, fundings=fundings,
               final_equity=out["equity"][-1] if n else float(capital),
               fees_paid=tot["fees_paid"], liquidation_fees=tot["liquidation_fees"],
               bad_debt=tot["bad_debt"], n_margin_calls=n_margin_calls, transfers=flows)
    return out
