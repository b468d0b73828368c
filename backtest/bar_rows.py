"""The kernel's per-bar rows, made from its account log when they are read.

Between two events the account does not change: a bar's equity, position,
debt, interest owed and paid follow from the account's state and the bar's
close.  So the kernel writes one log row (``LOG`` columns: the account ``HB
.. IQ``, the cumulative interest paid and charged, the cross wallet of an
isolated perp, the bar) where the state changes — an eventful bar that
changed it, each hour's charge in a quiet run, at most one row a bar — and
the rows are made here, from the log, only when a table needs them.  A
1M-bar run's kernel so writes ~2 MB instead of 40 MB of fresh pages
(``backtest bench``).

The formulas are the kernel's own (``account._assets``, ``_debt``,
``_position``), on the logged state: the rows are bit for bit those the
kernel wrote per bar before.
"""
import numpy as np
from numba import njit

from ._numba_cache import configure
from .account import IB, IQ, PB, _assets, _debt, _position

configure()  # numba's cache folder, set before any @njit here is defined

# a log row: the account (account.HB .. IQ, the same places), then the run's sums (interest paid and
# charged in quote, step-4 charges, an isolated perp's cross wallet) and the bar
L_PAID, L_INT_QUOTE, L_AFTER_B, L_AFTER_Q, L_FREE, BAR = 6, 7, 8, 9, 10, 11
LOG = 12
ROWS = 5  # equity, position, debt (a perp: the cross wallet outside an isolated position), interest owed, paid
EXACT_ROWS = 4  # auto-repay off: cumulative quote interest, step-4 charges (base, quote), base owed


@njit(cache=True, inline="always")
def log_state(log, r, st, paid, int_quote, after_b, after_q, free, bar):
    """Row ``r`` of the log: the account ``st`` and the run's sums at
    ``bar``, unless they are those of row ``r - 1`` (an eventful bar where
    nothing changed); returns the rows written.  (The sums are handed in as
    the kernel holds them: reading them from its ``fs`` here made the
    bench's loop 3-7 % slower in alternated rounds, measured.)"""
    if r > 0:
        same = (log[r - 1, L_PAID] == paid and log[r - 1, L_INT_QUOTE] == int_quote
                and log[r - 1, L_AFTER_B] == after_b and log[r - 1, L_AFTER_Q] == after_q and log[r - 1, L_FREE] == free)
        for k in range(6):
            same = same and log[r - 1, k] == st[k]
        if same:
            return r
    for k in range(6):
        log[r, k] = st[k]
    log[r, L_PAID] = paid
    log[r, L_INT_QUOTE] = int_quote
    log[r, L_AFTER_B] = after_b
    log[r, L_AFTER_Q] = after_q
    log[r, L_FREE] = free
    log[r, BAR] = bar
    return r + 1


@njit(cache=True)
def expand(log, n_log, close, perp, at, out):
    """The rows of ``out`` (``ROWS``, then ``EXACT_ROWS`` if it has them)
    per bar, or only at the bars ``at`` (sorted; empty: every bar), from
    the first ``n_log`` rows of the log and the closes."""
    every = at.shape[0] == 0
    n = close.shape[0]
    p = 0  # the next of ``at``
    for r in range(n_log):
        start = int(log[r, BAR])
        end = int(log[r + 1, BAR]) if r + 1 < n_log else n
        if every:
            _segment(log, r, close, perp, start, end, 0, out)
        else:
            q = p
            while p < at.shape[0] and at[p] < end:
                p += 1
            for k in range(q, p):  # (a few bars: one at a time)
                _segment(log, r, close, perp, at[k], at[k] + 1, k - at[k], out)


@njit(cache=True, inline="always")
def _segment(log, r, close, perp, start, end, shift, out):
    """Bars ``start`` to ``end`` of the log's row ``r`` (which holds for all
    of them) into ``out``'s columns ``bar + shift``."""
    row = log[r]
    position, paid, free = _position(row), row[L_PAID], row[L_FREE]
    exact = out.shape[0] > ROWS
    for j in range(start, end):
        c = close[j]
        debt = _debt(row, c)
        q = j + shift
        out[0, q] = _assets(row, c) - debt
        out[1, q] = position
        out[2, q] = free if perp else debt
        out[3, q] = row[IB] * c + row[IQ]
        out[4, q] = paid
        if exact:
            out[5, q] = row[L_INT_QUOTE]
            out[6, q] = row[L_AFTER_B]
            out[7, q] = row[L_AFTER_Q]
            out[8, q] = row[PB] + row[IB]


@njit(cache=True)
def log_positions(log, n_log):
    """The position after each of the first ``n_log`` log rows."""
    pos = np.empty(n_log)
    for r in range(n_log):
        pos[r] = _position(log[r])
    return pos


def room(n: int) -> int:
    """The log rows a run of ``n`` bars starts with (``engine.simulate_arrays``
    grows them when the kernel runs short): a row a bar, the most it can
    need (pages not written are never taken), up to 4M bars; a longer run
    starts with a quarter, so its address space stays within what per-bar
    rows took."""
    return n if n <= 1 << 22 else max(1 << 22, n // 4)


class Rows:
    """A run's per-bar rows, made from the kernel's log when first asked
    (``full``), or at a few bars only (``at``)."""

    def __init__(self, log, n_log, close, perp, exact):
        self.log, self.n_log, self.close, self.perp, self.exact = log, n_log, close, perp, exact
        self._full = None
        self.n_rows = ROWS + (EXACT_ROWS if exact else 0)

    def full(self):
        """Every bar's rows (``ROWS`` (+ ``EXACT_ROWS``) × bars), made once."""
        if self._full is None:
            # NumPy's pages (huge, one block)
            self._full = np.empty((self.n_rows, self.close.shape[0]))
            expand(self.log, self.n_log, self.close, self.perp, _EVERY, self._full)
        return self._full

    def at(self, bars):
        """The rows at ``bars`` (sorted), without making the others."""
        if len(bars) and (np.any(np.diff(bars) < 0) or bars[0] < 0 or bars[-1] >= self.close.shape[0]):
            raise ValueError("Rows.at: bars must be sorted and inside the run")  # (expand fills them in order)
        if self._full is not None:
            return self._full[:, bars]
        out = np.empty((self.n_rows, len(bars)))
        expand(self.log, self.n_log, self.close, self.perp, np.ascontiguousarray(bars, dtype=np.int64), out)
        return out

    def changes(self):
        """(bar, interest paid, position) at each log row: where the per-bar
        interest can change (``trades.interest_by_asset``'s rows)."""
        log = self.log[: self.n_log]
        return log[:, BAR].astype(np.int64), np.ascontiguousarray(log[:, L_PAID]), log_positions(self.log, self.n_log)


_EVERY = np.empty(0, dtype=np.int64)
