"""How combinations are ranked: by a metric among those never liquidated,
then the liquidated ones (by the same metric).

One place, used by the sweep's table (``SweepResult.top``), its pictures'
best rows, the walk-forward's choice on each training span and the risk
lab.  "Liquidated" is ``n_liquidations > 0``: at least one forced
liquidation, partial or full, anywhere in the span (docs/model-choices.md
"Ranking").
"""
import numpy as np
import pandas as pd

LIQUIDATED = "n_liquidations"


def ranked(table: pd.DataFrame, metric: str, ascending: bool = False) -> pd.DataFrame:
    """``table`` sorted best first: never-liquidated rows by ``metric``
    (descending unless ``ascending``), then the liquidated ones; NaN metrics
    last within each group; ties keep the table's order."""
    if len(table) == 0:
        return table
    liquidated = (table[LIQUIDATED].to_numpy() > 0) if LIQUIDATED in table else np.zeros(len(table), bool)
    value = table[metric].to_numpy(np.float64)
    key = value if ascending else -value
    missing = np.isnan(key)
    key = np.where(missing, 0.0, key)
    order = np.lexsort((key, missing, liquidated))  # last key is the primary one; lexsort is stable
    return table.iloc[order]


def best(table: pd.DataFrame, metric: str, ascending: bool = False) -> dict:
    """The best row (``ranked``'s first) as a dict."""
    return ranked(table, metric, ascending).iloc[0].to_dict()
