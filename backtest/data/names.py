"""Symbol and timeframe from file names, as the usual tools write them.

* Binance archive: ``BTCUSDT-1h-2024-01.zip``, ``BTCUSDT-1m-2025-01-05.csv``
* freqtrade: ``BTC_USDT-1h.feather``, ``BTC_USDT-1h.json(.gz)``, futures
  ``BTC_USDT_USDT-1h-futures.feather`` (pair ``BTC/USDT:USDT``)
* marginbt: ``BTCUSDT-1h.parquet``, ``BTCUSDT_PERP-1h.parquet``

The symbol is the pair without separators (``BTC_USDT`` → ``BTCUSDT``;
the settle currency of a freqtrade futures pair is dropped); a trailing
``_PERP`` is kept.  A name that does not follow these conventions gives its
stem, upper-cased, as the symbol and no timeframe.
"""

from __future__ import annotations

import re
from pathlib import Path

from .timeframes import parse_timeframe

_SUFFIXES = (
    ".parquet", ".pq", ".feather", ".arrow", ".ipc", ".json", ".jsongz",
    ".csv", ".txt", ".zip", ".gz",
)
_NAME = re.compile(r"^(?P<sym>[A-Za-z0-9_.]+?)-(?P<tf>\d+(?:mo|[smhdwM]))(?:-(?P<rest>.*))?$")


def stem(path) -> str:
    name = Path(str(path)).name
    changed = True
    while changed:
        changed = False
        for suf in _SUFFIXES:
            if name.lower().endswith(suf) and len(name) > len(suf):
                name = name[: -len(suf)]
                changed = True
    return name


def _symbol(text: str) -> str:
    parts = [p for p in text.split("_") if p]
    suffix = ""
    if len(parts) > 1 and parts[-1].upper() == "PERP":
        suffix = "_" + parts.pop().upper()
    if len(parts) == 3 and parts[2].upper() == parts[1].upper():
        parts = parts[:2]  # freqtrade futures BASE_QUOTE_SETTLE
    return "".join(parts).upper() + suffix


def symbol_from_pair(pair: str) -> str:
    """ccxt/freqtrade pair → symbol: ``BTC/USDT`` and ``BTC/USDT:USDT`` → ``BTCUSDT``."""
    return "".join(ch for ch in pair.split(":")[0] if ch.isalnum()).upper()


def mark_series_name(path) -> bool:
    """A mark-price series' file name (``BTCUSDT_PERP-1h-mark.parquet``: what
    ``perps.companions`` finds beside perpetual bars), which is not traded."""
    return re.search(r"(^|[-_.])mark([-_.]|$)", stem(path).lower()) is not None  # (…-mark, …-mark-2021-05, …-mark-1h)


def parse_name(path) -> tuple[str | None, str | None]:
    """``(symbol, timeframe)`` from a file name; either may be ``None``."""
    s = stem(path)
    m = _NAME.match(s)
    if m:
        try:
            tf = str(parse_timeframe(m.group("tf")))
        except Exception:  # noqa: BLE001 - not a timeframe after all
            tf = None
        return _symbol(m.group("sym")), tf
    head = re.split(r"[-.\s]", s, maxsplit=1)[0]
    return (_symbol(head) or None), None
