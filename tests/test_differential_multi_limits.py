"""A strategy's limit orders with several symbols: ``backtest.run_multi``
against the plain-Python ``tests/reference_multi.py`` (MC "Limit orders",
"Several symbols", "Stops on a joint path", "Limit orders in a cross
account of several symbols").

The strategy runs on each symbol's own bars alone (recognised by its
closes, as in ``test_differential_multi_stops``) and returns per symbol its
targets, a limit price per own bar (mostly near the close, on either side
and at several distances: some orders fire at the next open, some in the
bar, some never) and an ``expiry`` of 1–4 own bars.  The reference gets the
same (``simulate_multi(limits=...)``), targets NaN where a symbol has no
bar.  Compared as ``test_differential_multi_stops.compare_stops`` does (per
bar equity, debt, margin level, interest, positions; liquidations, margin
calls, orders with their kinds, quantities, prices and fees to 1e-9
relative) plus ``n_cancelled`` (the engine's summary has it when non-zero).

- ``test_multi_limits_match_reference``: a cross account of 2–3 symbols
  (sometimes an isolated account beside it), stops on or off, rates,
  rate histories, leverage up to the profile's (liquidations happen);
- ``test_multi_limits_with_marks_match_reference``: the same with mark
  series for some symbols of the cross account (the liquidation on the
  marks' joint path, the orders on the traded one);
- ``test_limits_in_accounts_of_one_symbol_match_reference``: accounts of
  one symbol only (isolated, or a cross account holding one symbol), which
  run the one-symbol rules.

The hand-computed examples (fee 0, rates 0, BTC and ETH in one cross-3x
account, 10,000 USDT) each run on both sides: ``reference`` asserts the hand
numbers on the reference, ``engine`` the same numbers on ``run_multi`` and
then the whole run against the reference.

``MARGINBT_EXAMPLES`` sets the number of examples (default 200 here);
``MARGINBT_RANDOMIZE=1`` draws new ones.
"""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_multi import simulate_multi
from test_differential_multi import (ISOLATED_PROFILES, SETTINGS, SYMBOLS, accounts_for, build_multi, engine_bars,
                                     engine_run, marks_for, reference_settings, scenarios)
from test_differential_multi_stops import (FRACTIONS, H, NO_COSTS, T0, compare_stops, engine_orders, flat,
                                           ref_orders, symbol_strategy)

from backtest.multi import CROSS, run_multi
from hyp_examples import examples

EXAMPLES = examples(200)
# distances of a limit price from its bar's close (either side)
LIMIT_DISTANCES = [0.0, 0.0005, 0.002, 0.01, 0.03, 0.1]


# ------------------------------------------------------------- scenarios
@st.composite
def limit_specs(draw):
    """One symbol's limit orders as drawn: None (market orders only) or
    (share of its own bars with a limit price, seed, expiry)."""
    if draw(st.sampled_from([False, True, True, True])):
        return (draw(st.sampled_from([0.3, 0.7, 1.0, 1.0])), draw(st.integers(0, 2**32 - 1)),
                draw(st.integers(1, 4)))
    return None


@st.composite
def limit_scenarios(draw, layout="joint"):
    """``scenarios`` with a strategy's limit orders: ``layout`` "joint" a
    cross account of 2–3 symbols (for 3, sometimes one isolated account
    beside it), "single" accounts of one symbol only (all isolated, or one
    cross account holding one symbol beside isolated ones).  Stops on in
    about half, a rate history sometimes, the path setting (it matters to
    accounts of one symbol only)."""
    sc = draw(scenarios())
    n_sym = sc["n_sym"]
    if layout == "joint":
        cross_profile = next((m for m in sc["margins"] if not m.startswith("isolated")), None) or draw(
            st.sampled_from(["cross-3x", "cross-5x", "cross-pro-10x", "cross-pro-20x"]))
        margins = [cross_profile] * n_sym
        if n_sym == 3 and draw(st.sampled_from([False, False, True])):
            margins[draw(st.integers(0, 2))] = draw(st.sampled_from(ISOLATED_PROFILES))
    else:
        margins = [draw(st.sampled_from(ISOLATED_PROFILES)) for _ in range(n_sym)]
        if draw(st.booleans()):
            margins[draw(st.integers(0, n_sym - 1))] = draw(st.sampled_from(["cross-3x", "cross-5x",
                                                                              "cross-pro-10x"]))
    sc["margins"] = margins
    fr = [draw(st.sampled_from(FRACTIONS)) for _ in range(3)] if draw(st.booleans()) else [0.0] * 3
    sc["stop_loss"], sc["take_profit"], sc["trailing_stop"] = fr
    sc["path"] = draw(st.sampled_from(["ohlc-heuristic", "pessimistic"]))
    assets = [s[:-4] for s in SYMBOLS[:n_sym]] + ["USDT"]
    sc["rate_history"] = draw(st.sampled_from([(), (), (), ("USDT",), (assets[0],), tuple(assets)]))
    specs = [draw(limit_specs()) for _ in range(n_sym)]
    if all(sp is None for sp in specs):
        specs[draw(st.integers(0, n_sym - 1))] = (1.0, draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 4)))
    sc["limits"] = specs
    return sc


@st.composite
def limit_mark_scenarios(draw):
    """``limit_scenarios`` with a mark series for some symbols of the cross
    account (accounts of one symbol with a mark run the one-symbol kernel's
    walk on it, which the reference does not model)."""
    sc = draw(limit_scenarios())
    cross = [not m.startswith("isolated") for m in sc["margins"]]
    sc["marked"] = [c and draw(st.sampled_from([False, True, True])) for c in cross]
    if not any(sc["marked"]):
        sc["marked"][cross.index(True)] = True
    sc["mark_noise"] = draw(st.sampled_from([0.0, 0.01, 0.03, 0.08]))
    sc["mark_holes"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.4]))
    return sc


def limit_array(spec, closes):
    """A symbol's limit prices on its own bars from its drawn ``spec``: at a
    share of its bars a price near that bar's close, above or below it
    (often already passed at the next open, sometimes never reached), NaN
    elsewhere (a market order); None without limits."""
    if spec is None:
        return None
    density, seed, _ = spec
    rng = np.random.default_rng(seed)
    out = np.full(len(closes), np.nan)
    for j in range(len(closes)):
        if rng.random() < density:
            out[j] = closes[j] * (1.0 + rng.choice([-1.0, 1.0]) * rng.choice(LIMIT_DISTANCES))
    return out


# --------------------------------------------------------------- running
def run_limits(sc):
    """The reference (``limits=``, targets NaN where a symbol has no bar) and
    the engine (a strategy on each symbol's own bars returning its targets,
    limit prices and expiry) on a ``limit_scenarios`` case."""
    ts, o, h, lo, c, tg = build_multi(sc)
    n = len(ts)
    syms = list(SYMBOLS[: sc["n_sym"]])
    accts, shares = accounts_for(sc)
    settings_, rows = reference_settings(sc, ts, syms)
    has = [[o[k][i] == o[k][i] for i in range(n)] for k in range(len(syms))]
    own = [[i for i in range(n) if has[k][i]] for k in range(len(syms))]
    own_closes = [[c[k][i] for i in own[k]] for k in range(len(syms))]
    own_limits = [limit_array(sc["limits"][k], own_closes[k]) for k in range(len(syms))]
    limits = []
    for k in range(len(syms)):
        if own_limits[k] is None:
            limits.append(None)
            continue
        grid = [math.nan] * n
        for j, i in enumerate(own[k]):
            grid[i] = float(own_limits[k][j])
        limits.append((grid, sc["limits"][k][2]))
    tg_ref = [[tg[k][i] if has[k][i] else math.nan for i in range(n)] for k in range(len(syms))]
    stops = dict(stop_loss=sc["stop_loss"], take_profit=sc["take_profit"], trailing_stop=sc["trailing_stop"],
                 path=sc["path"])
    marks = marks_for(sc, o, h, lo, c)  # (open, high, low, close) lists: the joint walk runs to the mark closes
    ref = simulate_multi(ts, o, h, lo, c, tg_ref, **settings_, marks=marks, limits=limits, **stops)
    index, data, mark = engine_bars(ts, o, h, lo, c, syms, marks)
    outputs = {}
    for k, s in enumerate(syms):
        target = np.asarray([tg[k][i] for i in own[k]], dtype="float64")
        outputs[s] = target if own_limits[k] is None else {"target": target, "limit": own_limits[k],
                                                            "expiry": sc["limits"][k][2]}
    res = engine_run(sc, data, symbol_strategy(data, outputs), rows, syms, mark=mark, **stops)
    return ref, res, index, accts, syms


def compare_limits(ref, res, index, accts, syms, sc):
    """``compare_stops`` (per bar series, events, orders with their kinds,
    stop triggers, ambiguous bars), then the cancelled orders."""
    compare_stops(ref, res, index, accts, syms, sc)
    got = res.summary.get("n_cancelled", 0)
    assert got == ref["n_cancelled"], f"n_cancelled: reference {ref['n_cancelled']} kernel {got}\nscenario={sc!r}"


def check(sc):
    ref, res, index, accts, syms = run_limits(sc)
    compare_limits(ref, res, index, accts, syms, sc)
    return ref, res


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=limit_scenarios())
def test_multi_limits_match_reference(sc):
    check(sc)


@settings(max_examples=max(EXAMPLES // 2, 1), **SETTINGS)
@given(sc=limit_mark_scenarios())
def test_multi_limits_with_marks_match_reference(sc):
    check(sc)


@settings(max_examples=max(EXAMPLES // 2, 1), **SETTINGS)
@given(sc=limit_scenarios(layout="single"))
def test_limits_in_accounts_of_one_symbol_match_reference(sc):
    check(sc)


# --------------------------------------------------------------- by hand
SYMS = ("BTCUSDT", "ETHUSDT")
NAN = math.nan


def run_hand(side, rows, targets, limits, *, capital=10_000.0, stop_loss=0.0):
    """BTC and ETH in one cross-3x account, fee 0, slippage 0, rates 0,
    hourly from T0.  ``rows``: per symbol its bars on the grid (None where it
    has none); ``targets`` per symbol on its own bars; ``limits`` per symbol
    None or ``(limit prices on its own bars, expiry)``.  ``side``
    "reference": the reference's result; "engine": ``run_multi`` with the
    same orders from a strategy, compared with the reference in full.  Both
    as one dict: ``orders`` (bar, symbol, side, kind, quantity, price),
    ``equity``, ``debt`` (the account's per bar), ``position`` per symbol,
    ``n_cancelled``, ``liquidations`` (bar, margin level, fee, equity before,
    equity after, gap)."""
    n = len(rows[0])
    index = pd.DatetimeIndex([T0 + k * H for k in range(n)], name="timestamp")
    cols = [[[NAN if r is None else float(r[j]) for r in sym_rows] for j in range(4)] for sym_rows in rows]
    has = [[r is not None for r in sym_rows] for sym_rows in rows]
    tg_ref, lim_ref = [], []
    for k in range(2):
        at = [i for i in range(n) if has[k][i]]
        tg = [NAN] * n
        for j, i in enumerate(at):
            tg[i] = float(targets[k][j])
        tg_ref.append(tg)
        if limits[k] is None:
            lim_ref.append(None)
            continue
        grid = [NAN] * n
        for j, i in enumerate(at):
            grid[i] = float(limits[k][0][j])
        lim_ref.append((grid, limits[k][1]))
    stops = dict(stop_loss=stop_loss)
    ref = simulate_multi([int(t.timestamp()) for t in index], [cols[0][0], cols[1][0]], [cols[0][1], cols[1][1]],
                         [cols[0][2], cols[1][2]], [cols[0][3], cols[1][3]], tg_ref,
                         accounts=[("cross-3x", [0, 1], capital)], fee=0.0, slippage=0.0,
                         rates_base_daily=[0.0, 0.0], rate_quote_daily=0.0, limits=lim_ref, **stops)
    if side == "reference":
        return {"orders": ref_orders(ref), "equity": ref["equity"][0], "debt": ref["debt"][0],
                "position": ref["position"], "n_cancelled": ref["n_cancelled"],
                "liquidations": [(e["bar"], e["margin_level"], e["fee"], e["equity_before"], e["equity_after"],
                                  bool(e["gap"])) for e in ref["liquidations"]]}
    data = {}
    for k, s in enumerate(SYMS):
        df = pd.DataFrame({c: cols[k][j] for j, c in enumerate(("open", "high", "low", "close"))},
                          index=index).assign(volume=1.0)
        data[s] = df[df["open"].notna()]
    outputs = {}
    for k, s in enumerate(SYMS):
        target = np.asarray(targets[k], dtype="float64")
        outputs[s] = target if limits[k] is None else {"target": target,
                                                        "limit": np.asarray(limits[k][0], dtype="float64"),
                                                        "expiry": limits[k][1]}
    res = run_multi(data, strategy=symbol_strategy(data, outputs), margin="cross-3x", capital=capital,
                    slippage=0.0, **NO_COSTS, **stops)
    sc = dict(hand=True, rows=rows, targets=targets, limits=limits, **stops)
    compare_limits(ref, res, index, [(CROSS, "cross-3x", [0, 1])], list(SYMS), sc)
    liq = res.liquidations.drop_duplicates("event") if len(res.liquidations) else res.liquidations
    return {"orders": engine_orders(res), "equity": res.equity[f"equity_{CROSS}"].tolist(),
            "debt": res.equity[f"debt_{CROSS}"].tolist(),
            "position": [res.equity[f"position_{s}"].tolist() for s in SYMS],
            "n_cancelled": res.summary.get("n_cancelled", 0),
            "liquidations": [(int((t - T0) / H), ml, fee, eb, ea, bool(g)) for t, ml, fee, eb, ea, g in
                             zip(liq["time"], liq["margin_level"], liq["fee"], liq["equity_before"],
                                 liq["equity_after"], liq["gap"])] if len(liq) else []}


def assert_orders(rows, expected):
    assert [r[:4] for r in rows] == [e[:4] for e in expected], rows
    for r, e in zip(rows, expected):
        assert r[4] == pytest.approx(e[4], rel=1e-12) and r[5] == pytest.approx(e[5], rel=1e-12), (r, e)


SIDES = pytest.mark.parametrize("side", ["reference", "engine"])


@SIDES
def test_a_buy_limit_fills_where_the_low_reaches_it_while_the_other_symbol_is_held(side):
    # Bar 1's open, BTC first: 100 BTC at 100 with the cash (10,000; hq 0).  Then ETH's 1x target at a 9.5
    # limit (given at bar 0) is placed: E = 10,000, q = 10,000 / 9.5 ETH; cap: b_max = (10,000 − 1.5·0) /
    # (1.5 − 1) = 20,000, (0 + 20,000) / 9.5 > q; the 10,000 it needs borrowed and held (pq = hq = 10,000):
    # equity 10,000, debt 10,000.  Bar 1: ETH (flat with an order: O → H → L → C) 10 → 10.2 → 9.8 → 10 misses
    # 9.5.  Bar 2: 10 → 10.1 → 9.4 → 9.6: leg 2 falls through 9.5 (θ = 0.6/0.7), the buy fills at 9.5, paying
    # the 10,000 held; the quote loan stays.  Close: 10,000 + 9.6·10,000/9.5 − 10,000 = 10,105.263…
    btc = [flat(100.0)] * 4
    eth = [flat(10.0), (10.0, 10.2, 9.8, 10.0), (10.0, 10.1, 9.4, 9.6), flat(9.6)]
    r = run_hand(side, [btc, eth], ([1.0] * 4, [1.0] * 4), [None, ([9.5, NAN, NAN, NAN], 3)])
    q = 10_000.0 / 9.5
    assert_orders(r["orders"], [(1, "BTCUSDT", "buy", "signal", 100.0, 100.0),
                                (2, "ETHUSDT", "buy", "limit", q, 9.5)])
    assert r["equity"] == pytest.approx([10_000.0, 10_000.0, 9.6 * q, 9.6 * q], rel=1e-12)
    assert r["debt"] == pytest.approx([0.0, 10_000.0, 10_000.0, 10_000.0], rel=1e-12)
    assert r["position"][1] == pytest.approx([0.0, 0.0, q, q], rel=1e-12)
    assert r["position"][0] == pytest.approx([0.0, 100.0, 100.0, 100.0], rel=1e-12)
    assert r["n_cancelled"] == 0 and not r["liquidations"]


@SIDES
def test_an_order_expires_after_its_own_bars_and_its_loan_is_repaid(side):
    # ETH has no bar at grid bar 2.  Its 1x target at a 9 limit (own bar 0), expiry 2, is placed at grid bar 1
    # (own bar 1) after BTC's buy of 100 at 100 with the cash: q = 10,000/9, the 10,000 borrowed and held.
    # Its two bars are its own bars 1 and 2 (grid bars 1 and 3; grid bar 2, without ETH, does not count): the
    # lows 9.5 and 9.2 miss 9, and the order still stands at grid bar 3 (debt 10,000; counted on the grid it
    # would have been cancelled at grid bar 3's open).  Cancelled at grid bar 4's open (own bar 3 ≥ 1 + 2):
    # min(10,000, hq, pq) repaid, debt 0; that bar's low 8.5 comes too late.  Equity 10,000 throughout.
    btc = [flat(100.0)] * 6
    eth = [flat(10.0), (10.0, 10.1, 9.5, 10.0), None, (10.0, 10.2, 9.2, 10.0), (10.0, 10.0, 8.5, 9.0), flat(9.0)]
    r = run_hand(side, [btc, eth], ([1.0] * 6, [1.0] * 5), [None, ([9.0, NAN, NAN, NAN, NAN], 2)])
    assert_orders(r["orders"], [(1, "BTCUSDT", "buy", "signal", 100.0, 100.0)])
    assert r["n_cancelled"] == 1
    assert r["debt"] == pytest.approx([0.0, 10_000.0, 10_000.0, 10_000.0, 0.0, 0.0], rel=1e-12, abs=1e-9)
    assert r["equity"] == pytest.approx([10_000.0] * 6, rel=1e-12)
    assert r["position"][1] == [0.0] * 6


@SIDES
def test_a_gap_liquidation_cancels_the_standing_order_first(side):
    # Bar 1: BTC 2x: 200 at 100, 10,000 borrowed.  ETH's 0.5x target at a 9 limit: E = 10,000, q = 5,000/9,
    # b_max = (20,000 − 1.5·10,000)/0.5 = 10,000 ≥ 5,000: 5,000 borrowed and held (pq 15,000, hq 5,000).
    # Bar 2: BTC gaps to 55: with the order ML = (11,000 + 5,000)/15,000 ≤ 1.1: liquidated.  The order is
    # cancelled first (5,000 repaid: hq 0, pq 10,000), then the liquidation on what is left: ML 11,000/10,000
    # = 1.1 (not 16,000/15,000), fee 0.02·11,000 = 220, λ = (1.5·(10,000 + 220) − 11,000)/(11,000·0.5) =
    # 4,330/5,500: 200λ BTC sold at 55 (8,660), 8,440 repays the quote: 1,560 owed, 200·1,170/5,500 BTC left
    # (2,340): ML 1.5, equity 780.
    btc = [flat(100.0), flat(100.0), flat(55.0), flat(55.0)]
    eth = [flat(10.0), (10.0, 10.2, 9.5, 10.0), flat(10.0), flat(10.0)]
    r = run_hand(side, [btc, eth], ([2.0] * 4, [0.5] * 4), [None, ([9.0, NAN, NAN, NAN], 5)])
    lam = 4_330.0 / 5_500.0
    assert_orders(r["orders"], [(1, "BTCUSDT", "buy", "signal", 200.0, 100.0),
                                (2, "BTCUSDT", "sell", "liquidation", 200.0 * lam, 55.0)])
    assert r["n_cancelled"] == 1
    ((bar, ml, fee, eq_before, eq_after, gap),) = r["liquidations"]
    assert (bar, gap) == (2, True)
    assert ml == pytest.approx(1.1, rel=1e-12) and fee == pytest.approx(220.0, rel=1e-12)
    assert eq_before == pytest.approx(1_000.0, rel=1e-9) and eq_after == pytest.approx(780.0, rel=1e-9)
    assert r["debt"] == pytest.approx([0.0, 15_000.0, 1_560.0, 1_560.0], rel=1e-9)
    assert r["equity"] == pytest.approx([10_000.0, 10_000.0, 780.0, 780.0], rel=1e-9)
    assert r["position"][0][2] == pytest.approx(200.0 * 1_170.0 / 5_500.0, rel=1e-12)


@SIDES
def test_a_new_target_cancels_the_standing_order(side):
    # Bar 1: BTC 1x with the cash (100 at 100).  ETH's −0.5x target at an 11 limit: q = 5,000/11 ETH to sell,
    # b_max = 10,000/(10·0.5) = 2,000 ETH ≥ q: q ETH borrowed and held; bar 1's high 10.5 misses 11.  ETH's
    # target 0.5 (market) at bar 1: at bar 2's open the order is cancelled first (the q ETH repaid), then
    # 500 ETH are bought at 10 (5,000 quote borrowed): bar 2's high 12 no longer fills the old sell.  Close:
    # 10,000 + 500·11 − 5,000 = 10,500.
    btc = [flat(100.0)] * 4
    eth = [flat(10.0), (10.0, 10.5, 9.8, 10.2), (10.0, 12.0, 9.9, 11.0), flat(11.0)]
    r = run_hand(side, [btc, eth], ([1.0] * 4, [-0.5, 0.5, 0.5, 0.5]), [None, ([11.0, NAN, NAN, NAN], 10)])
    q = 5_000.0 / 11.0
    assert_orders(r["orders"], [(1, "BTCUSDT", "buy", "signal", 100.0, 100.0),
                                (2, "ETHUSDT", "buy", "signal", 500.0, 10.0)])
    assert r["n_cancelled"] == 1
    assert r["debt"] == pytest.approx([0.0, q * 10.2, 5_000.0, 5_000.0], rel=1e-12)
    assert r["equity"] == pytest.approx([10_000.0, 10_000.0, 10_500.0, 10_500.0], rel=1e-12)
    assert r["position"][1] == pytest.approx([0.0, 0.0, 500.0, 500.0], rel=1e-12, abs=1e-12)


@SIDES
def test_a_limit_fills_at_a_better_open_and_its_stop_fires_later_in_the_bar(side):
    # stop-loss 5 %.  Bar 1: 100 BTC at 100 (cash; its stop 95 is never reached).  ETH's 0.5x target at a 9.5
    # limit: q = 5,000/9.5, 5,000 quote borrowed and held.  Bar 2 opens at 9, below 9.5: the buy fills at the
    # open, 9 (hq 5,000 − 9q = 263.16 left), entry 9, its stop 8.55.  ETH walks O → H → L → C (flat with an
    # order at the walk's start): 9 → 9.2 → 8 reaches 8.55 on leg 2: q ETH sold at 8.55 (4,500) repay the
    # quote: 500 owed.  Equity 10,000 + 263.16 − 500 = 10,000 − 0.45q.
    btc = [flat(100.0)] * 4
    eth = [flat(10.0), (10.0, 10.2, 9.8, 10.0), (9.0, 9.2, 8.0, 8.5), flat(8.5)]
    r = run_hand(side, [btc, eth], ([1.0] * 4, [0.5] * 4), [None, ([9.5, NAN, NAN, NAN], 3)], stop_loss=0.05)
    q = 5_000.0 / 9.5
    assert_orders(r["orders"], [(1, "BTCUSDT", "buy", "signal", 100.0, 100.0),
                                (2, "ETHUSDT", "buy", "limit", q, 9.0),
                                (2, "ETHUSDT", "sell", "stop_loss", q, 8.55)])
    assert r["n_cancelled"] == 0
    assert r["debt"] == pytest.approx([0.0, 5_000.0, 500.0, 500.0], rel=1e-9)
    left = 10_000.0 - 0.45 * q
    assert r["equity"] == pytest.approx([10_000.0, 10_000.0, left, left], rel=1e-12)
    assert r["position"][1] == pytest.approx([0.0, 0.0, 0.0, 0.0], abs=1e-12)
