"""A custom profile's max borrow per asset with several symbols:
``backtest.run_multi(..., margin={symbol: <a backtest.Profile with
max_borrow>})`` against the plain-Python ``tests/reference_multi.py``
(``simulate_multi(max_borrow=...)``; MC "Market order", **Max borrow per
asset**, and "Max borrow in a cross account of several symbols").

Every example takes a built-in profile and gives it a ``max_borrow`` table
(the same table for every account of the run): the quote (USDT) and/or some
symbols' base assets, each limit a fraction of the run's capital (0.05 to
3; a base limit in base units at the symbol's first open), so the limits
bind often.  Auto-repay on, or off with ``repay_on_flat`` on or off.  The
scenarios are ``test_differential_multi_norepay``'s, on
``test_differential_multi``'s (2–3 symbols on a common grid, random walks
with jumps, gaps, holes, late starts, high leverage drawn often so that
liquidations happen):

- ``test_maxborrow_accounts_of_one_symbol_match_reference``: every account
  holds one symbol (isolated accounts, and beside them at most a cross
  account of one symbol): the one-symbol rule per account; stops in some
  examples, mark series in some others;
- ``test_maxborrow_cross_accounts_match_reference``: a cross account of 2–3
  symbols (for 3, sometimes one isolated beside it), no stops: the quote
  limit on the account's one quote principal, each base limit on its own
  symbol's; mark series and rate histories in some;
- ``test_maxborrow_cross_accounts_with_stops_match_reference``: the same
  with stop-loss, take-profit and trailing stop (a stop's exit is a market
  order: the limits apply to it).

Compared as ``test_differential_multi_stops.compare_stops`` does (per bar
each account's equity, debt, margin level, the run's interest paid and
owed, each symbol's position to 1e-9; the liquidations, margin calls and
orders with their ``capped`` flag, stop triggers, summary), and with
auto-repay off each symbol's ``debt_base_<SYMBOL>``
(``test_differential_multi_norepay.compare_debt_base``).

The hand-computed tests at the end (flat prices, fee 0, rates 0) check the
reference's numbers, then the engine's.

``MARGINBT_EXAMPLES`` sets the number of examples (default 300 here);
``MARGINBT_RANDOMIZE=1`` draws new ones.
"""
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backtest
from test_differential_multi import SETTINGS, SYMBOLS, build_multi
from test_differential_multi import run_both as multi_run_both
from test_differential_multi_norepay import (SYMS, assert_orders, cross_scenarios, engine_orders, flat,
                                             one_symbol_scenarios, orders_of)
from test_differential_multi_norepay import check as norepay_check
from test_differential_multi_norepay import hand as norepay_hand
from hyp_examples import examples


EXAMPLES = examples(300)
# a limit as a fraction of the run's capital (a base limit: that value at the symbol's first open)
FRACTIONS = [0.05, 0.2, 0.5, 0.5, 1.0, 3.0]


def _limits(draw, sc):
    """The run's max borrow table as fractions of its capital: the quote
    and/or some symbols' bases (at least one asset); auto-repay on, or off
    with repay on flat as drawn."""
    assets = ["USDT"] + [s[:-4] for s in SYMBOLS[: sc["n_sym"]]]
    named = [a for a in assets if draw(st.sampled_from([False, True]))] or [draw(st.sampled_from(assets))]
    sc["max_borrow"] = {a: draw(st.sampled_from(FRACTIONS)) for a in named}
    sc["auto_repay"] = draw(st.booleans())
    if sc["auto_repay"]:
        sc["repay_on_flat"] = False
    return sc


@st.composite
def one_symbol_maxborrow_scenarios(draw):
    return _limits(draw, draw(one_symbol_scenarios()))


@st.composite
def cross_maxborrow_scenarios(draw, stops=False):
    return _limits(draw, draw(cross_scenarios(stops=stops)))


def limits_of(sc):
    """The scenario's limits in asset units: ``{asset: amount}`` for the
    engine's profiles and ``{"quote" | symbol index: amount}`` for the
    reference."""
    _, opens, _, _, _, _ = build_multi(sc)
    first = [next(x for x in o if x == x) for o in opens]
    engine, ref = {}, {}
    for asset, frac in sc["max_borrow"].items():
        if asset == "USDT":
            engine[asset] = ref["quote"] = frac * sc["capital"]
        else:
            k = [s[:-4] for s in SYMBOLS].index(asset)
            engine[asset] = ref[k] = frac * sc["capital"] / first[k]
    return engine, ref


def capped_profile(name, limits):
    """The built-in profile ``name`` with a max borrow table (asset units)."""
    return dataclasses.replace(backtest.get_profile(name), name=f"{name}-capped",
                               max_borrow=tuple(sorted(limits.items())))


def run_both(sc):
    """The reference and the engine on the scenario with its limits: one
    custom profile per built-in profile of the scenario (the cross
    account's symbols share theirs)."""
    engine_limits, ref_limits = limits_of(sc)
    custom = {m: capped_profile(m, engine_limits) for m in set(sc["margins"])}
    syms = SYMBOLS[: sc["n_sym"]]
    stops = dict(stop_loss=sc["stop_loss"], take_profit=sc["take_profit"], trailing_stop=sc["trailing_stop"],
                 path=sc["path"])
    return multi_run_both(sc, ref_kw=dict(max_borrow=ref_limits),
                          margin={s: custom[sc["margins"][k]] for k, s in enumerate(syms)},
                          auto_repay=sc["auto_repay"], repay_on_flat=sc["repay_on_flat"], **stops)


def check(sc):
    return norepay_check(sc, run_both)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=one_symbol_maxborrow_scenarios())
def test_maxborrow_accounts_of_one_symbol_match_reference(sc):
    check(sc)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=cross_maxborrow_scenarios())
def test_maxborrow_cross_accounts_match_reference(sc):
    check(sc)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=cross_maxborrow_scenarios(stops=True))
def test_maxborrow_cross_accounts_with_stops_match_reference(sc):
    check(sc)


# --------------------------------------------------------------- by hand
def hand(btc, eth, targets, limits, *, margin="cross-3x", auto_repay=True, capital=10_000.0):
    """``test_differential_multi_norepay.hand`` (flat bars, fee, slippage and
    rates 0) with the built-in ``margin`` given the max borrow table
    ``limits`` (``{asset: amount}``): the engine a custom profile, the
    reference the same limits."""
    ref_limits = {("quote" if a == "USDT" else [s[:-4] for s in SYMS].index(a)): v for a, v in limits.items()}
    prof = capped_profile(margin, limits)
    return norepay_hand(btc, eth, targets, margin=margin, auto_repay=auto_repay, capital=capital,
                        ref_kw=dict(max_borrow=ref_limits), engine_margin={s: prof for s in SYMS})


@pytest.mark.parametrize("auto_repay", [True, False])
def test_two_symbols_share_the_cross_accounts_quote_limit(auto_repay):
    # cross-3x (M0 = 1.5), capital 10,000, max borrow USDT 12,000; BTC at 100, ETH at 10, flat.
    # Bar 1: BTC to 2x: T = 200 BTC, 20,000 quote: 10,000 held, 10,000 borrowed (the cross cap, W = 0:
    # q* = 1.5·10,000 / (1.5·100 − 100) = 300; the room, 12,000: (10,000 + 12,000)/100 = 220: no cap).
    # pq = 10,000.  Then ETH to 1x: equity 10,000, T = 1,000 ETH, 10,000 quote, nothing held; the cross
    # cap (W = 200·100 = 20,000): q* = (20,000 − 1.5·10,000) / (1.5·10 − 10) = 1,000, not below; the room
    # left, 12,000 − 10,000 = 2,000: (0 + 2,000)/10 = 200 ETH: capped at 200, pq = 12,000 (BTC's loan used
    # up the room ETH wanted).  Equity 20,000 + 2,000 − 12,000 = 10,000, debt 12,000.
    # Bar 2: BTC to 1x: T = 100, 100 sold at 100 for 10,000; auto-repay on repays pq to 2,000 (off: the
    # 10,000 stay held, pq 12,000).
    # Bar 3: ETH to 1.5x: equity 10,000, T = 1,500, δ = 1,300, 13,000 quote.
    #   on: nothing held, room 12,000 − 2,000 = 10,000: (0 + 10,000)/10 = 1,000 ETH (the cross cap, W =
    #       10,000: q* = (200·10 − 1.5·2,000 + 10,000)/5 = 1,800, above): capped at 1,000, pq = 12,000;
    #   off: 10,000 held, no room (pq = 12,000 at its limit): (10,000 + 0)/10 = 1,000 ETH, nothing
    #       borrowed (the no-repay cross cap, W = 10,000: q* = (10,000 + 200·10 + 1.5·10,000 − 1.5·12,000)/5
    #       = 1,800, above): capped at 1,000, paid from what is held.
    # Both end with 100 BTC, 1,200 ETH, debt 12,000, equity 10,000 + 12,000 − 12,000 = 10,000.
    btc = [flat(100.0)] * 4
    eth = [flat(10.0)] * 4
    targets = ([2.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.5, 1.5])
    ref, engine = hand(btc, eth, targets, {"USDT": 12_000.0}, auto_repay=auto_repay)
    expected = [(1, "BTCUSDT", "buy", "signal", False, 200.0, 100.0),
                (1, "ETHUSDT", "buy", "signal", True, 200.0, 10.0),
                (2, "BTCUSDT", "sell", "signal", False, 100.0, 100.0),
                (3, "ETHUSDT", "buy", "signal", True, 1_000.0, 10.0)]
    assert_orders(orders_of(ref), expected)
    assert ref["equity"][0] == pytest.approx([10_000.0] * 4, rel=1e-12)
    assert ref["debt"][0] == pytest.approx([0.0, 12_000.0, 2_000.0 if auto_repay else 12_000.0, 12_000.0],
                                           rel=1e-12)
    assert ref["position"][0] == pytest.approx([0.0, 200.0, 100.0, 100.0], rel=1e-12)
    assert ref["position"][1] == pytest.approx([0.0, 200.0, 200.0, 1_200.0], rel=1e-12)
    res = engine()
    assert_orders(engine_orders(res), expected)


def test_a_base_limit_caps_one_symbols_short_and_not_the_others():
    # cross-3x (M0 = 1.5), capital 10,000, max borrow BTC 50 (no ETH limit); BTC at 100, ETH at 10, flat.
    # Bar 1: BTC to −1x: T = −100 BTC, nothing held; room 50 BTC: capped at 0 + 50 (the cross cap, W = 0:
    # q* = 1.5·10,000 / (1.5·100 − 100) = 300, above).  hq = 15,000, pb_BTC = 50.
    # Then ETH to −1x: equity 15,000 − 5,000 = 10,000, T = −1,000 ETH: its own base has no limit; the cross
    # cap, W = (0 − 1.5·50)·100 = −7,500: q* = (15,000 − 7,500)/(1.5·10 − 10) = 1,500, above: 1,000 sold,
    # not capped.  hq = 25,000, debt 5,000 + 10,000 = 15,000, ML 25,000/15,000.
    # Bar 2: BTC to −2x: equity 10,000, T = −200, δ = −150; the cross cap (W = −1.5·1,000·10 = −15,000):
    # q* = (25,000 − 1.5·50·100 − 15,000)/50 = 50, but no room (pb = 50 at its limit): the cap is hb + 0 = 0,
    # nothing sold (no fill, nothing recorded).
    # Bar 2: ETH to −2x: T = −2,000, δ = −1,000: the cross cap, W = −7,500, hq 25,000, dq 0, Db 1,000:
    # q* = (25,000 − 1.5·1,000·10 − 7,500)/5 = 500: 500 more sold, capped by the margin gate (not a limit).
    btc = [flat(100.0)] * 3
    eth = [flat(10.0)] * 3
    targets = ([-1.0, -2.0, -2.0], [-1.0, -2.0, -2.0])
    ref, engine = hand(btc, eth, targets, {"BTC": 50.0})
    expected = [(1, "BTCUSDT", "sell", "signal", True, 50.0, 100.0),
                (1, "ETHUSDT", "sell", "signal", False, 1_000.0, 10.0),
                (2, "ETHUSDT", "sell", "signal", True, 500.0, 10.0)]
    assert_orders(orders_of(ref), expected)
    assert ref["position"][0] == pytest.approx([0.0, -50.0, -50.0], rel=1e-12)
    assert ref["position"][1] == pytest.approx([0.0, -1_000.0, -1_500.0], rel=1e-12)
    assert ref["debt"][0] == pytest.approx([0.0, 15_000.0, 20_000.0], rel=1e-12)
    assert ref["margin_level"][0][2] == pytest.approx(30_000.0 / 20_000.0, rel=1e-12)  # at M0
    res = engine()
    assert_orders(engine_orders(res), expected)


def test_isolated_accounts_each_have_their_own_quote_limit():
    # isolated-5x (M0 = 1.25), capital 10,000: 5,000 per account; max borrow USDT 6,000 in each account.
    # Bar 1: BTC to 3x: T = 150 BTC at 100, 15,000 quote; 5,000 held, room 6,000: (5,000 + 6,000)/100 = 110
    # BTC (the one-symbol cap: q* = 1.25·5,000 / (1.25·100 − 100) = 250, above): capped at 110, pq 6,000.
    # ETH to 3x in its own account: T = 1,500 ETH at 10; its own room 6,000: (5,000 + 6,000)/10 = 1,100 ETH:
    # capped likewise (BTC's loan is in another account).  Each account: equity 5,000, debt 6,000.
    btc = [flat(100.0)] * 2
    eth = [flat(10.0)] * 2
    targets = ([3.0, 3.0], [3.0, 3.0])
    ref, engine = hand(btc, eth, targets, {"USDT": 6_000.0}, margin="isolated-5x")
    expected = [(1, "BTCUSDT", "buy", "signal", True, 110.0, 100.0),
                (1, "ETHUSDT", "buy", "signal", True, 1_100.0, 10.0)]
    assert_orders(orders_of(ref), expected)
    for a in range(2):
        assert ref["debt"][a] == pytest.approx([0.0, 6_000.0], rel=1e-12)
        assert ref["equity"][a] == pytest.approx([5_000.0, 5_000.0], rel=1e-12)
    res = engine()
    assert_orders(engine_orders(res), expected)
