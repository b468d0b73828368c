"""OHLCV data: load, validate, import, check, resample.

``load_ohlcv`` is the one way bars enter a backtest; ``validate_ohlcv`` runs
the same rules (spec §6) on a DataFrame.  ``import_ohlcv`` reads Binance
archive CSV/ZIP, freqtrade, ccxt and generic CSV/Parquet files;
``write_ohlcv`` writes marginbt's Parquet; ``import_funding``/``load_funding``/
``write_funding`` do the same for funding rates (``timestamp, funding_rate``);
``check_ohlcv``/``check_file`` list every problem; ``resample_ohlcv`` builds
longer bars; ``find_gaps`` reports missing bars (never fills them).
"""

from .check import CheckReport, Finding, check_file, check_ohlcv
from .funding import import_funding, load_funding, write_funding
from .gaps import find_gaps
from .importer import import_ohlcv
from .load import load_ohlcv
from .parquet import write_ohlcv
from .resample import resample_ohlcv
from .timeframes import infer_timeframe, parse_timeframe
from .validate import validate_ohlcv

__all__ = [
    "CheckReport", "Finding", "check_file", "check_ohlcv", "find_gaps", "import_funding",
    "import_ohlcv", "infer_timeframe", "load_funding", "load_ohlcv", "parse_timeframe",
    "resample_ohlcv", "validate_ohlcv", "write_funding", "write_ohlcv",
]
