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
import importlib

# imported on first use, so `backtest --help` does not load pandas and numba
# (every compiled module imports rules.py or indicators.py, which set numba's
# cache folder before any compiled function is defined)
_WHERE = {"load_ohlcv": "data", "Backtest": "engine", "run": "engine", "run_multi": "multi", "risk": "risklab",
          "DataError": "errors", "UserError": "errors", "UserTypeError": "errors", "PROFILES": "profiles",
          "Profile": "profiles", "get_profile": "profiles", "Result": "result"}
# ``backtest.sweep`` is the module ``sweep.py``, callable as the function it holds (so ``backtest.sweep(...)``
# and ``from backtest import sweep`` mean one object, whatever was imported first)
__all__ = sorted([*_WHERE, "sweep"])


def __getattr__(name):
    if name not in _WHERE:  # a submodule (backtest.sweep, backtest.kernel, ...), as after an eager import
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # a dependency missing inside it: say that
                raise
            raise AttributeError(f"module 'backtest' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_WHERE})
