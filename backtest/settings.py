"""The run's settings as one validated, frozen record.

``run``, ``run_multi``, ``sweep``, ``risk`` and the walk-forward all build a
``RunSettings``; it checks every value once (one line naming the flag), is
what ``run.json`` and a sweep's settings record, and builds the kernel's
settings tuple.  What is not a setting of the account's arithmetic (the data,
the strategy, its parameters, the profile) travels beside it.
"""
from dataclasses import dataclass, fields, replace

import numpy as np

from .errors import UserError
from .inputs import Settings, rates_of
from .profiles import USDM_FEE, VENUE_CODES

SPOT_FEE = 0.001  # the trading fee on spot margin unless --fee (0.1 %)

PATHS = ("ohlc-heuristic", "pessimistic")  # the path inside a bar (docs/model-choices.md)
LIQUIDATIONS = ("partial", "full")
STOP_FRACTIONS = ("stop_loss", "take_profit", "trailing_stop")
MAX_CAPITAL = 1e15  # quote units


@dataclass(frozen=True)
class RunSettings:
    capital: float = 10_000.0
    fee: float | None = None  # None: the venue's (SPOT_FEE on spot margin, profiles.USDM_FEE on perps)
    slippage: float = 0.0
    rates: dict | None = None  # daily borrow rate per asset; None = the defaults
    liquidation: str = "partial"
    rebalance: float = 0.0
    round_interest: bool = True
    stop_on_liquidation: bool = False
    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0
    path: str = "ohlc-heuristic"
    auto_repay: bool = True
    repay_on_flat: bool = False
    transfers: tuple | None = None  # ((ISO time, amount), ...): scheduled transfers, + into the margin account
    reserve: float = 0.0  # quote kept outside the account for top-ups
    top_up: str | None = None  # "ml=X" or "amount=A" (None with a reserve: the venue's default level)
    keep_ml: float | None = None  # the safety buffer: deleverage at this level back to the initial level
    auto_borrow: bool = True  # False: orders never borrow; loans only by hand (a strategy's borrow / repay)

    @property
    def stops_on(self) -> bool:
        """A stop-loss, take-profit or trailing fraction is set (a bar's path is walked)."""
        return any(getattr(self, k) > 0.0 for k in STOP_FRACTIONS)

    def __post_init__(self):
        fraction = (lambda v: 0 <= v < 1, "must be in [0, 1) (a fraction of the entry price; 0 = off)")
        checks = (
            # (an upper bound: a float holds amounts to 1/8 there; far above it the charts' axes failed)
            ("--capital", self.capital, lambda v: 0 < v <= MAX_CAPITAL, f"must be > 0 and at most {MAX_CAPITAL:.0e}"),
            ("--fee", 0.0 if self.fee is None else self.fee, lambda v: 0 <= v < 1, "must be in [0, 1)"),
            ("--slippage", self.slippage, lambda v: 0 <= v < 1, "must be in [0, 1)"),
            ("--rebalance", self.rebalance, lambda v: v >= 0, "must be ≥ 0"),
            ("--stop-loss", self.stop_loss, *fraction),
            ("--take-profit", self.take_profit, *fraction),
            ("--trailing-stop", self.trailing_stop, *fraction),
        )
        for flag, value, ok, rule in checks:
            try:
                good = np.isfinite(float(value)) and ok(float(value))
            except (TypeError, ValueError):
                good = False
            if not good:
                raise UserError(f"{flag} {value}: {rule}")
        if self.liquidation not in LIQUIDATIONS:
            raise UserError(f"--liquidation {self.liquidation}: expected partial or full")
        if self.path not in PATHS:
            raise UserError(f"--path {self.path}: expected {' or '.join(PATHS)}")
        from .transfers import parse_top_up, parse_transfers

        object.__setattr__(self, "transfers", parse_transfers(self.transfers))  # (run.json's lists back to pairs)
        if not (isinstance(self.reserve, (int, float)) and 0 <= self.reserve <= MAX_CAPITAL):
            raise UserError(f"--reserve {self.reserve}: must be an amount ≥ 0 and at most {MAX_CAPITAL:.0e}")
        if parse_top_up(self.top_up) is not None and not self.reserve:
            raise UserError("--top-up: needs --reserve AMOUNT (the money kept aside to top up from)")
        if self.repay_on_flat and self.auto_repay:
            raise UserError("--repay-on-flat: only with --no-auto-repay (auto-repay already repays at every fill)")

    @classmethod
    def from_dict(cls, d: dict) -> "RunSettings":
        """From ``run.json``'s or a sweep's settings (their other keys are not
        settings of the arithmetic and are left out)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if d.get(f.name) is not None})

    def as_dict(self, rate_history=None) -> dict:
        """The settings as ``run.json`` records them (numbers as floats), the
        rate history's source after the rates."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = float(v) if f.type is float else (bool(v) if f.type is bool else v)
            if f.name == "transfers":
                out[f.name] = [list(pair) for pair in v]
            if f.name == "rates":
                out["rate_history"] = rate_history
        return out

    def venue_fee(self, profile) -> float:
        """The fee given, else the profile's venue's default."""
        if self.fee is not None:
            return self.fee
        return USDM_FEE if profile.perp else SPOT_FEE

    def with_stops(self, fractions: dict) -> "RunSettings":
        """A strategy's own stop fractions take precedence over the settings'."""
        given = {k: fractions[k] for k in STOP_FRACTIONS if k in fractions}
        return replace(self, **given) if given else self

    def kernel_config(self, profile, rates, borrow_limits=(np.inf, np.inf)) -> tuple:
        """``(inputs.Settings, inputs.Rates)``, the kernel's settings for
        ``profile``; ``rates`` is ``rates.rate_table``'s ``(h0, [hourly base,
        hourly quote])``; ``borrow_limits`` the profile's max borrow of
        (base, quote)."""
        h0, (rate_base, rate_quote) = rates
        initial, call, liquidation_level, restore = profile.kernel_levels()
        cfg = Settings(
            float(self.capital), float(self.venue_fee(profile)), float(self.slippage), initial, call, liquidation_level,
            float(profile.liquidation_fee), restore, self.liquidation == "full", float(self.rebalance),
            bool(self.round_interest), bool(self.stop_on_liquidation), float(self.stop_loss),
            float(self.take_profit), float(self.trailing_stop), self.path == "pessimistic", bool(self.auto_repay),
            bool(self.repay_on_flat), float(borrow_limits[0]), float(borrow_limits[1]),
            VENUE_CODES[profile.venue], float(profile.max_leverage), bool(profile.isolated), bool(self.auto_borrow),
            not self.auto_borrow)
        return cfg, rates_of(h0, rate_base, rate_quote)
