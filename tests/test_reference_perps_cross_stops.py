"""Stops in the cross perp reference of several symbols (tests/reference_perps_cross.py), hand-computed.

Rules from docs/model-choices.md (cited MC): "Stops, take-profits and the path inside a bar" ("Entry and best
price", "Levels"), "Several symbols" -> "Stops on a joint path" and its "With mark series", and "Perpetual
futures" -> "A cross perp account holding several symbols", bullet *Stops* (cited MC cross-perp *Stops*).
Two symbols on the real 2024-05-30 bracket tables (A on BTCUSDT's, B on ETHUSDT's; notionals below 50,000
sit in their first tier: mmr 0.4 %, cum 0), no funding, hourly bars on a union grid; a target decided at bar
i's close fills at bar i+1's open.  Each expected number is worked out in the comments and written as the
arithmetic, never read from the reference."""

import math

import pytest

from reference_perps_cross import CrossBook, first_theta
from test_reference_perps import BTC_2024, ETH_2024
from test_reference_perps_cross import flat, run

NAN = math.nan
TABLES = [BTC_2024, ETH_2024]  # run() wraps each in its versioned list [(2024-05-30, table)]
MMR = 0.004                    # both tables' first tier (notional < 50,000), cum 0
CLEAR = 0.0125                 # the clearance fee (run's default)


def rel(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


def stops_of(r):
    return [o for o in r["orders"] if o["kind"] in ("stop_loss", "trailing_stop", "take_profit")]


# A long 200 @ 100 and B short ~388 @ 50 at 50x, fee 0.05 %, slippage 0.1 %:
#   bar 1, A: N* = 20·1,000/100 = 200, fill 100·1.001 = 100.1, fee 200·100.1·0.0005 = 10.01 -> WC 989.99
#   bar 1, B: E = 989.99 + 200·(100 − 100.1) = 969.99; N* = −20·969.99/50 = −387.996, fill 50·0.999 = 49.95,
#             fee 387.996·49.95·0.0005; (cap: A = 969.99 − 20,000/50 = 569.99 over 49.95·(1/50 + 0.0005): no cut)
# bar 2: A's mark dips deeper than its traded bar (mark low 85, traded low 90); B's mark is its traded bar.
S1_BARS = [[flat(100), flat(100), (100, 100, 90, 95)], [flat(50), flat(50), (50, 50.4, 50, 50.2)]]
S1_MARK_A = ([NAN, NAN, 100], [NAN, NAN, 100], [NAN, NAN, 85], [NAN, NAN, 95])
S1_TARGETS = [[20.0, NAN, NAN], [-20.0, NAN, NAN]]
S1_KW = dict(capital=1_000.0, leverage=50, fee=0.0005, slippage=0.001, marks=[S1_MARK_A, None])
NB = 20 * 969.99 / 50                          # 387.996 (B short)
WC1 = 1_000 - 10.01 - NB * 49.95 * 0.0005      # 980.2997999
# leg 1 on the marks, A 100 -> 85, B 50 -> 50.4, P_A = 100 − 15θ, P_B = 50 + 0.4θ:
#   MB(θ) = WC1 + 200·(100 − 15θ − 100.1) − NB·(50 + 0.4θ − 49.95) = (WC1 − 20 − 0.05·NB) − (3,000 + 0.4·NB)·θ
#   MM(θ) = 0.004·(200·(100 − 15θ) + NB·(50 + 0.4θ)) = 0.004·(20,000 + 50·NB) − 0.004·(3,000 − 0.4·NB)·θ
MB0, MB1 = WC1 - 20 - 0.05 * NB, 3_000 + 0.4 * NB
MM0, MM1 = MMR * (20_000 + 50 * NB), MMR * (3_000 - 0.4 * NB)
TH_LIQ = (MB0 - MM0) / (MB1 - MM1)             # 0.2491...: the joint path's root on the marks


def test_stop_loss_of_a_long_on_leg_1_before_the_deeper_mark_liquidation():
    r = run(S1_BARS, S1_TARGETS, TABLES, stop_loss=0.01, **S1_KW)
    # A's stop-loss: entry 100.1 (the slipped fill) -> level 100.1·0.99 = 99.099; traded leg 1 100 -> 90:
    # θ = (100 − 99.099)/10 = 0.0901 < TH_LIQ = 0.249 (the mark path's liquidation comes later on the leg)
    assert 0.0901 < TH_LIQ
    lv = 100.1 * 0.99
    fill = lv * (1 - 0.001)                    # a sell: trigger·(1 − slippage) = 98.999901
    (st,) = stops_of(r)
    assert st == {"bar": 2, "symbol": 0, "side": -1, "quantity": 200.0, "price": rel(fill),
                  "fee": rel(200 * fill * 0.0005), "capped": False, "kind": "stop_loss", "trigger": rel(lv)}
    # realised 200·(98.999901 − 100.1) = −220.0198 and the fee 9.8999901 out of WC
    wc2 = WC1 + 200 * (fill - 100.1) - 200 * fill * 0.0005
    # B alone then: MB at leg 1's end (B 50.4) = wc2 − NB·0.45 = 575.8 > MM 0.004·NB·50.4 = 78.2 -> no liquidation;
    # B's stop-loss 49.95·1.01 = 50.4495 > its high 50.4: never reached
    assert r["liquidations"] == []
    assert r["position"][0] == [0.0, 200.0, 0.0] and r["position"][1] == [0.0, rel(-NB), rel(-NB)]
    assert r["equity"][2] == rel(wc2 - NB * (50.2 - 49.95))
    assert r["fees_paid"] == rel(10.01 + NB * 49.95 * 0.0005 + 200 * fill * 0.0005)
    # the margin call (4) as without stops, on the state before the walk: h at both adverse mark extremes (θ = 1)
    assert r["margin_calls"] == [{"bar": 2, "margin_level": rel((MB0 - MB1) / (MM0 - MM1))}]
    # without the stop the same bar liquidates on the mark path at TH_LIQ (step (5))
    r0 = run(S1_BARS, S1_TARGETS, TABLES, **S1_KW)
    (liq,) = r0["liquidations"]
    assert liq["bar"] == 2 and liq["theta"] == rel(TH_LIQ) and stops_of(r0) == []


def test_mark_liquidation_before_the_stop_loss():
    r = run(S1_BARS, S1_TARGETS, TABLES, stop_loss=0.05, **S1_KW)
    # A's stop-loss 100.1·0.95 = 95.095 is reached at θ = (100 − 95.095)/10 = 0.4905 on leg 1, after the mark
    # liquidation at TH_LIQ = 0.249: the liquidation closes everything, the stop never fires
    assert TH_LIQ < 0.4905
    assert stops_of(r) == []
    (liq,) = r["liquidations"]
    pa, pb = 100 - 15 * TH_LIQ, 50 + 0.4 * TH_LIQ  # the marks at θ (A's mark, not its traded bar)
    mb = WC1 + 200 * (pa - 100.1) - NB * (pb - 49.95)
    mm = MMR * (200 * pa + NB * pb)
    assert mb == rel(mm)                       # MB = MM there
    fee = CLEAR * (200 * pa + NB * pb)         # 482.8 > MB: the fee takes all of MB, nothing is bad debt
    assert liq["bar"] == 2 and liq["theta"] == rel(TH_LIQ) and liq["gap"] is False
    assert liq["trigger_prices"] == [rel(pa), rel(pb)]
    assert liq["equity_before"] == rel(mb) and liq["fee"] == rel(min(fee, mb)) and liq["bad_debt"] == 0.0
    assert liq["equity_after"] == 0.0 and liq["margin_level"] == rel(1.0)
    fills = [(o["symbol"], o["side"], o["price"]) for o in r["orders"] if o["kind"] == "liquidation"]
    assert fills == [(0, -1, rel(pa)), (1, 1, rel(pb))]
    assert r["position"][0][2] == 0.0 and r["position"][1][2] == 0.0 and r["equity"][2] == 0.0


def test_take_profit_of_a_long_on_leg_2():
    # 10x, no fee, slippage 0.1 %: A 2x: N = 2·1,000/100 = 20 @ 100.1; B −2x: E = 1,000 + 20·(100 − 100.1) = 998,
    # N = −2·998/50 = −39.92 @ 49.95; WC 1,000.  A's take-profit 100.1·1.05 = 105.105 (fires rising).
    # bar 2, A long: O -> L -> H -> C = 100 -> 99 -> 106 -> 104: leg 1 falls (a take-profit cannot fire), leg 2
    # 99 -> 106 reaches it at θ = (105.105 − 99)/(106 − 99) = 6.105/7; B short: 50 -> 50.5 -> 48 -> 49, its
    # take-profit 49.95·0.95 = 47.4525 < 48 is not reached.
    # A repeats its target 2 with rebalancing on: suspended by the stop, it stays flat at bar 3.
    bars = [[flat(100), flat(100), (100, 106, 99, 104), flat(104)], [flat(50), flat(50), (50, 50.5, 48, 49), flat(49)]]
    r = run(bars, [[2.0, 2.0, 2.0, NAN], [-2.0, NAN, NAN, NAN]], TABLES, capital=1_000.0, leverage=10,
            slippage=0.001, take_profit=0.05, rebalance=0.01)
    nb = 2 * 998 / 50
    lv = 100.1 * 1.05
    fill = lv * (1 - 0.001)                    # 104.999895
    (st,) = stops_of(r)
    assert st == {"bar": 2, "symbol": 0, "side": -1, "quantity": 20.0, "price": rel(fill), "fee": 0.0,
                  "capped": False, "kind": "take_profit", "trigger": rel(lv)}
    wc = 1_000 + 20 * (fill - 100.1)           # + 97.9979
    assert r["equity"][2] == rel(wc - nb * (49 - 49.95))
    assert r["position"][0] == [0.0, 20.0, 0.0, 0.0]  # no rebalance back to 2x at bar 3
    assert [o["bar"] for o in r["orders"]] == [1, 1, 2]
    assert r["liquidations"] == []


# 10x, no fee, no slippage: A 2x: N = 20 @ 100; B −2x: N = −40 @ 50; WC 1,000; trailing 5 %.
TR_KW = dict(capital=1_000.0, leverage=10, trailing_stop=0.05)
TR_TARGETS = [[2.0, NAN, NAN, NAN], [-2.0, NAN, NAN, NAN]]


def test_trailing_stop_with_a_best_price_from_an_earlier_bar():
    # A: best 100 at the fill (the open of bar 1); bar 2 (100 -> L 100 -> H 110 -> C 108): best 110 at leg 2's
    # end, level 110·0.95 = 104.5 > 108? no: not reached on leg 3.  bar 3 opens at 106 (best stays 110), leg 1
    # 106 -> 100 reaches 104.5 at θ = (106 − 104.5)/6 = 0.25: filled at 104.5, realised 20·4.5 = 90.
    # B short at 50 flat: best 50, level 52.5, never reached.
    bars = [[flat(100), flat(100), (100, 110, 100, 108), (106, 107, 100, 101)], [flat(50)] * 4]
    r = run(bars, TR_TARGETS, TABLES, **TR_KW)
    (st,) = stops_of(r)
    assert st == {"bar": 3, "symbol": 0, "side": -1, "quantity": 20.0, "price": rel(104.5), "fee": 0.0,
                  "capped": False, "kind": "trailing_stop", "trigger": rel(104.5)}
    assert r["equity"] == [1_000.0, 1_000.0, rel(1_160.0), rel(1_090.0)]
    assert r["position"][0] == [0.0, 20.0, 20.0, 0.0] and r["position"][1] == [0.0, -40.0, -40.0, -40.0]


def test_trailing_stops_with_best_prices_moving_within_the_bar():
    # bar 2, B short: it opens at 45 below its best 50: before leg 1 best = min(50, 45) = 45, level
    # 45·1.05 = 47.25; leg 1 (H first) 45 -> 47.5 reaches it at θ = (47.25 − 45)/2.5 = 0.9: bought back at
    # 47.25, realised 40·(50 − 47.25) = 110.
    # bar 2, A long: 100 -> L 99 -> H 110 -> C 103: its level 95 is not reached on leg 1; best becomes 110
    # at leg 2's end (a long's trailing fires falling, so never on leg 2), level 104.5, reached on leg 3
    # 110 -> 103 at θ = (110 − 104.5)/7 = 5.5/7: sold at 104.5, realised 20·4.5 = 90.
    # Event order: B on leg 1, then A on leg 3.
    bars = [[flat(100), flat(100), (100, 110, 99, 103), flat(103)],
            [flat(50), flat(50), (45, 47.5, 44, 46), flat(46)]]
    r = run(bars, TR_TARGETS, TABLES, **TR_KW)
    sts = stops_of(r)
    assert [(o["bar"], o["symbol"], o["side"], o["quantity"], o["kind"]) for o in sts] == [
        (2, 1, 1, 40.0, "trailing_stop"), (2, 0, -1, 20.0, "trailing_stop")]
    assert [o["trigger"] for o in sts] == [rel(47.25), rel(104.5)]
    assert [o["price"] for o in sts] == [rel(47.25), rel(104.5)]
    assert r["equity"][2:] == [rel(1_000 + 110 + 90)] * 2
    # without the best's move at the open B's level would be 52.5 (not reached), and without the move at
    # leg 2's end A's would be 95 (not reached): both fire only because best moved inside the bar
    r0 = run(bars, TR_TARGETS, TABLES, capital=1_000.0, leverage=10)
    assert stops_of(r0) == [] and r0["equity"][2] == rel(1_000 + 20 * 3 + 40 * 4)


def test_stops_at_the_open_in_priority_order():
    # 10x, no fee, slippage 0.1 %: A long 20 @ 100.1, B short 39.92 @ 49.95 (as in the take-profit test).
    # bar 2 opens beyond both levels: A's take-profit 105.105 <= its open 106, B's stop-loss 49.95·1.05 =
    # 52.4475 <= its open 53: both fire at θ = 0 of leg 1 ("at the open"), trigger the open.  Equal θ: the
    # stop-loss (B) before the take-profit (A), although A comes first in symbol order.
    bars = [[flat(100), flat(100), (106, 107, 105.5, 106.5)], [flat(50), flat(50), (53, 53.5, 52.8, 53.2)]]
    r = run(bars, [[2.0, NAN, NAN], [-2.0, NAN, NAN]], TABLES, capital=1_000.0, leverage=10, slippage=0.001,
            stop_loss=0.05, take_profit=0.05)
    nb = 2 * 998 / 50
    sts = stops_of(r)
    assert sts == [
        {"bar": 2, "symbol": 1, "side": 1, "quantity": rel(nb), "price": rel(53 * 1.001), "fee": 0.0,
         "capped": False, "kind": "stop_loss", "trigger": 53.0},
        {"bar": 2, "symbol": 0, "side": -1, "quantity": 20.0, "price": rel(106 * 0.999), "fee": 0.0,
         "capped": False, "kind": "take_profit", "trigger": 106.0}]
    # B realises −39.92·(53.053 − 49.95) = −123.87176, A 20·(105.894 − 100.1) = 115.88
    assert r["equity"][2] == rel(1_000 - nb * (53 * 1.001 - 49.95) + 20 * (106 * 0.999 - 100.1))
    assert r["position"][0][2] == 0.0 and r["position"][1][2] == 0.0
    assert r["liquidations"] == []  # at the marks (= traded opens) MB = 996.2 >> MM: no gap liquidation


def test_liquidation_on_leg_3_after_a_take_profit_the_old_step_5_misses():
    # 50x, no fee, no slippage: A 20x: N = 200 @ 100; B −20x: N = −400 @ 50; WC 1,000; take-profit 5 %.
    # bar 2: A's mark trades 10 above its traded bar: traded 100 -> L 100 -> H 106 -> C 101, mark
    # 110 -> 110 -> 116 -> 111; B (mark = traded) short: 50 -> H 56 -> L 49.5 -> C 56.
    # Old step (5) / leg 1 (A's mark 110, B 50 -> 56): MB − MM at θ = 1 is
    #   1,000 + 200·10 − 400·6 − 0.004·(200·110 + 400·56) = 600 − 177.6 = 422.4 > 0: no liquidation.
    # Leg 2 (A rises, B falls): A's take-profit 105 on traded 100 -> 106 at θ = 5/6, sold at 105: realised
    # 200·5 = 1,000 -> WC 2,000 (before, MB counted A at its mark ≈ 115, +3,000).  B alone on leg 2: B at
    # 56 − 6.5θ falls, MB − MM grows: nothing from θ = 5/6 on (at 5/6: 2,000 − 400·0.583 − 1.6·50.583 = 1,686 > 0;
    # with the new state MB − MM would be below 0 at leg 2's start, −489.6, but that is before the stop:
    # the next event is looked for at the last one's θ at the earliest, where MB > MM, so no liquidation there).
    # Leg 3 (A's mark falls, B rises 49.5 -> 56): MB − MM = 2,000 − 400·(49.5 + 6.5θ − 50) − 0.004·400·(49.5 + 6.5θ)
    #   = 2,120.8 − 2,610.4θ -> θ = 2,120.8/2,610.4, recorded at 2 + θ.
    bars = [[flat(100), flat(100), (100, 106, 100, 101)], [flat(50), flat(50), (50, 56, 49.5, 56)]]
    mark_a = ([NAN, NAN, 110], [NAN, NAN, 116], [NAN, NAN, 110], [NAN, NAN, 111])
    targets = [[20.0, NAN, NAN], [-20.0, NAN, NAN]]
    kw = dict(capital=1_000.0, leverage=50, marks=[mark_a, None])
    r = run(bars, targets, TABLES, take_profit=0.05, **kw)
    (st,) = stops_of(r)
    assert (st["symbol"], st["kind"], st["quantity"], st["price"], st["trigger"]) == (0, "take_profit", 200.0,
                                                                                     rel(105.0), rel(105.0))
    th = 2_120.8 / 2_610.4
    (liq,) = r["liquidations"]
    pb = 49.5 + 6.5 * th
    assert liq["bar"] == 2 and liq["theta"] == rel(2 + th) and liq["gap"] is False
    # the marks at θ on leg 3: A's (flat now, its mark leg 116 -> 111) and B's
    assert liq["trigger_prices"] == [rel(116 - 5 * th), rel(pb)]
    mb = 2_000 - 400 * (pb - 50)
    assert mb == rel(MMR * 400 * pb) and liq["equity_before"] == rel(mb) and liq["margin_level"] == rel(1.0)
    assert liq["fee"] == rel(min(CLEAR * 400 * pb, mb)) and liq["equity_after"] == 0.0
    fills = [(o["symbol"], o["side"], o["quantity"], o["price"]) for o in r["orders"] if o["kind"] == "liquidation"]
    assert fills == [(1, 1, 400.0, rel(pb))]
    # the same run without stops: nothing on this bar (step (5) looks at leg 1 only, on the state before)
    r0 = run(bars, targets, TABLES, **kw)
    assert r0["liquidations"] == [] and r0["position"][1][2] == -400.0
    assert r0["equity"][2] == rel(1_000 + 200 * 1 - 400 * 6)


def test_liquidation_brought_nearer_by_a_stop_happens_at_the_stops_theta():
    # 50x, no fee, no slippage: A long 200 @ 100, B short 400 @ 50, WC 1,000; stop-loss 1 % (A: 99).
    # bar 2: both marks stray from the traded bars: A traded 100 -> L 90 (mark 115 -> 113), B traded
    # 50 -> H 50.5 (mark 52 -> 52.5).  Before the stop MB − MM on the marks of leg 1 stays > 0:
    #   at θ = 1: 1,000 + 200·13 − 400·2.5 − 0.004·(200·113 + 400·52.5) = 2,600 − 174.4.
    # A's stop-loss at θ = (100 − 99)/10 = 0.1 sells at 99 (E at the traded prices 1,000 − 200 − 400·0.05 =
    # 780 > 0): WC = 800.  B alone on its marks: MB − MM = 800 − 400·(52 + 0.5θ − 50) − 0.004·400·(52 + 0.5θ)
    # = −83.2 − 200.8θ <= 0 from the leg's start: found at θ = 0, it happens at the stop's θ = 0.1, at the
    # marks there (A 115 − 2·0.1, B 52 + 0.5·0.1 = 52.05): MB = 800 − 400·2.05 = −20 -> bad debt 20, no fee.
    bars = [[flat(100), flat(100), (100, 100, 90, 95)], [flat(50), flat(50), (50, 50.5, 50, 50.2)]]
    mark_a = ([NAN, NAN, 115], [NAN, NAN, 115], [NAN, NAN, 113], [NAN, NAN, 114])
    mark_b = ([NAN, NAN, 52], [NAN, NAN, 52.5], [NAN, NAN, 52], [NAN, NAN, 52.2])
    targets = [[20.0, NAN, NAN], [-20.0, NAN, NAN]]
    kw = dict(capital=1_000.0, leverage=50, marks=[mark_a, mark_b])
    r = run(bars, targets, TABLES, stop_loss=0.01, **kw)
    assert [(o["symbol"], o["kind"], o["quantity"], o["price"]) for o in r["orders"] if o["bar"] == 2] == [
        (0, "stop_loss", 200.0, rel(99.0)), (1, "liquidation", 400.0, rel(52.05))]
    (liq,) = r["liquidations"]
    assert liq["theta"] == rel(0.1) and liq["gap"] is False
    assert liq["trigger_prices"] == [rel(114.8), rel(52.05)]
    assert liq["equity_before"] == rel(-20.0) and liq["margin_level"] == rel(-20 / (MMR * 400 * 52.05))
    assert liq["fee"] == 0.0 and liq["bad_debt"] == rel(20.0) and liq["equity_after"] == 0.0
    assert r["bad_debt"] == rel(20.0) and r["equity"][2] == 0.0
    # without stops nothing happens on this bar
    r0 = run(bars, targets, TABLES, **kw)
    assert r0["liquidations"] == []


def test_first_theta_on_a_leg_where_mb_minus_mm_rises_then_falls():
    # Two longs, A (BTC table) rising across its 12 M tier boundary, B (ETH table) falling, on one leg:
    # A: 200 @ EP 59,000, 59,000 -> 61,010: notional 11.8 M + 402,000θ, tier 0.01/11,450 up to 12 M
    #    (θb = 200,000/402,000), then 0.02/131,450: MM_A = 106,550 + 4,020θ, then 104,550 + 8,040θ;
    # B: 2,000 @ EP 3,000, 3,000 -> 2,800: notional 6 M − 400,000θ in tier 0.01/11,450: MM_B = 48,550 − 4,000θ;
    # uPnL = 402,000θ − 400,000θ = 2,000θ.  With WC = 155,120:
    #    θ <= θb: MB − MM = 20 + 1,980θ (rising);  θ >= θb: 2,020 − 2,040θ (falling) -> root 2,020/2,040.
    book = CrossBook(155_120.0, 2)
    book.n, book.ep = [200.0, 2_000.0], [59_000.0, 3_000.0]
    start, end = [59_000.0, 3_000.0], [61_010.0, 2_800.0]
    root = 2_020 / 2_040
    assert first_theta(book, TABLES, start, end) == rel(root)
    assert first_theta(book, TABLES, start, end, lo=0.6) == rel(root)  # from the last event's θ on
    assert first_theta(book, TABLES, start, end, lo=root + 1e-6) == rel(root + 1e-6)  # MB <= MM there already
    book.wc = 155_200.0                        # +80: 2,100 − 2,040θ > 0 on the whole leg
    assert first_theta(book, TABLES, start, end) is None
    book.wc = 155_090.0                        # −10 at the leg's start: θ = 0
    assert first_theta(book, TABLES, start, end) == 0.0


def _same(a, b):
    """Exact equality of two runs' outputs (NaN equal to NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("scenario", ["mark liquidation", "rebalancing"])
def test_all_fractions_zero_is_the_run_without_them(scenario):
    if scenario == "mark liquidation":
        args, kw = (S1_BARS, S1_TARGETS, TABLES), S1_KW
    else:
        bars = [[flat(100), (100, 104, 97, 103), (103, 108, 101, 102), (102, 103, 95, 96)],
                [flat(50), (50, 51, 48, 49), (49, 50, 47, 47.5), (48, 49, 46, 48.5)]]
        args = (bars, [[3.0, 3.0, 3.0, NAN], [-2.0, 1.0, 1.0, NAN]], TABLES)
        kw = dict(capital=5_000.0, leverage=20, fee=0.0005, slippage=0.0005, rebalance=0.01)
    plain = run(*args, **kw)
    zero = run(*args, stop_loss=0.0, take_profit=0.0, trailing_stop=0.0, **kw)
    assert _same(plain, zero)
    if scenario == "mark liquidation":
        assert len(plain["liquidations"]) == 1
