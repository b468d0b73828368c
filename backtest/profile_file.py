"""Custom margin profiles from a TOML file (``--margin-file``).

One or more named profiles, each a ``[profiles.NAME]`` table::

    [profiles.my-cross-4x]
    base = "cross-3x"          # optional: start from a built-in profile
    mode = "cross"             # or "isolated"; required unless base gives it
    venue = "binance-margin"   # optional: the default venue
    max_leverage = 4           # or initial_ml = 1.3333 (one of the two)
    margin_call_ml = 1.2       # optional: no margin calls without it
    liquidation_ml = 1.1
    liquidation_fee = 0.02
    mmr = 0.05                 # makes it a Cross Margin Pro profile
    [profiles.my-cross-4x.asset_mmr]   # Pro only: per-asset MMR
    BTC = 0.05
    [profiles.my-cross-4x.max_borrow]  # the most principal owed per asset
    BTC = 2.5
    USDT = 50000

    [profiles.perp-iso-8x]     # Binance USDⓈ-M perpetual futures
    venue = "binance-usdm"
    mode = "isolated"          # required
    leverage = 8               # a whole number, at most the bracket table's
    liquidation_fee = 0.0125   # optional: the clearance fee (default 1.25 %)

Every field is checked (unknown key, type, range, thresholds in order); a
mistake is one ``UserError`` line naming the file, the profile and the key.
"""
import math
import tomllib
from pathlib import Path

from .errors import UserError
from dataclasses import replace

from .profiles import MODES, PROFILES, USDM, VENUE, VENUES, Profile, usdm_profile

NUMBERS = ("max_leverage", "initial_ml", "margin_call_ml", "liquidation_ml", "liquidation_fee", "mmr")
TABLES = ("asset_mmr", "max_borrow")
KEYS = ("base", "mode", "venue", "leverage", *NUMBERS, *TABLES)
USDM_KEYS = ("mode", "venue", "leverage", "liquidation_fee")  # what a perp profile states


def load_profiles(path) -> dict:
    """``{name: Profile}`` of a profile file, in file order."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"--margin-file {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"--margin-file {path}: not a text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--margin-file {path}: not valid TOML ({exc})") from None
    extra = [k for k in doc if k != "profiles"]
    if extra:
        raise UserError(f"--margin-file {path}: unknown key {extra[0]!r} (profiles go in [profiles.NAME] tables)")
    tables = doc.get("profiles")
    if not isinstance(tables, dict) or not tables:
        raise UserError(f"--margin-file {path}: no profiles (add a [profiles.NAME] table)")
    return {name: _profile(path, name, body) for name, body in tables.items()}


def _profile(path, name, body) -> Profile:
    def bad(key, problem):
        return UserError(f"--margin-file {path}: profile {name!r}: {key}: {problem}")

    if name in PROFILES:
        raise UserError(f"--margin-file {path}: profile {name!r}: a built-in profile has that name; rename it")
    if not isinstance(body, dict):
        raise UserError(f"--margin-file {path}: profile {name!r}: expected a table ([profiles.{name}])")
    for key in body:
        if key not in KEYS:
            raise bad(key, f"unknown key (known: {', '.join(KEYS)})")
    fields = {}
    for key in NUMBERS:
        if key in body:
            v = body[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(key, f"expected a number, got {v!r}")
            fields[key] = float(v)
    base = None
    if "base" in body:
        if not isinstance(body["base"], str) or body["base"] not in PROFILES:
            raise bad("base", f"{body['base']!r} is not a built-in profile ({', '.join(PROFILES)})")
        base = PROFILES[body["base"]]
    mode = body.get("mode", base.mode if base else None)
    if mode is None:
        raise bad("mode", "missing: say \"cross\" or \"isolated\" (or base = a built-in profile)")
    if mode not in MODES:
        raise bad("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    venue = body.get("venue", base.venue if base else VENUE)
    if venue not in VENUES:
        raise bad("venue", f"{venue!r} is not a known venue ({', '.join(VENUES)})")
    if venue == USDM:
        return _usdm(body, mode, bad, name)
    if "leverage" in body:
        raise bad("leverage", "a perpetual-futures key (venue = \"binance-usdm\"); spot margin takes max_leverage")
    tables = {key: _asset_table(body.get(key, {}), lambda problem, k=key: bad(k, problem)) for key in TABLES}

    mmr = fields.get("mmr", base.mmr if base else 0.0)
    if "mmr" in fields and not 0.0 < mmr < 1.0:
        raise bad("mmr", f"{mmr:g} must be in (0, 1)")
    pro = mmr > 0.0
    if pro and mode == "isolated":
        raise bad("mode", "Cross Margin Pro (mmr) is a cross account; isolated margin has no Pro mode")
    for asset, rate in tables["asset_mmr"]:
        if not pro:
            raise bad("asset_mmr", "per-asset MMRs need a Cross Margin Pro profile (set mmr)")
        if not 0.0 < rate < 1.0:
            raise bad(f"asset_mmr.{asset}", f"{rate:g} must be in (0, 1)")
    for asset, amount in tables["max_borrow"]:
        if not amount > 0.0:
            raise bad(f"max_borrow.{asset}", f"{amount:g} must be > 0 (an amount of {asset})")

    if "max_leverage" in fields and "initial_ml" in fields:
        raise bad("initial_ml", "give max_leverage or initial_ml, not both (initial ML = L / (L − 1))")
    if "initial_ml" in fields:
        m0 = fields["initial_ml"]
        if not (m0 > 1.0 if not pro else m0 > 0.0):
            raise bad("initial_ml", f"{m0:g} must be > {0 if pro else 1}")
        leverage = 1.0 + 1.0 / (m0 * mmr) if pro else m0 / (m0 - 1.0)
    elif "max_leverage" in fields:
        leverage = fields["max_leverage"]
        if not leverage > 1.0:
            raise bad("max_leverage", f"{leverage:g} must be > 1")
    elif base is not None:
        leverage = base.max_leverage
    else:
        raise bad("max_leverage", "missing (or initial_ml, or base = a built-in profile)")
    for key, default in (("liquidation_ml", base and base.liquidation_ml),
                         ("liquidation_fee", base and base.liquidation_fee)):
        if key not in fields and default is None:
            raise bad(key, "missing (or base = a built-in profile)")
    liq = fields.get("liquidation_ml", base.liquidation_ml if base else None)
    fee = fields.get("liquidation_fee", base.liquidation_fee if base else None)
    call = fields.get("margin_call_ml", base.call_ml if base else None)
    if not 0.0 <= fee < 1.0:
        raise bad("liquidation_fee", f"{fee:g} must be in [0, 1)")
    if not (liq > 0.0 if pro else liq >= 1.0):
        raise bad("liquidation_ml", f"{liq:g} must be {'> 0' if pro else '≥ 1'}")
    profile = Profile(name, leverage, call, liq, fee, mmr, tables["asset_mmr"], tables["max_borrow"], mode, venue)
    initial, restore = profile.initial_ml, profile.restore_ml
    if call is not None and not liq < call < initial:
        raise bad("margin_call_ml", f"{call:g} must lie between liquidation_ml ({liq:g}) and the initial ML "
                                    f"({initial:.6g})")
    if pro and "mmr" in fields and not liq < initial:  # the MMR is what sets Pro's initial level
        raise bad("mmr", f"{mmr:g} puts Pro's initial margin level at {initial:.6g} (1 / ((L − 1)·mmr), L = "
                         f"{leverage:g}), not above liquidation_ml ({liq:g}); Binance's MMRs are a few per cent")
    if not liq < initial:
        raise bad("liquidation_ml", f"{liq:g} must be below the initial ML ({initial:.6g})")
    if not liq < restore:
        raise bad("liquidation_ml", f"{liq:g} must be below the level a partial liquidation restores ({restore:g})")
    return profile


def _usdm(body, mode, bad, name) -> Profile:
    """A perpetual-futures profile: its mode, whole-number leverage and
    optionally the clearance fee; the venue's rules do the rest."""
    for key in body:
        if key not in USDM_KEYS:
            raise bad(key, f"not a setting of venue {USDM} (it takes {', '.join(USDM_KEYS)})")
    lev = body.get("leverage")
    if lev is None:
        raise bad("leverage", "missing (a whole number, e.g. leverage = 10)")
    if isinstance(lev, bool) or not isinstance(lev, (int, float)) or not float(lev).is_integer() or lev < 1:
        raise bad("leverage", f"expected a whole number ≥ 1, got {lev!r}")
    profile = usdm_profile(name, int(lev), mode)
    if "liquidation_fee" in body:
        fee = body["liquidation_fee"]
        if isinstance(fee, bool) or not isinstance(fee, (int, float)) or not 0.0 <= fee < 1.0:
            raise bad("liquidation_fee", f"expected a fraction in [0, 1), got {fee!r}")
        profile = replace(profile, liquidation_fee=float(fee))
    return profile


def _asset_table(table, bad) -> tuple:
    """``((ASSET, value), ...)`` of an asset → number table."""
    if not isinstance(table, dict):
        raise bad(f"expected a table of ASSET = number, got {table!r}")
    out = []
    for asset, v in table.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"{asset}: expected a number, got {v!r}")
        if not asset.isalnum() or asset.upper() != asset:
            raise bad(f"{asset}: an asset is written in capitals, e.g. BTC")
        out.append((asset, float(v)))
    return tuple(out)
