"""Summary metrics from an equity curve and the run's records.

Conventions (the ones vectorbt and backtesting.py users expect):
- returns are bar-to-bar simple returns of equity; the first bar's return is
  measured from the starting capital (the kernel sums them as it goes);
- CAGR spans the first open to the last close (one bar spacing past the
  last open);
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
    return relative(equity, np.maximum.accumulate(equity))


def relative(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``x / base − 1`` where ``base`` > 0, else 0 (a return from no equity,
    a drawdown from no peak), written into ``base`` (a buffer of the
    caller's: no temporaries)."""
    alive = base > 0
    np.copyto(base, 1.0, where=~alive)  # (any divisor: those bars are 0 below)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(x, base, out=base)
    base -= 1.0
    np.copyto(base, 0.0, where=~alive)
    return base


def return_sums(r: np.ndarray, scratch: np.ndarray | None = None) -> dict:
    """What ``summarize`` takes of the per-bar returns ``r`` (the kernel
    keeps the same three online): ``sum_r``, ``sum_r2``, ``sum_neg2``,
    NumPy's sums of ``r``, ``r²`` and ``min(r, 0)²``; ``scratch`` a buffer
    like ``r`` to square into."""
    t = np.empty_like(r) if scratch is None else scratch
    sums = {"sum_r": float(r.sum())}
    np.multiply(r, r, out=t)
    sums["sum_r2"] = float(t.sum())
    np.minimum(r, 0.0, out=t)
    t *= t
    sums["sum_neg2"] = float(t.sum())
    return sums


def periods_per_year(seconds: np.ndarray) -> float:
    if seconds.shape[0] < 2:
        return float("nan")
    from .medians import spacing_median  # compiled: numba loads on first use (metrics alone need none)

    step = spacing_median(seconds)
    return YEAR / float(np.median(np.diff(seconds)) if step is None else step)


def summarize(capital: float, stats: dict, n_bars: int, first_s: int, last_s: int, ppy: float) -> dict:
    """Return, risk and exposure metrics from the kernel's online statistics
    (``kernel.STATS``), so a sweep row and a single run agree exactly."""
    final = stats["final_equity"]
    total = final / capital - 1.0
    years = (last_s - first_s + YEAR / ppy) / YEAR if ppy == ppy else 0.0  # opens to the last close
    if final <= 0:
        cagr = -1.0
    elif years > 0:
        with np.errstate(over="ignore"):  # a short, lucky run annualises to inf
            cagr = float(np.power(final / capital, 1.0 / years)) - 1.0
    else:
        cagr = float("nan")
    mean = stats["sum_r"] / n_bars
    var = (stats["sum_r2"] - n_bars * mean * mean) / (n_bars - 1) if n_bars > 1 else 0.0
    sd = math.sqrt(max(var, 0.0))
    downside = math.sqrt(stats["sum_neg2"] / n_bars)
    max_dd = stats["max_drawdown"]
    return {
        "final_equity": final,
        "total_return": total,
        "cagr": cagr,
        "max_drawdown": max_dd,
        "sharpe": mean / sd * math.sqrt(ppy) if sd > 0 else 0.0,
        "sortino": mean / downside * math.sqrt(ppy) if downside > 0 else 0.0,
        "calmar": cagr / abs(max_dd) if max_dd < 0 else 0.0,
        "exposure": stats["n_exposed"] / n_bars,
        "min_margin_level": stats["min_margin_level"],
    }
