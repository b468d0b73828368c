"""equity.parquet's liquidation_price / liquidation_distance (issue 11, item
4): checked against hand computations from the fills, against the
liquidations a run records on the bundled real data, and for several
symbols against the account's margin level at that price."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.multi import run_multi

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
ETH = ROOT / "data" / "ETHUSDT-1h.parquet"
NO_RATES = {"BTC": 0.0, "USDT": 0.0}
NO_RATES_MULTI = {"BTC": 0.0, "ETH": 0.0, "USDT": 0.0}
CAPITAL = 10_000.0
NAN = np.nan


def hold(exposure, margin, start, end, **kw):
    kw = {"fee": 0.0, "rates": NO_RATES, "capital": CAPITAL, **kw}
    return backtest.run(BTC, "hold", {"exposure": exposure}, margin=margin, start=start, end=end, **kw)


def first_fill(res):
    """The one order of a buy-and-hold run: (bar, signed base quantity, price)."""
    (order,) = res.orders.itertuples()
    bar = res.equity.index.get_loc(order.time)
    return bar, (order.quantity if order.side == "buy" else -order.quantity), order.price


def test_long_3x_hold_is_1_1_quote_debt_over_base_held_every_bar():
    res = hold(3, "cross-3x", "2023-01-01", "2023-12-31")
    assert len(res.liquidations) == 0
    bar, b, price = first_fill(res)
    d = price * b - CAPITAL  # all the quote spent, the rest borrowed
    assert b == pytest.approx(3 * CAPITAL / price, rel=1e-12) and d == pytest.approx(2 * CAPITAL, rel=1e-12)
    eq = res.equity
    p_liq = eq["liquidation_price"].to_numpy()
    assert np.isnan(p_liq[:bar]).all() and np.isnan(eq["liquidation_distance"].to_numpy()[:bar]).all()  # flat
    np.testing.assert_allclose(p_liq[bar:], 1.1 * d / b, rtol=1e-9)  # about 12,122 for a 16,530 entry
    assert p_liq[bar] == pytest.approx(0.7333333 * price, rel=1e-6)  # spec E12: P0·MLR·(L−1)/L
    close = eq["close"].to_numpy()[bar:]
    dist = eq["liquidation_distance"].to_numpy()[bar:]
    np.testing.assert_allclose(dist, close / (1.1 * d / b) - 1.0, rtol=1e-9)
    assert (dist > 0).all()  # safe every bar: the run was never liquidated


def test_short_2x_hand_computed():
    res = hold(-2, "cross-3x", "2022-05-01", "2022-12-31")
    assert len(res.liquidations) == 0
    bar, q, price = first_fill(res)
    owed = -q  # base borrowed and sold; the proceeds stay with the capital as quote
    quote = CAPITAL + owed * price
    assert owed == pytest.approx(2 * CAPITAL / price, rel=1e-12)
    want = quote / (1.1 * owed)  # ML(P) = quote / (owed·P) = 1.1
    assert want == pytest.approx(price * 3 / (1.1 * 2), rel=1e-12)  # spec E13: P0·L/(MLR·(L−1))
    eq = res.equity
    np.testing.assert_allclose(eq["liquidation_price"].to_numpy()[bar:], want, rtol=1e-9)
    assert np.isnan(eq["liquidation_price"].to_numpy()[:bar]).all()
    close = eq["close"].to_numpy()[bar:]
    dist = eq["liquidation_distance"].to_numpy()[bar:]
    np.testing.assert_allclose(dist, 1.0 - close / want, rtol=1e-9)
    assert (close < want).all() and (dist > 0).all()  # positive while safe for a short too


def test_cross_margin_pro_uses_the_classic_level_one_plus_mmr():
    # Pro liquidates at ML_pro = (A − D)/(MMR·D) ≤ 1, i.e. A/D ≤ 1.05 (MMR 5 %)
    res = hold(5, "cross-pro-10x", "2023-01-01", "2023-06-30")
    assert len(res.liquidations) == 0
    bar, b, price = first_fill(res)
    d = price * b - CAPITAL
    want = 1.05 * d / b
    assert want == pytest.approx(price * 1.05 * 4 / 5, rel=1e-12)
    p_liq = res.equity["liquidation_price"].to_numpy()[bar:]
    np.testing.assert_allclose(p_liq, want, rtol=1e-9)
    pro_ml = (b * want - d) / (0.05 * d)  # the profile's own ML at that price
    assert pro_ml == pytest.approx(1.0, rel=1e-9)
    short = hold(-3, "cross-pro-10x", "2022-06-01", "2022-12-31")
    bar, q, price = first_fill(short)
    want = (CAPITAL - q * price) / (1.05 * -q)
    np.testing.assert_allclose(short.equity["liquidation_price"].to_numpy()[bar:], want, rtol=1e-9)


@pytest.mark.parametrize("exposure, margin, start, end, n_liq", [
    (3, "cross-3x", "2021-01-01", "2022-12-31", 2),
    (5, "cross-5x", "2020-01-01", "2022-12-31", 5),
    (10, "isolated-10x", "2019-01-01", "2022-12-31", 1),
    (9, "cross-pro-10x", "2019-01-01", "2022-12-31", 1),
    (-2, "cross-3x", "2020-01-01", "2021-12-31", 7),
    (-4, "isolated-5x", "2019-01-01", "2022-12-31", 35),
])
def test_the_bars_that_cross_the_last_close_liquidation_price_are_the_liquidated_bars(exposure, margin, start, end,
                                                                                        n_liq):
    # no fees and no interest: nothing changes the balances between a close
    # and the next bar's liquidation check (an hour's interest at the open
    # would move the level by a hair); the hold strategy trades only once
    res = hold(exposure, margin, start, end)
    eq, bars = res.equity, res.bars
    p_liq = eq["liquidation_price"].to_numpy()
    prev = p_liq[:-1]
    reached = np.zeros(len(eq), dtype=bool)
    if exposure > 0:
        reached[1:] = bars["low"].to_numpy()[1:] <= prev
    else:
        reached[1:] = bars["high"].to_numpy()[1:] >= prev
    liq_bars = eq.index.get_indexer(pd.DatetimeIndex(res.liquidations["time"]))
    assert len(res.liquidations) == n_liq
    assert np.flatnonzero(reached)[0] == liq_bars[0]  # the first liquidation
    assert set(np.flatnonzero(reached)) == set(liq_bars)  # and every later one
    entry = eq.index.get_loc(res.orders["time"].iloc[0])
    assert liq_bars[0] > entry + 1  # (a level of an earlier close, not the entry bar's)


def test_no_debt_or_a_price_that_cannot_liquidate_is_nan():
    bars = pd.DataFrame({"open": 30_000.0, "high": 30_000.0, "low": 30_000.0, "close": 30_000.0, "volume": 1.0},
                        index=pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC", name="timestamp"))
    # 1x long: bought with own quote, no debt
    res = backtest.run(bars, np.array([1.0, NAN, 0.0, NAN, NAN]), symbol="BTCUSDT", fee=0.0, rates=NO_RATES)
    assert res.equity["position"].iloc[1] > 0 and res.equity["debt"].iloc[1] == 0
    assert res.equity[["liquidation_price", "liquidation_distance"]].isna().all().all()
    # auto-repay off: short 2x, then buy to +2x with the proceeds held and the
    # base loan running on (cross-5x lets the buy borrow 10,000 more quote):
    # held 4/3 BTC, owed 2/3 BTC and 10,000 USDT.  ML(P) = (4/3·P) / (2/3·P
    # + 10,000) = 1.1 at P = 1.1·10,000 / (4/3 − 1.1·2/3) = 18,333.33
    res = backtest.run(bars, np.array([-2.0, 2.0, NAN, NAN, NAN]), symbol="BTCUSDT", fee=0.0, rates=NO_RATES,
                       margin="cross-5x", auto_repay=False)
    eq = res.equity.iloc[2]
    assert eq["position"] == pytest.approx(2 / 3, rel=1e-12) and eq["debt_base"] == pytest.approx(2 / 3, rel=1e-12)
    assert eq["liquidation_price"] == pytest.approx(11_000.0 / 0.6, rel=1e-12)
    assert eq["liquidation_distance"] == pytest.approx(30_000.0 * 0.6 / 11_000.0 - 1.0, rel=1e-12)
    # the same short bought back to +1x: ML = (P) / (2/3·P) = 1.5 whatever the price
    res = backtest.run(bars, np.array([-2.0, 1.0, NAN, NAN, NAN]), symbol="BTCUSDT", fee=0.0, rates=NO_RATES,
                       margin="cross-5x", auto_repay=False)
    assert res.equity["debt"].iloc[2] > 0 and res.equity["margin_level"].iloc[2] == pytest.approx(1.5, rel=1e-12)
    assert res.equity[["liquidation_price", "liquidation_distance"]].iloc[2:].isna().all().all()
    assert res.equity["liquidation_price"].iloc[1] == pytest.approx(30_000.0 * 3 / 2.2, rel=1e-12)  # the short


def _balances(res, symbols, capital):
    """Each symbol's base held and owed and the account's quote held and owed,
    from the fills (no fees, no interest, auto-repay: the quote is held or
    owed, never both)."""
    o = res.orders
    base = {s: float(np.where(o["side"] == "buy", 1, -1)[o["symbol"] == s] @ o["quantity"][o["symbol"] == s])
            for s in symbols}
    quote = capital - float((np.where(o["side"] == "buy", 1, -1) * o["quantity"] * o["price"])[
        o["symbol"].isin(symbols)].sum())
    return ({s: max(b, 0.0) for s, b in base.items()}, {s: max(-b, 0.0) for s, b in base.items()},
            max(quote, 0.0), max(-quote, 0.0))


def _check_account(res, symbols, capital, mlr, account):
    held, owed, qh, qo = _balances(res, symbols, capital)
    eq = res.equity.iloc[2:]  # every bar after the fills at bar 1's open
    close = {s: eq[f"close_{s}"].to_numpy() for s in symbols}

    def ml(prices):
        return (sum(held[s] * prices[s] for s in symbols) + qh) / (sum(owed[s] * prices[s] for s in symbols) + qo)

    # the balances are the account's: its margin level at the closes
    np.testing.assert_allclose(ml(close), eq[f"margin_level_{account}"].to_numpy(), rtol=1e-9)
    for s in symbols:
        p_liq = eq[f"liquidation_price_{s}"].to_numpy()
        assert np.isfinite(p_liq).all() and (p_liq > 0).all()
        np.testing.assert_allclose(ml({**close, s: p_liq}), mlr, rtol=1e-9)  # only its price moved
        dist = eq[f"liquidation_distance_{s}"].to_numpy()
        long_ = held[s] - mlr * owed[s] > 0
        np.testing.assert_allclose(dist, (close[s] / p_liq - 1.0) if long_ else (1.0 - close[s] / p_liq), rtol=1e-9)
        assert (dist > 0).all()


def _targets(btc, eth):
    return pd.DataFrame({"BTCUSDT": [btc], "ETHUSDT": [eth]}, index=[pd.Timestamp("2022-01-01", tz="UTC")])


def test_two_symbols_in_one_cross_account():
    # long BTC 1.5x and short ETH 0.8x of the shared equity, January–February 2022
    res = run_multi([BTC, ETH], _targets(1.5, -0.8), margin="cross-3x", capital=CAPITAL, fee=0.0, rates=NO_RATES_MULTI,
                    start="2022-01-01", end="2022-02-28")
    assert len(res.liquidations) == 0 and len(res.orders) == 2
    for col in ("liquidation_price_BTCUSDT", "liquidation_distance_BTCUSDT", "liquidation_price_ETHUSDT",
                "liquidation_distance_ETHUSDT"):
        assert col in res.equity
    _check_account(res, ["BTCUSDT", "ETHUSDT"], CAPITAL, 1.1, "cross")
    # the first close, by hand: 0.3215 BTC bought at 46,656.14 with 10,000 own
    # and 5,000 borrowed; 2.1488 ETH sold at 3,723.04 repay that and leave 3,000
    eq = res.equity.iloc[1]
    b, e = 15_000.0 / 46_656.14, 8_000.0 / 3_723.04
    quote = 10_000.0 - 15_000.0 + 8_000.0
    assert eq["liquidation_price_BTCUSDT"] == pytest.approx(
        (1.1 * e * eq["close_ETHUSDT"] - quote) / b, rel=1e-9)
    assert eq["liquidation_price_ETHUSDT"] == pytest.approx(
        (b * eq["close_BTCUSDT"] + quote) / (1.1 * e), rel=1e-9)


def test_two_isolated_accounts():
    res = run_multi([BTC, ETH], _targets(3.0, -2.0), margin="isolated-5x", capital=CAPITAL, fee=0.0,
                    rates=NO_RATES_MULTI, start="2022-01-01", end="2022-01-20")
    assert len(res.liquidations) == 0 and len(res.orders) == 2
    for sym in ("BTCUSDT", "ETHUSDT"):  # each account only holds its own symbol
        _check_account(res, [sym], CAPITAL / 2, 1.15, sym)
    eq = res.equity.iloc[1]
    assert eq["liquidation_price_BTCUSDT"] == pytest.approx(46_656.14 * 1.15 * 2 / 3, rel=1e-9)  # E12
    assert eq["liquidation_price_ETHUSDT"] == pytest.approx(3_723.04 * 3 / (1.15 * 2), rel=1e-9)  # E13


def test_the_report_draws_the_liquidation_price(tmp_path):
    from test_report import by_gid, two_drop_bars, two_drop_targets

    from backtest import Result
    from backtest.report.common import prepare
    from backtest.report.pages import margin_figure

    bars = two_drop_bars()
    res = backtest.run(bars, two_drop_targets(len(bars)), margin="cross-3x", fee=0.0, rates=NO_RATES,
                       symbol="BTCUSDT")
    res.save(tmp_path)  # a saved folder's equity.parquet keeps the columns
    loaded = Result.load(tmp_path)
    pd.testing.assert_series_equal(loaded.equity["liquidation_price"], res.equity["liquidation_price"],
                                   check_freq=False)
    fig = margin_figure(prepare(loaded))
    (level,) = by_gid(fig, "liquidation-price")  # a long's level only: one line, below the close
    y = level.get_ydata()
    assert level.get_label() == "liquidation price" and level.get_linestyle() == "--"
    np.testing.assert_allclose(y[1:10], 100.0 * 1.1 * 2 / 3, rtol=1e-12)  # 73.33 (spec E3 scaled)
    x = prepare(res).x
    want = pd.Series(res.equity["liquidation_price"].to_numpy(), index=x)
    np.testing.assert_allclose(y, want.reindex(level.get_xdata()).to_numpy(), rtol=0, equal_nan=True)
    lo, hi = level.axes.get_ylim()
    assert lo < np.nanmin(y) and hi > bars["high"].max()  # the level is in view

    multi = run_multi([BTC, ETH], _targets(1.5, -0.8), margin="cross-3x", capital=CAPITAL, fee=0.0,
                      rates=NO_RATES_MULTI, start="2022-01-01", end="2022-01-10")
    fig = margin_figure(prepare(multi))
    for sym in ("BTCUSDT", "ETHUSDT"):  # relative to the symbol's first close, like its price line
        (level,) = by_gid(fig, f"liquidation-price-{sym}")
        first = multi.equity[f"close_{sym}"].iloc[0]
        assert np.nanmax(np.abs(level.get_ydata() * first / multi.equity[f"liquidation_price_{sym}"].to_numpy()
                                - 1.0)) < 1e-12
