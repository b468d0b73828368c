"""Hand-computed tests of ``tests/reference_multi.py`` itself: stops on a
joint path WITH mark series in a cross account of several symbols (MC
"Several symbols", "Stops on a joint path", its "With mark series"; "Mark
prices with several symbols"; "Mark price for liquidation", "With stops or a
limit order").

The walk follows two paired joint paths: the traded one (``O → L → H → C``
for a long-like symbol, ``O → H → L → C`` for a short-like one) for the stop
levels, and the mark one (``Om → Lm → Hm → Cm`` / ``Om → Hm → Lm → Cm``) for
the liquidation; leg k of one with leg k of the other, both at the same θ.
The smallest θ fires first.  A liquidation triggers at the marks at θ and
fills each symbol at its mark at θ clamped into its traded bar's ``[L, H]``
(± slippage).

Every example: BTCUSDT (symbol 0) and ETHUSDT (symbol 1) in one cross
account, hourly bars, fee 0, rates 0, slippage 0 unless said; bar 0 reads
the targets, bar 1 (flat) fills them at its opens, bar 2 is the bar under
test.  Numbers are derived by hand in the comments; the asserts hold those
(exact fractions written out, or to 1e-12 relative).

Profiles (``reference.PROFILES``, as A/D ratios): cross-3x initial ML 1.5,
margin call 1.3, liquidation 1.1, fee 2 %, a partial liquidation restores
1.5; cross-5x initial 1.25, call 1.16, liquidation 1.1, fee 2 %, restores
1.25.  ``f(θ) = Σ_s (hb_s − 1.1·db_s)·Pm_s(θ) + hq − 1.1·(pq + iq)``: the
liquidation is at the first θ with ``f ≤ 0``.
"""
import math

import pytest

from reference_multi import simulate_multi

T0 = 1_709_251_200  # 2024-03-01 00:00 UTC, a whole hour
REL = 1e-12


def flat(p):
    return (p, p, p, p)


def cols(rows):
    """Bars (open, high, low, close) as four lists."""
    return [[float(r[j]) for r in rows] for j in range(4)]


def run(btc, eth, targets, *, profile, marks=(None, None), capital=10_000.0, slippage=0.0, mark_cols=4, **kw):
    """The reference on BTC and ETH in one cross account; ``marks``: per
    symbol None or mark bars (rows of (open, high, low, close)) given as
    ``mark_cols`` lists."""
    n = len(btc)
    b, e = cols(btc), cols(eth)
    mk = [None if m is None else cols(m)[:mark_cols] for m in marks]
    return simulate_multi([T0 + 3600 * k for k in range(n)], [b[0], e[0]], [b[1], e[1]], [b[2], e[2]],
                          [b[3], e[3]], [[float(x) for x in t] for t in targets],
                          accounts=[(profile, [0, 1], capital)], fee=0.0, slippage=slippage,
                          rates_base_daily=[0.0, 0.0], rate_quote_daily=0.0, marks=mk, **kw)


def orders(ref):
    """(bar, symbol, side, kind, quantity, price) of the reference's orders."""
    return [(o["bar"], o["symbol"], o["side"], o["kind"], o["quantity"], o["price"]) for o in ref["orders"]]


def assert_orders(got, expected):
    assert [g[:4] for g in got] == [e[:4] for e in expected]
    for g, e in zip(got, expected):
        assert g[4] == pytest.approx(e[4], rel=REL) and g[5] == pytest.approx(e[5], rel=REL), (g, e)


# ------------------------------------------------------------------ a
# test_differential_multi_stops's "liquidation before a stop-loss" with both symbols' mark series equal to
# their traded bars (four lists): the two paths are one, so the run is the run without marks, to the bit.
# cross-3x, capital 10,000, stop-loss 60 %, targets BTC 1, ETH 1.5.
# Bar 1: BTC first, equity 10,000: 0.5 BTC at 20,000 paid with the cash; ETH: equity 0.5·20,000 = 10,000,
# 1.5·10,000/2,000 = 7.5 ETH at 2,000, all 15,000 borrowed.  Entries 20,000 and 2,000: stops 8,000 and 800.
# Bar 2: BTC flat, ETH 2,000 → 600 → 2,000 → 700.  Leg 1: f0 = 10,000 + 15,000 − 1.1·15,000 = 8,500,
# g = 7.5·(600 − 2,000) = −10,500: the liquidation at θ = 8,500/10,500 (ETH at 2,000 − 1,400·θ = 2,600/3)
# comes before ETH's stop (θ = 1,200/1,400).  A = 10,000 + 6,500 = 16,500, fee 330; partial, restore 1.5:
# λ = (1.5·(15,000 + 330) − 16,500)/(16,500·0.5) = 6,495/8,250; the sales raise 12,990, 12,660 repay the
# quote: 2,340 owed.  Then ETH's stop: its 7.5·1,755/8,250 ETH sell at 800, owed 2,340 − 1,276.36….  The
# close: 0.5·1,755/8,250 BTC at 20,000 less that debt.  Margin call at the lows: 14,500/15,000.
A_BTC = [flat(20_000.0)] * 4
A_ETH = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 600.0, 700.0), flat(700.0)]
A_TARGETS = ([1.0] * 4, [1.5] * 4)


def test_a_marks_equal_to_the_traded_bars_change_nothing():
    plain = run(A_BTC, A_ETH, A_TARGETS, profile="cross-3x", stop_loss=0.6)
    marked = run(A_BTC, A_ETH, A_TARGETS, profile="cross-3x", stop_loss=0.6, marks=(A_BTC, A_ETH))
    assert marked == plain  # every output, to the bit
    lam, left = 6_495.0 / 8_250.0, 1_755.0 / 8_250.0
    assert_orders(orders(marked), [
        (1, 0, "buy", "signal", 0.5, 20_000.0), (1, 1, "buy", "signal", 7.5, 2_000.0),
        (2, 0, "sell", "liquidation", 0.5 * lam, 20_000.0), (2, 1, "sell", "liquidation", 7.5 * lam, 2_600.0 / 3.0),
        (2, 1, "sell", "stop_loss", 7.5 * left, 800.0)])
    (ev,) = marked["liquidations"]
    assert ev["margin_level"] == pytest.approx(1.1, rel=REL) and ev["fee"] == pytest.approx(330.0, rel=REL)
    assert ev["equity_before"] == pytest.approx(16_500.0 - 15_000.0, rel=REL) and not ev["gap"]
    owed = 2_340.0 - 800.0 * 7.5 * left
    assert marked["debt"][0][2] == pytest.approx(owed, rel=1e-9)
    assert marked["equity"][0][2] == pytest.approx(0.5 * left * 20_000.0 - owed, rel=1e-9)
    (call,) = marked["margin_calls"]
    assert call["bar"] == 2 and call["margin_level"] == pytest.approx(14_500.0 / 15_000.0, rel=REL)
    assert marked["mark_missing"] == [0, 0]


# ------------------------------------------------------------------ b
# cross-3x, capital 10,000, targets BTC 1, ETH 1.5 (bar 1 as in a: 0.5 BTC with the cash, 7.5 ETH on
# 15,000 borrowed), BTC's own stop-loss 5 % (level 19,000), ETH none.  BTC has no mark series (its mark
# path is its traded path); ETH's mark falls deeper than its traded price.
# Bar 2: BTC 20,000 → 18,000 → 20,000 → 18,500; ETH traded 2,000 → 1,000 → 2,000 → 1,500, ETH mark
# 2,000 → 800 → 2,000 → 1,500 (both long-like: the lows first).
# Leg 1, the state after step 4: f0 = 0.5·20,000 + 7.5·2,000 − 1.1·15,000 = 8,500, on the mark leg g =
# 0.5·(18,000 − 20,000) + 7.5·(800 − 2,000) = −10,000: the liquidation would be at θ = 0.85; BTC's stop on
# the traded leg at θ = (20,000 − 19,000)/(20,000 − 18,000) = 0.5 comes first.  It sells 0.5 BTC at 19,000:
# 9,500 repays the quote, 5,500 owed.  The liquidation looked for again with that state: f0 = 15,000 −
# 6,050 = 8,950, g = 7.5·(−1,200) = −9,000: θ = 8,950/9,000 = 179/180 (≥ 0.5), the ETH mark there 2,000 −
# 1,200·179/180 = 2,420/3 (A 6,050, D 5,500: ML 1.1; BTC held 0).  ETH fills at 2,420/3 clamped into its
# traded [1,000, 2,000]: at 1,000 (with the traded path alone, 15,000 − 6,050 − 7,500 > 0: none).  Fee
# 0.02·6,050 = 121; λ = (1.5·(5,500 + 121) − 7,500)/(7,500·0.5) = 931.5/3,750 = 0.2484: 1.863 ETH sold at
# 1,000, 1,863 − 121 = 1,742 repay the quote: 3,758 owed, 5.637 ETH left (at the fill ML 5,637/3,758 =
# 1.5; equity after 1,879).  Then no more: leg 1 from 2,000 ends at 5.637·800 − 4,133.8 > 0, leg 2
# rises, leg 3 ends at 5.637·1,500 − 4,133.8 > 0.  Close: 5.637·1,500 − 3,758 = 4,697.5.
# Margin call (state after step 4, the marks' lows): (0.5·18,000 + 7.5·800)/15,000 = 1.0, bar 1's close
# 25,000/15,000 above 1.3.
B_BTC = [flat(20_000.0), flat(20_000.0), (20_000.0, 20_000.0, 18_000.0, 18_500.0)]
B_ETH = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 1_000.0, 1_500.0)]
B_ETH_MARK = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 800.0, 1_500.0)]


def test_b_stop_on_the_traded_leg_before_the_liquidation_on_the_mark_leg():
    ref = run(B_BTC, B_ETH, ([1.0] * 3, [1.5] * 3), profile="cross-3x", marks=(None, B_ETH_MARK),
              levels=[{"stop_loss": 0.05}, None])
    lam = 931.5 / 3_750.0
    assert lam == pytest.approx(0.2484, rel=REL)
    assert_orders(orders(ref), [
        (1, 0, "buy", "signal", 0.5, 20_000.0), (1, 1, "buy", "signal", 7.5, 2_000.0),
        (2, 0, "sell", "stop_loss", 0.5, 19_000.0),
        (2, 1, "sell", "liquidation", 7.5 * lam, 1_000.0)])  # the mark 2,420/3 clamped up to the traded low
    assert ref["orders"][2]["trigger"] == 19_000.0
    (ev,) = ref["liquidations"]
    assert ev["bar"] == 2 and not ev["gap"] and ev["bad_debt"] == 0.0
    assert ev["margin_level"] == pytest.approx(1.1, rel=REL)  # at the marks at θ = 179/180
    assert ev["equity_before"] == pytest.approx(6_050.0 - 5_500.0, rel=REL)
    assert ev["fee"] == pytest.approx(121.0, rel=REL)
    assert ev["equity_after"] == pytest.approx(5_637.0 - 3_758.0, rel=REL)
    assert ref["position"][0][2] == 0.0 and ref["position"][1][2] == pytest.approx(5.637, rel=REL)
    assert ref["debt"][0][2] == pytest.approx(3_758.0, rel=REL)
    assert ref["equity"][0][2] == pytest.approx(4_697.5, rel=REL)
    assert ref["margin_level"][0][2] == pytest.approx(5.637 * 1_500.0 / 3_758.0, rel=REL)
    (call,) = ref["margin_calls"]
    assert call["bar"] == 2 and call["margin_level"] == pytest.approx(1.0, rel=REL)
    assert ref["mark_missing"] == [0, 0]


def test_b_without_the_deeper_mark_no_liquidation():
    # the same run with ETH's mark its traded bar: after the stop the mark leg ends at 7.5·1,000 − 6,050 > 0
    ref = run(B_BTC, B_ETH, ([1.0] * 3, [1.5] * 3), profile="cross-3x", marks=(None, B_ETH),
              levels=[{"stop_loss": 0.05}, None])
    assert not ref["liquidations"]
    assert [o["kind"] for o in ref["orders"]] == ["signal", "signal", "stop_loss"]
    assert ref["equity"][0][2] == pytest.approx(7.5 * 1_500.0 - 5_500.0, rel=REL)


# ------------------------------------------------------------------ c
# cross-5x, capital 10,000, targets BTC 2, ETH 2.  Bar 1: 1 BTC at 20,000 (10,000 borrowed); equity
# 20,000 − 10,000 = 10,000: 10 ETH at 2,000, 20,000 borrowed (ML 40,000/30,000 ≥ 1.25).  ETH's own
# stop-loss 20 % (level 1,600), BTC none.  Both symbols have mark series.
# Bar 2: BTC traded 20,000 → 19,000 → 20,000 → 19,500, mark 20,000 → 17,000 → 20,000 → 19,500; ETH traded
# 2,000 → 1,500 → 2,000 → 1,550, mark 2,000 → 1,400 → 2,000 → 1,550.
# Leg 1: f0 = 20,000 + 20,000 − 1.1·30,000 = 7,000, on the marks g = −3,000 − 10·600 = −9,000: the
# liquidation at θ = 7/9, before ETH's stop on the traded leg at θ = 400/500 = 0.8.  Triggers (the marks at
# θ): BTC 20,000 − 3,000·7/9 = 53,000/3, ETH 2,000 − 600·7/9 = 4,600/3: A = 33,000, ML 1.1, equity
# before 3,000, fee 660.  Fills, the marks clamped into the traded bars: BTC 53,000/3 < 19,000 → 19,000
# (the traded low), ETH 4,600/3 in [1,500, 2,000] → 4,600/3.  L = 19,000 + 46,000/3 = 103,000/3, K =
# −30,000, restore 1.25: λ = (1.25·30,660 − 103,000/3)/(103,000/3·0.25) = 11,975/25,750 = 479/1,030.
# Sales λ·L = 47,900/3, 47,900/3 − 660 repay: 44,080/3 owed; left 551/1,030 BTC and 551/103 ETH (ML at
# the fills (55,100/3)/(44,080/3) = 1.25; equity after 11,020/3).
# No second liquidation on leg 1 (at the marks' lows: (551/1,030)·17,000 + (551/103)·1,400 = 16,583.5 >
# 1.1·44,080/3).  ETH's stop at θ = 0.8: 551/103 ETH at 1,600 repay 881,600/103: owed 44,080/3 −
# 881,600/103.  BTC's mark then ends leg 1 at 17,000, rises, ends leg 3 at 19,500: (551/1,030)·17,000 >
# 1.1·owed: nothing more.  Close: (551/1,030)·19,500 − owed.
# Margin call: the marks' lows, (17,000 + 14,000)/30,000 = 31/30 ≤ 1.16 (bar 1's close 4/3).
C_BTC = [flat(20_000.0), flat(20_000.0), (20_000.0, 20_000.0, 19_000.0, 19_500.0)]
C_BTC_MARK = [flat(20_000.0), flat(20_000.0), (20_000.0, 20_000.0, 17_000.0, 19_500.0)]
C_ETH = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 1_500.0, 1_550.0)]
C_ETH_MARK = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 1_400.0, 1_550.0)]


def test_c_liquidation_on_the_mark_leg_before_a_stop_filled_at_the_clamped_marks():
    ref = run(C_BTC, C_ETH, ([2.0] * 3, [2.0] * 3), profile="cross-5x", marks=(C_BTC_MARK, C_ETH_MARK),
              levels=[None, {"stop_loss": 0.2}])
    lam = 479.0 / 1_030.0
    owed_after_liq = 44_080.0 / 3.0
    owed = owed_after_liq - 881_600.0 / 103.0
    assert_orders(orders(ref), [
        (1, 0, "buy", "signal", 1.0, 20_000.0), (1, 1, "buy", "signal", 10.0, 2_000.0),
        (2, 0, "sell", "liquidation", lam, 19_000.0),  # mark 53,000/3 clamped up to the traded low
        (2, 1, "sell", "liquidation", 10.0 * lam, 4_600.0 / 3.0),  # mark inside the traded range
        (2, 1, "sell", "stop_loss", 551.0 / 103.0, 1_600.0)])
    assert ref["orders"][4]["trigger"] == 1_600.0
    (ev,) = ref["liquidations"]
    assert ev["bar"] == 2 and not ev["gap"] and ev["bad_debt"] == 0.0
    assert ev["margin_level"] == pytest.approx(1.1, rel=REL)  # at the marks at θ = 7/9
    assert ev["equity_before"] == pytest.approx(3_000.0, rel=REL)
    assert ev["fee"] == pytest.approx(660.0, rel=REL)  # 2 % of A at the marks, 33,000
    assert ev["equity_after"] == pytest.approx(11_020.0 / 3.0, rel=REL)
    assert ref["position"][0][2] == pytest.approx(551.0 / 1_030.0, rel=REL) and ref["position"][1][2] == 0.0
    assert ref["debt"][0][2] == pytest.approx(owed, rel=REL)
    assert ref["equity"][0][2] == pytest.approx(551.0 / 1_030.0 * 19_500.0 - owed, rel=REL)
    (call,) = ref["margin_calls"]
    assert call["bar"] == 2 and call["margin_level"] == pytest.approx(31.0 / 30.0, rel=REL)


def test_c_with_slippage_the_clamped_marks_slip():
    # c with slippage 0.1 %.  Bar 1: 1 BTC at 20,020 (10,020 borrowed); equity 20,000 − 10,020 = 9,980:
    # 9.98 ETH at 2,002, 19,979.96 borrowed: 29,999.96 owed.  ETH's stop 0.8·2,002 = 1,601.6.
    # Bar 2, leg 1 on the marks: f0 = 20,000 + 19,960 − 1.1·29,999.96, g = −3,000 − 9.98·600: θ = −f0/g ≈
    # 0.7744, before ETH's stop at θ = 398.4/500 = 0.7968.  Triggers BTC 20,000 − 3,000·θ, ETH 2,000 −
    # 600·θ; fills: BTC 19,000·0.999 (its mark below the traded low), ETH its mark·0.999 (inside).
    # λ = (1.25·(29,999.96 + F) − L)/(L·0.25), F = 0.02·A(triggers), L = Σ held·fill.
    ref = run(C_BTC, C_ETH, ([2.0] * 3, [2.0] * 3), profile="cross-5x", marks=(C_BTC_MARK, C_ETH_MARK),
              levels=[None, {"stop_loss": 0.2}], slippage=0.001)
    owed0 = 10_020.0 + 9.98 * 2_002.0
    theta = (20_000.0 + 9.98 * 2_000.0 - 1.1 * owed0) / (3_000.0 + 9.98 * 600.0)
    assert 0.77 < theta < 398.4 / 500.0
    trig_btc, trig_eth = 20_000.0 - 3_000.0 * theta, 2_000.0 - 600.0 * theta
    assert trig_btc < 19_000.0 and 1_500.0 < trig_eth < 2_000.0
    fill_btc, fill_eth = 19_000.0 * 0.999, trig_eth * 0.999
    fee = 0.02 * (trig_btc + 9.98 * trig_eth)
    big_l = fill_btc + 9.98 * fill_eth
    lam = (1.25 * (owed0 + fee) - big_l) / (big_l * 0.25)
    got = orders(ref)
    assert_orders(got[:4], [
        (1, 0, "buy", "signal", 1.0, 20_020.0), (1, 1, "buy", "signal", 9.98, 2_002.0),
        (2, 0, "sell", "liquidation", lam, fill_btc), (2, 1, "sell", "liquidation", 9.98 * lam, fill_eth)])
    (ev,) = ref["liquidations"]
    assert ev["margin_level"] == pytest.approx(1.1, rel=1e-12) and ev["fee"] == pytest.approx(fee, rel=1e-12)
    # ETH's stop follows: what is left, at 1,601.6·0.999
    assert got[4][:4] == (2, 1, "sell", "stop_loss")
    assert got[4][4] == pytest.approx(9.98 * (1.0 - lam), rel=1e-12)
    assert got[4][5] == pytest.approx(1_601.6 * 0.999, rel=REL)


# ------------------------------------------------------------------ d
# cross-5x, capital 10,000, targets BTC 1, ETH −3.  Bar 1: 0.5 BTC at 20,000 paid with the cash; equity
# 10,000: −15 ETH sold at 2,000 on a base loan, 30,000 quote held (ML 40,000/30,000).  No quote owed, so
# f = 0.5·P_BTC − 16.5·P_ETH + 30,000.  BTC's own trailing stop 5 %, ETH none.  Both have mark series.
# Bar 2: BTC long-like (O → L → H → C): traded 20,000 → 19,100 → 20,400 → 19,200, mark 20,000 → 19,800 →
# 20,400 → 20,000; ETH short-like (O → H → L → C): traded 2,000 → 2,410 → 1,990 → 2,300, mark 2,000 →
# 2,410 → 1,990 → 2,410 (the mark closes at its high, the traded market at 2,300).
# Leg 1: BTC's trailing level 0.95·20,000 = 19,000 < 19,100: not reached; marks f = 7,000 − 100 − 6,765 =
# 135 > 0 at the leg's end: no liquidation.  Leg 2: favourable; BTC's best becomes 20,400 at its end.
# Leg 3, the old state: f from 0.5·20,400 − 16.5·1,990 + 30,000 = 7,365 to 10,000 − 39,765 + 30,000 = 235 >
# 0; BTC's trailing level 0.95·20,400 = 19,380 on the traded 20,400 → 19,200 at θ = 1,020/1,200 = 0.85:
# 0.5 BTC sold at 19,380, hq = 39,690 (a sale below BTC's mark, 20,400 − 400·0.85 = 20,060).  The
# liquidation with that state: f0 = 39,690 − 16.5·1,990 = 6,855, g = −16.5·420 = −6,930, f0 + g = −75:
# θ = 6,855/6,930 (≥ 0.85), the ETH mark there 1,990 + 420·θ = 26,460/11 (A 39,690, D 396,900/11: ML 1.1,
# equity before 39,690/11).  Fill: 26,460/11 is in the traded [1,990, 2,410] (the traded path is at
# 1,990 + 310·θ ≈ 2,296.6 there: not the fill).  Fee 0.02·39,690 = 793.8; short-like, restore 1.25:
# λ = (1.25·S + F − K)/(S·0.25), S = 15·26,460/11, K = 39,690: λ = 0.688, 10.32 ETH bought back for
# 273,067.2/11; hq = 39,690 − 793.8 − 273,067.2/11 = 154,791/11, 4.68 ETH owed (equity after
# 30,958.2/11).  Close: 154,791/11 − 4.68·2,300.
# With the mark close at the traded close 2,300 instead: leg 3 ends at 39,690 − 16.5·2,300 = 1,740 > 0,
# no liquidation (close 39,690 − 15·2,300 = 5,190).
# Margin call: the marks' adverse extremes (BTC 19,800, ETH 2,410): 39,900/36,150 ≤ 1.16 (bar 1's 4/3).
D_BTC = [flat(20_000.0), flat(20_000.0), (20_000.0, 20_400.0, 19_100.0, 19_200.0)]
D_BTC_MARK = [flat(20_000.0), flat(20_000.0), (20_000.0, 20_400.0, 19_800.0, 20_000.0)]
D_ETH = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_410.0, 1_990.0, 2_300.0)]
D_ETH_MARK = [flat(2_000.0), flat(2_000.0), (2_000.0, 2_410.0, 1_990.0, 2_410.0)]
D_TARGETS = ([1.0] * 3, [-3.0] * 3)
D_LEVELS = [{"trailing_stop": 0.05}, None]


def test_d_liquidation_on_leg_three_toward_the_mark_close():
    ref = run(D_BTC, D_ETH, D_TARGETS, profile="cross-5x", marks=(D_BTC_MARK, D_ETH_MARK), levels=D_LEVELS)
    fill = 26_460.0 / 11.0
    assert_orders(orders(ref), [
        (1, 0, "buy", "signal", 0.5, 20_000.0), (1, 1, "sell", "signal", 15.0, 2_000.0),
        (2, 0, "sell", "trailing_stop", 0.5, 19_380.0),
        (2, 1, "buy", "liquidation", 10.32, fill)])
    assert ref["orders"][2]["trigger"] == pytest.approx(19_380.0, rel=REL)
    (ev,) = ref["liquidations"]
    assert ev["bar"] == 2 and not ev["gap"] and ev["bad_debt"] == 0.0
    assert ev["margin_level"] == pytest.approx(1.1, rel=REL)
    assert ev["equity_before"] == pytest.approx(39_690.0 / 11.0, rel=REL)
    assert ev["fee"] == pytest.approx(793.8, rel=REL)
    assert ev["equity_after"] == pytest.approx(30_958.2 / 11.0, rel=REL)
    assert ref["position"][0][2] == 0.0 and ref["position"][1][2] == pytest.approx(-4.68, rel=REL)
    assert ref["debt"][0][2] == pytest.approx(4.68 * 2_300.0, rel=REL)
    assert ref["equity"][0][2] == pytest.approx(154_791.0 / 11.0 - 4.68 * 2_300.0, rel=REL)
    (call,) = ref["margin_calls"]
    assert call["bar"] == 2 and call["margin_level"] == pytest.approx(39_900.0 / 36_150.0, rel=REL)


def test_d_with_the_traded_close_no_liquidation():
    # ETH's mark bar = its traded bar (close 2,300), given or not given: the trailing stop alone
    for eth_mark in (D_ETH, None):
        ref = run(D_BTC, D_ETH, D_TARGETS, profile="cross-5x", marks=(D_BTC_MARK, eth_mark), levels=D_LEVELS)
        assert not ref["liquidations"]
        assert_orders(orders(ref), [
            (1, 0, "buy", "signal", 0.5, 20_000.0), (1, 1, "sell", "signal", 15.0, 2_000.0),
            (2, 0, "sell", "trailing_stop", 0.5, 19_380.0)])
        assert ref["equity"][0][2] == pytest.approx(39_690.0 - 15.0 * 2_300.0, rel=REL)
        assert ref["margin_calls"][0]["margin_level"] == pytest.approx(39_900.0 / 36_150.0, rel=REL)


# ------------------------------------------------------------------ what is refused
def test_stops_need_the_mark_close_in_a_cross_account_of_several_symbols():
    with pytest.raises(AssertionError, match="needs its close"):
        run(D_BTC, D_ETH, D_TARGETS, profile="cross-5x", marks=(D_BTC_MARK, None), levels=D_LEVELS, mark_cols=3)
    # without stops three lists are enough (the joint path ends at the marks' adverse extremes)
    ref = run(D_BTC, D_ETH, D_TARGETS, profile="cross-5x", marks=(D_BTC_MARK, None), mark_cols=3)
    assert len(ref["equity"][0]) == 3


def test_stops_with_a_mark_series_in_an_account_of_one_symbol_are_not_modelled():
    b, e = cols(D_BTC), cols(D_ETH)
    with pytest.raises(AssertionError, match="ONE symbol"):
        simulate_multi([T0 + 3600 * k for k in range(3)], [b[0], e[0]], [b[1], e[1]], [b[2], e[2]], [b[3], e[3]],
                       [[1.0] * 3, [1.0] * 3], accounts=[("isolated-5x", [0], 5_000.0), ("cross-5x", [1], 5_000.0)],
                       fee=0.0, slippage=0.0, rates_base_daily=[0.0, 0.0], rate_quote_daily=0.0,
                       marks=[cols(D_BTC_MARK), None], stop_loss=0.05)
    # the symbol without a series (ETH, alone in its cross account) may have stops; BTC's account none
    ref = simulate_multi([T0 + 3600 * k for k in range(3)], [b[0], e[0]], [b[1], e[1]], [b[2], e[2]],
                         [b[3], e[3]], [[1.0] * 3, [1.0] * 3],
                         accounts=[("isolated-5x", [0], 5_000.0), ("cross-5x", [1], 5_000.0)], fee=0.0,
                         slippage=0.0, rates_base_daily=[0.0, 0.0], rate_quote_daily=0.0,
                         marks=[cols(D_BTC_MARK), None], levels=[None, {"stop_loss": 0.05}])
    assert not math.isnan(ref["equity"][1][2])
