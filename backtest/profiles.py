"""Margin profiles: the thresholds of spec §2, one row per profile.

A profile is plain data, its levels in its own margin-level terms (Cross
Margin Pro's ML is net equity over maintenance margin). ``kernel_levels``
turns them into the assets / debt levels the kernel uses, with the
conversions of ``rules.py``.
"""
from dataclasses import asdict, dataclass

from .errors import UserError
from .rules import classic_margin_level


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

    def kernel_levels(self) -> tuple:
        """(initial, margin call, liquidation, restore) as assets / debt levels;
        a profile without margin calls gets −1 (never reached)."""
        to_classic = (lambda m: classic_margin_level(m, self.mmr)) if self.pro else (lambda m: m)
        call = -1.0 if self.call_ml is None else to_classic(self.call_ml)
        return (to_classic(self.initial_ml), call, to_classic(self.liquidation_ml), to_classic(self.restore_ml))

    def as_dict(self) -> dict:
        return {**asdict(self), "initial_ml": self.initial_ml, "restore_ml": self.restore_ml}


PROFILES = {
    p.name: p
    for p in (
        Profile("cross-3x", 3.0, 1.3, 1.1, 0.02),
        Profile("cross-5x", 5.0, 1.16, 1.1, 0.02),
        Profile("isolated-3x", 3.0, 1.22, 1.18, 0.02),
        Profile("isolated-5x", 5.0, 1.19, 1.15, 0.02),
        Profile("isolated-10x", 10.0, 1.1, 1.05, 0.02),
        Profile("cross-pro-10x", 10.0, None, 1.0, 0.03, mmr=0.05),
        Profile("cross-pro-20x", 20.0, None, 1.0, 0.03, mmr=0.05),
    )
}


def get_profile(name: str) -> Profile:
    """Look a profile up by name; an unknown name is a one-line UserError."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise UserError(f"--margin: unknown profile {name!r} (known: {known})") from None


def max_leverage(initial_ml: float) -> float:
    """The leverage an initial margin level allows: ``M0 / (M0 - 1)``."""
    return initial_ml / (initial_ml - 1.0)
