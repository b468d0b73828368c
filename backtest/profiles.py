"""Margin profiles: the thresholds of spec §2, one row per profile.

A profile is plain data. ``rules.py`` turns it into numbers the kernel uses;
nothing here computes anything beyond ``initial_ml = L / (L - 1)``.
"""
from dataclasses import asdict, dataclass

from .errors import UserError


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
    call_ml: float
    liquidation_ml: float
    liquidation_fee: float

    @property
    def initial_ml(self) -> float:
        return self.max_leverage / (self.max_leverage - 1.0)

    def as_dict(self) -> dict:
        return {**asdict(self), "initial_ml": self.initial_ml}


PROFILES = {
    p.name: p
    for p in (
        Profile("cross-3x", 3.0, 1.3, 1.1, 0.02),
        Profile("cross-5x", 5.0, 1.16, 1.1, 0.02),
        Profile("isolated-3x", 3.0, 1.22, 1.18, 0.02),
        Profile("isolated-5x", 5.0, 1.19, 1.15, 0.02),
        Profile("isolated-10x", 10.0, 1.1, 1.05, 0.02),
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
