"""A cross account's shared costs, split over its symbols' trades.

With several symbols in one cross account, three things belong to the
account and to no single symbol: the hourly interest on the shared quote
loan, a cross liquidation's fee (charged on the account's total assets) and
the quote part of its bad debt.  So that every run's trades add up to its
equity change (docs/model-choices.md "Books"), they are split here, from the
kernel's result arrays, by documented rules:

- **Quote interest.**  Each bar's charges on the shared quote loan (the
  account's interest less what its symbols carry: their base interest and
  their own fills' borrow charges) go to the symbols that were *long* at the
  previous close, in proportion to those positions' value at that close:
  the longs are what the quote loan financed.  A bar where none was long
  (a quote loan left by a short's buy-back) has no trade to carry it: it is
  the run's ``interest_while_flat``.
- **Liquidation fee and bad debt.**  A cross event's fee, and the quote
  part of its bad debt (what is left after each symbol's own base written
  off, which stays with that symbol), go to the event's fills in
  proportion to the value of each position at its fill price.  An event
  without fills (nothing tradable was held) goes to ``fees_while_flat``.
"""
import numpy as np
from numba import njit

from ._numba_cache import configure
from .records import LIQUIDATION

configure()  # numba's cache folder, set before any @njit here is defined


def shared_quote_interest(acct_paid, sym_paid, positions, closes):
    """Split an account's quote-loan interest over its symbols.

    ``acct_paid`` (n,): the account's cumulative interest (quote value);
    ``sym_paid`` (m, n): each symbol's cumulative own interest;
    ``positions`` (m, n): each symbol's position at every close;
    ``closes`` (m, n): the price each is valued at there (its last close).
    Returns ``(per-symbol cumulative share (m, n), cumulative remainder (n,))``.
    """
    c = np.ascontiguousarray
    shares = np.empty(np.shape(sym_paid))
    remainder = _split_quote(c(acct_paid, dtype=np.float64), c(sym_paid, dtype=np.float64),
                             c(positions, dtype=np.float64), c(closes, dtype=np.float64), shares)
    return shares, remainder


@njit(cache=True)
def _split_quote(acct_paid, sym_paid, positions, closes, shares):
    """``shared_quote_interest`` in one pass (NumPy's passes over m × n
    arrays took ~40 ms for two symbols' million bars).  Per bar: the charge
    on the quote loan (the account's interest less its symbols' own, each a
    difference from the bar before), the longs into the bar valued at the
    last close, each one's share by value (cumulative into ``shares``), and
    the charge no long carries (cumulative, returned).  Sums in NumPy's
    order (rows in turn from 0.0, a cumulative sum from its first term), so
    the numbers are those of ``np.diff``, ``sum(axis=0)`` and ``np.cumsum``
    to the bit (but for a run of one bar and nine symbols or more, where
    NumPy sums the column pairwise: float noise in an amount that rounds
    to 0 in the summary)."""
    m, n = sym_paid.shape
    rest = np.empty(n)
    held = np.empty(m)
    for j in range(n):
        own = 0.0
        total = 0.0
        for k in range(m):
            d = sym_paid[k, j] - (sym_paid[k, j - 1] if j > 0 else 0.0)
            p = positions[k, j - 1] if j > 0 else 0.0
            held[k] = (p if (p > 0.0 or p != p) else 0.0) * closes[k, j - 1] if j > 0 else 0.0
            own += d
            total += held[k]
        charge = (acct_paid[j] - (acct_paid[j - 1] if j > 0 else 0.0)) - own
        for k in range(m):
            w = held[k] / total if total > 0.0 else 0.0
            shares[k, j] = w * charge if j == 0 else shares[k, j - 1] + w * charge
        r = 0.0 if total > 0.0 else charge
        rest[j] = r if j == 0 else rest[j - 1] + r
    return rest


def cross_liquidation_shares(liqs, orders, account, ghost=None):
    """Per liquidation record of ``account`` (in ``orders``' order): its
    share of its event's fee, and the bad debt it stands for (its own base
    written off, plus its share of the event's quote bad debt), as
    ``round_trips`` takes them.  ``ghost`` marks ``write_offs``' records
    among ``orders``: their base written off is theirs, and they take no
    share (they traded nothing).

    Returns ``(fee_share, bad_share, unassigned)``, the arrays aligned with
    ``orders[orders["kind"] == LIQUIDATION]``; ``unassigned``: the fee less
    quote bad debt of events without fills.
    """
    is_liq = orders["kind"] == LIQUIDATION
    fills = orders[is_liq]
    ghost = np.zeros(len(fills), dtype=bool) if ghost is None else np.asarray(ghost, dtype=bool)[is_liq]
    fee_share = np.zeros(len(fills))
    bad_share = np.zeros(len(fills))
    unassigned = 0.0
    before, after = fills["position_before"], fills["position"]
    # the move of the position its fill does not explain: base written off (trades._credit)
    written_off = np.abs(after - before - fills["side"] * fills["quantity"]) * fills["price"]
    value = np.where(ghost, 0.0, np.abs(before) * fills["price"])
    for e in np.flatnonzero(liqs["account"] == account):
        mine = np.flatnonzero(fills["event"] == e)
        fee, bad = float(liqs["fee"][e]), float(liqs["bad_debt"][e])
        own = written_off[mine] if bad > 0.0 else np.zeros(len(mine))
        quote_bad = bad - float(own.sum())
        total = float(value[mine].sum())
        bad_share[mine] = own
        if total <= 0.0:
            unassigned += fee - quote_bad
            continue
        w = value[mine] / total
        fee_share[mine] = fee * w
        bad_share[mine] += quote_bad * w
    return fee_share, bad_share, unassigned


def write_offs(ghosts, ks):
    """Base debt a cross liquidation with bad debt wrote off for a symbol
    that had no bar there (so no fill records it), of the account's symbols
    ``ks``: the kernel's ghost records (``kernel_multi._cross_liquidation``
    decides them: quantity 0, at the price the debt was valued at, the
    position just before the event), for ``round_trips`` only, as a buy of
    nothing, so the short it ends is closed there."""
    mine = ghosts[np.isin(ghosts["symbol"], ks)]
    mine["side"] = 1
    return mine
