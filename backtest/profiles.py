"""Margin profiles: the thresholds of spec §2, one row per profile.

A profile is plain data, its levels in its own margin-level terms (Cross
Margin Pro's ML is net equity over maintenance margin). ``kernel_levels``
turns them into the assets / debt levels the kernel uses, with the
conversions of ``rules.py``.
"""
import math
from dataclasses import asdict, dataclass, replace

from .errors import UserError

VENUE = "binance-margin"
USDM = "binance-usdm"  # Binance USDⓈ-M perpetual futures (venues/binance_usdm.py)
VENUES = (VENUE, USDM)
VENUE_CODES = {VENUE: 0, USDM: 1}  # how the compiled loop tells them apart (venues/plug.py)
USDM_CALL = 1.25  # a perp's health (margin balance / maintenance margin) at the margin call: margin ratio 80 %
USDM_CLEARANCE = 0.0125  # the liquidation clearance fee of BTCUSDT and ETHUSDT (perps-model.md §4.3, S5)
USDM_FEE = 0.0005  # the VIP0 taker fee on this venue (perps-model.md §6)
MODES = ("cross", "isolated")


@dataclass(frozen=True)
class Profile:
    """One margin profile.

    ``initial_ml`` is the borrow gate and also the level a partial
    liquidation restores; it follows from the maximum leverage ``L`` as
    ``L / (L - 1)`` (spec §2: "leverage and initial margin level are the same
    thing").
    """

    name: str
    max_leverage: float
    call_ml: float | None
    liquidation_ml: float
    liquidation_fee: float
    mmr: float = 0.0  # Cross Margin Pro's maintenance-margin rate; 0 = a classic profile
    asset_mmr: tuple = ()  # ((asset, rate), ...): Pro's MMR of those assets, the others ``mmr``
    max_borrow: tuple = ()  # ((asset, amount), ...): the most principal of an asset owed at once
    mode: str = "cross"  # "cross" (one account shared by every cross symbol) or "isolated" (one per symbol)
    venue: str = VENUE  # whose rules: Binance spot margin is the only venue so far

    @property
    def isolated(self) -> bool:
        return self.mode == "isolated"

    @property
    def pro(self) -> bool:
        return self.mmr > 0.0

    @property
    def initial_ml(self) -> float:
        """The borrow gate: ``L / (L − 1)``; for Pro, net equity ≥ debt / (L − 1)
        in Pro's terms, ``1 / ((L − 1)·MMR)``."""
        if self.pro:
            return 1.0 / ((self.max_leverage - 1.0) * self.mmr)
        return self.max_leverage / (self.max_leverage - 1.0)

    @property
    def restore_ml(self) -> float:
        """What a partial liquidation restores: the initial ML; Pro ML 2."""
        return 2.0 if self.pro else self.initial_ml

    @property
    def perp(self) -> bool:
        return self.venue == USDM

    def kernel_levels(self) -> tuple:
        """(initial, margin call, liquidation, restore) as assets / debt levels;
        a profile without margin calls gets −1 (never reached).  A perp's
        are in its health terms, margin balance / maintenance margin."""
        if self.perp:
            return (1.0, self.call_ml, self.liquidation_ml, 1.0)
        from .rules import classic_margin_level  # (here: the CLI's --help lists profiles without numba)

        to_classic = (lambda m: classic_margin_level(m, self.mmr)) if self.pro else (lambda m: m)
        call = -1.0 if self.call_ml is None else to_classic(self.call_ml)
        return (to_classic(self.initial_ml), call, to_classic(self.liquidation_ml), to_classic(self.restore_ml))

    def as_dict(self) -> dict:
        return {**asdict(self), "initial_ml": self.initial_ml, "restore_ml": self.restore_ml}

    def mmr_of(self, asset: str) -> float:
        return dict(self.asset_mmr).get(asset, self.mmr)

    def borrow_limits(self, base: str, quote: str) -> tuple:
        """The max borrow of (base, quote) in asset units; +inf where none is set."""
        limits = dict(self.max_borrow)
        return (float(limits.get(base, math.inf)), float(limits.get(quote, math.inf)))

    def for_pair(self, base: str, quote: str) -> "Profile":
        """The profile as the run's two assets see it: a Pro profile takes
        their MMR.  Different MMRs for the two are refused (not supported
        yet: the kernel runs Pro on the classic ratio, docs/model-choices.md)."""
        if not self.pro or not self.asset_mmr:
            return self
        mb, mq = self.mmr_of(base), self.mmr_of(quote)
        if mb != mq:
            raise UserError(f"--margin {self.name}: different MMRs for {base} ({mb:g}) and {quote} ({mq:g}) "
                            "are not supported yet; give both assets the same MMR")
        return replace(self, mmr=mb)

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        """The inverse of ``as_dict`` (``run.json``); a ``run.json`` written
        before profiles stated their mode took it from the name."""
        mode = d.get("mode") or ("isolated" if d["name"].startswith("isolated") else "cross")
        return cls(d["name"], d["max_leverage"], d["call_ml"], d["liquidation_ml"], d["liquidation_fee"],
                   d.get("mmr", 0.0), tuple(tuple(x) for x in d.get("asset_mmr") or ()),
                   tuple(tuple(x) for x in d.get("max_borrow") or ()), mode, d.get("venue", VENUE))


PROFILES = {
    p.name: p
    for p in (
        Profile("cross-3x", 3.0, 1.3, 1.1, 0.02),
        Profile("cross-5x", 5.0, 1.16, 1.1, 0.02),
        Profile("isolated-3x", 3.0, 1.22, 1.18, 0.02, mode="isolated"),
        Profile("isolated-5x", 5.0, 1.19, 1.15, 0.02, mode="isolated"),
        Profile("isolated-10x", 10.0, 1.1, 1.05, 0.02, mode="isolated"),
        Profile("cross-pro-10x", 10.0, None, 1.0, 0.03, mmr=0.05),
        Profile("cross-pro-20x", 20.0, None, 1.0, 0.03, mmr=0.05),
    )
}


def get_profile(name: str, custom: dict | None = None, flag: str = "--margin") -> Profile:
    """Look a profile up by name, in ``custom`` (a ``--margin-file``'s
    profiles) then the built-in ones; an unknown name is a one-line UserError
    naming ``flag``."""
    custom = custom or {}
    if name in custom:
        return custom[name]
    perp = usdm_profile(name)
    if perp is not None:
        return perp
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join([*custom, *PROFILES, "usdm-cross-<L>x", "usdm-isolated-<L>x (perpetual futures)"])
        raise UserError(f"{flag}: unknown profile {name!r} (known: {known})") from None


def usdm_profile(name: str, leverage: float | None = None, mode: str | None = None):
    """``usdm-cross-<L>x`` / ``usdm-isolated-<L>x`` (integer L ≥ 1): a
    perpetual-futures profile; None for another name.  A profile file's
    perp profile passes ``leverage`` and ``mode`` instead."""
    import re

    m = re.fullmatch(r"usdm-(cross|isolated)-(\d+)x", name)
    if m is None and leverage is None:
        return None
    if m is not None:
        mode, leverage = m.group(1), int(m.group(2))
    if not (float(leverage).is_integer() and leverage >= 1):
        raise UserError(f"--margin {name}: a perp's leverage is a whole number ≥ 1 (got {leverage})")
    return Profile(name, float(leverage), USDM_CALL, 1.0, USDM_CLEARANCE, mode=mode, venue=USDM)


def resolve_profile(margin, margin_file=None) -> Profile:
    """The run's profile: a ``Profile``; a name (from ``margin_file`` or the
    built-ins); or, with no name, the file's only profile (else cross-3x)."""
    if isinstance(margin, Profile):
        return margin
    if margin_file is None:
        return get_profile(margin or "cross-3x")
    from .profile_file import load_profiles

    custom = load_profiles(margin_file)
    if margin is None:
        if len(custom) > 1:
            raise UserError(f"--margin-file {margin_file}: holds {len(custom)} profiles ({', '.join(custom)}); "
                            "pick one with --margin")
        return next(iter(custom.values()))
    return get_profile(margin, custom)


def max_leverage(initial_ml: float) -> float:
    """The leverage an initial margin level allows: ``M0 / (M0 - 1)``."""
    return initial_ml / (initial_ml - 1.0)
