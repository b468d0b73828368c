"""Maintenance-margin bracket tables (Binance USD-M perpetuals, docs/perps-model.md §2-§3).

A *version* is ``(valid_from "YYYY-MM-DD", tiers)`` and ``tiers`` a tuple of
``(floor, cap, mmr, cum, max_leverage)``: a notional ``floor <= N < cap`` has
maintenance margin ``N * mmr - cum``.  A symbol's table is a list of versions
in date order (``brackets_data.TABLES`` ships BTCUSDT and ETHUSDT); the
version in force at time t is the last one with ``valid_from <= t``.

``load_brackets`` reads a user's file (``--brackets FILE``) in the shapes
Binance, ccxt and freqtrade write, or in our own dated form, and checks it:
contiguous tiers from 0, rising mmr, ``cum`` continuous
(``cum_n = floor_n * (mmr_n - mmr_{n-1}) + cum_{n-1}``), positive
non-increasing leverage.  Every problem is one ``UserError`` line naming
``--brackets``, the file and what is wrong.
"""
import json
import math
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np

from ..errors import UserError
from .brackets_data import TABLES

EPOCH_DATE = "1970-01-01"
CUM_RTOL = 1e-6
# Binance writes an unbounded top tier as notionalCap 9223372036854775807 (2**63 - 1).
UNBOUNDED_CAP = 9.0e18

_BINANCE_FIELDS = (("notionalFloor", "floor"), ("notionalCap", "cap"),
                   ("maintMarginRatio", "mmr"), ("cum", "cum"), ("initialLeverage", "max leverage"))
# ccxt / freqtrade tier keys; the older freqtrade file (2022) used the names in brackets.
_CCXT_FIELDS = ((("minNotional", "notionalFloor"), "notionalFloor"),
                (("maxNotional", "notionalCap"), "notionalCap"),
                (("maintenanceMarginRate", "maintenanceMarginRatio"), "maintMarginRatio"),
                (("maxLeverage",), "initialLeverage"))


class _Bad(Exception):
    """A problem in the file; ``load_brackets`` turns it into one UserError line."""


def normalize_symbol(symbol) -> str:
    """"BTC/USDT:USDT", "BTC/USDT", "btcusdt" -> "BTCUSDT"."""
    return str(symbol).split(":")[0].replace("/", "").replace("-", "").replace("_", "").strip().upper()


# --------------------------------------------------------------------------- reading a file

def load_brackets(path, symbol) -> list:
    """``symbol``'s bracket table from the JSON file ``path``: a list of
    ``(valid_from, tiers)`` versions in date order, like one ``TABLES``
    entry.  A file without dates is one version valid from 1970-01-01.

    Shapes: (a) Binance ``GET /fapi/v1/leverageBracket`` (a list of
    ``{"symbol", "brackets"}``, or one such object); (b) ccxt
    ``fetch_leverage_tiers`` and (c) freqtrade's ``binance_leverage_tiers.json``
    (``{"BTC/USDT:USDT": [{"minNotional", "maxNotional",
    "maintenanceMarginRate", "maxLeverage", "info": {"cum"}}, ...]}``; cum is
    computed from the continuity rule when ``info.cum`` is absent); (d)
    ``{"BTCUSDT": [{"valid_from": "YYYY-MM-DD", "tiers": [[floor, cap, mmr,
    cum, max_leverage], ...]}, ...]}``."""
    path = Path(path)
    flag = f"--brackets {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{flag}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{flag}: is a folder, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{flag}: cannot read it ({getattr(exc, 'strerror', None) or _one_line(exc)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{flag}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    try:
        return _parse(data, symbol)
    except _Bad as exc:
        raise UserError(f"{flag}: {exc}") from None


def _parse(data, symbol) -> list:
    want = normalize_symbol(symbol)
    if isinstance(data, dict) and "brackets" in data:                     # (a), one object
        data = [data]
    if isinstance(data, list):                                            # (a)
        entries = {}
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "symbol" not in item or "brackets" not in item:
                raise _Bad(f"item {i + 1} of the list is not a Binance leverageBracket entry "
                           "({\"symbol\": ..., \"brackets\": [...]})")
            entries.setdefault(str(item["symbol"]), item["brackets"])
        key = _pick(entries, want, symbol)
        return [(EPOCH_DATE, _check(_binance_tiers(entries[key], key), key))]
    if not isinstance(data, dict):
        raise _Bad(f"expected a JSON object or list, found {type(data).__name__}")
    if not data:
        raise _Bad("no symbols in the file")
    key = _pick(data, want, symbol)
    value = data[key]
    if not isinstance(value, list) or not value:
        raise _Bad(f"{key}: expected a non-empty list of tiers (or of dated versions)")
    if all(isinstance(v, dict) and ("valid_from" in v or "tiers" in v) for v in value):   # (d)
        return _dated_versions(value, key)
    return [(EPOCH_DATE, _check(_ccxt_tiers(value, key), key))]                          # (b), (c)


def _pick(mapping, want, symbol) -> str:
    """The key of ``mapping`` naming ``want`` (exact spelling first, then the
    perpetual "BASE/QUOTE:SETTLE", then any other spelling)."""
    matches = [k for k in mapping if normalize_symbol(k) == want]
    if not matches:
        keys = list(mapping)
        shown = ", ".join(str(k) for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise _Bad(f"no tiers for {symbol} (the file has {shown or 'no symbols'})")
    for k in matches:
        if k == symbol:
            return k
    for k in matches:
        if ":" in str(k):
            return k
    return matches[0]


def _binance_tiers(brackets, key) -> list:
    if not isinstance(brackets, list) or not brackets:
        raise _Bad(f"{key}: \"brackets\" is not a non-empty list")
    tiers = []
    for i, b in enumerate(brackets):
        where = f"{key} bracket {b.get('bracket', i + 1) if isinstance(b, dict) else i + 1}"
        if not isinstance(b, dict):
            raise _Bad(f"{where}: not an object")
        tiers.append(tuple(_field(b, name, where, label) for name, label in _BINANCE_FIELDS))
    return tiers


def _ccxt_tiers(rows, key) -> list:
    tiers = []
    have_cum = True
    for i, row in enumerate(rows):
        where = f"{key} tier {row.get('tier', i + 1) if isinstance(row, dict) else i + 1}"
        if not isinstance(row, dict):
            raise _Bad(f"{where}: not an object (expected ccxt/freqtrade tiers)")
        info = row.get("info") if isinstance(row.get("info"), dict) else {}
        values = []
        for names, info_name in _CCXT_FIELDS:
            source = next((row for n in names if row.get(n) is not None), None)
            name = next((n for n in names if row.get(n) is not None), names[0])
            if source is None and info.get(info_name) is not None:
                source, name = info, info_name
            if source is None:
                raise _Bad(f"{where}: missing field {names[0]!r}")
            values.append(_num(source[name], where, name, allow_inf=(info_name == "notionalCap")))
        if info.get("cum") is not None:
            cum = _num(info["cum"], where, "info.cum")
        else:
            cum, have_cum = None, False
        floor, cap, mmr, lev = values
        tiers.append((floor, _cap(cap), mmr, cum, lev))
    if not have_cum:
        tiers = _with_cum(tiers)
    return tiers


def _dated_versions(items, key) -> list:
    versions = []
    for i, item in enumerate(items):
        date = item.get("valid_from")
        where = f"{key} version {i + 1}"
        if not isinstance(date, str) or not _is_date(date):
            raise _Bad(f"{where}: valid_from {date!r} is not a date YYYY-MM-DD")
        where = f"{key} {date}"
        rows = item.get("tiers")
        if not isinstance(rows, list) or not rows:
            raise _Bad(f"{where}: \"tiers\" is not a non-empty list")
        tiers = []
        for n, row in enumerate(rows, 1):
            if not isinstance(row, list) or len(row) != 5:
                raise _Bad(f"{where} tier {n}: expected [floor, cap, mmr, cum, max_leverage], found {_short(row)}")
            floor, cap, mmr, cum, lev = (_num(v, f"{where} tier {n}", label, allow_inf=(label == "cap"))
                                         for v, label in zip(row, ("floor", "cap", "mmr", "cum", "max leverage")))
            tiers.append((floor, _cap(cap), mmr, cum, lev))
        versions.append((date, _check(tiers, where)))
    versions.sort(key=lambda v: v[0])
    for a, b in zip(versions, versions[1:]):
        if a[0] == b[0]:
            raise _Bad(f"{key}: two versions valid from {a[0]}")
    return versions


def _field(obj, name, where, label):
    if obj.get(name) is None:
        raise _Bad(f"{where}: missing field {name!r}" + (f" ({label})" if label != name else ""))
    value = _num(obj[name], where, name, allow_inf=(name == "notionalCap"))
    return _cap(value) if name == "notionalCap" else value


def _num(value, where, name, allow_inf=False) -> float:
    if value is None and allow_inf:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Bad(f"{where}: {name} {_short(value)} is not a number")
    try:
        x = float(value)
    except ValueError:
        raise _Bad(f"{where}: {name} {_short(value)} is not a number") from None
    if math.isnan(x) or (math.isinf(x) and not (allow_inf and x > 0)):
        raise _Bad(f"{where}: {name} {_short(value)} is not a finite number")
    return x


def _cap(x: float) -> float:
    return math.inf if x >= UNBOUNDED_CAP else x


def _with_cum(tiers) -> list:
    """The tiers with cum from the continuity rule, in decimal arithmetic on
    the numbers as written (so 600,000 × (0.65 % − 0.5 %) + 50 is 950 exactly)."""
    out, prev_mmr, prev_cum = [], Decimal(0), Decimal(0)
    for floor, cap, mmr, _, lev in sorted(tiers, key=lambda t: t[0]):
        cum = Decimal(repr(floor)) * (Decimal(repr(mmr)) - prev_mmr) + prev_cum
        out.append((floor, cap, mmr, float(cum), lev))
        prev_mmr, prev_cum = Decimal(repr(mmr)), cum
    return out


def _check(tiers, where) -> tuple:
    """The tiers sorted by floor and checked; a tuple of 5-tuples of floats."""
    tiers = sorted(tiers, key=lambda t: t[0])
    prev = None
    for n, (floor, cap, mmr, cum, lev) in enumerate(tiers, 1):
        at = f"{where} tier {n}"
        if prev is None and floor != 0:
            raise _Bad(f"{at}: the first tier's floor is {_n(floor)}, not 0")
        if prev is not None and not math.isclose(floor, prev[1], rel_tol=1e-12, abs_tol=0.0):
            raise _Bad(f"{at}: tiers not contiguous (floor {_n(floor)} ≠ the previous tier's cap {_n(prev[1])})")
        if not cap > floor:
            raise _Bad(f"{at}: cap {_n(cap)} is not above floor {_n(floor)}")
        if math.isinf(cap) and n != len(tiers):
            raise _Bad(f"{at}: only the last tier may be unbounded")
        if not 0.0 < mmr < 1.0:
            raise _Bad(f"{at}: maintenance margin rate {mmr:g} is not between 0 and 1")
        if prev is not None and not mmr > prev[2]:
            raise _Bad(f"{at}: maintenance margin rate {mmr:g} does not rise from the previous tier's {prev[2]:g}")
        if not lev > 0:
            raise _Bad(f"{at}: max leverage {_n(lev)} must be > 0")
        if prev is not None and lev > prev[4]:
            raise _Bad(f"{at}: max leverage {_n(lev)} rises above the previous tier's {_n(prev[4])}")
        expected = floor * (mmr - (prev[2] if prev else 0.0)) + (prev[3] if prev else 0.0)
        if abs(cum - expected) > CUM_RTOL * max(abs(cum), abs(expected), 1.0):
            raise _Bad(f"{at}: cum {_n(cum)} breaks the continuity rule cum_n = floor_n·(mmr_n − mmr_n-1) + cum_n-1 "
                       f"(expected {_n(expected)})")
        prev = (floor, cap, mmr, cum, lev)
    return tuple((float(a), float(b), float(c), float(d), float(e)) for a, b, c, d, e in tiers)


def _n(x: float) -> str:
    """A number as a user wrote it: 3,000,000, 131,450.5, inf."""
    if math.isinf(x):
        return "inf"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.10g}"


def _is_date(text) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return len(text) == 10


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(exc) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- using a table

def table_for(symbol, brackets_path=None) -> list:
    """The bracket table for ``symbol``: the user's ``--brackets`` file when
    given, else the shipped one (``brackets_data.TABLES``)."""
    if brackets_path is not None:
        return load_brackets(brackets_path, symbol)
    versions = TABLES.get(normalize_symbol(symbol))
    if versions is None:
        raise UserError(f"--brackets: no maintenance-bracket table for {symbol}; give one with --brackets FILE "
                        "(Binance leverageBracket, ccxt or freqtrade JSON)")
    return list(versions)


def date_seconds(date: str) -> int:
    """"YYYY-MM-DD" -> seconds since the epoch at 00:00 UTC."""
    return int(datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())


def bracket_arrays(versions):
    """``(valid_from, start, rows)`` for a compiled kernel: ``valid_from``
    int64 seconds UTC (one per version), ``start`` int64 row offsets (V + 1;
    version v is ``rows[start[v]:start[v + 1]]``) and ``rows`` float64
    (total tiers, 5) = floor, cap, mmr, cum, max leverage (cap may be inf)."""
    valid_from = np.array([date_seconds(d) for d, _ in versions], dtype=np.int64)
    start = np.zeros(len(versions) + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(t) for _, t in versions])
    rows = np.array([tier for _, tiers in versions for tier in tiers], dtype=np.float64).reshape(-1, 5)
    return valid_from, start, rows


def version_at(versions, at_seconds) -> int:
    """Index of the version in force at ``at_seconds`` (epoch seconds, or a
    "YYYY-MM-DD" date): the last with ``valid_from <= at``; before the first
    version, the first one."""
    at = date_seconds(at_seconds) if isinstance(at_seconds, str) else at_seconds
    index = 0
    for i, (date, _) in enumerate(versions):
        if date_seconds(date) <= at:
            index = i
    return index


def max_leverage(versions, at_seconds) -> float:
    """The largest leverage the version in force allows (its first tier's)."""
    return max(t[4] for t in versions[version_at(versions, at_seconds)][1])


def max_notional(tiers, leverage) -> float:
    """The largest notional a position may have at ``leverage`` (spec §2):
    the largest cap of the tiers whose max leverage is ≥ ``leverage``; 0 when
    no tier allows it."""
    return max((float(t[1]) for t in tiers if t[4] >= leverage), default=0.0)
