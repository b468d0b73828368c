"""Write-offs: an account with nothing left to sell whose debt exceeds its
cash.  The kernel records them as liquidation events that filled nothing;
the result tables show them apart (docs/model-choices.md "No empty
liquidations"): not in ``liquidations``, order kind ``write_off``, counted
in ``summary["n_write_offs"]`` and not in ``n_liquidations``."""
import numpy as np

from .records import LIQUIDATION


def of_events(liqs, orders) -> np.ndarray:
    """Per liquidation event: True when none of its fills traded anything
    (``orders`` with an ``event`` column: several symbols)."""
    fills = orders[(orders["kind"] == LIQUIDATION) & (orders["quantity"] > 0.0)]
    return ~np.isin(np.arange(len(liqs)), fills["event"])


def note(summary: dict, write_off: np.ndarray, orders_df) -> None:
    """Count the write-offs apart in ``summary`` and name their fills in the
    orders table (several symbols: ``kernel_multi`` counts them with the
    liquidations; the one-symbol kernel counts them apart itself,
    ``engine.summary_of``)."""
    n = int(np.count_nonzero(write_off))
    if n:
        summary["n_liquidations"] -= n
        summary["n_write_offs"] = n
    name_fills(orders_df)


def name_fills(orders_df) -> None:
    """A write-off's zero fill is kind ``write_off`` in the orders table."""
    if len(orders_df):
        empty = (orders_df["kind"] == "liquidation") & (orders_df["quantity"] == 0.0)
        if empty.any():  # (an assignment through .loc costs ~1 ms even when it selects nothing)
            orders_df.loc[empty, "kind"] = "write_off"
