"""marginbt: leveraged crypto backtests on Binance-style margin.

The pipeline, one module per stage::

    data (load_ohlcv) → strategy (targets) → kernel (compiled loop, rules.py)
    → result (Result: tables, metrics) → report (PNG, PDF)

Quick start::

    import backtest
    bars = backtest.load_ohlcv("data/BTCUSDT-1h.parquet")
    res = backtest.run(bars, "sma_cross", {"fast": 10, "slow": 50}, margin="cross-3x")
    print(res.summary["final_equity"], len(res.liquidations))
    res.plot("equity.png")
"""
from . import _numba_cache  # noqa: F401  (before any compiled function is defined)
from .data import load_ohlcv
from .engine import Backtest, run
from .multi import run_multi
from .risklab import risk
from .errors import DataError, UserError
from .profiles import PROFILES, Profile, get_profile
from .result import Result

__all__ = ["Backtest", "DataError", "PROFILES", "Profile", "Result", "UserError", "get_profile", "load_ohlcv", "risk",
           "run", "run_multi"]
