"""Hand-computed tests of ``tests/reference_multi.py`` itself: finer bars in a
cross account holding several symbols (MC "Several symbols", "Finer bars on
a joint path", read with "Finer bars settle the path", "Joint path", "Stops
on a joint path", "Cross liquidation").

With usable detail (every symbol with a bar has its sub-bars) step 5 runs on
each sub-step j in time order, as if the symbols' sub-bars j were the bar:
the joint path (no stops) or the joint walk (stops on), directions from the
state at the start of sub-step j, a symbol with a bar and ``d_s = 0`` at its
sub-bar's open, fills and liquidations recorded on the bar, a liquidation's
``theta`` ``j + θ`` (no stops) or ``3j + (k − 1) + θ`` (stops, leg k).  The
gap liquidation, the orders, interest, the margin call, the close and the
decisions stay on the bar.  ``detail_missing_bars`` counts the bars without
usable detail where step 5 on the bar could fire something.

Every example: BTCUSDT (symbol 0) and ETHUSDT (symbol 1) in one cross-3x
account (A/D terms: initial ML 1.5, margin call 1.3, liquidation 1.1, fee
2 %, a partial liquidation restores 1.5), capital 10,000, hourly bars, fee
0, rates 0, slippage 0; bar 0 reads the targets, bar 1 (flat) fills them at
its opens, bar 2 (and on) is under test.  Targets BTC 1, ETH 1.5 unless
said: bar 1 buys 0.5 BTC at 20,000 with the cash (equity 10,000), then ETH
with the equity 0.5·20,000 = 10,000: 7.5 ETH at 2,000, all 15,000 borrowed
(ML 25,000/15,000 ≥ 1.5).  Entries 20,000 and 2,000.  The liquidation test
``f = 0.5·P_BTC + 7.5·P_ETH − 1.1·15,000``: 8,500 at the opens.

A flat symbol (``hb = pb = ib = 0``, the only way to ``d_s = 0`` with a bar
when auto-repay is on) has weight 0 in ``f``, in the equity of an order and
in its cap: where it stands on the path shows only in the prices the
reference records for a stop order (``path_prices``: every symbol's price
at the stop's θ, where its equity and cap were taken).
"""
import math
import random

import pytest

from reference_multi import simulate_multi
from test_reference_multi_marks import REL, T0, assert_orders, cols, flat, orders


def joined(subs):
    """The bar the sub-bars add up to."""
    return (subs[0][0], max(s[1] for s in subs), min(s[2] for s in subs), subs[-1][3])


def detail_of(n, subs):
    """``simulate_multi``'s ``detail`` from ``{bar: (BTC sub-bars, ETH sub-bars)}`` (each None or rows of
    (open, high, low, close)); bars not named have none."""
    out = []
    for k in range(2):
        per = [None] * n
        for i, pair in subs.items():
            per[i] = pair[k]
        out.append(tuple([None if p is None else [float(r[q]) for r in p] for p in per] for q in range(4)))
    return out


def run(btc, eth, targets=([1.0] * 3, [1.5] * 3), subs=None, *, capital=10_000.0, **kw):
    """The reference on BTC and ETH in one cross-3x account; ``subs``: the sub-bars per bar, or None (no
    detail at all).  Sub-bars given must add up to their bar (the tests keep the caller's promise)."""
    n = len(btc)
    for i, pair in (subs or {}).items():
        for rows, sb in zip((btc, eth), pair):
            assert sb is None or joined(sb) == tuple(rows[i]), (i, sb)
    b, e = cols(btc), cols(eth)
    return simulate_multi([T0 + 3600 * k for k in range(n)], [b[0], e[0]], [b[1], e[1]], [b[2], e[2]],
                          [b[3], e[3]], [[float(x) for x in t] for t in targets],
                          accounts=[("cross-3x", [0, 1], capital)], fee=0.0, slippage=0.0,
                          rates_base_daily=[0.0, 0.0], rate_quote_daily=0.0,
                          detail=None if subs is None else detail_of(n, subs), **kw)



BUYS = [(1, 0, "buy", "signal", 0.5, 20_000.0), (1, 1, "buy", "signal", 7.5, 2_000.0)]


# ------------------------------------------------------------------ 1
# The symbols' adverse extremes in different sub-steps.  Bar 2 in two sub-bars: BTC falls in sub-bar 0
# (20,000 → 8,000 and back), ETH in sub-bar 1 (2,000 → 1,000, closing at 1,000).  The bar (BTC 20,000 /
# 20,000 / 8,000 / 20,000, ETH 2,000 / 2,000 / 1,000 / 1,000) puts both lows on one joint path: g =
# 0.5·(8,000 − 20,000) + 7.5·(1,000 − 2,000) = −13,500, f0 + g = −5,000 ≤ 0: liquidated at θ = 8,500/13,500
# without detail (then again, with what is left: not followed here).  The sub-steps: sub-step 0, g =
# 0.5·(−12,000) = −6,000, f0 + g = 2,500 > 0; sub-step 1 (BTC back at 20,000, its sub-bar flat), g =
# 7.5·(−1,000) = −7,500, f0 + g = 1,000 > 0: no liquidation.
# The margin call stays on the bar: ML at the bar's lows (0.5·8,000 + 7.5·1,000)/15,000 = 23/30 ≤ 1.3.
ONE_BTC = [flat(20_000.0), flat(20_000.0), (20_000.0, 20_000.0, 8_000.0, 20_000.0)]
ONE_BTC_SUBS = [(20_000.0, 20_000.0, 8_000.0, 20_000.0), flat(20_000.0)]
ONE_ETH = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 1_000.0, 1_000.0)]
ONE_ETH_SUBS = [flat(2_000.0), (2_000.0, 2_000.0, 1_000.0, 1_000.0)]


def test_1_extremes_in_different_sub_steps_no_liquidation():
    bar = run(ONE_BTC, ONE_ETH)
    ev = bar["liquidations"][0]
    assert ev["bar"] == 2 and ev["theta"] == pytest.approx(8_500.0 / 13_500.0, rel=REL)
    fine = run(ONE_BTC, ONE_ETH, subs={2: (ONE_BTC_SUBS, ONE_ETH_SUBS)})
    assert fine["liquidations"] == [] and fine["write_offs"] == []
    assert_orders(orders(fine), BUYS)
    assert fine["equity"][0][2] == pytest.approx(0.5 * 20_000.0 + 7.5 * 1_000.0 - 15_000.0, rel=REL)
    (call,) = fine["margin_calls"]  # on the bar, as without detail
    assert call["bar"] == 2 and call["margin_level"] == pytest.approx(23.0 / 30.0, rel=REL)
    assert bar["margin_calls"] == fine["margin_calls"]
    assert fine["detail_missing_bars"] == 0 and fine["detail_bars"] == [1, 1]


# ETH deeper in sub-bar 1 (low 800): sub-step 1, g = 7.5·(800 − 2,000) = −9,000, f0 + g = −500 ≤ 0, θ =
# 8,500/9,000 = 17/18: BTC at its sub-bar-1 open 20,000 (its sub-bar flat: X = 20,000), ETH at 2,000 −
# 1,200·17/18 = 2,600/3; theta 1 + 17/18.  A = 10,000 + 6,500 = 16,500 (ML 1.1), equity before 1,500, fee
# 330; K = −15,000: λ = (1.5·(15,000 + 330) − 16,500)/(16,500·0.5) = 6,495/8,250 (quote still owed after:
# −15,000 + 12,990 − 330 < 0).  The sales raise 12,990, 12,660 repay: 2,340 owed; left (1 − λ) = 1,755/8,250
# of each; at the fills 3,510/2,340 = 1.5, equity after 1,170.  No second one: at sub-bar 1's low
# (1 − λ)·(10,000 + 6,000) − 2,574 > 0.  Close: (1 − λ)·(10,000 + 7,500) − 2,340.
# Without detail the bar's lows (BTC 8,000, ETH 800) share one path: g = −6,000 − 9,000 = −15,000, θ =
# 17/30: BTC at 20,000 − 12,000·17/30 = 13,200, ETH at 2,000 − 1,200·17/30 = 1,320 (the same A = 16,500, so
# the same fee and λ, at other prices; then, the check repeated from the open with what is left, a second
# one where (1 − λ)·(25,000 − 15,000·θ) = 2,574, i.e. 25,000 − 15,000·θ = 12,100: θ = 0.86).  Margin
# call at the bar's lows: (4,000 + 6,000)/15,000 = 2/3.
DEEP_ETH = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 800.0, 1_000.0)]
DEEP_ETH_SUBS = [flat(2_000.0), (2_000.0, 2_000.0, 800.0, 1_000.0)]
LAM = 6_495.0 / 8_250.0


def test_1_extremes_in_different_sub_steps_liquidation_at_other_prices():
    fine = run(ONE_BTC, DEEP_ETH, subs={2: (ONE_BTC_SUBS, DEEP_ETH_SUBS)})
    assert_orders(orders(fine), BUYS + [(2, 0, "sell", "liquidation", 0.5 * LAM, 20_000.0),
                                        (2, 1, "sell", "liquidation", 7.5 * LAM, 2_600.0 / 3.0)])
    (ev,) = fine["liquidations"]
    assert ev["bar"] == 2 and not ev["gap"] and ev["bad_debt"] == 0.0
    assert ev["theta"] == pytest.approx(1.0 + 17.0 / 18.0, rel=REL)
    assert ev["margin_level"] == pytest.approx(1.1, rel=REL) and ev["fee"] == pytest.approx(330.0, rel=REL)
    assert ev["equity_before"] == pytest.approx(1_500.0, rel=REL)
    assert ev["equity_after"] == pytest.approx(1_170.0, rel=REL)
    assert fine["debt"][0][2] == pytest.approx(2_340.0, rel=REL)
    assert fine["equity"][0][2] == pytest.approx((1.0 - LAM) * 17_500.0 - 2_340.0, rel=REL)
    (call,) = fine["margin_calls"]
    assert call["bar"] == 2 and call["margin_level"] == pytest.approx(2.0 / 3.0, rel=REL)

    bar = run(ONE_BTC, DEEP_ETH)
    assert_orders(orders(bar)[:4], BUYS + [(2, 0, "sell", "liquidation", 0.5 * LAM, 13_200.0),
                                           (2, 1, "sell", "liquidation", 7.5 * LAM, 1_320.0)])
    assert len(bar["liquidations"]) == 2 and bar["liquidations"][1]["theta"] == pytest.approx(0.86, rel=REL)
    assert bar["liquidations"][0]["theta"] == pytest.approx(17.0 / 30.0, rel=REL)
    assert bar["margin_calls"] == fine["margin_calls"]


# ------------------------------------------------------------------ 2
# Stop-loss 5 % (BTC 19,000, ETH 1,900).  Bar 2 in two sub-bars, both long (d = +1, lows first):
# sub-bar 0 BTC 20,000 / 20,500 / 19,500 / 20,000, ETH 2,000 / 2,050 / 1,950 / 2,000: no level reached
# (f stays above 0: its lows give 9,750 + 14,625 − 16,500 > 0).  Sub-bar 1 BTC 20,000 / 20,000 / 18,000 /
# 18,500, ETH 2,000 / 2,000 / 1,960 / 1,980: leg 1 BTC's stop at θ = (20,000 − 19,000)/(20,000 − 18,000)
# = 0.5 (ETH 1,960 > 1,900; f0 + g = 8,500 − 1,000 − 300 > 0), ETH on its sub-bar-1 leg at 2,000 − 40·0.5 =
# 1,980.  The stop sells 0.5 BTC at 19,000 (equity there 9,500 + 14,850 − 15,000 = 9,350): 9,500 repays
# the quote, 5,500 owed, recorded on bar 2.  Close: 7.5·1,980 − 5,500 = 9,350.
# Without detail the bar (BTC 20,000 / 20,500 / 18,000 / 18,500, ETH 2,000 / 2,050 / 1,950 / 1,980): the
# stop at θ = 0.5 of the bar's leg 1, ETH there at 2,000 − 50·0.5 = 1,975.
TWO_BTC_SUBS = [(20_000.0, 20_500.0, 19_500.0, 20_000.0), (20_000.0, 20_000.0, 18_000.0, 18_500.0)]
TWO_ETH_SUBS = [(2_000.0, 2_050.0, 1_950.0, 2_000.0), (2_000.0, 2_000.0, 1_960.0, 1_980.0)]
TWO_BTC = [flat(20_000.0), flat(20_000.0), joined(TWO_BTC_SUBS)]
TWO_ETH = [flat(2_000.0), flat(2_000.0), joined(TWO_ETH_SUBS)]


def test_2_stop_loss_in_sub_step_1_at_its_level_the_other_symbol_on_its_sub_bar_path():
    fine = run(TWO_BTC, TWO_ETH, subs={2: (TWO_BTC_SUBS, TWO_ETH_SUBS)}, stop_loss=0.05)
    assert_orders(orders(fine), BUYS + [(2, 0, "sell", "stop_loss", 0.5, 19_000.0)])
    stop = fine["orders"][2]
    assert stop["trigger"] == 19_000.0
    assert stop["path_prices"] == pytest.approx([19_000.0, 1_980.0], rel=REL)
    assert fine["liquidations"] == [] and fine["margin_calls"] == []
    assert fine["position"][0][2] == 0.0 and fine["position"][1][2] == 7.5
    assert fine["debt"][0][2] == pytest.approx(5_500.0, rel=REL)
    assert fine["equity"][0][2] == pytest.approx(9_350.0, rel=REL)

    bar = run(TWO_BTC, TWO_ETH, stop_loss=0.05)
    assert_orders(orders(bar), orders(fine))  # the same fill ...
    assert bar["orders"][2]["path_prices"] == pytest.approx([19_000.0, 1_975.0], rel=REL)  # ... ETH elsewhere


# ------------------------------------------------------------------ 3
# A flat symbol stays at its sub-bar's open.  Targets BTC 1, ETH 0: bar 1 buys 0.5 BTC with the cash, ETH
# holds nothing (d = 0).  BTC's stop-loss 5 % (19,000).  Bar 2 in two sub-bars: BTC 20,000 / 20,000 /
# 19,500 / 19,800, then 19,800 / 19,800 / 18,800 / 18,900: the stop on sub-bar 1's leg 1 at θ = 800/1,000 =
# 0.8, 0.5 BTC sold at 19,000.  ETH 2,000 / 2,200 / 2,000 / 2,200, then 2,200 / 2,300 / 2,100 / 2,250: flat,
# it stays at its sub-bar-1 open 2,200 during sub-step 1 (not the bar's open 2,000, nor its path).
# Without detail ETH stays at the bar's open, 2,000 (the same fill: its weight is 0).  Close: 9,500 cash.
THREE_BTC_SUBS = [(20_000.0, 20_000.0, 19_500.0, 19_800.0), (19_800.0, 19_800.0, 18_800.0, 18_900.0)]
THREE_ETH_SUBS = [(2_000.0, 2_200.0, 2_000.0, 2_200.0), (2_200.0, 2_300.0, 2_100.0, 2_250.0)]
THREE_BTC = [flat(20_000.0), flat(20_000.0), joined(THREE_BTC_SUBS)]
THREE_ETH = [flat(2_000.0), flat(2_000.0), joined(THREE_ETH_SUBS)]


def test_3_a_flat_symbol_stays_at_its_sub_bar_open():
    targets = ([1.0] * 3, [0.0] * 3)
    fine = run(THREE_BTC, THREE_ETH, targets, subs={2: (THREE_BTC_SUBS, THREE_ETH_SUBS)}, stop_loss=0.05)
    assert_orders(orders(fine), [(1, 0, "buy", "signal", 0.5, 20_000.0), (2, 0, "sell", "stop_loss", 0.5, 19_000.0)])
    assert fine["orders"][1]["path_prices"] == [19_000.0, 2_200.0]
    assert fine["equity"][0][2] == pytest.approx(9_500.0, rel=REL)
    bar = run(THREE_BTC, THREE_ETH, targets, stop_loss=0.05)
    assert bar["orders"][1]["path_prices"] == [19_000.0, 2_000.0]
    assert_orders(orders(bar), orders(fine))


# ------------------------------------------------------------------ 3b (directions per sub-step)
# Stop-loss 5 %.  Sub-bar 0: BTC 20,000 / 20,000 / 19,500 / 20,000 (no stop), ETH 2,000 / 2,000 / 1,800 /
# 1,850: ETH's stop at θ = 100/200 = 0.5 (BTC there at 19,750): 7.5 ETH at 1,900 = 14,250 repay, 750 owed.
# Sub-bar 1: ETH is flat now, d = 0 from the state at the start of sub-step 1: it stays at its sub-bar-1
# open 1,850 (a direction kept from the bar's start would move it to 1,850 − 0.5·150 = 1,775).  BTC 20,000
# / 20,000 / 18,000 / 18,500: its stop at θ = 0.5, 0.5 BTC at 19,000: 9,500 repay 750, 8,750 left.
DIR_BTC_SUBS = [(20_000.0, 20_000.0, 19_500.0, 20_000.0), (20_000.0, 20_000.0, 18_000.0, 18_500.0)]
DIR_ETH_SUBS = [(2_000.0, 2_000.0, 1_800.0, 1_850.0), (1_850.0, 1_900.0, 1_700.0, 1_750.0)]
DIR_BTC = [flat(20_000.0), flat(20_000.0), joined(DIR_BTC_SUBS)]
DIR_ETH = [flat(2_000.0), flat(2_000.0), joined(DIR_ETH_SUBS)]


def test_3b_directions_from_the_state_at_each_sub_step():
    fine = run(DIR_BTC, DIR_ETH, subs={2: (DIR_BTC_SUBS, DIR_ETH_SUBS)}, stop_loss=0.05)
    assert_orders(orders(fine), BUYS + [(2, 1, "sell", "stop_loss", 7.5, 1_900.0),
                                        (2, 0, "sell", "stop_loss", 0.5, 19_000.0)])
    assert fine["orders"][2]["path_prices"] == [19_750.0, 1_900.0]
    assert fine["orders"][3]["path_prices"] == [19_000.0, 1_850.0]
    assert fine["equity"][0][2] == pytest.approx(8_750.0, rel=REL) and fine["debt"][0][2] == 0.0


# ------------------------------------------------------------------ 4
# A bar without usable detail (ETH's sub-bars missing at bar 2, BTC's given) runs exactly as without
# detail: test 1's deep bar liquidated at θ = 17/30 (BTC 13,200, ETH 1,320), and it is counted: step 5 on
# the bar could fire (the ML at both lows, 2/3, is at or below 1.1).  Bars 0 (no debt) and 1 (flat bars,
# ML 25,000/15,000) could fire nothing: not counted.  BTC has usable sub-bars on bar 2 (detail_bars 1).
def test_4_a_bar_without_usable_detail_is_the_bar_and_is_counted():
    bar = run(ONE_BTC, DEEP_ETH)
    part = run(ONE_BTC, DEEP_ETH, subs={2: (ONE_BTC_SUBS, None)})
    assert part["detail_missing_bars"] == 1 and part["detail_bars"] == [1, 0]
    assert bar["detail_missing_bars"] == 0  # no detail at all: nothing is missing
    for key in ("detail_missing_bars", "detail_bars"):
        bar.pop(key), part.pop(key)
    assert part == bar  # every other output, to the bit
    assert len(part["liquidations"]) == 2
    assert_orders(orders(part)[:4], BUYS + [(2, 0, "sell", "liquidation", 0.5 * LAM, 13_200.0),
                                        (2, 1, "sell", "liquidation", 7.5 * LAM, 1_320.0)])


# A bar near the level is counted though nothing fires: ETH's low 6,500.00001/7.5 puts A at the lows at
# 16,500.00001 = 1.1·15,000·(1 + 6.1e-10), above the liquidation level but within 1e-9 of it.
def test_4_a_bar_within_1e_9_of_the_level_is_counted():
    low = 6_500.00001 / 7.5
    eth = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, low, 2_000.0)]
    ref = run([flat(20_000.0)] * 3, eth, subs={})
    assert ref["liquidations"] == [] and ref["detail_missing_bars"] == 1


# ------------------------------------------------------------------ 5
# Bars where nothing can fire are not counted, with debt and a moving bar and no detail anywhere:
# BTC 20,000 → 19,100, ETH 2,000 → 1,910: ML at the lows (9,550 + 14,325)/15,000 = 1.5917 > 1.1; with a
# stop-loss of 5 % the levels 19,000 and 1,900 lie below the lows.  A low at 19,000 reaches BTC's level:
# the stop fires on the bar, and the bar is counted.
def test_5_a_bar_where_nothing_can_fire_is_not_counted():
    btc = [flat(20_000.0), flat(20_000.0), (20_000.0, 20_100.0, 19_100.0, 19_500.0)]
    eth = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_010.0, 1_910.0, 1_950.0)]
    plain = run(btc, eth, subs={})
    assert plain["liquidations"] == [] and plain["detail_missing_bars"] == 0
    stops = run(btc, eth, subs={}, stop_loss=0.05)
    assert [o["kind"] for o in stops["orders"]] == ["signal", "signal"] and stops["detail_missing_bars"] == 0
    btc[2] = (20_000.0, 20_100.0, 19_000.0, 19_500.0)
    hit = run(btc, eth, subs={}, stop_loss=0.05)
    assert [o["kind"] for o in hit["orders"]] == ["signal", "signal", "stop_loss"]
    assert hit["detail_missing_bars"] == 1


# The trailing level is taken at the best price the bar can bring: trailing 5 %, BTC's best 20,000; bar 2
# 20,000 / 21,000 / 19,950 / 20,500 puts the level at 21,000·0.95 = 19,950, at the low: counted (on the
# path the low comes first, so nothing fires, but the bar could have fired: MC "Stops on a joint path",
# the quiet bar's test).  A low of 19,951 reaches no level: not counted.
def test_5_the_trailing_level_at_the_best_price_the_bar_can_bring():
    eth = [flat(2_000.0)] * 3
    for low, counted in ((19_950.0, 1), (19_951.0, 0)):
        btc = [flat(20_000.0), flat(20_000.0), (20_000.0, 21_000.0, low, 20_500.0)]
        ref = run(btc, eth, subs={}, trailing_stop=0.05)
        assert [o["kind"] for o in ref["orders"]] == ["signal", "signal"]
        assert ref["detail_missing_bars"] == counted


# ------------------------------------------------------------------ 6
# theta of a liquidation in sub-step j: test 1's deep fall moved to sub-bar 2 of three (sub-bars 0 and 1
# flat): θ = 17/18 on sub-step 2's joint path, theta 2 + 17/18 without stops; with stops on (a take-profit
# of 90 %, levels 38,000 and 3,800 that nothing reaches) on leg 1 of sub-step 2: 3·2 + 0 + 17/18.  The
# same fills either way (BTC 20,000, ETH 2,600/3).
SIX_BTC_SUBS = [flat(20_000.0)] * 3
SIX_ETH_SUBS = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 800.0, 1_000.0)]
SIX_BTC = [flat(20_000.0)] * 3
SIX_ETH = [flat(2_000.0), flat(2_000.0), joined(SIX_ETH_SUBS)]


@pytest.mark.parametrize("stops, theta", [({}, 2.0 + 17.0 / 18.0), ({"take_profit": 0.9}, 6.0 + 17.0 / 18.0)])
def test_6_theta_of_a_liquidation_in_sub_step_j(stops, theta):
    ref = run(SIX_BTC, SIX_ETH, subs={2: (SIX_BTC_SUBS, SIX_ETH_SUBS)}, **stops)
    (ev,) = ref["liquidations"]
    assert ev["bar"] == 2 and ev["theta"] == pytest.approx(theta, rel=REL) and not ev["gap"]
    assert ev["fee"] == pytest.approx(330.0, rel=REL)
    assert_orders(orders(ref), BUYS + [(2, 0, "sell", "liquidation", 0.5 * LAM, 20_000.0),
                                       (2, 1, "sell", "liquidation", 7.5 * LAM, 2_600.0 / 3.0)])
    assert ref["equity"][0][2] == pytest.approx((1.0 - LAM) * 17_500.0 - 2_340.0, rel=REL)


# A sub-bar opening beyond the level: ETH's sub-bar 1 opens at 800 (f0 = 10,000 + 6,000 − 16,500 = −500),
# falling to 700 (g < 0; with g = 0, a flat sub-bar, the joint path would check nothing).  Its sub-step
# liquidates at its open, θ = max(0, −f0/g) = 0: theta 1 (no stops) / 3 (stops, leg 1 of sub-step 1).
# A = 16,000 (ML 16/15), fee 320, λ = (1.5·(15,000 + 320) − 16,000)/(16,000·0.5) = 6,980/8,000 = 0.8725.
# Choice (MC: "as if the sub-bars j were the bar"): flagged ``gap`` as a liquidation at the open of a
# bar's joint path is, though it is not the bar's own open (step 2).
GAP_ETH_SUBS = [flat(2_000.0), (800.0, 800.0, 700.0, 750.0)]
GAP_ETH = [flat(2_000.0), flat(2_000.0), joined(GAP_ETH_SUBS)]


@pytest.mark.parametrize("stops, theta", [({}, 1.0), ({"take_profit": 0.9}, 3.0)])
def test_6_theta_at_a_sub_bar_open(stops, theta):
    ref = run(SIX_BTC, GAP_ETH, subs={2: ([flat(20_000.0)] * 2, GAP_ETH_SUBS)}, **stops)
    (ev,) = ref["liquidations"]
    assert ev["theta"] == theta and ev["gap"]
    assert ev["margin_level"] == pytest.approx(16.0 / 15.0, rel=REL) and ev["fee"] == pytest.approx(320.0, rel=REL)
    assert_orders(orders(ref), BUYS + [(2, 0, "sell", "liquidation", 0.5 * 0.8725, 20_000.0),
                                       (2, 1, "sell", "liquidation", 7.5 * 0.8725, 800.0)])


# ------------------------------------------------------------------ 7
# Sub-bars opening beyond the level at their adverse extremes (g = 0).  ETH's sub-bar 1 is flat at 800,
# BTC's flat at 20,000: f0 = 10,000 + 6,000 − 16,500 = −500 ≤ 0 and g = 0.  The joint path checks nothing
# when g = 0 (on a bar step 2 has checked the opens); a sub-step has no step 2, so, read with "Finer bars
# settle the path" (a sub-bar opening beyond P_liq is liquidated at its open, as the run on the finer bars
# does at its step 2), the opens fire: θ = 0, theta 1 (no stops) / 3 (stops: leg 1 of sub-step 1, not leg
# 2's θ = 0, theta 4).  Fills as in test 6's second case (A 16,000, fee 320, λ 0.8725).  (Reading the
# joint path's "nothing when g = 0" literally, nothing would fire in bar 2; bar 3's gap check would.)
FLAT_ETH_SUBS = [flat(2_000.0), flat(800.0)]
FLAT_ETH = [flat(2_000.0), flat(2_000.0), joined(FLAT_ETH_SUBS), flat(800.0)]


@pytest.mark.parametrize("stops, theta", [({}, 1.0), ({"take_profit": 0.9}, 3.0)])
def test_7_sub_bars_opening_beyond_the_level_at_their_extremes(stops, theta):
    ref = run([flat(20_000.0)] * 4, FLAT_ETH, ([1.0] * 4, [1.5] * 4),
              subs={2: ([flat(20_000.0)] * 2, FLAT_ETH_SUBS), 3: ([flat(20_000.0)], [flat(800.0)])}, **stops)
    (ev,) = ref["liquidations"]
    assert ev["bar"] == 2 and ev["theta"] == theta
    assert ev["margin_level"] == pytest.approx(16.0 / 15.0, rel=REL) and ev["fee"] == pytest.approx(320.0, rel=REL)
    assert_orders(orders(ref), BUYS + [(2, 0, "sell", "liquidation", 0.5 * 0.8725, 20_000.0),
                                       (2, 1, "sell", "liquidation", 7.5 * 0.8725, 800.0)])


# ------------------------------------------------------------------ settings
def test_detail_in_an_account_of_one_symbol_is_not_modelled_here():
    n = 2
    row = [20_000.0] * n
    with pytest.raises(NotImplementedError):
        simulate_multi([T0, T0 + 3600], [row, row], [row, row], [row, row], [row, row], [[1.0] * n, [1.0] * n],
                       accounts=[("isolated-3x", [0], 5_000.0), ("isolated-3x", [1], 5_000.0)], fee=0.0,
                       slippage=0.0, rates_base_daily=[0.0, 0.0], rate_quote_daily=0.0,
                       detail=[([None] * n,) * 4, None])


def test_detail_with_a_mark_series_is_refused():
    with pytest.raises(AssertionError):
        run([flat(20_000.0)] * 2, [flat(2_000.0)] * 2, ([1.0] * 2, [1.0] * 2), subs={},
            marks=[[[20_000.0] * 2] * 4, None])


def test_gap_and_bar_level_liquidations_record_theta():
    # without detail: a gap liquidation at step 2 records 0; ETH opening bar 2 at 800 (f = 10,000 + 6,000 −
    # 16,500 < 0): liquidated at the opens.
    ref = run([flat(20_000.0)] * 3, [flat(2_000.0), flat(2_000.0), flat(800.0)])
    (ev,) = ref["liquidations"]
    assert ev["gap"] and ev["theta"] == 0.0
    # with stops, leg k adds k − 1: test 6's fall on the bar (no detail), leg 1: 17/18
    ref = run(SIX_BTC, SIX_ETH, take_profit=0.9)
    assert ref["liquidations"][0]["theta"] == pytest.approx(17.0 / 18.0, rel=REL)
    assert not math.isnan(ref["liquidations"][0]["theta"])


# ------------------------------------------------------------------ the finer bars as bars
# MC "Finer bars settle the path": a run on hourly bars with finer bars gives the fills of the same run on
# the finer bars with each hour's target on its last one (NaN on the others); MC "Finer bars on a joint
# path" keeps that for an account of several symbols (the gap check at a sub-bar's open there is step 5's
# θ = 0 here, also for sub-bars flat at their opens: see test_7).  Random walks of 2–3 symbols with jumps
# (some hours missing for the later ones; some sub-bars flat), 1–6 sub-bars an hour, stops on or off: the
# orders, the liquidations (their theta j + θ or 3j + (k − 1) + θ against the finer run's θ in sub-bar j),
# the equity and positions at each hour's end and the interest agree.
def _finer_case(seed):
    rng = random.Random(seed)
    n_sym, n, m = rng.choice([2, 2, 3]), rng.randint(2, 16), rng.choice([1, 2, 3, 4, 6])
    vol, jump, flat_p = rng.choice([0.005, 0.02, 0.05]), rng.choice([0.0, 0.1, 0.3, 0.5]), rng.choice([0.0, 0.4])
    hourly = {k: [] for k in "ohlct"}
    finer = {k: [] for k in "ohlct"}
    detail = []
    for s in range(n_sym):
        p = 100.0 * (s + 1)
        has = [s == 0 or i == 0 or rng.random() > 0.15 for i in range(n)]
        h_cols, f_cols, d_cols = ([[] for _ in range(4)] for _ in range(3))
        h_tg, f_tg = [], []
        x = rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
        for i in range(n):
            subs = []
            for _ in range(m):
                o = p * (1 + rng.gauss(0, vol) + (rng.choice([-1, 1]) * jump if rng.random() < 0.05 else 0.0))
                c = o * (1 + rng.gauss(0, vol))
                if rng.random() < flat_p:  # a sub-bar at its open (its extremes there: g can be 0)
                    c = o
                subs.append((o, max(o, c) * (1 + abs(rng.gauss(0, vol))) if c != o else o,
                             min(o, c) * (1 - abs(rng.gauss(0, vol))) if c != o else o, c))
                p = c
            if rng.random() < 0.2:
                x = rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
            bar = joined(subs) if has[i] else (math.nan,) * 4
            for q in range(4):
                h_cols[q].append(bar[q])
                d_cols[q].append([r[q] for r in subs] if has[i] else None)
                f_cols[q] += [r[q] if has[i] else math.nan for r in subs]
            h_tg.append(x if has[i] else math.nan)
            f_tg += [math.nan] * (m - 1) + [h_tg[-1]]
        for key, col in zip("ohlct", h_cols + [h_tg]):
            hourly[key].append(col)
        for key, col in zip("ohlct", f_cols + [f_tg]):
            finer[key].append(col)
        detail.append(tuple(d_cols))
    kw = dict(accounts=[(rng.choice(["cross-3x", "cross-5x", "cross-pro-10x"]), list(range(n_sym)), 10_000.0)],
              fee=rng.choice([0.0, 0.001]), slippage=rng.choice([0.0, 0.001]),
              rates_base_daily=[rng.choice([0.0, 0.0002, 0.01]) for _ in range(n_sym)], rate_quote_daily=0.001,
              liquidation=rng.choice(["partial", "full"]), rebalance=rng.choice([0.0, 0.1]))
    if rng.random() < 0.6:
        kw.update(stop_loss=rng.choice([0.0, 0.02, 0.05]), take_profit=rng.choice([0.0, 0.05]),
                  trailing_stop=rng.choice([0.0, 0.03]))
    h_ts = [T0 + 3600 * i for i in range(n)]
    f_ts = [T0 + 3600 * i + (3600 // m) * j for i in range(n) for j in range(m)]
    return (h_ts, hourly), (f_ts, finer), detail, m, kw


def _close(a, b):
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


@pytest.mark.parametrize("seed", range(80))
def test_finer_bars_give_the_fills_of_the_run_on_the_finer_bars(seed):
    (h_ts, hr), (f_ts, fr), detail, m, kw = _finer_case(seed)
    a = simulate_multi(h_ts, hr["o"], hr["h"], hr["l"], hr["c"], hr["t"], detail=detail, **kw)
    b = simulate_multi(f_ts, fr["o"], fr["h"], fr["l"], fr["c"], fr["t"], **kw)
    key = ("bar", "symbol", "side", "kind", "capped")
    assert [tuple(o[k] for k in key) for o in a["orders"]] == [
        (o["bar"] // m,) + tuple(o[k] for k in key[1:]) for o in b["orders"]]
    for x, y in zip(a["orders"], b["orders"]):
        assert all(_close(x[c], y[c]) for c in ("quantity", "price", "fee")), (x, y)
    per = 3 if any(kw.get(k, 0.0) > 0.0 for k in ("stop_loss", "take_profit", "trailing_stop")) else 1
    assert len(a["liquidations"]) == len(b["liquidations"])
    for x, y in zip(a["liquidations"], b["liquidations"]):
        assert x["bar"] == y["bar"] // m
        assert all(_close(x[c], y[c]) for c in ("margin_level", "fee", "equity_before", "equity_after", "bad_debt"))
        assert _close(x["theta"], per * (y["bar"] % m) + y["theta"]), (x, y)
    for i in range(len(h_ts)):
        assert _close(a["equity"][0][i], b["equity"][0][i * m + m - 1])
        assert all(_close(a["position"][s][i], b["position"][s][i * m + m - 1]) for s in range(len(detail)))
    assert all(_close(x, y) for x, y in zip(a["interest_base"] + a["interest_quote"],
                                            b["interest_base"] + b["interest_quote"]))
    assert a["detail_missing_bars"] == 0
