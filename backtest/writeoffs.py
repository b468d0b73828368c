"""Write-offs: an account with nothing left to sell whose debt exceeds its
cash.  The kernel records them as liquidation events that filled nothing;
the result tables show them apart (docs/model-choices.md "No empty
liquidations"): not in ``liquidations``, order kind ``write_off``, counted
in ``summary["n_write_offs"]`` and not in ``n_liquidations``."""
import numpy as np

from .records import LIQUIDATION, ORDER_KINDS
from .words import words

WRITE_OFF = len(ORDER_KINDS)  # the orders table's kind code of a write-off's zero fill
KIND_WORDS = ORDER_KINDS + ("write_off",)


def of_events(liqs, orders) -> np.ndarray:
    """Per liquidation event: True when none of its fills traded anything
    (``orders`` with an ``event`` column: several symbols)."""
    fills = orders[(orders["kind"] == LIQUIDATION) & (orders["quantity"] > 0.0)]
    return ~np.isin(np.arange(len(liqs)), fills["event"])


def note(summary: dict, write_off: np.ndarray) -> None:
    """Count the write-offs apart in ``summary`` (several symbols:
    ``kernel_multi`` counts them with the liquidations; the one-symbol kernel
    counts them apart itself, ``engine.summary_of``)."""
    n = int(np.count_nonzero(write_off))
    if n:
        summary["n_liquidations"] -= n
        summary["n_write_offs"] = n


def kinds(orders):
    """The orders table's ``kind`` column: a write-off's zero fill (a
    liquidation that traded nothing) is kind ``write_off``."""
    codes = orders["kind"].astype(np.intp)
    codes[(codes == LIQUIDATION) & (orders["quantity"] == 0.0)] = WRITE_OFF
    return words(codes, KIND_WORDS)
