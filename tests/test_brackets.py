"""Maintenance-margin bracket tables (docs/perps-model.md §2, §3, §9 E10):
the shipped BTCUSDT/ETHUSDT versions, the --brackets file readers and the
leverage caps."""
import json
import math

import numpy as np
import pytest

from backtest.errors import UserError
from backtest.venues.brackets import (bracket_arrays, date_seconds, load_brackets, max_leverage,
                                      max_notional, table_for, version_at)
from backtest.venues.brackets_data import TABLES

M = 1_000_000


def _version(symbol, date):
    return dict(TABLES[symbol])[date]


def _tier_of(tiers, notional):
    return next(t for t in tiers if t[0] <= notional < t[1])


# --------------------------------------------------------------------------- shipped tables

ALL_VERSIONS = [(s, d, tiers) for s, versions in TABLES.items() for d, tiers in versions]


@pytest.mark.parametrize("symbol,date,tiers", ALL_VERSIONS, ids=[f"{s}-{d}" for s, d, _ in ALL_VERSIONS])
def test_shipped_version_is_continuous(symbol, date, tiers):
    prev_cap, prev_mmr, prev_cum, prev_lev = 0, 0.0, 0.0, math.inf
    for n, (floor, cap, mmr, cum, lev) in enumerate(tiers, 1):
        assert floor == prev_cap, f"{symbol} {date} tier {n}: floor {floor} != previous cap {prev_cap}"
        assert cap > floor
        assert mmr > prev_mmr
        assert 0 < lev <= prev_lev
        expected = floor * (mmr - prev_mmr) + prev_cum
        assert abs(cum - expected) <= 1e-6 * max(abs(cum), 1.0), f"{symbol} {date} tier {n}: cum {cum} != {expected}"
        prev_cap, prev_mmr, prev_cum, prev_lev = cap, mmr, cum, lev
    assert all(math.isfinite(t[1]) for t in tiers[:-1])


def test_shipped_versions_in_date_order():
    for symbol, versions in TABLES.items():
        dates = [d for d, _ in versions]
        assert dates == sorted(set(dates)), symbol
        for d in dates:
            assert date_seconds(d) > 0
    assert [d for d, _ in TABLES["BTCUSDT"]][:2] == ["2019-09-01", "2021-03-26"]
    assert TABLES["ETHUSDT"][0][0] == "2019-11-01"
    # the spec counts 22 freqtrade versions (captures from 2022 on)
    assert sum(d >= "2022" for s in TABLES for d, _ in TABLES[s]) == 22
    assert TABLES["BTCUSDT"][-1][0] == TABLES["ETHUSDT"][-1][0] == "2025-08-21"


def test_spot_checks_against_the_spec_text():
    btc = _version("BTCUSDT", "2024-05-30")
    assert btc[4] == (12 * M, 70 * M, 0.02, 131_450, 25)
    assert len(btc) == 12 and btc[-1] == (1_200 * M, 1_800 * M, 0.50, 421_481_450, 1)
    assert _tier_of(btc, 40 * M) == btc[4]                      # E8b: N = 40M in tier 5
    assert _tier_of(btc, 120_000)[2:4] == (0.005, 50)           # E3: tier 2
    eth = _version("ETHUSDT", "2022-08-20")
    assert eth[-1] == (150 * M, 300 * M, 0.50, 47_661_025, 1)
    assert _version("ETHUSDT", "2022-11-25")[2][4] == 25 and _version("ETHUSDT", "2022-11-25")[3][4] == 15
    assert _version("ETHUSDT", "2023-02-17")[2][4] == 50 and _version("ETHUSDT", "2023-02-17")[3][4] == 20
    # S2: 5,000,000 × (5 % − 2.5 %) + 16,300 = 141,300
    assert _version("BTCUSDT", "2019-09-01")[4][2:4] == (0.05, 141_300)
    assert math.isinf(_version("BTCUSDT", "2019-09-01")[-1][1])
    # E1: the 2021 ETH tier 10 % / 135,365 holds ETH 3,683.979 × 1,335.18 = 4.92M
    assert _tier_of(_version("ETHUSDT", "2019-11-01"), 3_683.979 * 1_335.18)[2:4] == (0.10, 135_365)
    assert math.isinf(_version("ETHUSDT", "2019-11-01")[-1][1])
    # 2021 row: <500M; 2022-05-21 the same with an unbounded top tier; 2022-11-25 25x/15x
    b21, b22 = _version("BTCUSDT", "2021-03-26"), _version("BTCUSDT", "2022-05-21")
    assert b21[-1][1] == 500 * M and math.isinf(b22[-1][1]) and b21[:-1] == b22[:-1]
    dip = _version("BTCUSDT", "2022-11-25")
    assert (dip[2][4], dip[3][4]) == (25, 15) and [t[:4] for t in dip] == [t[:4] for t in b21]
    assert _version("BTCUSDT", "2023-02-17") == b21
    for symbol in TABLES:
        new, old = _version(symbol, "2025-08-21"), _version(symbol, "2025-06-19")
        assert new[0][4] == 150 and old[0][4] == 125 and new[1:] == old[1:]


def test_bracket_arrays_of_shipped_tables():
    versions = TABLES["BTCUSDT"]
    valid_from, start, rows = bracket_arrays(versions)
    assert valid_from.dtype == np.int64 and start.dtype == np.int64 and rows.dtype == np.float64
    assert len(valid_from) == len(versions) and len(start) == len(versions) + 1
    assert start[0] == 0 and start[-1] == rows.shape[0] and rows.shape[1] == 5
    assert np.all(np.diff(valid_from) > 0)
    i = [d for d, _ in versions].index("2024-05-30")
    assert valid_from[i] == 1_717_027_200
    assert np.array_equal(rows[start[i]:start[i + 1]], np.array(versions[i][1], dtype=np.float64))
    assert np.isinf(rows[start[1] - 1, 1])                      # the ≈2020 row's unbounded top tier


# --------------------------------------------------------------------------- leverage caps

def test_max_notional_e10():
    tiers = _version("BTCUSDT", "2025-08-21")
    assert _tier_of(tiers, 5 * M) == (3 * M, 12 * M, 0.01, 12_000, 50)
    assert max_notional(tiers, 75) == 3 * M                     # so 5,000,000 at 75x is rejected
    assert 5 * M > max_notional(tiers, 75)
    assert max_notional(tiers, 50) == 12 * M                    # 50x is fine: IM ≥ 100,000
    assert max_notional(tiers, 150) == 300_000                  # 250,000 at 150x allowed
    assert 250_000 <= max_notional(tiers, 150)
    assert max_notional(tiers, 151) == 0.0
    assert max_notional(tiers, 1) == 1_800 * M
    _, start, rows = bracket_arrays([("2025-08-21", tiers)])
    assert max_notional(rows, 75) == 3 * M


def test_max_leverage_by_date():
    btc = TABLES["BTCUSDT"]
    assert max_leverage(btc, date_seconds("2025-09-01")) == 150
    assert max_leverage(btc, date_seconds("2025-08-21")) == 150
    assert max_leverage(btc, date_seconds("2025-08-21") - 1) == 125
    assert max_leverage(btc, 0) == 125                           # before the first version: the first
    assert max_leverage(TABLES["ETHUSDT"], "2023-01-01") == 100
    assert btc[version_at(btc, "2024-06-01")][0] == "2024-05-30"


def test_table_for():
    assert table_for("BTCUSDT") == TABLES["BTCUSDT"]
    assert table_for("ETH/USDT:USDT") == TABLES["ETHUSDT"]
    with pytest.raises(UserError) as err:
        table_for("SOLUSDT")
    assert str(err.value) == ("--brackets: no maintenance-bracket table for SOLUSDT; give one with --brackets FILE "
                              "(Binance leverageBracket, ccxt or freqtrade JSON)")


# --------------------------------------------------------------------------- file formats

TIERS = _version("BTCUSDT", "2024-05-30")


def _binance_brackets(tiers):
    return [{"bracket": n, "initialLeverage": int(lev), "notionalCap": cap, "notionalFloor": floor,
             "maintMarginRatio": mmr, "cum": float(cum)}
            for n, (floor, cap, mmr, cum, lev) in enumerate(tiers, 1)]


def _ccxt(tiers, cum=True, info=True):
    out = []
    for n, (floor, cap, mmr, c, lev) in enumerate(tiers, 1):
        row = {"tier": n, "currency": "USDT", "minNotional": floor, "maxNotional": cap,
               "maintenanceMarginRate": mmr, "maxLeverage": lev}
        if info:
            row["info"] = {"bracket": str(n), "initialLeverage": str(lev), "notionalCap": str(cap),
                           "notionalFloor": str(floor), "maintMarginRatio": str(mmr)}
            if cum:
                row["info"]["cum"] = str(float(c))
        out.append(row)
    return out


def _write(tmp_path, obj, name="brackets.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


FORMATS = {
    "binance_list": lambda: [{"symbol": "ETHUSDT", "brackets": _binance_brackets(_version("ETHUSDT", "2024-05-30"))},
                             {"symbol": "BTCUSDT", "brackets": _binance_brackets(TIERS)}],
    "binance_object": lambda: {"symbol": "BTCUSDT", "brackets": _binance_brackets(TIERS)},
    "ccxt": lambda: {"ETH/USDT:USDT": _ccxt(_version("ETHUSDT", "2024-05-30")), "BTC/USDT:USDT": _ccxt(TIERS)},
    "ccxt_no_cum": lambda: {"BTC/USDT:USDT": _ccxt(TIERS, cum=False)},
    "ccxt_no_info": lambda: {"BTC/USDT:USDT": _ccxt(TIERS, info=False)},
    "freqtrade": lambda: {"BTC/USDT:USDT": _ccxt(TIERS)},
    "spot_style_key": lambda: {"BTC/USDT": _ccxt(TIERS)},
    "plain_key": lambda: {"BTCUSDT": _ccxt(TIERS)},
    "dated_undated": lambda: {"BTCUSDT": [{"valid_from": "1970-01-01", "tiers": [list(t) for t in TIERS]}]},
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_formats_give_identical_arrays(tmp_path, fmt):
    versions = load_brackets(_write(tmp_path, FORMATS[fmt]()), "BTCUSDT")
    assert [d for d, _ in versions] == ["1970-01-01"]
    expected = bracket_arrays([("1970-01-01", TIERS)])
    for got, want in zip(bracket_arrays(versions), expected):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)
    assert versions == [("1970-01-01", TIERS)]


def test_dated_form_round_trips_shipped_tables(tmp_path):
    obj = {s: [{"valid_from": d, "tiers": [[None if math.isinf(x) else x for x in t] for t in tiers]}
               for d, tiers in reversed(versions)]                     # out of order: sorted on reading
           for s, versions in TABLES.items()}
    path = _write(tmp_path, obj)
    for symbol in TABLES:
        got = load_brackets(path, symbol)
        assert got == TABLES[symbol]
        for a, b in zip(bracket_arrays(got), bracket_arrays(TABLES[symbol])):
            assert np.array_equal(a, b)
        assert table_for(symbol, path) == got


def test_symbol_matching_prefers_the_perpetual(tmp_path):
    obj = {"BTC/USDT": _ccxt(_version("BTCUSDT", "2023-12-12")), "BTC/USDT:USDT": _ccxt(TIERS)}
    assert load_brackets(_write(tmp_path, obj), "BTCUSDT") == [("1970-01-01", TIERS)]
    assert load_brackets(_write(tmp_path, obj), "BTC/USDT:USDT") == [("1970-01-01", TIERS)]


def test_binance_unbounded_cap_and_old_freqtrade_names(tmp_path):
    tiers = _version("BTCUSDT", "2022-05-21")
    brackets = _binance_brackets(tiers)
    brackets[-1]["notionalCap"] = 9223372036854775807
    got = load_brackets(_write(tmp_path, [{"symbol": "BTCUSDT", "brackets": brackets}]), "BTCUSDT")
    assert got == [("1970-01-01", tiers)]
    old = [{"tier": n, "notionalFloor": f, "notionalCap": 9223372036854775807 if math.isinf(c) else c,
            "maintenanceMarginRatio": m, "maxLeverage": lev, "info": {"cum": str(cum)}}
           for n, (f, c, m, cum, lev) in enumerate(tiers, 1)]
    assert load_brackets(_write(tmp_path, {"BTC/USDT": old}, "old.json"), "BTCUSDT") == [("1970-01-01", tiers)]


# --------------------------------------------------------------------------- bad files

def _bad_binance(edit):
    brackets = _binance_brackets(TIERS)
    edit(brackets)
    return [{"symbol": "BTCUSDT", "brackets": brackets}]


def _bad_ccxt(edit):
    rows = _ccxt(TIERS)
    edit(rows)
    return {"BTC/USDT:USDT": rows}


def _bad_dated(edit):
    versions = [{"valid_from": "2024-05-30", "tiers": [list(t) for t in TIERS]}]
    edit(versions)
    return {"BTCUSDT": versions}


def _set(i, key, value):
    def edit(rows):
        rows[i][key] = value
    return edit


BAD = {
    "not_json": ("{not json", "not JSON"),
    "empty_file": ("", "not JSON"),
    "a_number": ("42", "expected a JSON object or list"),
    "empty_object": ({}, "no symbols"),
    "symbol_missing": ({"ETH/USDT:USDT": _ccxt(TIERS), "SOL/USDT:USDT": _ccxt(TIERS)}, "no tiers for BTCUSDT (the file has ETH/USDT:USDT, SOL/USDT:USDT)"),
    "symbol_missing_binance": ([{"symbol": "ETHUSDT", "brackets": _binance_brackets(TIERS)}], "no tiers for BTCUSDT (the file has ETHUSDT)"),
    "many_symbols": ({f"X{i}/USDT:USDT": _ccxt(TIERS) for i in range(9)}, "and 4 more"),
    "binance_not_entry": ([{"symbol": "BTCUSDT"}], "not a Binance leverageBracket entry"),
    "binance_empty": ([{"symbol": "BTCUSDT", "brackets": []}], "not a non-empty list"),
    "binance_missing_cum": (_bad_binance(lambda b: b[2].pop("cum")), "bracket 3: missing field 'cum'"),
    "binance_missing_mmr": (_bad_binance(lambda b: b[0].pop("maintMarginRatio")), "missing field 'maintMarginRatio'"),
    "binance_gap": (_bad_binance(_set(3, "notionalFloor", 3_500_000)), "tier 4: tiers not contiguous (floor 3,500,000 ≠ the previous tier's cap 3,000,000)"),
    "binance_mmr_flat": (_bad_binance(_set(4, "maintMarginRatio", 0.01)), "does not rise"),
    "binance_cum": (_bad_binance(_set(4, "cum", 131_000.0)), "continuity"),
    "binance_zero_lev": (_bad_binance(_set(0, "initialLeverage", 0)), "max leverage 0 must be > 0"),
    "binance_neg_lev": (_bad_binance(_set(11, "initialLeverage", -1)), "max leverage -1 must be > 0"),
    "binance_lev_rises": (_bad_binance(_set(5, "initialLeverage", 40)), "rises above"),
    "binance_floor_not_0": (_bad_binance(_set(0, "notionalFloor", 10)), "not 0"),
    "binance_text": (_bad_binance(_set(1, "cum", "fifty")), "is not a number"),
    "binance_bool": (_bad_binance(_set(1, "initialLeverage", True)), "is not a number"),
    "binance_nan": (_bad_binance(_set(1, "cum", "nan")), "not a finite number"),
    "binance_mmr_ge_1": (_bad_binance(_set(11, "maintMarginRatio", 1.0)), "between 0 and 1"),
    "binance_cap_le_floor": (_bad_binance(lambda b: (b[0].update(notionalCap=0), b[1].update(notionalFloor=0))), "not above floor"),
    "ccxt_missing": (_bad_ccxt(lambda r: (r[1].pop("maxLeverage"), r[1]["info"].pop("initialLeverage"))), "tier 2: missing field 'maxLeverage'"),
    "ccxt_cum": (_bad_ccxt(lambda r: r[3]["info"].update(cum="11000")), "continuity"),
    "ccxt_gap": (_bad_ccxt(_set(2, "maxNotional", 2_900_000)), "not contiguous"),
    "ccxt_not_list": ({"BTC/USDT:USDT": {"tier": 1}}, "non-empty list"),
    "ccxt_row_not_object": ({"BTC/USDT:USDT": [[0, 1]]}, "not an object"),
    "ccxt_inf_middle": (_bad_ccxt(lambda r: (r[10].update(maxNotional=9223372036854775807), r[11].update(minNotional=9223372036854775807))), "only the last tier may be unbounded"),
    "dated_bad_date": (_bad_dated(lambda v: v[0].update(valid_from="30/05/2024")), "not a date YYYY-MM-DD"),
    "dated_duplicate": (_bad_dated(lambda v: v.append(dict(v[0]))), "two versions valid from 2024-05-30"),
    "dated_short_row": (_bad_dated(lambda v: v[0]["tiers"][2].pop()), "expected [floor, cap, mmr, cum, max_leverage]"),
    "dated_no_tiers": (_bad_dated(lambda v: v[0].update(tiers=[])), "not a non-empty list"),
    "dated_mmr_falls": (_bad_dated(lambda v: v[0]["tiers"][1].__setitem__(2, 0.003)), "does not rise"),
    "dated_cum": (_bad_dated(lambda v: v[0]["tiers"][1].__setitem__(3, 60)), "2024-05-30 tier 2: cum 60 breaks the continuity rule"),
    "dated_zero_lev": (_bad_dated(lambda v: v[0]["tiers"][-1].__setitem__(4, 0)), "must be > 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_raise_one_line_user_error(tmp_path, case):
    content, fragment = BAD[case]
    path = _write(tmp_path, content)
    with pytest.raises(UserError) as err:
        load_brackets(path, "BTCUSDT")
    message = str(err.value)
    assert message.startswith(f"--brackets {path}: "), message
    assert fragment in message, message
    assert "\n" not in message
    with pytest.raises(UserError):
        table_for("BTCUSDT", path)


def test_missing_file_and_folder(tmp_path):
    for path, fragment in ((tmp_path / "nope.json", "no such file"), (tmp_path, "is a folder")):
        with pytest.raises(UserError) as err:
            load_brackets(path, "BTCUSDT")
        assert str(err.value).startswith(f"--brackets {path}: {fragment}")
