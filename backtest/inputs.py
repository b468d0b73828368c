"""The one-symbol kernel's inputs as named tuples (numba compiles them as
typed records): ``kernel.simulate(bars, marks, cfg, rates, detail, given,
log, orders, liqs, calls, venue, flows)`` instead of 48 positions.  A field is
read by name in the compiled code, so adding one touches its record and
its readers, not every call site."""
from collections import namedtuple

import numpy as np

from .strategy import NONE

# the traded bars: open times in integer seconds (UTC), prices
Bars = namedtuple("Bars", "ts open high low close")
# the prices liquidation is checked against (the traded open, high, low and
# an empty close when there is no mark series)
Marks = namedtuple("Marks", "open high low close")
# the settings, every one a scalar (RunSettings.kernel_config)
Settings = namedtuple("Settings", (
    "capital fee slippage initial_ml call_ml liquidation_ml liquidation_fee restore_ml full_liquidation "
    "rebalance round_interest stop_on_liquidation stop_loss take_profit trailing_stop pessimistic auto_repay "
    "repay_on_flat max_borrow_base max_borrow_quote venue leverage isolated auto_borrow manual_loans"),
    defaults=(0, 0.0, False, True, False))
# the venue's own inputs (venues/plug.py): its maintenance-bracket tables
# (versions from ``table_from`` seconds, their tiers ``table_rows[table_start[v]
# : table_start[v + 1]]``: floor, cap, mmr, cum, max leverage) and its
# periodic charges (funding: the bar each falls in, the mark and rate, and
# ``funding_out`` 2 × n filled with the position and the payment); the
# kernel takes None on spot margin (its compiled loop then has no perp code)
Venue = namedtuple("Venue", "table_from table_start table_rows funding_bar funding_mark funding_rate funding_out")
# a cross perp account of several symbols (kernel_multi): the leverage, per
# symbol and grid bar the bracket version in force (``ver[s, i]``, tiers
# ``table_rows[table_start[v] : table_start[v + 1]]``), and the funding
# charges in the order they are paid (grid bar, symbol, mark, rate;
# ``funding_out`` 2 × charges filled with the position and the payment)
CrossVenue = namedtuple("CrossVenue", "leverage ver table_start table_rows funding_bar funding_sym funding_mark "
                                      "funding_rate funding_out")
# the trader's own moves (flows.py, docs/model-choices.md "Transfers and a
# reserve"): scheduled transfers (the bar each applies at, its amount), the
# run's ``state`` (reserve left, net scheduled transfers, topped up; the
# reserve at the start in ``state[0]``), the top-up rule (``top_ml`` the
# level to lift to, or ``top_amount`` a fixed amount; the other NaN), the
# safety buffer's level ``keep_ml`` (NaN: none), the manual loans (the bar
# each is done at, its kind ``flows.LOAN_KINDS``, its amount; "Manual
# loans"), and the ``log`` of moves with ``count`` (rows written, next
# scheduled transfer, next loan); the kernel takes None without transfers,
# reserve, buffer and loans
Flows = namedtuple("Flows", "bar amount state top_ml top_amount keep_ml loan_bar loan_kind loan_amount log count")
# the kernel of cross accounts holding several symbols (kernel_multi): the
# time grid ``ts`` and ``[S, n]`` arrays, NaN where a symbol has no bar
# (target NaN: hold; ``mark_*``: the bars liquidation is checked on, the
# traded ones where a symbol has no mark series)
Grid = namedtuple("Grid", "ts open high low close target mark_open mark_high mark_low")
# its accounts: each symbol's account, and per account the capital and the
# profile's levels (assets / debt terms)
Accounts = namedtuple("Accounts", "symbol_account capital initial_ml call_ml liquidation_ml liquidation_fee restore_ml")
# its settings (scalars), hourly rates (``rates[S + 1, hours]`` from the
# whole hour ``rate_h0``: each symbol's base, the quote last) and a custom
# profile's max borrow (``borrow_limits[S + 1]``, principal, the same order; +inf: none)
MultiConfig = namedtuple("MultiConfig", "fee slippage full_liquidation rebalance round_interest stop_on_liquidation "
                                        "auto_repay repay_on_flat rate_h0 rates borrow_limits")
# its stops on the joint path (docs/model-choices.md "Stops on a joint path"):
# per symbol row its fractions ``[S, 3]`` (stop-loss, take-profit, trailing;
# 0 = off) and its strategy's stop-loss / take-profit prices in force during
# each grid bar ``[S, n]`` (NaN: the fraction's level; ``[S, 0]``: none given);
# the mark closes its liquidation path ends at ``[S, n]`` (``[S, 0]`` without
# mark series: the traded closes); a strategy's limit prices given at each
# grid bar ``[S, n]`` (NaN: a market order; ``[S, 0]``: none given) and each
# symbol's expiry in its own bars ``[S]`` (empty without limit orders)
JointStops = namedtuple("JointStops", "fractions sl_price tp_price mark_close limit expiry")
# its finer bars (docs/model-choices.md "Finer bars on a joint path"): per
# symbol row its finer bars ``[S, F]`` (NaN past its own), the row of its
# first sub-bar of each grid bar ``[S, n]`` (−1: none usable, or no bar) and
# the number of sub-bars a bar has
JointDetail = namedtuple("JointDetail", "open high low close start ratio")
# its per-bar outputs (``acct[A, 4, n]``, ``sym[S, 2, n]``; ``sym[S, 6, n]`` with
# auto-repay off: ``kernel_multi.SYMBOL_EXTRA`` after ``SYMBOL_ROWS``) and the interest
# charged per base asset and per account's quote, in asset units
MultiOut = namedtuple("MultiOut", "acct sym interest_base interest_quote")
# hourly borrow rates of the whole hours h0, h0 + 1, … (rates.rate_table), and for each hour the next
# one whose rates differ (the length: none; ``rates_of`` makes it)
Rates = namedtuple("Rates", "h0 base quote change")


def rates_of(h0, base, quote) -> Rates:
    """The kernel's ``Rates`` of the hourly ``base`` and ``quote`` rates
    from hour ``h0``: its quiet loop looks the rates up only where they
    change (a lookup and a comparison every hourly bar were ~5-13 % of a
    run on hourly bars)."""
    h = base.shape[0]
    moves = np.flatnonzero((base[1:] != base[:-1]) | (quote[1:] != quote[:-1])) + 1
    moves = np.append(moves, h).astype(np.int64)
    return Rates(np.int64(h0), base, quote, moves[np.searchsorted(moves, np.arange(h), side="right")])
# finer bars; bar i's usable ones are start[i] .. end[i] − 1 (detail.detail_arrays)
Detail = namedtuple("Detail", "open high low close start end")
# a strategy's output (strategy.Orders): targets, limit prices and their
# expiry, stop-loss / take-profit prices per bar (empty arrays: none)
Given = namedtuple("Given", "target limit expiry sl_price tp_price")


def read_only(record):
    """``record`` with every array field a read-only view (no copy).  numba
    types an array's writability, so a run on a Parquet file's columns
    (read-only) and one on NumPy arrays compiled the kernel twice, ~15 s
    each (27 signatures of ``kernel._loop`` in the test suite): the kernel
    only reads these records, so ``kernel.simulate`` and the warm helper
    hand it every one read-only, one signature per kind of run."""
    if record is None:
        return None
    for v in record:  # (a sweep's bars, marks and rates are read-only already: ~1 µs each, no new tuple)
        if isinstance(v, np.ndarray) and v.flags.writeable:
            return record._make([frozen(w) if isinstance(w, np.ndarray) and w.flags.writeable else w for w in record])
    return record


def frozen(a):
    """A read-only view of ``a`` (no copy)."""
    v = a.view()
    v.flags.writeable = False
    return v


def marks_of(bars: Bars, mark=None) -> Marks:
    """``mark``'s (open, high, low, close) arrays, or the traded bars'."""
    if mark is None:
        return Marks(bars.open, bars.high, bars.low, NONE)
    return Marks(*mark)
