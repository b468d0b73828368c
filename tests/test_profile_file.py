"""Custom margin profiles from TOML (``--margin-file``): loading, every bad
field (one line naming file, profile and key; exit 2 from the CLI), the
per-asset max borrow through the kernel and the reference model."""
import math

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.profile_file import load_profiles
from backtest.profiles import PROFILES, resolve_profile
from reference import Profile as RefProfile
from reference import simulate

EXAMPLE = "data/profiles-example.toml"
GOOD = """
[profiles.mine]
mode = "cross"
max_leverage = 4
margin_call_ml = 1.2
liquidation_ml = 1.1
liquidation_fee = 0.02
"""


def _file(tmp_path, text, name="p.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_file_loads():
    profiles = load_profiles(EXAMPLE)
    assert list(profiles) == ["cautious-4x", "cheap-liquidation", "pro-8x"]
    c = profiles["cautious-4x"]
    assert (c.max_leverage, c.call_ml, c.liquidation_ml, c.liquidation_fee) == (4.0, 1.2, 1.1, 0.02)
    assert c.initial_ml == pytest.approx(4 / 3) and c.borrow_limits("BTC", "USDT") == (2.0, 50_000.0)
    assert c.borrow_limits("ETH", "USDT") == (math.inf, 50_000.0)
    cheap = profiles["cheap-liquidation"]
    five = PROFILES["cross-5x"]
    assert (cheap.max_leverage, cheap.call_ml, cheap.liquidation_ml, cheap.liquidation_fee) == (
        five.max_leverage, five.call_ml, five.liquidation_ml, 0.01)
    pro = profiles["pro-8x"]
    assert pro.pro and pro.kernel_levels()[2] == pytest.approx(1.05) and pro.initial_ml == pytest.approx(1 / 0.35)


def test_initial_ml_gives_the_leverage(tmp_path):
    path = _file(tmp_path, GOOD.replace("max_leverage = 4", "initial_ml = 1.25"))
    assert load_profiles(path)["mine"].max_leverage == pytest.approx(5.0)


def test_single_profile_is_picked_without_margin(tmp_path):
    path = _file(tmp_path, GOOD)
    assert resolve_profile(None, path).name == "mine"
    assert resolve_profile("cross-5x", path).name == "cross-5x"  # built-ins stay reachable
    with pytest.raises(backtest.UserError, match="holds 3 profiles .*pick one with --margin"):
        resolve_profile(None, EXAMPLE)


BAD = [
    ("[profiles.mine]\nmode = \"cross\"\nmax_leverage = 4\nliquidation_ml = 1.1\nliquidation_fee = 0.02\ncolour = 1\n",
     "profile 'mine': colour: unknown key"),
    (GOOD.replace("max_leverage = 4", 'max_leverage = "4"'), "profile 'mine': max_leverage: expected a number"),
    (GOOD.replace("max_leverage = 4", "max_leverage = true"), "profile 'mine': max_leverage: expected a number"),
    (GOOD.replace("max_leverage = 4", "max_leverage = 1"), "profile 'mine': max_leverage: 1 must be > 1"),
    (GOOD.replace("max_leverage = 4", "max_leverage = nan"), "profile 'mine': max_leverage: expected a number"),
    (GOOD.replace("max_leverage = 4\n", ""), "profile 'mine': max_leverage: missing"),
    (GOOD.replace("max_leverage = 4", "max_leverage = 4\ninitial_ml = 1.3"), "profile 'mine': initial_ml: give"),
    (GOOD.replace("max_leverage = 4", "initial_ml = 0.9"), "profile 'mine': initial_ml: 0.9 must be > 1"),
    (GOOD.replace("liquidation_fee = 0.02", "liquidation_fee = 1.5"),
     "profile 'mine': liquidation_fee: 1.5 must be in \\[0, 1\\)"),
    (GOOD.replace("liquidation_fee = 0.02\n", ""), "profile 'mine': liquidation_fee: missing"),
    (GOOD.replace("liquidation_ml = 1.1", "liquidation_ml = 0.9"), "profile 'mine': liquidation_ml: 0.9 must be ≥ 1"),
    # thresholds in the wrong order
    (GOOD.replace("margin_call_ml = 1.2", "margin_call_ml = 1.05"),
     "profile 'mine': margin_call_ml: 1.05 must lie between liquidation_ml"),
    (GOOD.replace("margin_call_ml = 1.2", "margin_call_ml = 1.4"),
     "profile 'mine': margin_call_ml: 1.4 must lie between"),
    (GOOD.replace("margin_call_ml = 1.2\n", "").replace("liquidation_ml = 1.1", "liquidation_ml = 1.4"),
     "profile 'mine': liquidation_ml: 1.4 must be below the initial ML"),
    (GOOD + "mmr = 1.5\n", "profile 'mine': mmr: 1.5 must be in \\(0, 1\\)"),
    (GOOD + "[profiles.mine.asset_mmr]\nBTC = 0.1\n", "profile 'mine': asset_mmr: per-asset MMRs need"),
    (GOOD + "mmr = 0.05\n[profiles.mine.asset_mmr]\nBTC = 2\n", "profile 'mine': asset_mmr.BTC: 2 must be in"),
    (GOOD + "[profiles.mine.max_borrow]\nBTC = 0\n", "profile 'mine': max_borrow.BTC: 0 must be > 0"),
    (GOOD + "[profiles.mine.max_borrow]\nBTC = \"a lot\"\n", "profile 'mine': max_borrow: BTC: expected a number"),
    (GOOD + "[profiles.mine.max_borrow]\nbtc = 1\n", "profile 'mine': max_borrow: btc: an asset is written in capitals"),
    (GOOD + "max_borrow = 5\n", "profile 'mine': max_borrow: expected a table"),
    (GOOD.replace("mine", "cross-3x"), "profile 'cross-3x': a built-in profile has that name"),
    ('[profiles.mine]\nbase = "cross-7x"\n', "profile 'mine': base: 'cross-7x' is not a built-in profile"),
    ("[profiles]\n", "no profiles"),
    ("mmr = 0.05\n" + GOOD, "unknown key 'mmr'"),
    ("[profiles.mine\n", "not valid TOML"),
    ("[profiles]\nmine = 3\n", "profile 'mine': expected a table"),
]


@pytest.mark.parametrize("text, message", BAD)
def test_bad_profile_file_is_one_line_naming_file_profile_and_key(tmp_path, capsys, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(backtest.UserError, match=message):
        load_profiles(path)
    assert main(["run", "--margin-file", str(path), "--no-report", "--end", "2018-01-02"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err


def test_missing_file_and_unknown_name(tmp_path, capsys):
    assert main(["run", "--margin-file", str(tmp_path / "none.toml"), "--no-report"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["run", "--margin-file", EXAMPLE, "--margin", "nope", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'nope'" in err and "cautious-4x" in err


def test_different_mmrs_of_the_pair_are_refused(tmp_path, capsys):
    path = _file(tmp_path, "[profiles.p]\nmode = \"cross\"\nmax_leverage = 5\nliquidation_ml = 1.0\nliquidation_fee = 0.03\n"
                           "mmr = 0.05\n[profiles.p.asset_mmr]\nBTC = 0.1\n")
    assert main(["run", "--margin-file", str(path), "--no-report", "--end", "2018-01-02"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different MMRs for BTC (0.1) and USDT (0.05)" in err
    # ETH/USDT has no override: both at 0.05, accepted
    res = backtest.run("data/ETHUSDT-1h.parquet", "hold", margin="p", margin_file=path, end="2018-01-03")
    assert res.profile.mmr == 0.05


def _bars(prices):
    t0 = 1_600_041_600 + 5 * 3600
    index = pd.DatetimeIndex(pd.to_datetime([(t0 + 3600 * i) * 10**9 for i in range(len(prices))], utc=True),
                             name="timestamp")
    return pd.DataFrame({"open": prices, "high": prices, "low": prices, "close": prices, "volume": 1.0},
                        index=index), [t0 + 3600 * i for i in range(len(prices))]


@pytest.mark.parametrize("auto_repay", [True, False])
def test_max_borrow_caps_the_long_and_the_short(tmp_path, auto_repay):
    path = _file(tmp_path, '[profiles.capped]\nbase = "cross-3x"\n[profiles.capped.max_borrow]\n'
                           "USDT = 5000\nBTC = 20\n")
    bars, ts = _bars([100.0] * 5)
    # 3x long: 10,000 own + at most 5,000 USDT borrowed → 150 BTC; then 2x short: at most 20 BTC borrowed
    targets = [3.0, 3.0, -2.0, -2.0, -2.0]
    res = backtest.run(bars, np.array(targets), margin="capped", margin_file=path, fee=0.0, symbol="BTCUSDT",
                       rates={"BTC": 0.0, "USDT": 0.0}, auto_repay=auto_repay)
    orders = res.orders
    assert list(orders["capped"]) == [True, True]
    assert orders["quantity"].iloc[0] == pytest.approx(150.0, rel=1e-12)
    assert res.equity["position"].iloc[1] == pytest.approx(150.0, rel=1e-12)
    # the short sells the 150 held and borrows 20: position −20
    assert orders["quantity"].iloc[1] == pytest.approx(170.0, rel=1e-12)
    assert res.equity["position"].iloc[-1] == pytest.approx(-20.0, rel=1e-12)
    # the reference model agrees
    col = [100.0] * 5
    ref = simulate(ts, col, col, col, col, targets, profile=RefProfile(3.0, 1.3, 1.1, 0.02, max_borrow_base=20.0,
                   max_borrow_quote=5000.0), capital=10_000.0, fee=0.0, slippage=0.0, rate_base_daily=0.0,
                   rate_quote_daily=0.0, auto_repay=auto_repay)
    assert [o["quantity"] for o in ref["orders"]] == pytest.approx(list(orders["quantity"]), rel=1e-12)
    np.testing.assert_allclose(ref["equity"], res.equity["equity"], rtol=1e-12)


def test_run_json_keeps_the_custom_profile(tmp_path):
    path = _file(tmp_path, GOOD + "[profiles.mine.max_borrow]\nUSDT = 7000\n")
    res = backtest.run("data/BTCUSDT-1h.parquet", "hold", margin_file=path, end="2018-01-03")
    res.save(tmp_path / "out")
    back = backtest.Result.load(tmp_path / "out")
    assert back.profile == res.profile and back.profile.max_borrow == (("USDT", 7000.0),)
    assert res.settings["margin_file"] == str(path)
