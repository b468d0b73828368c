"""Stops in a cross perp account of several symbols: the compiled loop
(``backtest.run_multi``) on the hand-computed scenarios of
tests/test_reference_perps_cross_stops.py, against the reference
(tests/reference_perps_cross.py, written blind from docs/model-choices.md
"A cross perp account holding several symbols", *Stops*) and against the
numbers worked out there by hand: a stop-loss before a deeper mark-path
liquidation, a liquidation on leg 3 after a take-profit (the path without
stops has none), a liquidation a stop's fill brought nearer (at the stop's
θ, with bad debt)."""
import math

import numpy as np
import pandas as pd
import pytest

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from reference_perps_cross import simulate_perps_cross
from test_differential_perps_cross import VERSIONS, compare

NAN = math.nan
D = 1_717_200_000  # 2024-06-01 00:00:00 UTC: both symbols on their 2024-05-30 bracket tables
SYMS = ("BTCUSDT", "ETHUSDT")


def flat(p):
    return (p, p, p, p)


def _frame(rows, n):
    idx = pd.Index(pd.to_datetime([D + 3600 * k for k in range(n)], unit="s", utc=True), name="timestamp")
    cols = list(zip(*rows))
    return pd.DataFrame({"open": cols[0], "high": cols[1], "low": cols[2], "close": cols[3], "volume": 1.0}, index=idx)


def both(bars, targets, marks, capital, leverage, fee=0.0, slippage=0.0, **stops):
    """run_multi and the reference on the same three-bar scenario (``marks[s]``: None or its (o, h, l, c) per bar
    with NaN where the traded bar stands in)."""
    n = len(bars[0])
    data = {s: _frame(b, n) for s, b in zip(SYMS, bars)}
    mk = {}
    for s, m in zip(SYMS, marks):
        if m is not None:
            rows = [tuple(m[c][i] for c in range(4)) if m[0][i] == m[0][i] else bars[SYMS.index(s)][i]
                    for i in range(n)]
            mk[s] = _frame(rows, n)
    index = data[SYMS[0]].index
    grid = pd.DataFrame({s: t for s, t in zip(SYMS, targets)}, index=index)
    funding = {s: pd.DataFrame({"timestamp": [pd.Timestamp(D - 8 * 3600, unit="s", tz="UTC")],
                                "funding_rate": [0.0001]}) for s in SYMS}  # (before the first bar: never paid)
    res = backtest.run_multi(data, grid, margin=f"usdm-cross-{leverage}x", capital=capital, fee=fee,
                             slippage=slippage, mark=mk or None, funding=funding, **stops)
    ts = [D + 3600 * k for k in range(n)]
    ref_bars = [tuple(list(c) for c in zip(*b)) for b in bars]
    ref = simulate_perps_cross(ts, ref_bars, targets, capital=capital, leverage=leverage, fee=fee, slippage=slippage,
                               clearance=0.0125, brackets=VERSIONS, funding=[[(D - 8 * 3600, 0.0001)]] * 2,
                               marks=list(marks), **stops)
    sc = dict(capital=capital, stops=stops)
    compare(sc, np.array(ts), None, res, ref)
    assert list(res.orders["kind"]) == [o["kind"] for o in ref["orders"]]
    return res, ref


S1 = dict(bars=[[flat(100), flat(100), (100, 100, 90, 95)], [flat(50), flat(50), (50, 50.4, 50, 50.2)]],
          targets=[[20.0, NAN, NAN], [-20.0, NAN, NAN]],
          marks=[([NAN, NAN, 100], [NAN, NAN, 100], [NAN, NAN, 85], [NAN, NAN, 95]), None],
          capital=1_000.0, leverage=50, fee=0.0005, slippage=0.001)


def test_a_stop_loss_before_a_deeper_liquidation_on_the_marks():
    res, _ = both(**S1, stop_loss=0.01)
    stop = res.orders[res.orders["kind"] == "stop_loss"]
    assert list(stop["symbol"]) == ["BTCUSDT"] and stop["price"].iloc[0] == pytest.approx(100.1 * 0.99 * 0.999,
                                                                                           rel=1e-12)
    assert len(res.liquidations) == 0
    plain, _ = both(**S1)  # without the stop the marks' joint path liquidates both
    assert plain.summary["n_liquidations"] == 1 and plain.liquidations["theta"].iloc[0] < 0.25
    late, _ = both(**S1, stop_loss=0.05)  # a level the marks' liquidation comes before
    assert late.summary["n_liquidations"] == 1 and "stop_loss" not in set(late.orders["kind"])


def test_a_liquidation_on_leg_3_after_a_take_profit():
    bars = [[flat(100), flat(100), (100, 106, 100, 101)], [flat(50), flat(50), (50, 56, 49.5, 56)]]
    mark_a = ([NAN, NAN, 110], [NAN, NAN, 116], [NAN, NAN, 110], [NAN, NAN, 111])
    kw = dict(bars=bars, targets=[[20.0, NAN, NAN], [-20.0, NAN, NAN]], marks=[mark_a, None], capital=1_000.0,
              leverage=50)
    res, _ = both(**kw, take_profit=0.05)
    o = res.orders
    assert list(o["kind"]) == ["signal", "signal", "take_profit", "liquidation"]
    assert o["price"].iloc[2] == pytest.approx(105.0, rel=1e-12)  # A's level, at θ = 5/6 of leg 2
    th = 2_120.8 / 2_610.4  # leg 3: B alone, 49.5 → 56, where MB = MM (worked out in the reference's test)
    liq = res.liquidations
    assert liq["theta"].iloc[0] == pytest.approx(2 + th, rel=1e-12)
    assert o["price"].iloc[3] == pytest.approx(49.5 + 6.5 * th, rel=1e-12) and liq["margin_level"].iloc[0] == \
        pytest.approx(1.0, rel=1e-9)
    plain, _ = both(**kw)  # without stops the bar has no liquidation (leg 1 only, the state before)
    assert plain.summary["n_liquidations"] == 0


def test_a_liquidation_a_stop_brought_nearer_happens_at_the_stops_theta():
    bars = [[flat(100), flat(100), (100, 100, 90, 95)], [flat(50), flat(50), (50, 50.5, 50, 50.2)]]
    marks = [([NAN, NAN, 115], [NAN, NAN, 115], [NAN, NAN, 113], [NAN, NAN, 114]),
             ([NAN, NAN, 52], [NAN, NAN, 52.5], [NAN, NAN, 52], [NAN, NAN, 52.2])]
    res, _ = both(bars=bars, targets=[[20.0, NAN, NAN], [-20.0, NAN, NAN]], marks=marks, capital=1_000.0,
                  leverage=50, stop_loss=0.01)
    o = res.orders
    assert list(o["kind"]) == ["signal", "signal", "stop_loss", "liquidation"]
    assert o["price"].iloc[2] == pytest.approx(99.0, rel=1e-12) and o["price"].iloc[3] == pytest.approx(52.05,
                                                                                                        rel=1e-12)
    liq = res.liquidations
    assert liq["theta"].iloc[0] == pytest.approx(0.1, rel=1e-12) and liq["bad_debt"].iloc[0] == pytest.approx(20.0)
    assert res.summary["final_equity"] == 0.0


def test_a_stop_with_no_equity_at_the_path_prices_fills_nothing():
    """BTC's 8 % stop-loss fires on leg 1 where the account's equity at the
    traded path prices is below 0 (ETH's short up 7 % there) while the marks
    keep MB above MM: as any market order it fills nothing (from the review:
    the equity taken with the other symbols at their opens filled it)."""
    bars = [[flat(100), flat(100), (100, 100, 91, 95)], [flat(50), flat(50), (50, 53.5, 50, 51)]]
    marks = [([NAN, NAN, 100], [NAN, NAN, 100.1], [NAN, NAN, 99.9], [NAN, NAN, 100]),
             ([NAN, NAN, 50], [NAN, NAN, 50.1], [NAN, NAN, 49.9], [NAN, NAN, 50])]
    res, ref = both(bars, [[5.0, NAN, NAN], [-20.0, NAN, NAN]], marks, 1_000.0, 50, stop_loss=0.08)
    assert list(res.orders["kind"]) == ["signal", "signal"] and res.summary["n_liquidations"] == 0
    assert res.summary["final_equity"] == pytest.approx(ref["final_equity"], rel=1e-12)


def test_a_favourable_leg_liquidates_only_from_the_stops_theta_on():
    """Fee and slippage 0.5 % each, above the maintenance rate: BTC's
    take-profit on leg 2 leaves a state that would be below MM at the leg's
    start but is above it at the stop's θ and after (ETH's short gains along
    leg 2): no liquidation (searched from the leg's start, it would be)."""
    bars = [[flat(100), flat(100), (100.95, 101.01, 100.9, 101.0)], [flat(50), flat(50), (50, 51.9, 50.0, 50.05)]]
    res, _ = both(bars, [[20.0, NAN, NAN], [-20.0, NAN, NAN]], [None, None], 1_000.0, 50, fee=0.005, slippage=0.005,
                  take_profit=0.005)
    assert list(res.orders["kind"]) == ["signal", "signal", "take_profit"] and res.summary["n_liquidations"] == 0
