"""Round trips from the kernel's fills.

A trade opens when the position leaves zero and closes when it returns to
zero or flips sign; a flip closes one trade and opens the next in the same
fill, whose value, fee and base are split between them by base quantity.
"""
import numpy as np
import pandas as pd
from numba import njit

from ._numba_cache import configure
from .records import LIMIT, LIQUIDATION, ORDER_KINDS, REBALANCE, SIGNAL
from .words import repeat, sides, words

configure()  # numba's cache folder, set before any @njit here is defined

TRADE_COLUMNS = [
    "symbol", "side", "entry_time", "entry_price", "exit_time", "exit_price",
    "quantity", "fees", "interest", "interest_base", "interest_quote", "pnl", "exit_reason",
]


def round_trips(orders: np.ndarray, times, close: np.ndarray, position: np.ndarray, interest_paid: np.ndarray,
                symbol: str, bad_debts=(), paid_by_asset=None, after_fill=None, liq_fees=None,
                quote_fees=False, at=None) -> pd.DataFrame:
    """The trades table (``Trips.frame``) of ``trip_walk``."""
    return trip_walk(orders, times, close, position, interest_paid, symbol, bad_debts, paid_by_asset, after_fill,
                     liq_fees, quote_fees, at).frame()


def trip_walk(orders: np.ndarray, times, close: np.ndarray, position: np.ndarray, interest_paid: np.ndarray,
              symbol: str, bad_debts=(), paid_by_asset=None, after_fill=None, liq_fees=None,
              quote_fees=False, at=None) -> "Trips":
    """The round trips of order records (``records.order_dt``), as arrays;
    the table is made when asked for (``Trips.frame``).

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

    ``quote_fees``: every fee is paid in the quote asset (perpetual
    futures), a buy's too; on spot margin a buy's fee is taken from the base
    it receives.

    The walk reads the per-bar rows at the fills' bars and the last bar
    only (``fill_bars``), so it is handed just those.  ``at``, if given:
    those bars, and every per-bar argument is taken there already (``close``,
    ``position``, ``interest_paid``, ``paid_by_asset``; ``after_fill``: the
    bar's step-4 charges, base and quote, and its open), so no per-bar row
    need be made (``engine._trades``).
    """
    exact = after_fill is not None
    if at is None:
        at = fill_bars(orders, len(close))
        close, position, interest_paid = (np.asarray(a)[at] for a in (close, position, interest_paid))
        if paid_by_asset is not None:
            paid_by_asset = tuple(np.asarray(a)[at] for a in paid_by_asset)
        if exact:
            after_fill = (*(change_at(np.asarray(a), at) for a in after_fill[:2]), np.asarray(after_fill[2])[at])
    if exact:
        after_b, after_q = after_fill[0], after_fill[1]
        after_v = after_b * after_fill[2] + after_q
    else:
        after_b = after_q = after_v = _NONE
    if paid_by_asset is None:
        paid_by_asset = (np.zeros(len(at)), np.zeros(len(at)))
    slot = np.searchsorted(at, orders["bar"]).astype(np.int64)  # each fill's bar, as a row of those taken
    fills = (slot, np.ascontiguousarray(orders["kind"], dtype=np.int64),
             *(np.ascontiguousarray(orders[k], dtype=np.float64) for k in _FILL_FIELDS))
    per_bar = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (
        interest_paid, *paid_by_asset, position, close, after_v, after_b, after_q))
    table, n_rows, flat = _walk(fills, _later_charges(orders, exact),
                                np.ascontiguousarray(bad_debts, dtype=np.float64),
                                _NONE if liq_fees is None else np.ascontiguousarray(liq_fees, dtype=np.float64),
                                per_bar, exact, quote_fees)
    table = table[:, :n_rows]
    for r in (_ENTRY, _EXIT):  # rows taken → bars
        table[r] = at[table[r].astype(np.int64)]
    return Trips(table, times, symbol, {"interest": float(flat[0]), "fees": float(flat[1])})


class Trips:
    """``trip_walk``'s round trips: ``table`` (one column per trade, rows
    ``_ENTRY`` …), ``flat`` (what no trade took, ``flat_costs``); ``frame()``
    makes trades.csv's table (~3 ms of pandas for 2,000 trades: ``run``
    leaves it until ``Result.trades`` is read)."""

    def __init__(self, table, times, symbol, flat):
        self.table, self.times, self.symbol, self.flat = table, times, symbol, flat

    def interest_quote(self) -> float:
        """The trades' quote interest, summed as pandas sums the table's column."""
        return float(pd.Series(self.table[_IQ]).sum()) if self.table.shape[1] else 0.0

    def frame(self) -> pd.DataFrame:
        out = _table(self.table, self.times, self.symbol)
        out.attrs["flat"] = dict(self.flat)
        return out


_NONE = np.empty(0)


def fill_bars(orders: np.ndarray, n: int) -> np.ndarray:
    """The bars a trades walk reads the per-bar rows at: every fill's and
    the last (``n - 1``), sorted, each once."""
    bars = np.append(np.asarray(orders["bar"], dtype=np.int64), n - 1)
    if bars.shape[0] > 1 and np.all(bars[1:] >= bars[:-1]):  # the kernel's order: its fills come bar by bar
        return bars[np.append(True, bars[1:] != bars[:-1])]  # (np.unique hashes and sorts: ~0.2 ms for 3,000)
    return np.unique(bars)


def change_at(rows, at, before=None):
    """A cumulative per-bar row's change over each bar of ``at``: its value
    there less the bar before's (from zero at bar 0).  ``rows``: every bar's
    values (last axis), or (with ``before``) the values at ``at`` already and
    ``before`` those at ``at - 1`` (bar 0's ignored)."""
    if before is None:
        rows, before = rows[..., at], rows[..., np.maximum(at - 1, 0)]
    return rows - np.where(at == 0, 0.0, before)


_FILL_FIELDS = ("side", "quantity", "price", "fee", "position_before", "position", "interest", "charge")
_END = len(ORDER_KINDS)  # exit_reason code of a trade still open at the last bar
_REASONS = ORDER_KINDS + ("end",)
# the rows of ``_walk``'s table, one column per trade
_ENTRY, _EXIT, _DIR, _ENTRY_PRICE, _EXIT_PRICE, _QTY, _FEES, _INTEREST, _IB, _IQ, _PNL, _REASON = range(12)
# the open trade's running sums in ``_walk``: quantity and value entered and exited, fees, interest (quote
# value, base, quote) and cash
_EQ, _EV, _XQ, _XV, _TF, _TC, _TB, _TQ, _CASH = range(9)


@njit(cache=True)
def _walk(fills, later, bad_debts, liq_fees, per_bar, exact, quote_fees):
    """The fills in order (``fills``: their bar, kind and ``_FILL_FIELDS``
    columns), one trade open at a time: the trades as a table (``_ENTRY``…
    rows, one column each) and the flat books' (interest, fees).  ``per_bar``:
    interest paid (total, base, quote), position, close and the step-4
    charges.  Compiled: a Python loop over the fills cost more than the kernel."""
    bar, kind, side, qty, px, fee_, before, after, interest, charge = fills
    position, close, after_v, after_b, after_q = per_bar[3:]  # (the interest rows: _span_charges)
    m = bar.shape[0]
    table = np.empty((12, m + 1))
    n_rows = np.int64(0)  # (not the literal 0: _row and _mark_open would compile twice more)
    flat_i, flat_f = 0.0, 0.0  # the books of no trade (see flat_costs)
    n_bad, n_fee = 0, 0
    is_open = False
    entry_bar, direction = np.int64(0), 0.0
    tr = np.zeros(9)  # the open trade's sums (_EQ ...)
    for k in range(m):
        # before, not the last fill's position: a short's base interest grows it in between
        prev, pos, b = before[k], after[k], bar[k]
        q, price, sd, fee = qty[k], px[k], side[k], fee_[k]
        liq = kind[k] == LIQUIDATION
        cash_fee = fee if (liq or sd < 0 or quote_fees) else 0.0  # a spot buy's fee is paid in base
        bad = 0.0
        fee_share = 0.0
        if liq:  # one bad debt (and fee share) per liquidation fill, in order; none past the end
            if n_bad < bad_debts.shape[0]:
                bad = bad_debts[n_bad]
                n_bad += 1
            if n_fee < liq_fees.shape[0]:
                fee_share = liq_fees[n_fee]
                n_fee += 1
        cash_fee += fee_share
        fee += fee_share
        # a drift no fill opened (base interest owed on a loan left running while
        # flat) is no trade's: what closes it is dropped (it was interest while
        # flat), and a trade growing it takes it over at the fill's price
        drift = not is_open and prev != 0.0
        if prev != 0.0 and (pos == 0.0 or np.sign(pos) != np.sign(prev)):
            closing, opening, ends = abs(prev), abs(pos), True
        elif abs(pos) < abs(prev):
            closing, opening, ends = abs(prev) - abs(pos), 0.0, False
        else:
            closing, opening, ends = 0.0, abs(pos) - abs(prev), False
        if not is_open and closing > 0.0:  # a position of interest alone (no fill opened it): no trade to close
            closing, ends = 0.0, False
            if pos != 0.0 and np.sign(pos) != np.sign(prev):
                opening = abs(pos)
            else:
                opening = _at_least(abs(pos) - abs(prev), 0.0)
        if q == 0.0:  # a fill that traded nothing opens nothing (a difference is float noise of netting; as
            opening = 0.0  # intrabar.trade_step, the kernels' count)
        if not is_open:  # what no trade takes is the flat books' (see flat_costs)
            credit = _credit(bad, prev, pos, sd, q, price)
            if opening > 0.0:  # a trade opens and takes over the drift at this fill's price
                flat_i -= prev * price
            else:  # nobody's fill: it buys back (part of) the drift, or is a liquidation of a flat account
                flat_i += sd * q * price + cash_fee - fee
                flat_f += fee - credit
        # the part of the order (gross, as traded) that closed: a buy covering
        # a short is grossed up for its fee, taken in base
        if q > 0.0 and liq and ends and opening == 0.0:
            close_share = 1.0  # all of it, also base sold beyond the position (owed base, written off)
        elif q > 0.0:
            rate = fee / (q * price) if sd > 0 and cash_fee == 0.0 else 0.0
            close_share = _at_most(closing / (1.0 - rate) / q, 1.0) if closing > 0.0 else 0.0
        else:  # a forced exit that could sell nothing (dust): only its fee and bad debt count
            close_share = 1.0
        if not is_open and opening == 0.0:
            continue  # the flat books' (above)
        if is_open and b == entry_bar:  # a later fill of its entry bar, whose row the trade's interest starts from
            _add_charge(tr, interest[k], charge[k], sd, 0.0 if ends and opening > 0.0 else 1.0)  # a flip's: the next's
        if closing == 0.0 and opening == 0.0:
            # the position did not move (a liquidation that only netted balances and took its fee,
            # or dust): its cash is the open trade's
            tr[_CASH] += -sd * q * price - cash_fee + _credit(bad, prev, pos, sd, q, price)
            tr[_TF] += fee
            continue
        if closing > 0.0 and not drift:
            share = close_share
            tr[_CASH] += (-sd * q * price - cash_fee) * share + _credit(bad, prev, pos, sd, q, price)
            tr[_TF] += fee * share
            tr[_XQ] += closing
            tr[_XV] += closing * price
            if ends:  # not its: this fill's borrow charge if it opens the next trade, and its bar's later fills'
                if b > entry_bar:  # (in its entry bar its fills' charges were added one by one, above)
                    _span_charges(tr, per_bar, b, entry_bar, 1.0 if opening > 0.0 else 0.0, interest[k], charge[k],
                                  sd, later[k])
                if exact and (kind[k] == SIGNAL or kind[k] == REBALANCE or later[k, 3] != 0.0):
                    tr[_TC] -= after_v[b]  # its bar's step 4 came after it
                    tr[_TB] -= after_b[b]
                    tr[_TQ] -= after_q[b]
                _row(table, n_rows, entry_bar, b, direction, tr, kind[k], exact)
                n_rows += 1
                is_open = False
        if opening > 0.0:
            share = 1.0 - close_share
            if not is_open:
                is_open, entry_bar, direction = True, b, np.sign(pos)
                _start_trade(tr, k, fills, per_bar, drift and closing == 0.0, exact)
            tr[_CASH] += (-sd * q * price - cash_fee) * share
            tr[_TF] += fee * share
            tr[_EQ] += opening
            tr[_EV] += opening * price
    last = close.shape[0] - 1
    if not is_open and last >= 0 and position[last] != 0.0:  # a drift still owed at the end
        flat_i -= position[last] * close[last]
    if is_open:  # still open: marked at the last close, no fee
        _mark_open(tr, per_bar, entry_bar)
        _row(table, n_rows, entry_bar, last, direction, tr, np.int64(_END), exact)
        n_rows += 1
    return table, n_rows, (flat_i, flat_f)


@njit(cache=True, inline="always")  # (as _span_charges: a call passing the tuples of arrays cost ~0.1 µs a trade)
def _start_trade(tr, k, fills, per_bar, takeover, exact):
    """The sums ``tr`` of a trade fill ``k`` opens: its borrow charge (its
    entry bar's later fills add theirs, ``_walk``), its bar's step-4 charges
    when a market order opened it (step 4 came after it), and with
    ``takeover`` the drift (base interest owed while flat) as if traded at
    the fill's price.  A sell limit order's charge was made at its placement:
    taking over a drift, it is in that drift (the flat books') or in the
    trade open when it was placed, so it is not this trade's."""
    kind, side, px, before, interest, charge = fills[1], fills[2], fills[4], fills[6], fills[8], fills[9]
    b = fills[0][k]
    after_v, after_b, after_q = per_bar[5:]
    sd, prev, price = side[k], before[k], px[k]
    tr[:] = 0.0
    _add_charge(tr, interest[k], charge[k], sd, 0.0 if takeover and kind[k] == LIMIT and sd < 0 else 1.0)
    if exact and (kind[k] == SIGNAL or kind[k] == REBALANCE):
        tr[_TC] += after_v[b]
        tr[_TB] += after_b[b]
        tr[_TQ] += after_q[b]
    if takeover:
        tr[_CASH] += np.sign(-prev) * abs(prev) * price
        tr[_EQ] += abs(prev)
        tr[_EV] += abs(prev) * price


@njit(cache=True, inline="always")
def _add_charge(tr, value, amount, side, share):
    """``share`` of a fill's borrow charge (``value``: in quote; ``amount``:
    in the asset it borrowed, base for a sell, quote for a buy) into the open
    trade's sums ``tr``."""
    tr[_TC] += share * value
    tr[_TB if side < 0 else _TQ] += share * amount


@njit(cache=True, inline="always")
def _span_charges(tr, per_bar, b, entry_bar, own, value, amount, side, later):
    """The charges of a trade ending at a fill of bar ``b``, after its entry
    bar: the per-bar interest rows' change over its bars (``per_bar``), less
    the fill's own charge if it opens the next trade (``own`` 1.0) and the
    charges of the fills after it in its bar (``later``: the fill's row of
    ``_later_charges``; they are the next trade's or the flat books').  Its
    entry bar's fills are not in that change (the row at ``entry_bar`` holds
    them): ``_walk`` adds them."""
    paid, paid_b, paid_q = per_bar[:3]
    tr[_TC] += paid[b] - paid[entry_bar] - own * value - later[0]
    tr[_TB] += paid_b[b] - paid_b[entry_bar] - (own * amount if side < 0 else 0.0) - later[1]
    tr[_TQ] += paid_q[b] - paid_q[entry_bar] - (own * amount if side > 0 else 0.0) - later[2]


@njit(cache=True)
def _mark_open(tr, per_bar, entry_bar):
    """A trade still open at the last bar, marked at its close (no fee)."""
    paid, paid_b, paid_q, position, close = per_bar[:5]
    last = close.shape[0] - 1
    held = position[last]  # a short's base interest has grown it since the last fill
    tr[_XQ] += abs(held)
    tr[_XV] += abs(held) * close[last]
    tr[_CASH] += held * close[last]
    tr[_TC] += paid[last] - paid[entry_bar]
    tr[_TB] += paid_b[last] - paid_b[entry_bar]
    tr[_TQ] += paid_q[last] - paid_q[entry_bar]


@njit(cache=True)
def _at_least(x, floor):
    return floor if floor > x else x  # Python's max(x, floor), signed zeros included


@njit(cache=True)
def _at_most(x, ceiling):
    return x if x < ceiling else ceiling  # Python's min(ceiling, x), NaN included


def _later_charges(orders, exact):
    """Per fill: what the fills after it in the same bar charged at their
    borrow (quote value, base, quote), and whether one of them is a market
    order that opens a trade (its bar's step 4 came after it).  A trade that
    ends at a fill leaves them to the trade a fill opens (a flip, or a gap
    liquidation before the bar's order, docs/model-choices.md step 2; a
    stop of that trade in the same bar charges it, not the one that ended)
    or to the flat books."""
    out = np.zeros((len(orders), 4))
    bars = orders["bar"]
    shared = np.flatnonzero(np.r_[False, bars[1:] == bars[:-1]])  # fills with an earlier one in their bar
    if not len(shared):
        return out
    prev, pos, side = orders["position_before"], orders["position"], orders["side"]
    opens = (pos != 0.0) & ((prev == 0.0) | (np.sign(pos) != np.sign(prev)))
    market = np.isin(orders["kind"], (SIGNAL, REBALANCE)) if exact else np.zeros(len(orders), dtype=bool)
    charge = orders["charge"]
    for k in shared[::-1]:  # each fill adds to the fills before it in its bar
        add = (float(orders["interest"][k]), charge[k] if side[k] < 0 else 0.0, charge[k] if side[k] > 0 else 0.0,
               1.0 if market[k] and opens[k] else 0.0)
        j = k - 1
        while j >= 0 and bars[j] == bars[k]:
            out[j] += add
            j -= 1
    return out


@njit(cache=True)
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


@njit(cache=True)
def _row(table, j, entry_bar, exit_bar, direction, tr, reason, exact_split):
    """Trade ``j`` of the table, from its sums ``tr``."""
    table[_ENTRY, j] = entry_bar
    table[_EXIT, j] = exit_bar
    table[_DIR, j] = direction
    table[_ENTRY_PRICE, j] = tr[_EV] / tr[_EQ]
    table[_EXIT_PRICE, j] = tr[_XV] / tr[_XQ] if tr[_XQ] > 0 else np.nan
    table[_QTY, j] = tr[_EQ]
    table[_FEES, j] = tr[_TF]
    table[_INTEREST, j] = tr[_TC]  # quote value
    table[_IB, j] = tr[_TB]  # the same interest in asset units
    table[_IQ, j] = tr[_TQ]
    # a long's quote interest is repaid out of its proceeds; a short's base
    # interest was bought back with its position, so it is in the cash already
    # (a short's quote interest, from a buy-back that borrowed quote, is not)
    table[_PNL, j] = tr[_CASH] - (tr[_TQ] if exact_split or direction < 0 else tr[_TC])
    table[_REASON, j] = reason


def _table(t, times, symbol) -> pd.DataFrame:
    """``_walk``'s table as trades.csv's rows; times boxed once per column."""
    n = t.shape[1]
    if n == 0:
        return pd.DataFrame([], columns=TRADE_COLUMNS)
    return pd.DataFrame({
        "symbol": repeat(symbol, n),
        "side": sides(t[_DIR], "long", "short"),
        "entry_time": times[t[_ENTRY].astype(np.int64)],
        "entry_price": t[_ENTRY_PRICE],
        "exit_time": times[t[_EXIT].astype(np.int64)],
        "exit_price": t[_EXIT_PRICE],
        "quantity": t[_QTY],
        "fees": t[_FEES],
        "interest": t[_INTEREST],
        "interest_base": t[_IB],
        "interest_quote": t[_IQ],
        "pnl": t[_PNL],
        "exit_reason": words(t[_REASON], _REASONS),
    }, columns=TRADE_COLUMNS)


def interest_by_asset(paid: np.ndarray, orders: np.ndarray, position: np.ndarray, open_: np.ndarray,
                      quote_paid=None, at=None, bars=None):
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
    base), so valued at the open.  ``at``: only at these bars (sorted,
    ``fill_bars``), what the trades walk reads; no per-bar rows are made.
    ``bars``: ``paid`` and ``position`` are given only at these bars (sorted,
    the first bar and every fill's among them: ``bar_rows.Rows.changes``,
    where they change), each holding until the next.
    """
    if quote_paid is not None:
        cum = np.cumsum(np.diff(paid - quote_paid, prepend=0.0) / open_), quote_paid.copy()
        return cum if at is None else (cum[0][at], cum[1][at])
    by_bar = np.argsort(orders["bar"], kind="stable")  # a bar's fills keep their order: sums as they were
    fills = (np.ascontiguousarray(orders["bar"][by_bar], dtype=np.int64),
             *(np.ascontiguousarray(orders[k][by_bar], dtype=np.float64) for k in ("side", "charge", "interest")))
    rows = (np.ascontiguousarray(a, dtype=np.float64) for a in (paid, position, open_))
    every = at is None
    at = _NO_BARS if every else np.ascontiguousarray(at, dtype=np.int64)
    # NumPy's pages (huge, one block), not numba's (4 kB: 3 ms more)
    cum_b, cum_q = np.empty((2, len(paid) if every else len(at)))
    _split_interest(*fills, _NO_BARS if bars is None else np.ascontiguousarray(bars, dtype=np.int64), *rows, at,
                    cum_b, cum_q)
    return cum_b, cum_q


_NO_BARS = np.empty(0, dtype=np.int64)


@njit(cache=True)
def _split_interest(bar, side, charge, interest, rows, paid, position, open_, at, cum_b, cum_q):
    """``interest_by_asset``'s cumulative (base, quote) into ``cum_b`` and
    ``cum_q``, in one pass over the rows of ``paid`` and ``position`` (the
    bars ``rows``; empty: every bar), the fills sorted by bar (no per-bar
    temporaries: fresh pages cost more than the arithmetic): every row's, or
    those of the bars ``at`` only (when it is not empty).  A bar between two
    rows adds nothing (its interest paid did not change): the sums at the
    rows are those of a pass over every bar, to the bit."""
    n = paid.shape[0]
    k, m = 0, bar.shape[0]
    every = at.shape[0] == 0
    by_row = rows.shape[0] > 0
    p = 0  # the next of ``at``
    total_b = total_q = 0.0
    for r in range(n):
        i = rows[r] if by_row else r
        while not every and p < at.shape[0] and at[p] < i:  # bars before this row: the sums so far
            cum_b[p], cum_q[p] = total_b, total_q
            p += 1
        borrow_b = borrow_q = borrow_value = 0.0
        while k < m and bar[k] <= i:
            if side[k] < 0:
                borrow_b += charge[k]
            elif side[k] > 0:
                borrow_q += charge[k]
            borrow_value += interest[k]
            k += 1
        boundary = (paid[r] - (paid[r - 1] if r > 0 else 0.0)) - borrow_value
        short_before = r > 0 and position[r - 1] < 0.0
        per_b = borrow_b + (boundary / open_[i] if short_before else 0.0)
        per_q = borrow_q + (0.0 if short_before else boundary)
        total_b = per_b if r == 0 else total_b + per_b  # sums in registers: no store-to-load wait per bar
        total_q = per_q if r == 0 else total_q + per_q
        if every:
            cum_b[r], cum_q[r] = total_b, total_q
    while not every and p < at.shape[0]:
        cum_b[p], cum_q[p] = total_b, total_q
        p += 1


def flat_costs(trades, paid_quote: np.ndarray) -> tuple:
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
    lazy = isinstance(trades, Trips)  # (``trades``: a table, or ``trip_walk``'s arrays)
    flat = trades.flat if lazy else trades.attrs.get("flat", {})
    quote = 0.0  # without the kernel's quote interest per bar (auto-repay on) every charge is in a trade
    if paid_quote is not None and len(paid_quote):
        quote = float(paid_quote[-1]) - (trades.interest_quote() if lazy else float(trades["interest_quote"].sum()))
    return (round(quote + flat.get("interest", 0.0), 8) + 0.0, round(flat.get("fees", 0.0), 8) + 0.0)
