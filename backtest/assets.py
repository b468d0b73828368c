"""Symbols, their two assets, and each asset's borrow rate."""
from .errors import UserError

# Quote assets Binance margin pairs end in, longest first so "FDUSD" wins over "USD".
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "EUR", "TRY", "BTC", "ETH", "BNB", "USD")
DEFAULT_DAILY_RATE = 0.0002


def _joined(symbol: str) -> str:
    return str(symbol).upper().replace("/", "").replace("_", "").replace("-", "")


def is_perp_symbol(symbol: str) -> bool:
    """A perpetual's market name (``BTCUSDT_PERP``): the same two assets as its pair."""
    s = _joined(symbol)
    return s.endswith("PERP") and len(s) > 4


def pair_name(symbol: str) -> str:
    """The pair a market name stands for, letters only: ``"ETH/USDT"`` → ``"ETHUSDT"``, ``"BTCUSDT_PERP"`` →
    ``"BTCUSDT"``."""
    s = _joined(symbol)
    return s[:-len("PERP")] if is_perp_symbol(s) else s


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTCUSDT"`` → ``("BTC", "USDT")``; ``"ETH/USDT"``, ``"ETH_USDT"`` and
    a perpetual's ``"BTCUSDT_PERP"`` work too."""
    s = pair_name(symbol)
    for quote in QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)], quote
    raise UserError(f"symbol {symbol!r}: cannot tell its quote asset (known quotes: {', '.join(QUOTES)})")


def daily_rates(symbol: str, rates: dict | None) -> tuple[float, float]:
    """Daily borrow rates (base, quote) for ``symbol``; each asset defaults to 0.0002."""
    base, quote = split_symbol(symbol)
    rates = {str(k).upper(): v for k, v in (rates or {}).items()}
    for asset in rates:
        if asset not in (base, quote):
            raise UserError(f"--rate {asset}: {symbol} trades {base} and {quote} only")
    out = []
    for asset in (base, quote):
        r = float(rates.get(asset, DEFAULT_DAILY_RATE))
        if not r >= 0.0 or r != r or r == float("inf"):
            raise UserError(f"--rate {asset}={r}: a daily rate must be a finite number ≥ 0")
        out.append(r)
    return out[0], out[1]


def parse_rates(pairs: list[str]) -> dict:
    """``["BTC=0.0001", "USDT=0.0003"]`` → ``{"BTC": 0.0001, "USDT": 0.0003}``."""
    out = {}
    for pair in pairs or []:
        asset, sep, value = pair.partition("=")
        try:
            if not sep or not asset:
                raise ValueError
            rate = float(value)
        except ValueError:
            raise UserError(f"--rate {pair}: expected ASSET=DAILY_RATE, e.g. USDT=0.0002") from None
        key = asset.strip().upper()
        if key in out:  # (a typo or a leftover: the last one would win unseen)
            raise UserError(f"--rate {pair}: {key} given twice")
        out[key] = rate
    return out
