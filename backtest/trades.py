"""Round trips from the kernel's fills.

A trade opens when the position leaves zero and closes when it returns to
zero or flips sign; a flip closes one trade and opens the next in the same
fill, whose value, fee and base are split between them by base quantity.
"""
import numpy as np
import pandas as pd

from .records import LIQUIDATION, ORDER_KINDS, REBALANCE, SIGNAL

TRADE_COLUMNS = [
    "symbol", "side", "entry_time", "entry_price", "exit_time", "exit_price",
    "quantity", "fees", "interest", "interest_base", "interest_quote", "pnl", "exit_reason",
]


def round_trips(orders: np.ndarray, times, close: np.ndarray, position: np.ndarray, interest_paid: np.ndarray,
                symbol: str, bad_debts=(), paid_by_asset=None, after_fill=None, liq_fees=None) -> pd.DataFrame:
    """Build the trades table from order records (``records.order_dt``).

    ``interest_paid`` is the kernel's cumulative interest per bar; a trade's
    interest is what accrued over its bars plus its own borrow charges, less
    the borrow charge of a flip fill that opened the next trade.
    ``bad_debts`` (one per liquidation fill, in order) are credited back to
    the trade a liquidation closed: the trader loses at most the equity, the
    exchange's insurance fund the rest, so the trades' pnl sums to the
    equity change.  ``paid_by_asset``: the kernel's cumulative (base,
    quote) interest per bar in asset units, split the same way into the
    trade's ``interest_base`` and ``interest_quote``.

    ``after_fill`` (auto-repay off, where loans outlive trades): the kernel's
    cumulative (base, quote) charges at the open after the bar's order
    (step 4), and the opens.  A trade's interest then runs from its entry
    fill to its exit fill exactly: the step-4 charge of a bar belongs to the
    trade a signal order opened there, not to one it closed (stops and
    liquidations fill after it).  Its pnl subtracts its quote interest only:
    base interest owed lowers the position itself, so it is in the cash.
    """
    exact = after_fill is not None
    if exact:
        after_b = np.diff(after_fill[0], prepend=0.0)
        after_q = np.diff(after_fill[1], prepend=0.0)
        after_v = after_b * after_fill[2] + after_q
    if paid_by_asset is None:
        paid_by_asset = (np.zeros(len(close)), np.zeros(len(close)))
    paid_b, paid_q = paid_by_asset
    later = _later_openings(orders, exact)
    rows = []
    cur = None
    bad_debts = iter(bad_debts)
    flat = {"interest": 0.0, "fees": 0.0}  # the books of no trade (see flat_costs)
    liq_fees = None if liq_fees is None else iter(liq_fees)
    for k, rec in enumerate(orders):
        # before, not the last fill's position: a short's base interest grows it in between
        prev, pos, bar = float(rec["position_before"]), float(rec["position"]), int(rec["bar"])
        q, price, side, fee = float(rec["quantity"]), float(rec["price"]), int(rec["side"]), float(rec["fee"])
        cash_fee = fee if (rec["kind"] == LIQUIDATION or side < 0) else 0.0  # a buy's fee is paid in base
        bad = next(bad_debts, 0.0) if rec["kind"] == LIQUIDATION else 0.0
        fee_share = next(liq_fees, 0.0) if rec["kind"] == LIQUIDATION and liq_fees is not None else 0.0
        cash_fee += fee_share
        fee += fee_share
        # a drift no fill opened (base interest owed on a loan left running while
        # flat) is no trade's: what closes it is dropped (it was interest while
        # flat), and a trade growing it takes it over at the fill's price
        drift = cur is None and prev != 0.0
        if prev != 0.0 and (pos == 0.0 or np.sign(pos) != np.sign(prev)):
            closing, opening, ends = abs(prev), abs(pos), True
        elif abs(pos) < abs(prev):
            closing, opening, ends = abs(prev) - abs(pos), 0.0, False
        else:
            closing, opening, ends = 0.0, abs(pos) - abs(prev), False
        if q == 0.0:  # a fill that traded nothing opens nothing (a difference is float noise of netting)
            opening = 0.0
        if cur is None:  # what no trade takes is the flat books' (see flat_costs)
            credit = _credit(bad, prev, pos, side, q, price)
            if closing > 0.0:  # a position of interest alone (no fill opened it): no trade to close
                closing, ends = 0.0, False
                opening = abs(pos) if pos != 0.0 and np.sign(pos) != np.sign(prev) else max(abs(pos) - abs(prev), 0.0)
            if opening > 0.0:  # a trade opens and takes over the drift at this fill's price
                flat["interest"] -= prev * price
            else:  # nobody's fill: it buys back (part of) the drift, or is a liquidation of a flat account
                flat["interest"] += side * q * price + cash_fee - fee
                flat["fees"] += fee - credit
        # the part of the order (gross, as traded) that closed: a buy covering
        # a short is grossed up for its fee, taken in base
        if q > 0.0 and rec["kind"] == LIQUIDATION and ends and opening == 0.0:
            close_share = 1.0  # all of it, also base sold beyond the position (owed base, written off)
        elif q > 0.0:
            rate = fee / (q * price) if side > 0 and cash_fee == 0.0 else 0.0
            close_share = min(1.0, closing / (1.0 - rate) / q) if closing > 0.0 else 0.0
        else:  # a forced exit that could sell nothing (dust): only its fee and bad debt count
            close_share = 1.0
        if cur is None and opening == 0.0:
            continue  # the flat books' (above)
        if closing == 0.0 and opening == 0.0:
            # the position did not move (a liquidation that only netted balances and took its fee,
            # or dust): its cash is the open trade's
            cur["cash"] += -side * q * price - cash_fee + _credit(bad, prev, pos, side, q, price)
            cur["fees"] += fee
            continue
        if closing > 0.0 and not drift:
            share = close_share
            cur["cash"] += (-side * q * price - cash_fee) * share + _credit(bad, prev, pos, side, q, price)
            cur["fees"] += fee * share
            cur["exit_q"] += closing
            cur["exit_v"] += closing * price
            if ends:  # the borrow charges of this fill and of later ones in its bar go to the trades they open
                own = 1.0 if opening > 0.0 else 0.0
                v, b, qq, step4 = later[k]
                cur["interest"] += (interest_paid[bar] - interest_paid[cur["entry_bar"]] - own * float(rec["interest"])
                                    - v)
                cur["ib"] += paid_b[bar] - paid_b[cur["entry_bar"]] - (own * float(rec["charge"]) if side < 0 else 0.0) - b
                cur["iq"] += paid_q[bar] - paid_q[cur["entry_bar"]] - (own * float(rec["charge"]) if side > 0 else 0.0) - qq
                if exact and (rec["kind"] in (SIGNAL, REBALANCE) or step4):  # its bar's step 4 came after it
                    cur["interest"] -= after_v[bar]
                    cur["ib"] -= after_b[bar]
                    cur["iq"] -= after_q[bar]
                rows.append(_row(cur, bar, ORDER_KINDS[rec["kind"]], times, symbol, exact))
                cur = None
        if opening > 0.0:
            share = 1.0 - close_share
            if cur is None:
                cur = {"entry_bar": bar, "dir": np.sign(pos), "entry_q": 0.0, "entry_v": 0.0,
                       "exit_q": 0.0, "exit_v": 0.0, "fees": 0.0, "interest": 0.0, "cash": 0.0,
                       "ib": 0.0, "iq": 0.0}
                cur["interest"] += float(rec["interest"])  # later fills' charges fall inside its bars
                cur["ib" if side < 0 else "iq"] += float(rec["charge"])
                if exact and rec["kind"] in (SIGNAL, REBALANCE):  # its bar's step 4 came after it
                    cur["interest"] += after_v[bar]
                    cur["ib"] += after_b[bar]
                    cur["iq"] += after_q[bar]
                if drift and closing == 0.0:  # taken over: as if traded at this fill's price
                    cur["cash"] += np.sign(-prev) * abs(prev) * price
                    cur["entry_q"] += abs(prev)
                    cur["entry_v"] += abs(prev) * price
            cur["cash"] += (-side * q * price - cash_fee) * share
            cur["fees"] += fee * share
            cur["entry_q"] += opening
            cur["entry_v"] += opening * price
    if cur is None and len(close) and position[-1] != 0.0:  # a drift still owed at the end
        flat["interest"] -= position[-1] * close[-1]
    if cur is not None:  # still open: marked at the last close, no fee
        last = len(close) - 1
        held = position[last]  # a short's base interest has grown it since the last fill
        cur["exit_q"] += abs(held)
        cur["exit_v"] += abs(held) * close[last]
        cur["cash"] += held * close[last]
        cur["interest"] += interest_paid[last] - interest_paid[cur["entry_bar"]]
        cur["ib"] += paid_b[last] - paid_b[cur["entry_bar"]]
        cur["iq"] += paid_q[last] - paid_q[cur["entry_bar"]]
        rows.append(_row(cur, last, "end", times, symbol, exact))
    out = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    if len(out):
        for col in ("entry_time", "exit_time"):
            out[col] = times[out[col].to_numpy(np.int64)]
    out.attrs["flat"] = flat
    return out


def _later_openings(orders, exact):
    """Per fill: what the fills after it in the same bar that open a trade
    charged at their borrow (quote value, base, quote), and whether one of
    them is a market order (its bar's step 4 came after it).  A trade that
    ends at a fill leaves them to the trades they open: a gap liquidation
    comes before the bar's order (docs/model-choices.md, step 2)."""
    out = np.zeros((len(orders), 4))
    bars = orders["bar"]
    shared = np.flatnonzero(np.r_[False, bars[1:] == bars[:-1]])  # fills with an earlier one in their bar
    if not len(shared):
        return out
    prev, pos, side = orders["position_before"], orders["position"], orders["side"]
    opens = (pos != 0.0) & ((prev == 0.0) | (np.sign(pos) != np.sign(prev)))
    market = np.isin(orders["kind"], (SIGNAL, REBALANCE)) if exact else np.zeros(len(orders), dtype=bool)
    charge = orders["charge"]
    for k in shared[opens[shared]][::-1]:  # each opening fill adds to the fills before it in its bar
        add = (float(orders["interest"][k]), charge[k] if side[k] < 0 else 0.0, charge[k] if side[k] > 0 else 0.0,
               1.0 if market[k] else 0.0)
        j = k - 1
        while j >= 0 and bars[j] == bars[k]:
            out[j] += add
            j -= 1
    return out


def _credit(bad, prev, pos, side, q, price):
    """What a liquidation's bad debt gives back to the trade it closed.

    The exchange writes off what the liquidation could not repay; the trader
    keeps that loss off his books (he loses at most the equity).  But the
    bad debt also holds base that no fill of the trade ever paid for: the
    part of the position's move from ``prev`` to ``pos`` that the fill's
    ``q`` does not explain (a short's base written off instead of bought
    back; base interest, or a limit order's base loan, written off beside
    the base a long sold).  Its value at the fill price is in the bad debt
    (docs/model-choices.md "Liquidation") but never in the trade's cash, so
    crediting the whole bad debt would count it twice: a short wiped out by
    a gap would show a profit.  The credit is the bad debt less that base's
    value.
    """
    if bad == 0.0:
        return bad
    return bad - abs(pos - prev - side * q) * price


def _row(t, bar, reason, times, symbol, exact_split=False):
    return {
        "symbol": symbol,
        "side": "long" if t["dir"] > 0 else "short",
        "entry_time": t["entry_bar"],  # bar numbers here; times in one go at the end (boxing each is slow)
        "entry_price": t["entry_v"] / t["entry_q"],
        "exit_time": bar,
        "exit_price": t["exit_v"] / t["exit_q"] if t["exit_q"] > 0 else np.nan,
        "quantity": t["entry_q"],
        "fees": t["fees"],
        "interest": t["interest"],  # quote value
        "interest_base": t["ib"],  # the same interest in asset units
        "interest_quote": t["iq"],
        # a long's quote interest is repaid out of its proceeds; a short's base
        # interest was bought back with its position, so it is in the cash already
        # (a short's quote interest, from a buy-back that borrowed quote, is not)
        "pnl": t["cash"] - (t["iq"] if exact_split or t["dir"] < 0 else t["interest"]),
        "exit_reason": reason,
    }


def interest_by_asset(paid: np.ndarray, orders: np.ndarray, position: np.ndarray, open_: np.ndarray,
                      quote_paid=None):
    """Cumulative interest per bar in each asset's own units, derived from
    the kernel's cumulative quote value (so the kernel writes no two more
    rows per bar).

    A borrow's first hour is in the borrowed asset (a sell borrows base, a
    buy quote; ``charge`` in the fill). Every other charge of a bar (its hour
    boundaries) falls on the principal held into the bar, which auto-repay
    keeps in one asset: base when the position before the bar was short,
    quote otherwise; a base charge was valued at the bar's open.
    ``quote_paid``: the kernel's cumulative quote interest, when it wrote
    it (auto-repay off: both loans may run at once); the rest of ``paid`` is
    base interest, all of it charged at bar opens (stop exits never borrow
    base), so valued at the open.
    """
    if quote_paid is not None:
        return np.cumsum(np.diff(paid - quote_paid, prepend=0.0) / open_), quote_paid.copy()
    n = len(paid)
    bars, side = orders["bar"], orders["side"]
    borrow_b = np.bincount(bars[side < 0], weights=orders["charge"][side < 0], minlength=n)
    borrow_q = np.bincount(bars[side > 0], weights=orders["charge"][side > 0], minlength=n)
    borrow_value = np.bincount(bars, weights=orders["interest"], minlength=n)
    boundary = np.diff(paid, prepend=0.0) - borrow_value
    short_before = np.concatenate(([False], position[:-1] < 0.0))
    per_b = borrow_b + np.where(short_before, boundary / open_, 0.0)
    per_q = borrow_q + np.where(short_before, 0.0, boundary)
    return np.cumsum(per_b), np.cumsum(per_q)


def flat_costs(trades: pd.DataFrame, paid_quote: np.ndarray) -> tuple:
    """``(interest_while_flat, fees_while_flat)``: what happened while no
    trade was open, which no trade's pnl carries (auto-repay off: loans
    left running with no position).

    Interest: the quote interest no trade carries, plus the base interest
    owed meanwhile (a drift of the position no fill opened) valued where it
    stops being nobody's: at the fill that buys it back or hands it to a new
    trade, or at the last close.  Fees: those of fills no trade takes (a
    liquidation of a flat account whose loans ran on), less the bad debt
    written off there.  The trades' pnl less both is the equity change
    exactly (docs/model-choices.md "Books").
    """
    flat = trades.attrs.get("flat", {})
    quote = 0.0  # without the kernel's quote interest per bar (auto-repay on) every charge is in a trade
    if paid_quote is not None and len(paid_quote):
        quote = float(paid_quote[-1]) - float(trades["interest_quote"].sum())
    return (round(quote + flat.get("interest", 0.0), 8) + 0.0, round(flat.get("fees", 0.0), 8) + 0.0)
