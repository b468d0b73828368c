"""Summary metrics from an equity curve and the run's records.

Conventions (the ones vectorbt and backtesting.py users expect):
- returns are bar-to-bar simple returns of equity; the first bar's return is
  measured from the starting capital;
- annualisation uses the bar spacing: ``periods_per_year = 365·86400 / median
  spacing`` (crypto trades every day), risk-free rate 0;
- Sharpe = mean / std (ddof 1) · sqrt(periods); Sortino uses the root mean
  square of negative returns as downside deviation; Calmar = CAGR / |max DD|;
- max drawdown is the largest fall from a running peak, as a negative
  fraction; a run that ends at zero equity has total return −1 and CAGR −1;
- exposure is the fraction of bars that close with an open position.
"""
import math

import numpy as np

YEAR = 365 * 86400


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fraction below the running peak at each bar (≤ 0)."""
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, equity / peak - 1.0, 0.0)
    return dd


def periods_per_year(seconds: np.ndarray) -> float:
    if seconds.shape[0] < 2:
        return float("nan")
    return YEAR / float(np.median(np.diff(seconds)))


def summarize(capital: float, equity: np.ndarray, seconds: np.ndarray, position: np.ndarray, margin_level: np.ndarray) -> dict:
    """Return, risk and exposure metrics of one equity curve."""
    curve = np.concatenate(([capital], equity))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.where(curve[:-1] > 0, curve[1:] / curve[:-1] - 1.0, 0.0)
    final = float(equity[-1])
    total = final / capital - 1.0
    years = (seconds[-1] - seconds[0]) / YEAR if seconds.shape[0] > 1 else 0.0
    if final <= 0:
        cagr = -1.0
    elif years > 0:
        with np.errstate(over="ignore"):  # a short, lucky run annualises to inf
            cagr = float(np.power(final / capital, 1.0 / years)) - 1.0
    else:
        cagr = float("nan")
    ppy = periods_per_year(seconds)
    sd = float(np.std(rets, ddof=1)) if rets.shape[0] > 1 else 0.0
    mean = float(np.mean(rets))
    downside = math.sqrt(float(np.mean(np.minimum(rets, 0.0) ** 2)))
    max_dd = float(drawdown(curve).min())
    return {
        "final_equity": final,
        "total_return": total,
        "cagr": cagr,
        "max_drawdown": max_dd,
        "sharpe": mean / sd * math.sqrt(ppy) if sd > 0 else 0.0,
        "sortino": mean / downside * math.sqrt(ppy) if downside > 0 else 0.0,
        "calmar": cagr / abs(max_dd) if max_dd < 0 else 0.0,
        "exposure": float(np.mean(position != 0.0)),
        "min_margin_level": float(np.min(margin_level)),
    }
