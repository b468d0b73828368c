"""Record layouts the kernel fills and the result layer reads.

Plain NumPy structured dtypes, so the compiled loop can write them and
pandas can read them without either knowing about the other.
"""
import numpy as np

# order kinds, as stored in ``order_dt.kind``
# (the names are trades.csv's ``exit_reason`` for the fill that closed a trade)
SIGNAL, REBALANCE, LIQUIDATION, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, LIMIT, DELEVERAGE = 0, 1, 2, 3, 4, 5, 6, 7
ORDER_KINDS = ("signal", "rebalance", "liquidation", "stop_loss", "take_profit", "trailing_stop", "limit",
               "deleverage")

order_dt = np.dtype(
    [
        ("bar", np.int64),
        ("side", np.int8),  # +1 buy, -1 sell
        ("kind", np.int8),
        ("capped", np.bool_),
        ("ambiguous", np.bool_),  # the path order inside the bar decided this fill
        ("quantity", np.float64),  # base units traded
        ("price", np.float64),
        ("fee", np.float64),  # quote value (liquidation fee for kind LIQUIDATION)
        ("position_before", np.float64),  # net base position before the fill
        ("position", np.float64),  # net base position after the fill
        ("interest", np.float64),  # first hour of interest on what the fill borrowed, quote value
        ("charge", np.float64),  # the same charge in the borrowed asset (quote for a buy, base for a sell)
    ],
    align=True,
)

liquidation_dt = np.dtype(
    [
        ("bar", np.int64),
        ("gap", np.bool_),  # the bar opened beyond the liquidation price
        ("trigger_price", np.float64),
        ("fill_price", np.float64),
        ("margin_level", np.float64),  # at the trigger price, before the fee
        ("fee", np.float64),
        ("equity_before", np.float64),
        ("equity_after", np.float64),
        ("bad_debt", np.float64),
        ("quantity", np.float64),
    ],
    align=True,
)

margin_call_dt = np.dtype([("bar", np.int64), ("margin_level", np.float64)], align=True)

# several symbols (kernel_multi): the same records with the symbol / account they belong to


def _with(dt, *extra):
    return np.dtype([(name, dt.fields[name][0]) for name in dt.names] + list(extra), align=True)


# trigger and event: a liquidation fill's trigger price and the row of its event in the liquidations (else NaN, -1)
order_multi_dt = _with(order_dt, ("symbol", np.int64), ("trigger", np.float64), ("event", np.int64))
liquidation_multi_dt = _with(liquidation_dt, ("account", np.int64), ("theta", np.float64))  # theta: joint path
margin_call_multi_dt = _with(margin_call_dt, ("account", np.int64))

# the trader's own moves (flows.py): scheduled transfers in and out, top-ups from the reserve
# and the manual loans (``loans.csv``: borrow, repay)
SCHEDULED, WITHDRAWAL, TOP_UP, BORROW, REPAY = 0, 1, 2, 3, 4
TRANSFER_REASONS = ("scheduled", "withdrawal", "top-up", "borrow", "repay")
transfer_dt = np.dtype(
    [
        ("bar", np.int64),
        ("reason", np.int8),
        ("base", np.bool_),  # the asset moved is the base (a manual loan's), else the quote
        ("amount", np.float64),  # what moved: quote + into the margin account; a loan's amount ≥ 0
        ("requested", np.float64),
        ("price", np.float64),  # the levels' price: the open for a scheduled move, the trigger for a top-up
        ("level_before", np.float64),  # the venue's health: margin level (spot), MB / MM (perps)
        ("level_after", np.float64),
        ("capped", np.bool_),
        ("reserve_after", np.float64),
    ],
    align=True,
)
