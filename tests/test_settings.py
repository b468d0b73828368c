"""One settings record (``RunSettings``) for run, run_multi, sweep, risk and
the walk-forward: its defaults are the entry points', it validates once, and
it round-trips through run.json."""
import inspect
import json
from dataclasses import fields

import numpy as np
import pytest

import backtest
from backtest.multi import run_multi
from backtest.profiles import PROFILES
from backtest.settings import RunSettings
from backtest.sweep import prepare_settings, run_settings
from test_engine import BTC, make_bars


@pytest.mark.parametrize("entry", [backtest.run, run_multi, prepare_settings])
def test_the_defaults_are_the_entry_points_defaults(entry):
    params = inspect.signature(entry).parameters
    for f in fields(RunSettings):
        if f.name in params:
            assert params[f.name].default == f.default, f.name


@pytest.mark.parametrize("kwargs, message", [
    (dict(capital=0), "--capital 0: must be > 0"),
    (dict(capital=1e308), "--capital 1e+308: must be > 0 and at most 1e+15"),  # (the charts' axes failed)
    (dict(reserve=1e300), "--reserve 1e+300: must be an amount ≥ 0 and at most 1e+15"),
    (dict(fee=1.0), "--fee 1.0: must be in [0, 1)"),
    (dict(slippage=float("nan")), "--slippage nan: must be in [0, 1)"),
    (dict(rebalance=-0.1), "--rebalance -0.1: must be ≥ 0"),
    (dict(stop_loss=1.5), "--stop-loss 1.5: must be in [0, 1)"),
    (dict(trailing_stop="x"), "--trailing-stop x: must be in [0, 1)"),
    (dict(liquidation="half"), "--liquidation half: expected partial or full"),
    (dict(path="random"), "--path random: expected ohlc-heuristic or pessimistic"),
    (dict(repay_on_flat=True), "--repay-on-flat: only with --no-auto-repay"),
])
def test_a_bad_setting_is_one_line_naming_the_flag(kwargs, message):
    with pytest.raises(backtest.UserError) as err:
        RunSettings(**kwargs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match=list(kwargs)[0].replace("_", "[-_]")):  # from Python: the argument
        backtest.run(BTC, "hold", **kwargs)


def test_a_strategys_stop_fractions_take_precedence_and_are_checked():
    rs = RunSettings(stop_loss=0.1, take_profit=0.2)
    assert rs.with_stops({"stop_loss": 0.05}) == RunSettings(stop_loss=0.05, take_profit=0.2)
    assert rs.with_stops({}) is rs
    with pytest.raises(backtest.UserError, match="--trailing-stop 2"):
        rs.with_stops({"trailing_stop": 2})


def test_the_kernel_settings_follow_the_record():
    rs = RunSettings(capital=5_000, fee=0.002, liquidation="full", path="pessimistic", auto_repay=False,
                     repay_on_flat=True, stop_loss=0.03)
    rates = (7, (np.zeros(3), np.ones(3)))
    cfg, kernel_rates = rs.kernel_config(PROFILES["cross-5x"], rates, (2.0, 50_000.0))
    assert (cfg.capital, cfg.fee, cfg.slippage, kernel_rates.h0) == (5_000.0, 0.002, 0.0, 7)
    assert (cfg.initial_ml, cfg.call_ml, cfg.liquidation_ml, cfg.liquidation_fee, cfg.restore_ml) == (
        1.25, 1.16, 1.1, 0.02, 1.25)
    assert cfg.full_liquidation is True and cfg.stop_loss == 0.03 and cfg.pessimistic is True
    assert (cfg.auto_repay, cfg.repay_on_flat, cfg.max_borrow_base, cfg.max_borrow_quote) == (False, True, 2.0, 5e4)
    assert kernel_rates.quote is rates[1][1]


def test_run_json_records_the_settings_and_they_run_again(tmp_path):
    bars = make_bars([100, 101, 99, 102, 98, 103] * 4)
    res = backtest.run(bars, "hold", {"exposure": 2}, symbol="BTCUSDT", fee=0.0005, rebalance=0.1,
                       stop_loss=0.2, rates={"USDT": 0.001})
    settings = json.loads((res.save(tmp_path / "r") / "run.json").read_text())["settings"]
    rs = RunSettings.from_dict(settings)
    assert rs == RunSettings(fee=0.0005, rebalance=0.1, stop_loss=0.2, rates={"BTC": 0.0002, "USDT": 0.001})
    assert list(settings)[:9] == ["data", "symbol", "strategy", "params", "margin", "margin_file", "capital", "fee",
                                  "slippage"]
    assert list(settings)[9:11] == ["rates", "rate_history"]
    again = backtest.run(bars, "hold", {"exposure": 2}, **run_settings(settings))
    assert again.summary == res.summary


def test_a_wrong_type_is_backtest_user_type_error():
    with pytest.raises(backtest.UserTypeError, match="capital"):  # (the README names it so; a TypeError)
        backtest.run(BTC, "hold", capital="10000")
    assert issubclass(backtest.UserTypeError, TypeError) and issubclass(backtest.UserTypeError, ValueError)


def test_backtest_refuses_an_unknown_setting_where_it_is_given():
    with pytest.raises(TypeError, match=r"Backtest\(\) got an unexpected keyword argument 'margn'"):
        backtest.Backtest(BTC, "hold", margn="cross-5x")
    assert backtest.Backtest(BTC, "hold", margin="cross-5x", start="2024-01-01").run().profile.name == "cross-5x"


def test_plot_takes_a_png_path_in_a_folder_that_exists(tmp_path):
    res = backtest.run(BTC, "hold", start="2024-06-01")
    with pytest.raises(backtest.UserError, match="a .png path"):
        res.plot(tmp_path / "equity.xyz")
    with pytest.raises(backtest.UserError, match="no folder"):
        res.plot(tmp_path / "missing" / "equity.png")
    assert not list(tmp_path.iterdir())
    res.plot(tmp_path / "equity.png")
    assert (tmp_path / "equity.png").read_bytes()[:4] == b"\x89PNG"
    import io

    buf = io.BytesIO()  # a file object is written as it is
    res.plot(buf)
    assert buf.getvalue()[:4] == b"\x89PNG"
