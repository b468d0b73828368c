"""Transfers and a reserve in the two one-symbol references, against hand-computed cases.

The rules are those of "Transfers and a reserve" in docs/model-choices.md (cited "MC Transfers"):
scheduled transfers (step 0a, at the first bar with t_i >= date, at the traded open), a top-up at the
(mark) open (step 0b) and top-ups on the path at the margin-call price (step 5'), before the liquidation
checks.  Spot margin: tests/reference.py ``simulate``; perps: tests/reference_perps.py ``simulate_perps``.

Spot: profile cross-3x (M0 = 1.5, margin call 1.3, liquidation 1.1, fee 2 %), no trading fee, no
interest unless said.  Capital 10,000 with target 3 at 30,000 buys 1 BTC and borrows 20,000 quote: the
liquidation price (MLR·dq − hq)/hb is 22,000, the margin-call price (1.3·dq − hq)/hb is 26,000.
With auto-repay on (the default) money coming in (a deposit, a top-up) repays the quote loan first
(iq, then pq) and only the rest is hq: while a quote loan remains hq stays 0, so each deposit or top-up
lowers dq and moves both prices to MLR·dq and 1.3·dq (per BTC held).  A top-up with ml=X (the default
X = M0) is then T = D(P) − A(P)/X while that is at most the quote owed, else X·Db·P + Dq − A(P); with
auto-repay off the money goes to hq and T = X·D(P) − A(P).

Perps: BTCUSDT 2024-05-30 brackets (tier 1: notional < 50k, mmr 0.4 %, cum 0), leverage 10, no fee.
Capital 1,000 with target 10 at 100 opens N = 100 at EP = 100: c = MB(P) − N·P = WC − N·EP = −9,000;
LP = (c + cum)/(|N|·mmr − N) = 9,000/99.6, the margin-call price (c + 1.25·cum)/(1.25·|N|·mmr − N) =
9,000/99.5.  With a reserve and no --top-up rule a top-up lifts MB to the position's initial margin
|N|·P/L: at Pc (MB = 1.25·MM = 1.25·0.4 %·100·Pc = 0.5·Pc) that is T = 10·Pc − 0.5·Pc = 9.5·Pc, health 25.
"""

import math

import pytest

from reference import Profile, simulate
from reference_perps import simulate_perps
from test_reference_perps import BTC_2024  # (floor, cap, mmr, cum, maxlev), spec §3, 2024-05-30

REL = 1e-9
H = 3600
DAY0 = 1_700_006_400  # 2023-11-15 00:00:00 UTC
D = 1_717_200_000     # 2024-06-01 00:00:00 UTC
V2024 = 1_717_027_200
BR = [(V2024, BTC_2024)]


def rel(x):
    return pytest.approx(x, rel=REL)


def flat(p):
    return (p, p, p, p)


def at(k, seconds=0):
    return DAY0 + k * H + seconds


def spot(bars, targets, profile="cross-3x", capital=10_000.0, fee=0.0, **kw):
    """``bars``: (open, high, low, close) per hourly bar from DAY0."""
    ts = [at(k) for k in range(len(bars))]
    o, h, lo, c = (list(col) for col in zip(*bars))
    return simulate(ts, o, h, lo, c, targets, profile=profile, capital=capital, fee=fee, slippage=0.0,
                    rate_base_daily=0.0, rate_quote_daily=0.0, **kw)


def perp(bars, targets, capital=1_000.0, leverage=10, isolated=False, **kw):
    kw.setdefault("fee", 0.0)
    ts = [D + k * H for k in range(len(bars))]
    o, h, lo, c = (list(col) for col in zip(*bars))
    return simulate_perps(ts, o, h, lo, c, targets, capital=capital, leverage=leverage, isolated=isolated,
                          brackets=BR, **kw)


def books(r, capital, reserve):
    """profit = final equity + reserve_left − capital − reserve − net transfers, and the sum over the
    bars of the equity change not caused by a flow (scheduled moves and top-ups into the account)."""
    profit = r["equity"][-1] + r["reserve"][-1] - capital - reserve - r["net_transfers"][-1]
    moved = [0.0] * len(r["equity"])
    for row in r["transfers"]:
        moved[row["bar"]] += row["amount"]
    prev, own = capital, 0.0
    for e, m in zip(r["equity"], moved):
        own += e - prev - m
        prev = e
    return profit, own


# ====================================================================== spot margin
LONG3 = [3.0] * 8  # bar 0's target 3 fills at bar 1's open: 1 BTC at 30,000, 20,000 quote owed


def test_spot_no_flows_adds_empty_outputs():
    r = spot([flat(30_000.0)] * 3, [3.0] * 3)
    assert r["transfers"] == []
    assert r["reserve"] == [0.0] * 3 and r["net_transfers"] == [0.0] * 3


def test_spot_deposit_lowers_the_liquidation_price():
    # bar 2 falls to 21,000: below the liquidation price 22,000 of 1 BTC owing 20,000 quote
    bars = [flat(30_000.0), flat(30_000.0), (30_000.0, 30_000.0, 21_000.0, 25_000.0), flat(25_000.0)]
    plain = spot(bars, LONG3[:4])
    (liq,) = plain["liquidations"]
    assert liq["bar"] == 2 and liq["trigger_price"] == rel(22_000.0)
    # a deposit of 2,000 dated inside bar 1 lands at bar 2's open (the first bar with t_i >= date); with
    # auto-repay it repays the quote loan: pq = 20,000 − 2,000 = 18,000, hq stays 0;
    # P_liq = (MLR·dq − hq)/hb = 1.1·18,000 = 19,800, which 21,000 does not reach
    r = spot(bars, LONG3[:4], transfers=[(at(1, 1800), 2_000.0)])
    assert r["liquidations"] == []
    (row,) = r["transfers"]
    assert row == {"bar": 2, "amount": 2_000.0, "requested": 2_000.0, "reason": "scheduled", "price": 30_000.0,
                   "margin_level_before": rel(1.5), "margin_level_after": rel(30_000.0 / 18_000.0),
                   "capped": False, "reserve_after": 0.0}
    assert r["net_transfers"] == [0.0, 0.0, 2_000.0, 2_000.0]
    assert r["debt"] == [0.0, rel(20_000.0), rel(18_000.0), rel(18_000.0)]
    # equity = hb·C + hq − dq with hq = 0: 25,000 − 18,000 (= 25,000 + 2,000 − 20,000)
    assert r["equity"][2] == rel(25_000.0 - 18_000.0)
    # a low of 19,799 reaches it: liquidated at trigger 19,800 (the open is above), ML there 19,800/18,000 = 1.1
    deeper = [flat(30_000.0), flat(30_000.0), (30_000.0, 30_000.0, 19_799.0, 25_000.0), flat(25_000.0)]
    r = spot(deeper, LONG3[:4], transfers=[(at(2), 2_000.0)])
    (liq,) = r["liquidations"]
    assert liq["bar"] == 2 and liq["trigger_price"] == rel(19_800.0) and liq["margin_level"] == rel(1.1)
    # auto-repay off: the deposit stays in hq (pq 20,000, hq 2,000): P_liq = 1.1·20,000 − 2,000 = 20,000
    r = spot(bars, LONG3[:4], auto_repay=False, transfers=[(at(1, 1800), 2_000.0)])
    assert r["liquidations"] == []
    assert r["transfers"][0]["margin_level_after"] == rel(32_000.0 / 20_000.0)
    assert r["debt"][2] == rel(20_000.0) and r["equity"][2] == rel(25_000.0 + 2_000.0 - 20_000.0)
    r = spot(deeper, LONG3[:4], auto_repay=False, transfers=[(at(2), 2_000.0)])
    (liq,) = r["liquidations"]
    assert liq["trigger_price"] == rel(20_000.0) and liq["margin_level"] == rel(1.1)


def test_spot_transfer_dates():
    # in date order, the same date in the order given; before the first bar: bar 0; after the last: never
    bars = [flat(100.0)] * 3
    r = spot(bars, [0.0] * 3, transfers=[(at(2), 5.0), (at(0) - 99, 1.0), (at(1), 3.0), (at(1), -2.0),
                                         (at(3), 7.0)])
    assert [(x["bar"], x["amount"], x["reason"]) for x in r["transfers"]] == [
        (0, 1.0, "scheduled"), (1, 3.0, "scheduled"), (1, -2.0, "withdrawal"), (2, 5.0, "scheduled")]
    assert r["net_transfers"] == [1.0, 2.0, 7.0]
    assert r["equity"] == [10_001.0, 10_002.0, 10_007.0]


def test_spot_withdrawal_without_debt_is_capped_to_hq():
    r = spot([flat(100.0)] * 2, [0.0] * 2, transfers=[(at(1), -15_000.0)])
    (row,) = r["transfers"]
    assert row["amount"] == -10_000.0 and row["requested"] == -15_000.0 and row["capped"]
    assert row["reason"] == "withdrawal" and row["margin_level_before"] == math.inf
    assert r["equity"] == [10_000.0, 0.0]
    assert r["net_transfers"] == [0.0, -10_000.0]


def test_spot_withdrawal_capped_at_the_initial_level():
    # target −1 at 30,000: sell 1/3 BTC borrowed, hq = 10,000 + 10,000 = 20,000 (no quote owed), pb = 1/3
    # bar 2 opens at 27,000: A = 20,000, D = 9,000, ML 2.2222; asking 10,000, what may leave is
    # min(hq, A − M0·D) = 20,000 − 1.5·9,000 = 6,500, leaving ML = 13,500/9,000 = 1.5 = M0
    bars = [flat(30_000.0), flat(30_000.0), flat(27_000.0), flat(27_000.0)]
    r = spot(bars, [-1.0] * 4, transfers=[(at(2), -10_000.0)])
    (row,) = r["transfers"]
    assert row["bar"] == 2 and row["price"] == 27_000.0 and row["reason"] == "withdrawal"
    assert row["amount"] == rel(-6_500.0) and row["requested"] == -10_000.0 and row["capped"]
    assert row["margin_level_before"] == rel(20_000.0 / 9_000.0)
    assert row["margin_level_after"] == rel(1.5)
    assert r["equity"][2] == rel(13_500.0 - 9_000.0)
    assert r["net_transfers"][-1] == rel(-6_500.0)
    # a small one is not capped
    r = spot(bars, [-1.0] * 4, transfers=[(at(2), -1_000.0)])
    (row,) = r["transfers"]
    assert row["amount"] == -1_000.0 and not row["capped"]
    assert row["margin_level_after"] == rel(19_000.0 / 9_000.0)


def test_spot_withdrawal_with_a_quote_loan_and_auto_repay_moves_nothing():
    # long 1 BTC owing 20,000: auto-repay keeps no quote beside the loan, hq = 0, so
    # min(hq, A − M0·D) = min(0, 36,000 − 30,000) = 0 leaves although ML(36,000) = 1.8 > M0
    bars = [flat(30_000.0), flat(30_000.0), flat(36_000.0)]
    r = spot(bars, LONG3[:3], transfers=[(at(2), -1_000.0)])
    (row,) = r["transfers"]
    assert row["amount"] == 0.0 and row["requested"] == -1_000.0 and row["capped"]
    assert row["margin_level_before"] == rel(1.8) and row["margin_level_after"] == rel(1.8)
    assert r["net_transfers"] == [0.0, 0.0, 0.0]
    assert r["equity"][-1] == rel(16_000.0)


def test_spot_top_up_to_ml_at_the_margin_call_price():
    # Pc = (Mc·dq − hq)/hb = 1.3·20,000 = 26,000; top_up ml=M0 (the default) with auto-repay: the money
    # repays, T = D(Pc) − A(Pc)/X = 20,000 − 26,000/1.5 = 8,000/3 = 2,666.67 (<= Dq = 20,000) from a reserve
    # of 5,000.  After: pq = 20,000 − 8,000/3 = 52,000/3 = 17,333.33, hq = 0, ML(Pc) = 26,000·3/52,000 = 1.5;
    # Pc' = 1.3·17,333.33 = 22,533.33 (the low 25,000 does not reach it), P_liq = 1.1·17,333.33 = 19,066.67
    bars = [flat(30_000.0), flat(30_000.0), (30_000.0, 30_000.0, 25_000.0, 27_000.0), flat(27_000.0)]
    t = 20_000.0 - 26_000.0 / 1.5
    for top_up in (None, ("ml", 1.5)):
        r = spot(bars, LONG3[:4], reserve=5_000.0, top_up=top_up)
        (row,) = r["transfers"]
        assert row == {"bar": 2, "amount": rel(t), "requested": rel(t), "reason": "top-up",
                       "price": rel(26_000.0), "margin_level_before": rel(1.3), "margin_level_after": rel(1.5),
                       "capped": False, "reserve_after": rel(5_000.0 - t)}
        assert t == rel(8_000.0 / 3.0)
        assert r["reserve"] == [5_000.0, 5_000.0, rel(5_000.0 - t), rel(5_000.0 - t)]
        assert r["net_transfers"] == [0.0] * 4          # a top-up is no scheduled transfer
        assert r["debt"][2] == rel(52_000.0 / 3.0)      # the quote loan shrank by T
        assert r["equity"][2] == rel(27_000.0 - 52_000.0 / 3.0)   # hq 0: = 27,000 + T − 20,000
        assert r["liquidations"] == []
        # the margin call keeps the state before the top-ups: ML at the low 25,000/20,000
        assert [(m["bar"], m["margin_level"]) for m in r["margin_calls"]] == [(2, rel(1.25))]
    # ml=1.4: T = 20,000 − 26,000/1.4 = 10,000/7 = 1,428.57, ML after 26,000/(20,000 − 10,000/7) = 1.4
    r = spot(bars, LONG3[:4], reserve=5_000.0, top_up=("ml", 1.4))
    (row,) = r["transfers"]
    assert row["amount"] == rel(10_000.0 / 7.0) and row["margin_level_after"] == rel(1.4)
    assert r["debt"][2] == rel(20_000.0 - 10_000.0 / 7.0)


def test_spot_top_up_of_a_short_goes_to_hq():
    # target −2 at 30,000: sell 2/3 BTC borrowed (the cap (hq + M0·0)/(M0·O − O) = 10,000/15,000 = 2/3),
    # hq = 30,000, pb = 2/3, no quote owed.  a = hb − Mc·Db = −1.3·2/3 < 0: Pc = (1.3·0 − 30,000)/a
    # = 45,000/1.3 = 34,615.38 (rising); P_liq = 30,000/(1.1·2/3) = 40,909.09.  ml=M0 with auto-repay:
    # D − A/X = (2/3)·Pc − 20,000 = 3,076.92 > Dq = 0, so T = X·Db·P + Dq − A = 1.5·(2/3)·Pc − 30,000
    # = Pc − 30,000 = 4,615.38 (all to hq); after: hq = Pc, ML = Pc/((2/3)·Pc) = 1.5,
    # Pc' = Pc/(1.3·2/3) = 39,940.83 above the high 36,000
    bars = [flat(30_000.0), flat(30_000.0), (30_000.0, 36_000.0, 30_000.0, 33_000.0), flat(33_000.0)]
    r = spot(bars, [-2.0] * 4, reserve=10_000.0)
    pc = 45_000.0 / 1.3
    (row,) = r["transfers"]
    assert row["bar"] == 2 and row["price"] == rel(pc) and row["reason"] == "top-up"
    assert row["amount"] == rel(pc - 30_000.0) and not row["capped"]
    assert row["margin_level_before"] == rel(1.3) and row["margin_level_after"] == rel(1.5)
    assert r["liquidations"] == []
    # quote held pc, base owed 2/3: equity at the close 33,000 = pc − 22,000
    assert r["debt"][2] == rel(22_000.0) and r["equity"][2] == rel(pc - 22_000.0)
    assert r["reserve"][-1] == rel(10_000.0 - (pc - 30_000.0))


def test_spot_auto_repay_off_money_stays_in_hq():
    # auto-repay off, long 1 BTC owing 20,000 (the buy's cap (M0·hq)/(M0·O − O) = 1 BTC, as with it on).
    # Bar 2: deposit 2,000 into hq (pq stays 20,000); Pc = (1.3·20,000 − 2,000)/1 = 24,000, reached by the low
    # 23,000: ml=M0 (default) T = X·D − A = 1.5·20,000 − (24,000 + 2,000) = 4,000 into hq (hq 6,000), ML 1.5;
    # Pc' = 26,000 − 6,000 = 20,000 not reached.  Bar 3 opens at 25,000: a withdrawal of 3,000 with the loan
    # running is capped to min(hq, A − M0·D) = min(6,000, 31,000 − 30,000) = 1,000, leaving ML 1.5
    bars = [flat(30_000.0), flat(30_000.0), (30_000.0, 30_000.0, 23_000.0, 25_000.0), flat(25_000.0)]
    flows = [(at(2), 2_000.0), (at(3), -3_000.0)]
    r = spot(bars, LONG3[:4], auto_repay=False, reserve=5_000.0, transfers=flows)
    rows = [(x["bar"], x["reason"], x["price"], x["amount"], x["requested"], x["capped"]) for x in r["transfers"]]
    assert rows == [(2, "scheduled", 30_000.0, 2_000.0, 2_000.0, False),
                    (2, "top-up", rel(24_000.0), rel(4_000.0), rel(4_000.0), False),
                    (3, "withdrawal", 25_000.0, rel(-1_000.0), -3_000.0, True)]
    assert [x["margin_level_after"] for x in r["transfers"]] == [rel(32_000.0 / 20_000.0), rel(1.5), rel(1.5)]
    assert r["transfers"][1]["margin_level_before"] == rel(1.3)
    assert r["liquidations"] == []
    # the margin call: ML at the low with the deposit (step 0a comes before): 25,000/20,000
    assert [(m["bar"], m["margin_level"]) for m in r["margin_calls"]] == [(2, rel(1.25))]
    assert r["debt"] == [0.0, rel(20_000.0), rel(20_000.0), rel(20_000.0)]
    assert r["equity"] == [10_000.0, rel(10_000.0), rel(25_000.0 + 6_000.0 - 20_000.0),
                           rel(25_000.0 + 5_000.0 - 20_000.0)]
    assert r["reserve"] == [5_000.0, 5_000.0, rel(1_000.0), rel(1_000.0)]
    assert r["net_transfers"] == [0.0, 0.0, 2_000.0, rel(1_000.0)]
    profit, own = books(r, 10_000.0, 5_000.0)
    # 10,000 + 1,000 − 10,000 − 5,000 − 1,000 = −5,000, the price move 1·(25,000 − 30,000)
    assert profit == rel(-5_000.0) and own == rel(-5_000.0)

    # the same with auto-repay on: the deposit repays (pq 18,000); Pc = 1.3·18,000 = 23,400, reached by
    # 23,000: T = 18,000 − 23,400/1.5 = 2,400 repays too (pq 15,600; Pc' = 20,280 not reached); the
    # withdrawal finds hq = 0: nothing leaves
    r = spot(bars, LONG3[:4], reserve=5_000.0, transfers=flows)
    rows = [(x["bar"], x["reason"], x["price"], x["amount"], x["requested"], x["capped"]) for x in r["transfers"]]
    assert rows == [(2, "scheduled", 30_000.0, 2_000.0, 2_000.0, False),
                    (2, "top-up", rel(23_400.0), rel(2_400.0), rel(2_400.0), False),
                    (3, "withdrawal", 25_000.0, 0.0, -3_000.0, True)]
    assert [(m["bar"], m["margin_level"]) for m in r["margin_calls"]] == [(2, rel(23_000.0 / 18_000.0))]
    assert r["debt"] == [0.0, rel(20_000.0), rel(15_600.0), rel(15_600.0)]
    assert r["equity"][2:] == [rel(25_000.0 - 15_600.0)] * 2
    assert r["reserve"][-1] == rel(2_600.0) and r["net_transfers"][-1] == 2_000.0
    profit, own = books(r, 10_000.0, 5_000.0)
    # 9,400 + 2,600 − 10,000 − 5,000 − 2,000 = −5,000
    assert profit == rel(-5_000.0) and own == rel(-5_000.0)


def test_spot_top_up_at_the_open_prevents_a_gap_liquidation():
    # bar 2 opens at 21,500, below P_liq 22,000: ML(O) = 21,500/20,000 = 1.075 <= 1.3, a top-up at the open
    # first (step 0b): T = D − A/M0 = 20,000 − 21,500/1.5 = 5,666.67, only 5,000 in reserve (capped); it
    # repays: pq = 15,000, ML = 21,500/15,000 = 1.4333 > 1.1: no gap liquidation.  Then R = 0 (P_liq now
    # 1.1·15,000 = 16,500)
    bars = [flat(30_000.0), flat(30_000.0), (21_500.0, 22_000.0, 21_200.0, 21_800.0), flat(21_800.0)]
    plain = spot(bars, LONG3[:4])
    assert [(e["bar"], e["trigger_price"]) for e in plain["liquidations"]] == [(2, 21_500.0)]
    r = spot(bars, LONG3[:4], reserve=5_000.0)
    assert r["liquidations"] == []
    (row,) = r["transfers"]
    assert row["price"] == 21_500.0 and row["requested"] == rel(20_000.0 - 21_500.0 / 1.5)
    assert row["amount"] == 5_000.0 and row["capped"] and row["reserve_after"] == 0.0
    assert row["margin_level_before"] == rel(1.075) and row["margin_level_after"] == rel(21_500.0 / 15_000.0)
    assert r["debt"][2] == rel(15_000.0)
    assert r["equity"][2] == rel(21_800.0 - 15_000.0)


def test_spot_top_up_amount_three_times_in_a_falling_bar():
    # amount=1,000, each repaying: at Pc1 = 1.3·20,000 = 26,000 (pq 19,000), Pc2 = 1.3·19,000 = 24,700
    # (pq 18,000), Pc3 = 1.3·18,000 = 23,400 (pq 17,000), then Pc4 = 1.3·17,000 = 22,100 below the low
    # 23,000: three top-ups
    bars = [flat(30_000.0), flat(30_000.0), (30_000.0, 30_000.0, 23_000.0, 26_000.0), flat(26_000.0)]
    r = spot(bars, LONG3[:4], reserve=10_000.0, top_up=("amount", 1_000.0))
    rows = r["transfers"]
    assert [(x["bar"], x["price"], x["amount"], x["reserve_after"]) for x in rows] == [
        (2, rel(26_000.0), 1_000.0, 9_000.0), (2, rel(24_700.0), 1_000.0, 8_000.0),
        (2, rel(23_400.0), 1_000.0, 7_000.0)]
    assert [x["margin_level_before"] for x in rows] == [rel(1.3)] * 3
    # ML after = Pc_k / (dq − 1,000)
    assert [x["margin_level_after"] for x in rows] == [
        rel(26_000.0 / 19_000.0), rel(24_700.0 / 18_000.0), rel(23_400.0 / 17_000.0)]
    assert not any(x["capped"] for x in rows)
    assert r["reserve"][-1] == 7_000.0 and r["liquidations"] == []
    assert r["debt"][2] == rel(17_000.0)
    assert r["equity"][2] == rel(26_000.0 - 17_000.0)


def test_spot_reserve_too_small_liquidates_at_the_topped_up_price():
    # reserve 1,000 < T = 20,000 − 26,000/1.5 = 2,666.67 at Pc = 26,000: it repays, pq = 19,000, hq = 0,
    # P_liq = 1.1·19,000/1 = 20,900, which the low 20,000 reaches (without the reserve: 22,000)
    bars = [flat(30_000.0), flat(30_000.0), (30_000.0, 30_000.0, 20_000.0, 21_000.0), flat(21_000.0)]
    r = spot(bars, LONG3[:4], reserve=1_000.0)
    (row,) = r["transfers"]
    assert row["price"] == rel(26_000.0) and row["amount"] == 1_000.0
    assert row["requested"] == rel(8_000.0 / 3.0) and row["capped"] and row["reserve_after"] == 0.0
    assert row["margin_level_after"] == rel(26_000.0 / 19_000.0)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 2 and liq["trigger_price"] == rel(20_900.0)
    assert liq["margin_level"] == rel(1.1)                  # 20,900/19,000
    # MC "Liquidation", long-like: F = 2 %·A(20,900) = 418; s = (M·(Dq + F) − (B·Pf + Q))/(Pf·(M − 1))
    # = (1.5·19,418 − 20,900)/(20,900·0.5) = 8,227/10,450 = 0.78727
    fee = 0.02 * 20_900.0
    s = (1.5 * (19_000.0 + fee) - 20_900.0) / (20_900.0 * 0.5)
    assert s == rel(8_227.0 / 10_450.0)
    assert liq["fee"] == rel(fee) and liq["quantity"] == rel(s)
    assert liq["equity_before"] == rel(1_900.0)
    # after: hb = 1 − s, the cash s·20,900 − F = 16,036 repays the quote debt: pq = 2,964
    # (ML at 20,900 is back to 1.5, at the low 20,000 it is 1.435 > 1.1: no second liquidation)
    pq = 19_000.0 - (s * 20_900.0 - fee)
    assert pq == rel(2_964.0)
    assert r["debt"][2] == rel(pq)
    assert r["equity"][2] == rel((1.0 - s) * 21_000.0 - pq)
    plain = spot(bars, LONG3[:4])
    assert plain["liquidations"][0]["trigger_price"] == rel(22_000.0)


def test_spot_books():
    # capital 10,000, fee 0.1 %, reserve 3,000.  Bar 1 at 100: target 2.5 -> T = 250, q = 250/0.999,
    # paid q·100 = 25,025.025 (dq0 = 15,025.025 borrowed), the fee's value (q − 250)·100 = 25.025025...
    # Bar 2: deposit 1,000 repays: dq1 = dq0 − 1,000 = 14,025.025, hq 0.  Bar 3 falls to 70:
    # Pc = 1.3·dq1/250 = 72.9301; ml=M0: T = D − A/1.5 = dq1 − 1.3·dq1/1.5 = dq1·2/15 = 1,870.0033 (<= dq1,
    # < 3,000: not capped), dq2 = dq1·13/15 = 12,155.022; Pc' = 1.3·dq2/250 = 63.21, P_liq = 53.48 not
    # reached.  Bar 4 at 80: a withdrawal of 500 finds hq = 0 (the loan runs): nothing leaves (capped).
    # Last close 90.
    f = 0.001
    q = 250.0 / (1.0 - f)
    dq1 = q * 100.0 - 10_000.0 - 1_000.0
    bars = [flat(100.0), flat(100.0), flat(100.0), (100.0, 100.0, 70.0, 80.0), flat(80.0), flat(90.0)]
    r = spot(bars, [2.5] * 6, fee=f, reserve=3_000.0, transfers=[(at(2), 1_000.0), (at(4), -500.0)])
    assert r["orders"][0]["quantity"] == rel(q) and r["liquidations"] == []
    pc = 1.3 * dq1 / 250.0
    t = dq1 * 2.0 / 15.0
    rows = [(x["bar"], x["reason"], x["amount"], x["capped"]) for x in r["transfers"]]
    assert rows == [(2, "scheduled", 1_000.0, False), (3, "top-up", rel(t), False), (4, "withdrawal", 0.0, True)]
    assert r["transfers"][1]["price"] == rel(pc) and r["transfers"][1]["requested"] == rel(t)
    assert r["transfers"][1]["margin_level_after"] == rel(1.5)
    assert r["reserve"] == [3_000.0, 3_000.0, 3_000.0, rel(3_000.0 - t), rel(3_000.0 - t), rel(3_000.0 - t)]
    assert r["net_transfers"] == [0.0, 0.0, 1_000.0, 1_000.0, 1_000.0, 1_000.0]
    dq2 = dq1 * 13.0 / 15.0
    assert r["debt"][-1] == rel(dq2)
    final = 250.0 * 90.0 - dq2
    assert r["equity"][-1] == rel(final)
    profit, own = books(r, 10_000.0, 3_000.0)
    by_hand = -(q - 250.0) * 100.0 + 250.0 * (90.0 - 100.0)   # the fee, then the price move
    assert profit == rel(by_hand) and own == rel(by_hand)
    assert profit == rel(final + (3_000.0 - t) - 10_000.0 - 3_000.0 - 1_000.0)


def test_spot_refuses_flows_with_stops():
    with pytest.raises(AssertionError):
        spot([flat(100.0)] * 2, [1.0] * 2, stop_loss=0.1, reserve=100.0)
    with pytest.raises(AssertionError):
        spot([flat(100.0)] * 2, [1.0] * 2, top_up=("ml", 1.2))    # X must be above the margin call 1.3


# ========================================================================== perps
PC_LONG = 9_000.0 / 99.5   # the margin-call price of N = 100 long at EP 100, WC 1,000 (tier 1)
LP_LONG = 9_000.0 / 99.6   # its liquidation price


def test_perp_no_flows_adds_empty_outputs():
    r = perp([flat(100.0)] * 3, [10.0] * 3)
    assert r["transfers"] == [] and r["reserve"] == [0.0] * 3 and r["net_transfers"] == [0.0] * 3


def test_perp_deposit_lowers_the_liquidation_price():
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 80.0, 85.0)]
    plain = perp(bars, [10.0] * 3)
    assert plain["liquidations"][0]["trigger_price"] == rel(LP_LONG)
    # a deposit of 500 into WC at bar 2's open: c = 1,500 − 10,000, LP = 8,500/99.6
    r = perp(bars, [10.0] * 3, transfers=[(D + H + 1, 500.0)])
    (row,) = r["transfers"]
    assert row["bar"] == 2 and row["amount"] == 500.0 and row["price"] == 100.0 and row["reason"] == "scheduled"
    # health at O: MB 1,000 (1,500 after) over MM = 100·100·0.4 % = 40
    assert row["margin_level_before"] == rel(25.0) and row["margin_level_after"] == rel(37.5)
    (liq,) = r["liquidations"]
    assert liq["trigger_price"] == rel(8_500.0 / 99.6) and liq["margin_level"] == rel(1.0)
    assert r["net_transfers"] == [0.0, 0.0, 500.0]


def test_perp_withdrawal_caps():
    # cross, target 5: N = 50 at 100, WC 1,000; at O = 110, E = 1,500, |N|·O/L = 550:
    # min(E − |N|·O/L, WC) = min(950, 1,000) = 950 leaves
    bars = [flat(100.0), flat(100.0), flat(110.0)]
    r = perp(bars, [5.0] * 3, transfers=[(D + 2 * H, -2_000.0)])
    (row,) = r["transfers"]
    assert row["amount"] == rel(-950.0) and row["requested"] == -2_000.0 and row["capped"]
    assert row["reason"] == "withdrawal" and row["price"] == 110.0
    mm = 50 * 110.0 * 0.004
    assert row["margin_level_before"] == rel(1_500.0 / mm) and row["margin_level_after"] == rel(550.0 / mm)
    assert r["equity"][-1] == rel(550.0)
    # isolated: only the cross wallet WC = 1,000 − 50·100/10 = 500 leaves; the position's health is unchanged
    r = perp(bars, [5.0] * 3, isolated=True, transfers=[(D + 2 * H, -2_000.0)])
    (row,) = r["transfers"]
    assert row["amount"] == rel(-500.0) and row["capped"]
    assert row["margin_level_before"] == rel(row["margin_level_after"])
    assert row["margin_level_before"] == rel((500.0 + 500.0) / mm)
    assert r["equity"][-1] == rel(1_000.0)          # WI 500 + uPnL 500


def test_perp_cross_withdrawal_keeps_unrealised_profit():
    # cross, target 5: N = 50 at 100, WC 1,000.  At O = 130 the profit is 50·30 = 1,500: E = 2,500,
    # |N|·O/L = 650, E − 650 = 1,850 but the wallet WC = 1,000 is the cap: 1,000 leaves (the unrealised
    # profit does not).  After: WC 0, MB = 1,500, MM = 50·130·0.4 % = 26
    bars = [flat(100.0), flat(100.0), flat(130.0)]
    r = perp(bars, [5.0] * 3, transfers=[(D + 2 * H, -2_000.0)])
    (row,) = r["transfers"]
    assert row["amount"] == rel(-1_000.0) and row["requested"] == -2_000.0 and row["capped"]
    assert row["margin_level_before"] == rel(2_500.0 / 26.0) and row["margin_level_after"] == rel(1_500.0 / 26.0)
    assert r["equity"][-1] == rel(1_500.0) and r["net_transfers"][-1] == rel(-1_000.0)
    # asking 900 (below both caps): not capped
    r = perp(bars, [5.0] * 3, transfers=[(D + 2 * H, -900.0)])
    (row,) = r["transfers"]
    assert row["amount"] == -900.0 and not row["capped"] and r["equity"][-1] == rel(1_600.0)
    # at a loss, O = 85: E = 1,000 − 750 = 250 < |N|·O/L = 425: nothing leaves
    r = perp([flat(100.0), flat(100.0), flat(85.0)], [5.0] * 3, transfers=[(D + 2 * H, -100.0)])
    (row,) = r["transfers"]
    assert row["amount"] == 0.0 and row["capped"] and r["equity"][-1] == rel(250.0)


@pytest.mark.parametrize("isolated", [False, True])
def test_perp_top_up_to_ml_at_the_margin_call_price(isolated):
    # long N = 100 at 100 with MB = 1,000 + 100·(P − 100) (cross: capital 1,000; isolated: capital 2,000,
    # WI = 1,000).  Pc = 9,000/99.5 = 90.4523; MM(Pc) = 0.4·Pc; ml=2: T = 2·MM − 1.25·MM = 0.3·Pc = 27.14.
    # After: Pc' = (9,000 − T)/99.5 = 90.1795, below the low 90.3
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 90.3, 95.0), flat(95.0)]
    capital = 2_000.0 if isolated else 1_000.0
    r = perp(bars, [10.0 if not isolated else 5.0] * 4, capital=capital, isolated=isolated, reserve=100.0,
             top_up=("ml", 2.0))
    (row,) = r["transfers"]
    t = 0.3 * PC_LONG
    assert row["bar"] == 2 and row["price"] == rel(PC_LONG) and row["reason"] == "top-up"
    assert row["amount"] == rel(t) and row["requested"] == rel(t) and not row["capped"]
    assert row["margin_level_before"] == rel(1.25) and row["margin_level_after"] == rel(2.0)
    assert row["reserve_after"] == rel(100.0 - t)
    assert r["reserve"] == [100.0, 100.0, rel(100.0 - t), rel(100.0 - t)]
    assert r["net_transfers"] == [0.0] * 4
    assert r["equity"][2] == rel(capital + t + 100 * (95.0 - 100.0))
    assert r["liquidations"] == []
    assert r["n_margin_calls"] == 1                  # taken before the top-ups


@pytest.mark.parametrize("isolated", [False, True])
def test_perp_top_up_to_the_initial_margin_by_default(isolated):
    # no --top-up rule: at Pc = 9,000/99.5 = 90.4523, MB = 1.25·MM = 0.5·Pc and the initial margin is
    # |N|·Pc/L = 10·Pc, so T = 9.5·Pc = 859.30 (cross into WC, isolated into WI); health after
    # 10·Pc/(0.4·Pc) = 25 = 1/(L·mmr).  After: Pc' = (9,000 − T)/99.5 = 81.82, far below the low 90.3
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 90.3, 95.0), flat(95.0)]
    capital = 2_000.0 if isolated else 1_000.0
    targets = [10.0 if not isolated else 5.0] * 4
    r = perp(bars, targets, capital=capital, isolated=isolated, reserve=1_000.0)
    t = 9.5 * PC_LONG
    assert t == rel(859.2964824120603)
    (row,) = r["transfers"]
    assert row["bar"] == 2 and row["price"] == rel(PC_LONG) and row["reason"] == "top-up"
    assert row["amount"] == rel(t) and row["requested"] == rel(t) and not row["capped"]
    assert row["margin_level_before"] == rel(1.25) and row["margin_level_after"] == rel(25.0)
    assert r["reserve"] == [1_000.0, 1_000.0, rel(1_000.0 - t), rel(1_000.0 - t)]
    assert r["equity"][2] == rel(capital + t + 100 * (95.0 - 100.0))
    assert r["liquidations"] == [] and r["n_margin_calls"] == 1
    # the same as ("initial", 0.0) given
    again = perp(bars, targets, capital=capital, isolated=isolated, reserve=1_000.0, top_up=("initial", 0.0))
    assert again["transfers"] == r["transfers"]


def test_perp_top_up_short_rising():
    # short N = −100 at 100, WC 1,000: MB(P) = 11,000 − 100·P, c = 11,000; Pc = 11,000/(1.25·0.4 + 100)
    # = 109.4527, the high 109.6 reaches it.  Default: MB(Pc) = 0.5·Pc, T = 100·Pc/10 − 0.5·Pc = 9.5·Pc
    # = 1,039.80, health 25; the next Pc = (11,000 + T)/100.5 = 119.80 is out of reach
    bars = [flat(100.0), flat(100.0), (100.0, 109.6, 100.0, 105.0)]
    r = perp(bars, [-10.0] * 3, reserve=2_000.0)
    (row,) = r["transfers"]
    pc = 11_000.0 / 100.5
    assert row["price"] == rel(pc) and row["amount"] == rel(9.5 * pc) and not row["capped"]
    assert row["margin_level_before"] == rel(1.25) and row["margin_level_after"] == rel(25.0)
    assert (11_000.0 + 9.5 * pc) / 100.5 > 109.6
    assert r["equity"][-1] == rel(1_000.0 + 9.5 * pc - 100 * (105.0 - 100.0))
    # ml=2: 0.75·MM = 0.3·Pc, MM = 100·Pc·0.4 %
    r = perp(bars, [-10.0] * 3, reserve=100.0, top_up=("ml", 2.0))
    (row,) = r["transfers"]
    assert row["price"] == rel(pc) and row["amount"] == rel(0.3 * pc)
    assert (11_000.0 + 0.3 * pc) / 100.5 > 109.6                         # the next Pc is out of reach


def test_perp_top_up_at_the_mark_open_prevents_a_gap_liquidation():
    # the bar opens at 90, past Pc (and LP = 90.3614): MB(90) = 0, MM = 36, h = 0; the top-up comes first.
    # Default: T = |N|·O/L − MB = 100·90/10 − 0 = 900 from a reserve of 1,000, h = 900/36 = 25: no gap
    # liquidation; then Pc = (9,000 − 900)/99.5 = 81.41 < the low 89.8
    bars = [flat(100.0), flat(100.0), (90.0, 91.0, 89.8, 90.5)]
    plain = perp(bars, [10.0] * 3)
    assert plain["liquidations"][0]["trigger_price"] == 90.0
    r = perp(bars, [10.0] * 3, reserve=1_000.0)
    (row,) = r["transfers"]
    assert row["price"] == 90.0 and row["amount"] == rel(900.0) and not row["capped"]
    assert row["margin_level_before"] == pytest.approx(0.0, abs=1e-12) and row["margin_level_after"] == rel(25.0)
    assert r["liquidations"] == [] and r["reserve"][-1] == rel(100.0)
    assert r["equity"][-1] == rel(900.0 + 100 * 0.5)
    # ml=2: T = 2·36 − 0 = 72, h = 2; then Pc = (9,000 − 72)/99.5 = 89.7286 < the low 89.8
    r = perp(bars, [10.0] * 3, reserve=100.0, top_up=("ml", 2.0))
    (row,) = r["transfers"]
    assert row["price"] == 90.0 and row["amount"] == rel(72.0) and row["margin_level_after"] == rel(2.0)
    assert r["liquidations"] == []
    assert r["equity"][-1] == rel(72.0 + 100 * 0.5)


def test_perp_top_up_amount_twice_in_a_falling_bar():
    # amount=10: Pc1 = 9,000/99.5, Pc2 = 8,990/99.5 = 90.3518 >= the low 90.3, Pc3 = 8,980/99.5 = 90.2513 < it
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 90.3, 95.0)]
    r = perp(bars, [10.0] * 3, reserve=100.0, top_up=("amount", 10.0))
    rows = r["transfers"]
    assert [(x["price"], x["amount"], x["reserve_after"]) for x in rows] == [
        (rel(9_000.0 / 99.5), 10.0, 90.0), (rel(8_990.0 / 99.5), 10.0, 80.0)]
    assert [x["margin_level_before"] for x in rows] == [rel(1.25), rel(1.25)]
    assert r["liquidations"] == [] and r["reserve"][-1] == 80.0


@pytest.mark.parametrize("isolated", [False, True])
def test_perp_reserve_too_small_liquidates_at_the_topped_up_price(isolated):
    # reserve 10 < T = 9.5·Pc = 859.30 (the default, initial margin): the position's margin grows by 10
    # (cross: WC; isolated: WI, the capital's other 1,000 staying in WC),
    # LP = (1,010 − 10,000)/(0.4 − 100) = 8,990/99.6 = 90.26, reached by the low 85
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 85.0, 86.0)]
    capital = 2_000.0 if isolated else 1_000.0
    r = perp(bars, [10.0 if not isolated else 5.0] * 3, capital=capital, isolated=isolated, reserve=10.0)
    (row,) = r["transfers"]
    assert row["price"] == rel(PC_LONG) and row["amount"] == 10.0 and row["capped"]
    assert row["requested"] == rel(9.5 * PC_LONG) and row["reserve_after"] == 0.0
    assert row["margin_level_after"] == rel((0.5 * PC_LONG + 10.0) / (0.4 * PC_LONG))
    (liq,) = r["liquidations"]
    lp = 8_990.0 / 99.6
    assert liq["trigger_price"] == rel(lp) and liq["margin_level"] == rel(1.0)
    # the clearance fee 1.25 %·100·LP exceeds MB(LP) = MM(LP) = 0.4·LP: the margin (with the top-up) is lost
    assert liq["fee"] == rel(0.4 * lp)
    assert r["final_equity"] == (1_000.0 if isolated else 0.0)


def test_perp_books():
    # cross 10x, fee 0.05 %, reserve 50 (amount=50).  Bar 1: 50 units at 100, fee 2.5 (WC 997.5).
    # Bar 2 at 110: withdrawal 100 (cap min(1,497.5 − 550, WC 997.5) = 947.5).  Bar 3 at 110: deposit 200
    # (WC 1,097.5); the low 78 reaches Pc = (5,000 − 1,097.5)/(50 − 1.25·50·0.4 %) = 78.442: a top-up of 50;
    # LP = 3,852.5/49.8 = 77.36 is not reached.  Last close 90.
    bars = [flat(100.0), flat(100.0), flat(110.0), (110.0, 110.0, 78.0, 80.0), flat(90.0)]
    r = perp(bars, [5.0] * 5, fee=0.0005, reserve=50.0, top_up=("amount", 50.0),
             transfers=[(D + 2 * H, -100.0), (D + 3 * H, 200.0)])
    rows = [(x["bar"], x["reason"], x["amount"], x["capped"]) for x in r["transfers"]]
    assert rows == [(2, "withdrawal", -100.0, False), (3, "scheduled", 200.0, False), (3, "top-up", 50.0, False)]
    assert r["transfers"][2]["price"] == rel(3_902.5 / 49.75)
    assert r["liquidations"] == []
    assert r["net_transfers"] == [0.0, 0.0, -100.0, 100.0, 100.0]
    assert r["reserve"] == [50.0, 50.0, 50.0, 0.0, 0.0]
    assert r["final_equity"] == rel(997.5 - 100.0 + 200.0 + 50.0 + 50 * (90.0 - 100.0))
    profit, own = books(r, 1_000.0, 50.0)
    by_hand = -2.5 + 50 * (90.0 - 100.0)      # the fee, then the price move
    assert profit == rel(by_hand) and own == rel(by_hand)


def test_perp_books_default_top_up():
    # cross 10x, no fee, reserve 2,000, no rule.  Bar 1: N = 100 at 100 (WC 1,000).  Bar 2 falls to 85: at
    # Pc = 9,000/99.5 a top-up of 9.5·Pc = 859.30 (WC 1,859.30; LP = 8,140.70/99.6 = 81.73 not reached).
    # Bar 3 at 120 (uPnL 2,000): a withdrawal of 5,000 is capped to min(E − |N|·O/L, WC)
    # = min(3,859.30 − 1,200, 1,859.30) = 1,859.30 (the wallet).  Last close 120: equity = 2,000
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 85.0, 90.0), flat(120.0)]
    r = perp(bars, [10.0] * 4, reserve=2_000.0, transfers=[(D + 3 * H, -5_000.0)])
    t = 9.5 * PC_LONG
    rows = [(x["bar"], x["reason"], x["amount"], x["capped"]) for x in r["transfers"]]
    assert rows == [(2, "top-up", rel(t), False), (3, "withdrawal", rel(-(1_000.0 + t)), True)]
    assert r["liquidations"] == []
    assert r["reserve"][-1] == rel(2_000.0 - t) and r["net_transfers"][-1] == rel(-(1_000.0 + t))
    assert r["final_equity"] == rel(2_000.0)
    profit, own = books(r, 1_000.0, 2_000.0)
    # 2,000 + (2,000 − T) − 1,000 − 2,000 + (1,000 + T) = 2,000, the price move 100·(120 − 100)
    assert profit == rel(2_000.0) and own == rel(2_000.0)


# ============================================================== a safety buffer (keep_ml)
# MC Transfers, "A safety buffer": a deleverage order where the level reaches X (the buffer price Pk, the
# liquidation-price formula with X for the level), at the (mark) open (0b) and on the path (5', in the
# same loop as the top-ups), bringing the level at Pk back to the initial level.  Spot: capital 10,000,
# target 2.5 at 100 buys B = 250 BTC owing Dq = 15,000 (cross-3x: M0 = 1.5, Mc = 1.3, MLR = 1.1):
# P_liq = 1.1·15,000/250 = 66, Pc = 1.3·15,000/250 = 78.
LONG25 = [2.5] * 4


def delev(r):
    return [(o["bar"], o["side"], o["quantity"], o["price"], o["fee"]) for o in r["orders"]
            if o["kind"] == "deleverage"]


def test_spot_keep_ml_long_deleverages_twice_in_a_falling_bar():
    # X = 1.25: Pk = 1.25·15,000/250 = 75.  s = (M0·Dq − B·Pk)/(M0·Pf·(1−f) − Pk) with f = 0, Pf = Pk:
    # (22,500 − 18,750)/(1.5·75 − 75) = 3,750/37.5 = 100; the proceeds 7,500 repay: B = 150, Dq = 7,500,
    # ML(75) = 11,250/7,500 = 1.5.  The bar goes on down to 60: Pk' = 1.25·7,500/150 = 62.5,
    # s' = (11,250 − 9,375)/(0.5·62.5) = 60: B = 90, Dq = 3,750, ML(62.5) = 5,625/3,750 = 1.5;
    # Pk'' = 1.25·3,750/90 = 52.08 is below the low.  P_liq = 1.1·3,750/90 = 45.83: no liquidation
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 60.0, 70.0), flat(70.0)]
    r = spot(bars, LONG25, keep_ml=1.25)
    assert delev(r) == [(2, "sell", rel(100.0), rel(75.0), 0.0), (2, "sell", rel(60.0), rel(62.5), 0.0)]
    assert all(not o["capped"] for o in r["orders"])
    assert (250.0 - 100.0) * 75.0 / (15_000.0 - 100.0 * 75.0) == rel(1.5)
    assert (150.0 - 60.0) * 62.5 / (7_500.0 - 60.0 * 62.5) == rel(1.5)
    assert r["liquidations"] == []
    assert r["position"][2:] == [rel(90.0)] * 2 and r["debt"][2:] == [rel(3_750.0)] * 2
    assert r["equity"][2] == rel(90.0 * 70.0 - 3_750.0)
    assert r["margin_level"][2] == rel(90.0 * 70.0 / 3_750.0)
    assert r["fees_paid"][-1] == 0.0
    # the margin call keeps the state before 5': ML at the low 250·60/15,000 = 1.0
    assert [(m["bar"], m["margin_level"]) for m in r["margin_calls"]] == [(2, rel(1.0))]
    assert r["transfers"] == [] and r["reserve"] == [0.0] * 4

    # keep_ml prevents the liquidation that happens without it on the same bars: at 66, MLR·Dq/B
    plain = spot(bars, LONG25)
    assert [(e["bar"], e["trigger_price"]) for e in plain["liquidations"]] == [(2, rel(66.0))]
    assert delev(plain) == []


def test_spot_keep_ml_with_fee_and_slippage():
    # fee 0.1 %, slippage 0.2 %: bar 1 buys q = 250/0.999 at 100.2 (the fee in base), Dq = q·100.2 − 10,000.
    # Pk = 1.25·Dq/250; the sale fills at Pf = Pk·0.998, s = (1.5·Dq − 250·Pk)/(1.5·Pf·0.999 − Pk), its
    # proceeds s·Pf·0.999 repay; the fee's value s·Pf·0.001.  ML at Pk after is 1.5, so the next
    # Pk' = Pk·1.25/1.5 = 0.8333·Pk ≈ 62.8 is below the low 70: one deleverage
    f, slip = 0.001, 0.002
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 70.0, 72.0), flat(72.0)]
    ts = [at(k) for k in range(4)]
    o_, h_, l_, c_ = (list(col) for col in zip(*bars))
    r = simulate(ts, o_, h_, l_, c_, LONG25, profile="cross-3x", capital=10_000.0, fee=f, slippage=slip,
                 rate_base_daily=0.0, rate_quote_daily=0.0, keep_ml=1.25)
    dq = 250.0 / (1.0 - f) * 100.0 * (1.0 + slip) - 10_000.0
    pk = 1.25 * dq / 250.0
    pf = pk * (1.0 - slip)
    s = (1.5 * dq - 250.0 * pk) / (1.5 * pf * (1.0 - f) - pk)
    assert delev(r) == [(2, "sell", rel(s), rel(pf), rel(s * pf * f))]
    dq1 = dq - s * pf * (1.0 - f)
    assert (250.0 - s) * pk / dq1 == rel(1.5)                     # the level at Pk is back at M0
    assert 1.25 * dq1 / (250.0 - s) == rel(pk * 1.25 / 1.5) and pk * 1.25 / 1.5 < 70.0
    assert r["position"][2] == rel(250.0 - s) and r["debt"][2] == rel(dq1)
    assert r["fees_paid"][-1] == rel((250.0 / (1.0 - f)) * f * 100.0 * (1.0 + slip) + s * pf * f)
    assert r["liquidations"] == []


def test_spot_keep_ml_at_the_open():
    # bar 2 opens at 70 (above P_liq 66, below Pk 75): ML(70) = 17,500/15,000 = 1.1667 <= 1.25, step 0b
    # deleverages there: s = (22,500 − 250·70)/(0.5·70) = 5,000/35 = 142.857, proceeds 10,000: B = 107.143,
    # Dq = 5,000, ML(70) = 7,500/5,000 = 1.5; then Pk = 1.25·5,000/107.143 = 58.33 and P_liq = 51.33 are
    # below the low 65.  Without it: no gap liquidation (1.1667 > 1.1) but the low 65 reaches 66
    bars = [flat(100.0), flat(100.0), (70.0, 72.0, 65.0, 68.0), flat(68.0)]
    r = spot(bars, LONG25, keep_ml=1.25)
    s = 5_000.0 / 35.0
    assert delev(r) == [(2, "sell", rel(s), 70.0, 0.0)]
    assert (250.0 - s) * 70.0 / (15_000.0 - s * 70.0) == rel(1.5)
    assert r["liquidations"] == [] and r["debt"][2] == rel(5_000.0)
    assert r["equity"][2] == rel((250.0 - s) * 68.0 - 5_000.0)
    plain = spot(bars, LONG25)
    assert [(e["bar"], e["trigger_price"]) for e in plain["liquidations"]] == [(2, rel(66.0))]


def test_spot_keep_ml_short():
    # target −2 at 100: sell 200 BTC borrowed, hq = Q = 30,000, Db = 200; X = 1.25 (rising):
    # Pk = (X·0 − Q)/(0 − X·Db) = 30,000/250 = 120.  Buy q = (M0·Db·Pk − Q)/(M0·Pk·(1−f) − Pf)
    # = (36,000 − 30,000)/(180 − 120) = 100, paying 12,000: Q = 18,000, Db = 100, ML(120) = 18,000/12,000 = 1.5;
    # the next Pk = 18,000/125 = 144 is above the high 140 (P_liq 18,000/110 = 163.6).
    # Without it: P_liq = 30,000/(1.1·200) = 136.36, reached by the high 140
    bars = [flat(100.0), flat(100.0), (100.0, 140.0, 100.0, 125.0), flat(125.0)]
    r = spot(bars, [-2.0] * 4, keep_ml=1.25)
    assert r["orders"][0]["quantity"] == rel(200.0)
    assert delev(r) == [(2, "buy", rel(100.0), rel(120.0), 0.0)]
    assert 18_000.0 / (100.0 * 120.0) == rel(1.5)
    assert r["liquidations"] == []
    assert r["position"][2] == rel(-100.0) and r["debt"][2] == rel(100.0 * 125.0)
    assert r["equity"][2] == rel(18_000.0 - 12_500.0)
    plain = spot(bars, [-2.0] * 4)
    assert [(e["bar"], e["trigger_price"]) for e in plain["liquidations"]] == [(2, rel(30_000.0 / 220.0))]


def test_spot_keep_ml_buy_back_cut_to_the_quote_is_liquidated_at_that_open():
    # MC step 5, a short-like P_liq <= 0: BTC at 120 %/hour, flat at 100, target −2: the sale is capped where
    # ML = 1.5 with its borrow charge, q = 10,000/(1.5·2.2·100 − 100), Q = 10,000 + 100·q, Db = 2.2·q;
    # bar 2's charge makes Db = 3.4·q (ML 0.97): the buffer (1.2) at the open buys back Q/100 (cut to the
    # quote held), leaving Db − Q/100 owed and nothing held (ML 0 at every price): written off at that open
    ts = [at(k) for k in range(4)]
    r = simulate(ts, [100.0] * 4, [100.0] * 4, [100.0] * 4, [100.0] * 4, [-2.0] + [math.nan] * 3,
                 profile="cross-3x", capital=10_000.0, fee=0.0, slippage=0.0, rate_base_daily=24 * 1.2,
                 rate_quote_daily=0.0, round_interest=False, keep_ml=1.2)
    q = 10_000.0 / (1.5 * 2.2 * 100.0 - 100.0)
    left = 3.4 * q - (10_000.0 + 100.0 * q) / 100.0
    assert delev(r) == [(2, "buy", rel((10_000.0 + 100.0 * q) / 100.0), 100.0, 0.0)]
    assert [(e["bar"], e["trigger_price"], e["margin_level"]) for e in r["liquidations"]] == [(2, 100.0, 0.0)]
    assert r["liquidations"][0]["bad_debt"] == rel(100.0 * left)
    assert r["equity"][2:] == [0.0, 0.0]


def test_spot_keep_ml_and_top_ups_in_one_bar():
    # amount=500 from a reserve of 1,500, X = 1.25, the low 65.  The higher price first (a long):
    #   Pc = 1.3·15,000/250 = 78 > Pk = 75: top-up, Dq = 14,500;
    #   Pc = 1.3·14,500/250 = 75.4 > Pk = 72.5: top-up, Dq = 14,000;
    #   Pc = 72.8 > Pk = 70: top-up, Dq = 13,500, R = 0 (no Pc any more);
    #   Pk = 1.25·13,500/250 = 67.5: s = (20,250 − 16,875)/(0.5·67.5) = 100, Dq = 13,500 − 6,750 = 6,750,
    #   B = 150, ML(67.5) = 10,125/6,750 = 1.5; the next Pk = 56.25 is below the low
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 65.0, 70.0), flat(70.0)]
    r = spot(bars, LONG25, keep_ml=1.25, reserve=1_500.0, top_up=("amount", 500.0))
    assert [(x["bar"], x["reason"], x["price"], x["amount"]) for x in r["transfers"]] == [
        (2, "top-up", rel(78.0), 500.0), (2, "top-up", rel(75.4), 500.0), (2, "top-up", rel(72.8), 500.0)]
    assert delev(r) == [(2, "sell", rel(100.0), rel(67.5), 0.0)]
    assert 150.0 * 67.5 / 6_750.0 == rel(1.5)
    assert r["liquidations"] == [] and r["reserve"][-1] == 0.0
    assert r["debt"][2] == rel(6_750.0) and r["equity"][2] == rel(150.0 * 70.0 - 6_750.0)
    profit, own = books(r, 10_000.0, 1_500.0)
    # 3,750 + 0 − 10,000 − 1,500: the price path's loss (no fee)
    assert profit == rel(-7_750.0) and own == rel(-7_750.0)

    # a tie: X = Mc = 1.3, Pk = Pc = 78: the top-up first (default ml=M0: T = 15,000 − 250·78/1.5 = 2,000,
    # capped to the reserve 1,000): Dq = 14,000, R = 0; then Pk = 1.3·14,000/250 = 72.8:
    # s = (21,000 − 18,200)/(0.5·72.8) = 76.923, Dq = 14,000 − 5,600 = 8,400, ML(72.8) = 1.5;
    # the next Pk = 1.3·8,400/173.08 = 63.09 is below the low 65
    r = spot(bars, LONG25, keep_ml=1.3, reserve=1_000.0)
    (row,) = r["transfers"]
    assert row["price"] == rel(78.0) and row["amount"] == 1_000.0 and row["requested"] == rel(2_000.0)
    s = 2_800.0 / 36.4
    assert delev(r) == [(2, "sell", rel(s), rel(72.8), 0.0)]
    assert (250.0 - s) * 72.8 / 8_400.0 == rel(1.5)
    assert r["debt"][2] == rel(8_400.0) and r["liquidations"] == []


def test_spot_keep_ml_refusals():
    bars = [flat(100.0)] * 2
    for kw in ({"keep_ml": 1.1}, {"keep_ml": 1.5}, {"keep_ml": 1.25, "auto_repay": False},
               {"keep_ml": 1.25, "stop_loss": 0.1}):
        with pytest.raises(AssertionError):
            spot(bars, [1.0] * 2, **kw)


# Perps, cross 10x, fee 0.05 %: target 5 at 100 opens N = 50 at EP 100 paying 2.5 (WC 997.5);
# MB(P) = 997.5 + 50·(P − 100) = 50·P − 4,002.5, MM(P) = 0.2·P (tier 1); LP = 4,002.5/49.8 = 80.37.
# X = 10 (a health): Pk where MB = 10·MM = 2·P: Pk = 4,002.5/48 = 83.385.
def test_perp_keep_ml_cross_with_fee():
    # r = (|N|·Pk/L − MB(Pk))/(Pk/L − |Pf − Pk| − Pf·f) = (5·Pk − 2·Pk)/(0.1·Pk − 0.0005·Pk) = 3/0.0995
    # = 30.1508; realised r·(Pk − 100) and the fee r·Pk·0.05 % from WC; after it MB(Pk) = |N'|·Pk/L, the
    # health there 1/(L·mmr) = 25.  The next Pk (health 10) = (N'·100 − WC')/(0.96·N') = 78.17 and
    # LP = (N'·100 − WC')/(0.996·N') = 75.35 are below the low 80.  Without it: liquidated at 80.37
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 80.0, 85.0), flat(85.0)]
    r = perp(bars, [5.0] * 4, fee=0.0005, keep_ml=10.0)
    pk = 4_002.5 / 48.0
    q = 3.0 / 0.0995
    assert delev(r) == [(2, -1, rel(q), rel(pk), rel(q * pk * 0.0005))]
    n1 = 50.0 - q
    wc1 = 997.5 + q * (pk - 100.0) - q * pk * 0.0005
    assert wc1 + n1 * (pk - 100.0) == rel(n1 * pk / 10.0)           # MB(Pk) = the initial margin
    assert (wc1 + n1 * (pk - 100.0)) / (n1 * pk * 0.004) == rel(25.0)
    nxt = (n1 * 100.0 - wc1) / (0.96 * n1)
    assert nxt == pytest.approx(78.17, abs=0.01) and nxt < 80.0
    assert r["liquidations"] == []
    assert r["position"][2] == rel(n1) and r["equity"][2] == rel(wc1 + n1 * (85.0 - 100.0))
    assert r["fees_paid"] == rel(2.5 + q * pk * 0.0005)
    plain = perp(bars, [5.0] * 4, fee=0.0005)
    (liq,) = plain["liquidations"]
    assert liq["trigger_price"] == rel(4_002.5 / 49.8)
    # a level at or above the initial margin's (25) reduces nothing: X = 30 leaves the liquidation as it was
    r = perp(bars, [5.0] * 4, fee=0.0005, keep_ml=30.0)
    assert delev(r) == [] and r["liquidations"][0]["trigger_price"] == rel(4_002.5 / 49.8)


def test_perp_keep_ml_slippage_short_and_open():
    # slippage 0.1 %: the long's deleverage sells at Pf = Pk·0.999; r by the formula; health at Pk after 25
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 80.0, 85.0), flat(85.0)]
    r = perp(bars, [5.0] * 4, fee=0.0005, slippage=0.001, keep_ml=10.0)
    ep = 100.1
    wc0 = 1_000.0 - 50.0 * ep * 0.0005
    pk = (50.0 * ep - wc0) / (50.0 - 10.0 * 50.0 * 0.004)          # MB = 10·MM
    pf = pk * 0.999
    q = (50.0 * pk / 10.0 - (wc0 + 50.0 * (pk - ep))) / (pk / 10.0 - (pk - pf) - pf * 0.0005)
    assert delev(r) == [(2, -1, rel(q), rel(pf), rel(q * pf * 0.0005))]
    n1, wc1 = 50.0 - q, wc0 + q * (pf - ep) - q * pf * 0.0005
    assert (wc1 + n1 * (pk - ep)) / (n1 * pk * 0.004) == rel(25.0)
    assert r["liquidations"] == []

    # a short: target −5, N = −50, MB(P) = 997.5 − 50·(P − 100) = 5,997.5 − 50·P, MM = 0.2·P; Pk (MB = 2·P)
    # = 5,997.5/52 = 115.34 (LP = 5,997.5/50.2 = 119.47 < the high 120); the buy r = 3/0.0995 as for the long
    bars = [flat(100.0), flat(100.0), (100.0, 120.0, 100.0, 110.0), flat(110.0)]
    r = perp(bars, [-5.0] * 4, fee=0.0005, keep_ml=10.0)
    pk = 5_997.5 / 52.0
    q = 3.0 / 0.0995
    assert delev(r) == [(2, 1, rel(q), rel(pk), rel(q * pk * 0.0005))]
    n1, wc1 = 50.0 - q, 997.5 + q * (100.0 - pk) - q * pk * 0.0005
    assert (wc1 - n1 * (pk - 100.0)) / (n1 * pk * 0.004) == rel(25.0)
    assert (wc1 + n1 * 100.0) / (1.04 * n1) > 120.0                 # the next Pk is out of reach
    assert r["liquidations"] == [] and r["position"][2] == rel(-n1)
    assert perp(bars, [-5.0] * 4, fee=0.0005)["liquidations"][0]["trigger_price"] == rel(5_997.5 / 50.2)

    # at the open (0b): bar 2 opens at 82 (above LP 80.37, below Pk 83.385): h(82) = 97.5/16.4 = 5.95 <= 10,
    # r = (5·82 − 97.5)/(8.2 − 82·0.0005) = 312.5/8.159 = 38.30 at 82
    bars = [flat(100.0), flat(100.0), (82.0, 83.0, 80.0, 81.0), flat(81.0)]
    r = perp(bars, [5.0] * 4, fee=0.0005, keep_ml=10.0)
    q = 312.5 / 8.159
    assert delev(r) == [(2, -1, rel(q), 82.0, rel(q * 82.0 * 0.0005))]
    assert r["liquidations"] == []
    assert perp(bars, [5.0] * 4, fee=0.0005)["liquidations"][0]["trigger_price"] == rel(4_002.5 / 49.8)


def test_perp_keep_ml_and_top_up_in_one_bar():
    # The level k is at MB = k·0.2·P, P = 4,002.5/(50 − 0.2·k): a higher level has the higher price.
    # X = 2: Pk = 4,002.5/49.6 = 80.696 above Pc = 4,002.5/49.75 = 80.452 (reserve 100, amount=10): the
    # deleverage first, r = (5·Pk − 0.4·Pk)/(0.0995·Pk) = 46.23; after it the health at Pk is 25 and the
    # call price (|N'|·100 − WC')/(0.995·|N'|) = 73.0 is below the low 80.5: no top-up
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 80.5, 85.0), flat(85.0)]
    r = perp(bars, [5.0] * 4, fee=0.0005, keep_ml=2.0, reserve=100.0, top_up=("amount", 10.0))
    pk = 4_002.5 / 49.6
    q = (5.0 * pk - 0.4 * pk) / (0.1 * pk - 0.0005 * pk)
    assert delev(r) == [(2, -1, rel(q), rel(pk), rel(q * pk * 0.0005))]
    assert r["transfers"] == [] and r["liquidations"] == []
    # X = 1.1: Pk = 4,002.5/49.78 = 80.404 below Pc = 80.452: the top-up of 10 first (c = −3,992.5), then
    # Pc = 3,992.5/49.75 = 80.251 and Pk = 3,992.5/49.78 = 80.203 are both below the low 80.3: nothing more
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 80.3, 85.0), flat(85.0)]
    r = perp(bars, [5.0] * 4, fee=0.0005, keep_ml=1.1, reserve=100.0, top_up=("amount", 10.0))
    assert [(x["price"], x["amount"]) for x in r["transfers"]] == [(rel(4_002.5 / 49.75), 10.0)]
    assert delev(r) == [] and r["liquidations"] == []
    # the low 80.0: Pc 80.251 (above Pk 80.203) a second top-up (c = −3,982.5); Pc = 3,982.5/49.75 = 80.050
    # above Pk = 3,982.5/49.78 = 80.002, both reached: a third top-up (c = −3,972.5); then Pc = 79.849 and
    # Pk = 79.80 are below 80: three top-ups, no deleverage, no liquidation (LP = 3,972.5/49.8 = 79.77)
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 80.0, 85.0), flat(85.0)]
    r = perp(bars, [5.0] * 4, fee=0.0005, keep_ml=1.1, reserve=100.0, top_up=("amount", 10.0))
    assert [x["price"] for x in r["transfers"]] == [rel(4_002.5 / 49.75), rel(3_992.5 / 49.75),
                                                    rel(3_982.5 / 49.75)]
    assert delev(r) == [] and r["liquidations"] == []
    # reserve 20: two top-ups (c = −3,982.5, R = 0), then Pk = 3,982.5/49.78 = 80.002 is reached by the
    # low 80.0: a deleverage there, r = (5·Pk − 1.1·0.2·Pk)/(0.0995·Pk) = 48.04
    r = perp(bars, [5.0] * 4, fee=0.0005, keep_ml=1.1, reserve=20.0, top_up=("amount", 10.0))
    pk = 3_982.5 / 49.78
    assert len(r["transfers"]) == 2 and r["reserve"][-1] == 0.0
    q = (5.0 * pk - 1.1 * 0.2 * pk) / (0.1 * pk - 0.0005 * pk)
    assert delev(r) == [(2, -1, rel(q), rel(pk), rel(q * pk * 0.0005))]
    assert r["liquidations"] == []


def test_perp_keep_ml_refusals():
    bars = [flat(100.0)] * 2
    for kw in ({"keep_ml": 1.0}, {"keep_ml": 5.0, "isolated": True}):
        with pytest.raises(AssertionError):
            perp(bars, [5.0] * 2, **kw)


# ====================================================================== manual loans (spot)
# MC Transfers, "Manual loans": a strategy's borrow / repay amounts at bar t are done at the open of bar
# t+1 (step 0c: after the scheduled transfers 0a, before the top-up at the open 0b and the gap
# liquidation; repays first, base then quote, then borrows, base then quote), levels at the traded open O.
# A borrow b of an asset (value v per unit: O for base, 1 for quote; hourly rate r_a) is at most
# (A − M0·D)/(v·(M0·(1 + r_a) − 1)) and at most the room limit − principal under the profile's max
# borrow; what is taken is held and owed, with one hour's interest at once (rounded up to 1e-8).  A repay
# r: x = min(r, held, interest owed + principal), interest first.  Step 4 at an HH:00 open charges the
# least of the principal after 0c's repays, before step 3 and after it.  Cross-3x (M0 = 1.5), no fee.
NAN = math.nan
R_Q = 0.0024 / 24.0   # a quote rate of 0.24 %/day: 0.01 %/hour (the reference's own division)
R_B = 0.0048 / 24.0   # a base rate of 0.02 %/hour


def up8(x):
    """MC "Interest": a charge rounded up to 1e-8 (the 1e-6 absorbs float noise)."""
    return math.ceil(x * 1e8 - 1e-6) / 1e8


def plan(n, **at_bars):
    """One amount per bar, NaN but at the bars given: ``plan(4, b0=5.0)``."""
    out = [NAN] * n
    for k, v in at_bars.items():
        out[int(k[1:])] = v
    return out


def manual(bars, targets, ts=None, profile="cross-3x", capital=10_000.0, fee=0.0, rb=0.0, rq=0.0, **kw):
    """``bars``: (open, high, low, close); hourly from DAY0 (every open at HH:00) unless ``ts``."""
    ts = ts or [at(k) for k in range(len(bars))]
    o, h, lo, c = (list(col) for col in zip(*bars))
    return simulate(ts, o, h, lo, c, targets, profile=profile, capital=capital, fee=fee, slippage=0.0,
                    rate_base_daily=rb, rate_quote_daily=rq, **kw)


def loan_rows(r):
    return [(x["bar"], x["asset"], x["reason"], x["amount"], x["requested"], x["capped"]) for x in r["loans"]]


class TestManualLoans:
    def test_defaults_add_no_loans(self):
        r = manual([flat(30_000.0)] * 3, [3.0] * 3)
        assert r["loans"] == []
        assert r["orders"][0]["quantity"] == rel(1.0) and r["debt"][-1] == rel(20_000.0)

    def test_quote_borrow_whole_then_capped_at_m0(self):
        # bar 1's open (HH:00): borrow 1,234.56789 quote.  Cap (A − M0·D)/(M0·(1 + r) − 1) = 10,000/0.50015
        # = 19,994 (no debt yet): taken whole.  Charge 1,234.56789·0.0001 = 0.123456789 -> up 0.12345679.
        # hq = 11,234.56789, pq = 1,234.56789, iq = 0.12345679; step 4 at that open charges the least of the
        # principal after 0c's repays (0), ...: nothing (a loan taken at HH:00 pays only its borrow charge)
        n = 4
        b1 = 1_234.56789
        c1 = 0.12345679
        assert up8(b1 * R_Q) == c1
        r = manual([flat(100.0)] * n, [NAN] * n, rq=0.0024, borrow={"quote": plan(n, b0=b1, b1=1e6)})
        d1 = b1 + c1
        assert r["loans"][0] == {"bar": 1, "asset": "quote", "amount": b1, "requested": b1, "reason": "borrow",
                                 "price": 100.0, "margin_level_before": math.inf,
                                 "margin_level_after": rel((10_000.0 + b1) / d1), "capped": False}
        assert r["interest_paid"][1] == rel(c1)
        assert r["debt"][1] == rel(d1) and r["equity"][1] == rel(10_000.0 - c1)
        # bar 2's open: 1e6 asked.  Before step 4 (0c comes first) A = 11,234.56789, D = d1 = 1,234.69134679:
        # cap = (A − 1.5·D)/(1.5·1.0001 − 1) = 9,382.530869815/0.50015 = 18,759.43390945...; its charge
        # 1.8759433909... -> up 1.87594340; then step 4 charges the loan held across (least of 1,234.56789
        # after the repays, before step 3 and after it): 0.12345679 again
        a2 = 10_000.0 + b1
        cap = (a2 - 1.5 * d1) / (1.5 * (1.0 + R_Q) - 1.0)
        assert cap == pytest.approx(18_759.43390945716, rel=1e-12)
        assert cap == pytest.approx(9_382.530869815 / 0.50015, rel=1e-12)
        c2 = up8(cap * R_Q)
        assert c2 == 1.8759434
        row = r["loans"][1]
        assert (row["bar"], row["asset"], row["reason"], row["requested"], row["capped"]) == (
            2, "quote", "borrow", 1e6, True)
        assert row["amount"] == rel(cap)
        assert row["margin_level_before"] == rel(a2 / d1)
        # at the cap ML at O is M0 with the unrounded hour; rounded up it is a hair under (≤ 1e-8/D)
        assert row["margin_level_after"] == rel((a2 + cap) / (d1 + cap + c2))
        assert row["margin_level_after"] == pytest.approx(1.5, rel=1e-9)
        # interest so far: bar 1's borrow charge, bar 2's borrow charge and bar 2's boundary on b1
        assert r["interest_paid"][2] == rel(2 * c1 + c2)
        assert r["interest_paid"][2] == rel(2.12285698)
        assert r["debt"][2] == rel(b1 + cap + 2 * c1 + c2)
        assert r["equity"][2] == rel(10_000.0 - 2 * c1 - c2)
        assert r["interest_owed"][2] == rel(2 * c1 + c2)
        # bar 3: both loans held across its open: one charge on the asset's principal, rounded once
        assert r["interest_paid"][3] == rel(2 * c1 + c2 + up8((b1 + cap) * R_Q))
        # a loan is no transfer
        assert r["transfers"] == [] and r["net_transfers"] == [0.0] * n and r["orders"] == []

    def test_pro_profile_reports_its_margin_level(self):
        # cross-pro-10x: M0 = 10/9 (A/D), no interest: cap = 10,000/(10/9 − 1) = 90,000; A/D after
        # 100,000/90,000 = M0, reported ML_pro = (A/D − 1)/MMR = (1/9)/0.05 = 2.2222
        r = manual([flat(100.0)] * 3, [NAN] * 3, profile="cross-pro-10x", borrow={"quote": plan(3, b0=1e6)})
        (row,) = r["loans"]
        assert row["amount"] == rel(90_000.0) and row["capped"]
        assert row["margin_level_before"] == math.inf
        assert row["margin_level_after"] == rel((1.0 / 9.0) / 0.05)

    def test_base_borrow_valued_at_the_open(self):
        # bar 1 opens at 200: borrow 3.123456789 BTC (cap 10,000/(200·(1.5·1.0002 − 1)) = 99.94: whole);
        # charge 3.123456789·0.0002 = 0.0006246913578 -> up 0.0006247 BTC, valued at the open:
        # 0.12494 quote of interest paid.  hb = pb = 3.123456789, ib = 0.0006247: the position is −ib
        n = 4
        b1 = 3.123456789
        c1 = 0.0006247
        assert up8(b1 * R_B) == c1
        bars = [flat(200.0), (200.0, 220.0, 190.0, 210.0), (250.0, 260.0, 240.0, 255.0), flat(255.0)]
        r = manual(bars, [NAN] * n, rb=0.0048, borrow={"base": plan(n, b0=b1, b1=1e3)})
        row = r["loans"][0]
        assert row == {"bar": 1, "asset": "base", "amount": b1, "requested": b1, "reason": "borrow",
                       "price": 200.0, "margin_level_before": math.inf,
                       "margin_level_after": rel((b1 * 200.0 + 10_000.0) / ((b1 + c1) * 200.0)), "capped": False}
        assert r["interest_paid"][1] == rel(c1 * 200.0)
        assert r["position"][1] == rel(-c1)
        # equity at the close 210 = hb·210 + hq − (pb + ib)·210 = 10,000 − ib·210
        assert r["equity"][1] == rel(10_000.0 - c1 * 210.0)
        assert r["debt"][1] == rel((b1 + c1) * 210.0)
        # bar 2 opens at 250: 1,000 asked; at O: A = b1·250 + 10,000, D = (b1 + c1)·250, so
        # cap = (A − 1.5·D)/(250·(1.5·1.0002 − 1)) = 76.82857...; then step 4 charges b1's hour again
        a2 = b1 * 250.0 + 10_000.0
        d2 = (b1 + c1) * 250.0
        cap = (a2 - 1.5 * d2) / (250.0 * (1.5 * (1.0 + R_B) - 1.0))
        assert cap == pytest.approx(76.82857196781933, rel=1e-12)
        c2 = up8(cap * R_B)
        assert c2 == 0.01536572
        row = r["loans"][1]
        assert (row["bar"], row["price"], row["amount"], row["requested"], row["capped"]) == (
            2, 250.0, rel(cap), 1e3, True)
        assert row["margin_level_before"] == rel(a2 / d2)
        assert row["margin_level_after"] == pytest.approx(1.5, rel=1e-9)
        assert r["interest_paid"][2] == rel(c1 * 200.0 + (c2 + c1) * 250.0)
        assert r["position"][2] == rel(-(2 * c1 + c2))
        assert r["equity"][2] == rel(10_000.0 - (2 * c1 + c2) * 255.0)
        assert r["liquidations"] == []

    def test_max_borrow_limit_caps_the_borrow(self):
        # a custom cross-3x profile with at most 5,000 quote and 2 BTC of principal; no interest
        prof = Profile(3.0, 1.3, 1.1, 0.02, max_borrow_base=2.0, max_borrow_quote=5_000.0)
        n = 6
        borrow = {"quote": plan(n, b0=8_000.0, b1=1_000.0, b2=3_000.0), "base": plan(n, b3=5.0)}
        r = manual([flat(100.0)] * n, [NAN] * n, profile=prof, borrow=borrow, repay={"quote": plan(n, b2=2_000.0)})
        # bar 1: the M0 cap is 10,000/0.5 = 20,000, the room 5,000: 5,000 (hq 15,000, pq 5,000).
        # bar 2: no room left: nothing moves (ML 3 before and after).  bar 3: the repay first (pq 3,000,
        # hq 13,000), then the borrow has a room of 2,000 (hq 15,000, pq 5,000).  bar 4: 5 BTC asked, the
        # M0 cap (15,000 − 1.5·5,000)/(100·0.5) = 150, the room 2: 2 BTC
        assert loan_rows(r) == [(1, "quote", "borrow", 5_000.0, 8_000.0, True),
                                (2, "quote", "borrow", 0.0, 1_000.0, True),
                                (3, "quote", "repay", 2_000.0, 2_000.0, False),
                                (3, "quote", "borrow", 2_000.0, 3_000.0, True),
                                (4, "base", "borrow", 2.0, 5.0, True)]
        lv = [(x["margin_level_before"], x["margin_level_after"]) for x in r["loans"]]
        assert lv == [(math.inf, rel(3.0)), (rel(3.0), rel(3.0)), (rel(3.0), rel(13.0 / 3.0)),
                      (rel(13.0 / 3.0), rel(3.0)), (rel(3.0), rel(15_200.0 / 5_200.0))]
        assert r["debt"][-1] == rel(5_200.0) and r["equity"][-1] == rel(10_000.0)
        # a room of at most 1e-9·limit is none: 4,999.9999999 owed leaves 1e-7 <= 5e-6
        r = manual([flat(100.0)] * 3, [NAN] * 3, profile=prof, borrow={"quote": plan(3, b0=4_999.9999999, b1=1.0)})
        assert loan_rows(r) == [(1, "quote", "borrow", 4_999.9999999, 4_999.9999999, False),
                                (2, "quote", "borrow", 0.0, 1.0, True)]

    def test_repay_interest_first_then_principal_and_all_owed(self):
        # 1,000 quote borrowed at bar 1 (charge 0.1); bar 2's open charges 0.1 more (iq 0.2).  Bar 3: repay
        # 0.15: the interest first, iq 0.05, pq 1,000 (hq 10,999.85); step 4 charges 0.1 on the 1,000 held
        # across (iq 0.15).  Bar 4: repay +inf asks what is owed, 1,000.15, and repays it all; step 4: nothing
        n = 6
        r = manual([flat(100.0)] * n, [NAN] * n, rq=0.0024, borrow={"quote": plan(n, b0=1_000.0)},
                   repay={"quote": plan(n, b2=0.15, b3=math.inf)})
        assert loan_rows(r) == [(1, "quote", "borrow", 1_000.0, 1_000.0, False),
                                (3, "quote", "repay", rel(0.15), 0.15, False),
                                (4, "quote", "repay", rel(1_000.15), rel(1_000.15), False)]
        assert r["interest_owed"][:5] == [0.0, rel(0.1), rel(0.2), rel(0.15), 0.0]
        assert r["debt"][:5] == [0.0, rel(1_000.1), rel(1_000.2), rel(1_000.15), 0.0]   # pq stayed 1,000 at bar 3
        assert r["interest_paid"][-1] == rel(0.3)                                        # three hours
        assert r["equity"][-1] == rel(10_000.0 - 0.3)
        assert r["loans"][2]["margin_level_before"] == rel(10_999.85 / 1_000.15)
        assert r["loans"][2]["margin_level_after"] == math.inf

    def test_repay_more_than_held_or_owed_is_capped(self):
        # 20,000 quote borrowed at bar 1 (the M0 cap exactly, whole), target 2 at that open: E = 10,000, buy
        # 200 at 100 for 20,000 from hq 30,000 (no borrowing): hq 10,000, pq 20,000.  Bar 2: repay 15,000:
        # x = min(15,000, hq 10,000, 20,000) = 10,000 (capped): pq 10,000, hq 0; ML 30,000/20,000 -> 2
        n = 4
        r = manual([flat(100.0)] * n, [2.0] * n, borrow={"quote": plan(n, b0=20_000.0)},
                   repay={"quote": plan(n, b1=15_000.0)})
        assert r["orders"][0]["quantity"] == rel(200.0) and not r["orders"][0]["capped"]
        assert loan_rows(r) == [(1, "quote", "borrow", 20_000.0, 20_000.0, False),
                                (2, "quote", "repay", rel(10_000.0), 15_000.0, True)]
        row = r["loans"][1]
        assert row["margin_level_before"] == rel(1.5) and row["margin_level_after"] == rel(2.0)
        assert r["debt"][2] == rel(10_000.0) and r["equity"][2] == rel(10_000.0)
        # more than owed with enough held: what is owed moves (capped); +inf then asks what is owed
        r = manual([flat(100.0)] * n, [NAN] * n, borrow={"quote": plan(n, b0=1_000.0)},
                   repay={"quote": plan(n, b1=5_000.0, b2=math.inf)})
        assert loan_rows(r) == [(1, "quote", "borrow", 1_000.0, 1_000.0, False),
                                (2, "quote", "repay", 1_000.0, 5_000.0, True)]   # nothing owed at bar 3: no row
        assert r["equity"][-1] == 10_000.0 and r["debt"][-1] == 0.0

    def test_base_repay_and_the_order_in_a_bar(self):
        # bar 1: 2 BTC and 1,000 quote borrowed (base first).  Bar 2 asks both repays (+inf) and both
        # borrows again: the rows come repay base, repay quote, borrow base, borrow quote
        n = 4
        borrow = {"base": plan(n, b0=2.0, b1=1.0), "quote": plan(n, b0=1_000.0, b1=500.0)}
        r = manual([flat(100.0)] * n, [NAN] * n, borrow=borrow,
                   repay={"quote": plan(n, b1=math.inf), "base": plan(n, b1=math.inf)})
        assert loan_rows(r) == [(1, "base", "borrow", 2.0, 2.0, False),
                                (1, "quote", "borrow", 1_000.0, 1_000.0, False),
                                (2, "base", "repay", 2.0, 2.0, False),
                                (2, "quote", "repay", 1_000.0, 1_000.0, False),
                                (2, "base", "borrow", 1.0, 1.0, False),
                                (2, "quote", "borrow", 500.0, 500.0, False)]
        assert [x["margin_level_before"] for x in r["loans"]] == [
            math.inf, rel(10_200.0 / 200.0), rel(11_200.0 / 1_200.0), rel(11_000.0 / 1_000.0), math.inf,
            rel(10_100.0 / 100.0)]
        assert r["debt"][2] == rel(600.0) and r["equity"][2] == rel(10_000.0)

    def test_no_auto_borrow_buy_capped_at_what_quote_pays(self):
        # target 3 at 30,000, fee 0.1 %: q = 1/0.999 BTC; without auto-borrow at most hq/P = 1/3 (capped):
        # all 10,000 paid, (1/3)·0.999 BTC received, fee value (1/3)·0.001·30,000 = 10; exposure
        # N·C/E = 0.333·30,000/9,990 = 1: a 3x target stays at 1x, nothing owed
        n = 3
        bars = [flat(30_000.0)] * n
        r = manual(bars, [3.0] * n, fee=0.001, auto_borrow=False)
        (o,) = r["orders"]
        assert o == {"bar": 1, "side": "buy", "quantity": rel(1.0 / 3.0), "price": 30_000.0, "fee": rel(10.0),
                     "kind": "signal", "capped": True}
        assert r["position"][1] == rel(0.999 / 3.0) and r["debt"] == [0.0] * n
        assert r["position"][1] * 30_000.0 / r["equity"][1] == rel(1.0)
        assert r["loans"] == []
        # with a manual quote borrow of 20,000 at the same open first (step 0c before step 3; the M0 cap
        # 10,000/0.5 = 20,000: whole), no fee: q = 1 BTC costs 30,000 <= hq 30,000: not capped, 3x
        r = manual(bars, [3.0] * n, auto_borrow=False, borrow={"quote": plan(n, b0=20_000.0)})
        (o,) = r["orders"]
        assert o["quantity"] == rel(1.0) and not o["capped"]
        assert r["position"][1] == rel(1.0) and r["debt"][1] == rel(20_000.0) and r["equity"][1] == rel(10_000.0)
        # the same with auto-borrow on: the buy borrows itself (the same 1 BTC, no loan rows)
        r = manual(bars, [3.0] * n)
        assert r["orders"][0]["quantity"] == rel(1.0) and r["loans"] == []

    def test_no_auto_borrow_sell_at_most_the_base_held(self):
        # target −1 with no base held: the cap hb = 0 leaves nothing (no fill); with 1/3 BTC borrowed at the
        # same open (the M0 cap 10,000/(30,000·0.5) = 2/3: whole) the sale of 1/3 takes it: short 1/3,
        # hq 20,000, pb 1/3
        n = 3
        bars = [flat(30_000.0)] * n
        r = manual(bars, [-1.0] * n, auto_borrow=False)
        assert r["orders"] == [] and r["position"] == [0.0] * n
        r = manual(bars, [-1.0] * n, auto_borrow=False, borrow={"base": plan(n, b0=1.0 / 3.0)})
        (o,) = r["orders"]
        assert o["side"] == "sell" and o["quantity"] == rel(1.0 / 3.0) and not o["capped"]
        assert r["position"][1] == rel(-1.0 / 3.0) and r["debt"][1] == rel(10_000.0)
        assert r["equity"][1] == rel(10_000.0)
        # a long closed without auto-borrow: the sale's proceeds still repay (auto-repay on): target 3 with a
        # 20,000 quote loan, then 0: 1 BTC sold at 33,000 repays 20,000, hq 13,000, nothing owed
        bars = [flat(30_000.0), flat(30_000.0), flat(33_000.0), flat(33_000.0)]
        r = manual(bars, [3.0, 3.0, 0.0, 0.0], auto_borrow=False, borrow={"quote": plan(4, b0=20_000.0)})
        assert [(o["side"], o["quantity"], o["capped"]) for o in r["orders"]] == [
            ("buy", rel(1.0), False), ("sell", rel(1.0), False)]
        assert r["debt"][-1] == 0.0 and r["equity"][-1] == rel(13_000.0)

    def test_hour_at_the_open(self):
        # hourly bars, all opens at HH:00, 0.01 %/hour on 1,000 quote = 0.1 a charge.
        # Borrowed at bar 1 (10:00 say), repaid +inf at bar 3: charges at bar 1 (the borrow's), bar 2 (the
        # boundary: held across); at bar 3 the principal after the repays is 0: none.  Two hours.
        n = 5
        r = manual([flat(100.0)] * n, [NAN] * n, rq=0.0024, borrow={"quote": plan(n, b0=1_000.0)},
                   repay={"quote": plan(n, b2=math.inf)})
        assert r["interest_paid"] == [0.0, rel(0.1), rel(0.2), rel(0.2), rel(0.2)]
        assert r["loans"][1]["requested"] == rel(1_000.2)
        # borrowed at bar 1, repaid at bar 2 (HH:00 to HH:00): one hour
        r = manual([flat(100.0)] * n, [NAN] * n, rq=0.0024, borrow={"quote": plan(n, b0=1_000.0)},
                   repay={"quote": plan(n, b1=math.inf)})
        assert r["interest_paid"][-1] == rel(0.1)
        # repaid and borrowed again at bar 2's open: the least of the principal after the repays (0), before
        # step 3 and after it (1,000) is 0: only the new loan's borrow charge at bar 2; bar 3 charges 0.1
        r = manual([flat(100.0)] * n, [NAN] * n, rq=0.0024, borrow={"quote": plan(n, b0=1_000.0, b1=1_000.0)},
                   repay={"quote": plan(n, b1=math.inf)})
        assert r["interest_paid"] == [0.0, rel(0.1), rel(0.2), rel(0.3), rel(0.4)]
        assert [x["reason"] for x in r["loans"]] == ["borrow", "repay", "borrow"]

    def test_hours_between_bars(self):
        # spec §8 E5: 1,000 USDT at 0.02 %/day borrowed 13:20, repaid 14:15: 2 hours, 0.00833334 each.
        # Bars at 13:00, 13:20, 14:15, 14:40: the borrow (bar 0's amount) at 13:20; at 14:15 step 1 charges
        # the boundary 14:00 inside the bar before, then 0c repays 1,000.01666668 (+inf)
        c = 0.00833334
        assert up8(1_000.0 * 0.0002 / 24.0) == c
        day = DAY0 + 13 * H
        ts = [day, day + 1_200, day + 4_500, day + 6_000]
        r = manual([flat(100.0)] * 4, [NAN] * 4, ts=ts, rq=0.0002, borrow={"quote": plan(4, b0=1_000.0)},
                   repay={"quote": plan(4, b1=math.inf)})
        assert r["interest_paid"][-1] == rel(2 * c) and r["interest_paid"][-1] == rel(0.01666668)
        assert loan_rows(r)[1] == (2, "quote", "repay", rel(1_000.01666668), rel(1_000.01666668), False)
        # E7: borrowed 09:20, repaid 09:55: 1 hour
        day = DAY0 + 9 * H
        ts = [day, day + 1_200, day + 3_300, day + 4_500]
        r = manual([flat(100.0)] * 4, [NAN] * 4, ts=ts, rq=0.0002, borrow={"quote": plan(4, b0=1_000.0)},
                   repay={"quote": plan(4, b1=math.inf)})
        assert r["interest_paid"][-1] == rel(c)
        # half-hour bars 13:00 ... 15:00: borrowed at 13:30, the 14:00 open charges it (held across the open:
        # the principal after the repays, before and after step 3 are all 1,000), repaid at 14:30: 2 hours
        day = DAY0 + 13 * H
        ts = [day + k * 1_800 for k in range(5)]
        r = manual([flat(100.0)] * 5, [NAN] * 5, ts=ts, rq=0.0002, borrow={"quote": plan(5, b0=1_000.0)},
                   repay={"quote": plan(5, b2=math.inf)})
        assert r["interest_paid"] == [0.0, rel(c), rel(2 * c), rel(2 * c), rel(2 * c)]

    def test_last_bar_nan_and_zero_do_nothing(self):
        n = 4
        r = manual([flat(100.0)] * n, [NAN] * n, rq=0.0024,
                   borrow={"quote": [NAN, 0.0, NAN, 500.0], "base": [0.0, NAN, 0.0, 3.0]},
                   repay={"quote": [0.0, NAN, NAN, math.inf]})
        assert r["loans"] == [] and r["equity"] == [10_000.0] * n and r["interest_paid"] == [0.0] * n
        # +inf with nothing owed: no row; a finite repay with nothing owed is a row that moves nothing
        # (MC Manual loans: "one row per repay ... asked"; only +inf has no row when nothing is owed)
        r = manual([flat(100.0)] * n, [NAN] * n, repay={"quote": plan(n, b0=math.inf, b1=50.0)})
        assert loan_rows(r) == [(2, "quote", "repay", 0.0, 50.0, True)]
        assert r["equity"] == [10_000.0] * n

    def test_loans_are_no_transfers_and_come_after_0a(self):
        # auto-repay on, no interest: 5,000 quote borrowed at bar 1 (hq 15,000, pq 5,000).  Bar 2: the
        # deposit of 1,000 (0a) repays the quote loan first (pq 4,000, hq 15,000: ML 3 -> 3.75), then the
        # repay +inf (0c) asks the 4,000 left: hq 11,000
        n = 4
        r = manual([flat(100.0)] * n, [NAN] * n, transfers=[(at(2), 1_000.0)],
                   borrow={"quote": plan(n, b0=5_000.0)}, repay={"quote": plan(n, b1=math.inf)})
        (row,) = r["transfers"]
        assert (row["bar"], row["amount"], row["margin_level_before"], row["margin_level_after"]) == (
            2, 1_000.0, rel(3.0), rel(3.75))
        assert loan_rows(r)[1] == (2, "quote", "repay", 4_000.0, 4_000.0, False)
        assert r["loans"][1]["margin_level_before"] == rel(3.75) and r["loans"][1]["margin_level_after"] == math.inf
        assert r["net_transfers"] == [0.0, 0.0, 1_000.0, 1_000.0]
        assert r["equity"] == [10_000.0, 10_000.0, 11_000.0, 11_000.0]
        profit, own = books(r, 10_000.0, 0.0)
        assert profit == 0.0 and own == 0.0

    def test_repay_before_the_top_up_at_the_open(self):
        # auto-repay off, target 3 at 30,000: 1 BTC, pq 20,000, hq 0.  Bar 2 opens at 22,500: the deposit of
        # 3,000 goes to hq (0a): ML 25,500/20,000 = 1.275 <= 1.3.  The repay +inf (0c) pays 3,000 of the
        # 20,000 asked (capped): pq 17,000, ML 22,500/17,000 = 1.3235 > 1.3: no top-up at the open (0b)
        # from the reserve; Pc = 1.3·17,000 = 22,100 is below the low 22,200: none on the path either
        n = 4
        bars = [flat(30_000.0), flat(30_000.0), (22_500.0, 22_600.0, 22_200.0, 22_400.0), flat(22_400.0)]
        kw = dict(auto_repay=False, reserve=5_000.0, transfers=[(at(2), 3_000.0)])
        r = manual(bars, LONG3[:n], repay={"quote": plan(n, b1=math.inf)}, **kw)
        assert [x["reason"] for x in r["transfers"]] == ["scheduled"]
        assert loan_rows(r) == [(2, "quote", "repay", 3_000.0, 20_000.0, True)]
        row = r["loans"][0]
        assert row["price"] == 22_500.0
        assert row["margin_level_before"] == rel(1.275) and row["margin_level_after"] == rel(22_500.0 / 17_000.0)
        assert r["debt"][2] == rel(17_000.0) and r["equity"][2] == rel(22_400.0 - 17_000.0)
        assert r["reserve"][-1] == 5_000.0 and r["margin_calls"] == [] and r["liquidations"] == []
        # without the repay the top-up at the open lifts ML to M0: T = 1.5·20,000 − 25,500 = 4,500
        r = manual(bars, LONG3[:n], **kw)
        assert [(x["reason"], x["amount"]) for x in r["transfers"]] == [("scheduled", 3_000.0),
                                                                           ("top-up", rel(4_500.0))]

    def test_refusals(self):
        bars = [flat(100.0)] * 3
        for kw in ({"borrow": {"quote": [math.inf, NAN, NAN]}}, {"repay": {"quote": [-1.0, NAN, NAN]}},
                   {"borrow": {"quote": [1.0, NAN]}}, {"borrow": {"USDT": [1.0, NAN, NAN]}},
                   {"borrow": {"quote": [1.0, NAN, NAN]}, "stop_loss": 0.1},
                   {"auto_borrow": False, "take_profit": 0.1}):
            with pytest.raises(AssertionError):
                manual(bars, [1.0] * 3, **kw)
