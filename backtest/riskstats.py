"""The risk lab's statistics over paths: one formula each, in one place.

- P(liquidation) with a 95 % Wilson score interval (``wilson``);
- P(loss): final equity below the starting capital;
- final-equity quantiles 5/25/50/75/95 % (NumPy's default, linear
  interpolation between order statistics);
- expected shortfall 5 %: the mean of the worst ``ceil(5 % · n)`` returns;
- the fan table: equity quantiles at each sampled step over the horizon,
  over the paths kept for it (every ``stride``-th path, at most
  ``FAN_PATHS`` per combination; exact quantiles over those).
"""
import math

import numpy as np
import pandas as pd

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95)
STEPS = 100  # fan-chart steps over the horizon (plus the start)
FAN_PATHS = 2000  # paths per combination kept for the fan chart


def wilson(hits: int, n: int, z: float = Z95) -> tuple:
    """(low, high) of the Wilson score interval for ``hits`` of ``n``."""
    if n <= 0:
        return float("nan"), float("nan")
    p = hits / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n))
    # the ends are exactly 0 and 1 when no / every path hit (the formula's rounding aside)
    return (0.0 if hits == 0 else max(0.0, centre - half)), (1.0 if hits == n else min(1.0, centre + half))


def expected_shortfall(returns: np.ndarray, level: float = 0.05) -> float:
    """Mean of the worst ``ceil(level · n)`` returns."""
    r = np.sort(np.asarray(returns, dtype=np.float64))
    if r.size == 0:
        return float("nan")
    k = max(1, math.ceil(level * r.size - 1e-9))
    return float(r[:k].mean())


def combination_stats(rows: pd.DataFrame, capital: float) -> dict:
    """risk.json's numbers for one combination's paths."""
    n = len(rows)
    hits = int(rows["liquidated"].sum())
    low, high = wilson(hits, n)
    equity = rows["final_equity"].to_numpy(np.float64)
    q = np.quantile(equity, QUANTILES)
    out = {"n_paths": n, "n_liquidated": hits, "p_liquidation": hits / n if n else float("nan"),
           "p_liquidation_low": low, "p_liquidation_high": high,
           "p_loss": float(np.mean(equity < capital)) if n else float("nan")}
    out.update({f"equity_q{round(p * 100):02d}": float(v) for p, v in zip(QUANTILES, q)})
    out["expected_shortfall_5"] = expected_shortfall(rows["return"].to_numpy())
    out["mean_return"] = float(rows["return"].mean())
    return out


def fan_stride(n_paths: int) -> int:
    """Keep every ``stride``-th path for the fan chart."""
    return max(1, -(-n_paths // FAN_PATHS))


def sample_steps(seconds: np.ndarray, start: int, horizon: int, spacing: int) -> np.ndarray:
    """For steps ``1..STEPS``, the bar whose close is the last at or before
    ``start + j/STEPS · horizon`` (−1: none yet, the starting capital)."""
    at = start + (np.arange(1, STEPS + 1) * horizon) // STEPS
    return np.searchsorted(seconds + spacing, at, side="right") - 1


def fan_table(samples: np.ndarray, horizon_days: float) -> pd.DataFrame:
    """Quantiles of equity per step (``samples``: paths × (STEPS + 1))."""
    q = np.quantile(samples, QUANTILES, axis=0)
    table = pd.DataFrame({f"q{round(p * 100):02d}": q[i] for i, p in enumerate(QUANTILES)})
    table.insert(0, "day", np.arange(STEPS + 1) * horizon_days / STEPS)
    table.insert(0, "step", np.arange(STEPS + 1))
    return table
