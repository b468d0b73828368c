"""Profiles state their mode and venue: the mode, not the name, decides
whether a symbol gets its own account (issue 11, item 3)."""
import json

import pytest

import backtest
from backtest.cli import main
from backtest.multi import run_multi
from backtest.profile_file import load_profiles
from backtest.profiles import PROFILES, Profile
from test_multi import BTC, ETH, NO_COSTS, TARGETS

ISO = """
[profiles.iso-4x]
mode = "isolated"
max_leverage = 4
margin_call_ml = 1.2
liquidation_ml = 1.18
liquidation_fee = 0.02
"""


def _file(tmp_path, text):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_builtin_profiles_state_their_mode_and_venue():
    assert {n: p.mode for n, p in PROFILES.items()} == {
        "cross-3x": "cross", "cross-5x": "cross", "isolated-3x": "isolated", "isolated-5x": "isolated",
        "isolated-10x": "isolated", "cross-pro-10x": "cross", "cross-pro-20x": "cross"}
    assert {p.venue for p in PROFILES.values()} == {"binance-margin"}


def test_a_custom_isolated_profile_named_iso_runs_as_an_isolated_account(tmp_path):
    path = _file(tmp_path, ISO)
    iso = run_multi({"BTCUSDT": BTC, "ETHUSDT": ETH}, TARGETS, margin="iso-4x", margin_file=path,
                    capital=10_000.0, **NO_COSTS)
    assert list(iso.settings["accounts"]) == ["BTCUSDT", "ETHUSDT"]
    # 5,000 each: ETH 1.5x buys 3.75 ETH with 2,500 borrowed; only ETH's account
    # is liquidated, at its own price 1.18 × 2,500 / 3.75; BTC's is untouched
    liq = iso.liquidations
    assert (liq["account"] == "ETHUSDT").all() and len(liq) >= 1
    assert liq["trigger_price"].iloc[0] == pytest.approx(1.18 * 2_500.0 / 3.75, rel=1e-12)
    assert iso.equity["equity_BTCUSDT"].iloc[-1] == pytest.approx(5_000.0, rel=1e-12)
    # the same numbers as a cross profile share one account: both symbols are sold
    cross = run_multi({"BTCUSDT": BTC, "ETHUSDT": ETH}, TARGETS, margin="iso-4x", margin_file=_file(
        tmp_path, ISO.replace('mode = "isolated"', 'mode = "cross"')), capital=10_000.0, **NO_COSTS)
    assert list(cross.settings["accounts"]) == ["cross"]
    assert set(cross.liquidations["symbol"]) == {"BTCUSDT", "ETHUSDT"}


def test_the_cli_takes_a_margin_file_with_several_symbols(tmp_path):
    data = {}
    for sym, bars in (("BTCUSDT", BTC), ("ETHUSDT", ETH)):
        data[sym] = tmp_path / f"{sym}-1h.parquet"
        bars.to_parquet(data[sym])
    targets = tmp_path / "t.csv"
    TARGETS.to_csv(targets)
    out = tmp_path / "out"
    code = main(["run", "--data", str(data["BTCUSDT"]), "--data", str(data["ETHUSDT"]), "--strategy", "hold",
                 "--param", "exposure=1", "--margin-file", str(_file(tmp_path, ISO)), "--fee", "0",
                 "--out", str(out), "--no-report"])
    assert code == 0
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert set(settings["accounts"]) == {"BTCUSDT", "ETHUSDT"} and settings["margin_file"].endswith("p.toml")


def test_a_profile_file_without_mode_is_refused_unless_base_gives_it(tmp_path):
    with pytest.raises(backtest.UserError) as err:
        load_profiles(_file(tmp_path, ISO.replace('mode = "isolated"\n', "")))
    assert str(err.value) == (f"--margin-file {tmp_path / 'p.toml'}: profile 'iso-4x': mode: missing: say "
                              '"cross" or "isolated" (or base = a built-in profile)')
    assert "\n" not in str(err.value)
    based = load_profiles(_file(tmp_path, '[profiles.mine]\nbase = "isolated-5x"\nliquidation_fee = 0.01\n'))
    assert based["mine"].mode == "isolated" and based["mine"].venue == "binance-margin"


@pytest.mark.parametrize("text, message", [
    (ISO.replace('"isolated"', '"sideways"'), "mode: 'sideways' is not one of cross, isolated"),
    (ISO + 'venue = "kraken"\n', "venue: 'kraken' is not a known venue (binance-margin, binance-usdm)"),
    (ISO + "mmr = 0.05\n", "mode: Cross Margin Pro (mmr) is a cross account"),
])
def test_bad_mode_or_venue_is_one_line(tmp_path, text, message):
    with pytest.raises(backtest.UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profiles(_file(tmp_path, text))


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="sideways"), "mode 'sideways' must be one of cross, isolated"),
    (dict(venue="kraken"), "venue 'kraken' is not a known venue"),
    (dict(mode="isolated", mmr=0.05), "mode 'isolated' is isolated, but Cross Margin Pro"),
])
def test_a_python_profile_with_a_bad_mode_is_refused(kwargs, message):
    prof = Profile("p", 5.0, None, 1.1, 0.02, **kwargs)
    with pytest.raises(ValueError, match=message):
        backtest.run(BTC, "hold", symbol="BTCUSDT", margin=prof)


def test_run_json_keeps_mode_and_venue(tmp_path):
    res = backtest.run(BTC, "hold", symbol="BTCUSDT", margin="isolated-3x", fee=0.0)
    folder = res.save(tmp_path / "r")
    run = json.loads((folder / "run.json").read_text())
    assert (run["profile"]["mode"], run["profile"]["venue"]) == ("isolated", "binance-margin")
    assert backtest.Result.load(folder).profile == PROFILES["isolated-3x"]
    # a run.json written before profiles had a mode takes it from the name
    old = {k: v for k, v in run["profile"].items() if k not in ("mode", "venue")}
    assert Profile.from_dict(old) == PROFILES["isolated-3x"]
