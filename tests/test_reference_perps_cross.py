"""The cross perp reference of several symbols (tests/reference_perps_cross.py) against the spec's worked
examples (docs/perps-model.md §9 E1c, E1d, E6) and hand-computed scenarios built from the rules of
docs/model-choices.md ("Several symbols"; "Perpetual futures", "A cross perp account holding several
symbols", cited MC).  Bars are hourly on a union grid; a target decided at bar i's close fills at the
symbol's next bar's open."""

import math
import random

import pytest

from reference_perps_cross import (CrossBook, cross_liquidation_price, cross_margin_ratio, joint_theta,
                                   simulate_perps_cross)
from test_reference_perps import BTC_2024, ETH_2024  # (floor, cap, mmr, cum, maxlev), spec §3, 2024-05-30

REL = 1e-9
H = 3600
D = 1_717_200_000        # 2024-06-01 00:00:00 UTC
V2024 = 1_717_027_200    # 2024-05-30 00:00:00 UTC (capture d9835723)
NAN = math.nan



def rel(x, r=REL):
    return pytest.approx(x, rel=r)


def flat(p):
    return (p, p, p, p)


def run(bars_per_sym, targets, tables, funding=None, **kw):
    """``bars_per_sym[s]``: a list of (o, h, l, c) per hourly grid bar from D (None: no bar)."""
    kw.setdefault("fee", 0.0)
    n = len(bars_per_sym[0])
    ts = [D + k * H for k in range(n)]
    bars = []
    for rows in bars_per_sym:
        rows = [r if r is not None else (NAN,) * 4 for r in rows]
        bars.append(tuple(list(col) for col in zip(*rows)))
    brackets = [[(V2024, t)] for t in tables]
    funding = funding if funding is not None else [[] for _ in tables]
    return simulate_perps_cross(ts, bars, targets, brackets=brackets, funding=funding, **kw)


# ---------------------------------------------------------------- spec §9 E6
E6 = dict(wallet=10_000.0, positions=[0.5, -10.0], entries=[60_000.0, 3_000.0], marks=[59_000.0, 3_100.0],
          tiers=[BTC_2024, ETH_2024])


def test_e6_margin_ratio_and_liquidation_prices():
    # uPnL −500 and −1,000: MB = 8,500; MM = 118 + 124 = 242; MR = 2.8471 %
    assert cross_margin_ratio(**E6) == rel(242 / 8_500)
    assert round(100 * cross_margin_ratio(**E6), 4) == 2.8471
    # LP_BTC (ETH at 3,100) = −21,124/−0.498; LP_ETH (BTC at 59,000) = 39,382/10.04
    lp_btc = cross_liquidation_price(0, **E6)
    lp_eth = cross_liquidation_price(1, **E6)
    assert round(lp_btc, 4) == 42_417.6707
    assert round(lp_eth, 4) == 3_922.5100
    # check: MB = MM there (208.8353 and 274.9004)
    b = CrossBook(E6["wallet"], 2)
    b.n, b.ep = E6["positions"], E6["entries"]
    for s, lp, mm in ((0, lp_btc, 208.8353), (1, lp_eth, 274.9004)):
        p = list(E6["marks"])
        p[s] = lp
        assert b.mb(p) == rel(b.mm(E6["tiers"], p))
        assert round(b.mb(p), 4) == mm


def test_e6_through_the_simulation():
    # long 0.5 BTC @ 60,000 (target 3 of 10,000) and short 10 ETH @ 3,000 (target −3), closes 59,000 / 3,100
    r = run([[flat(60_000), flat(60_000), (60_000, 60_000, 59_000, 59_000)],
             [flat(3_000), flat(3_000), (3_000, 3_100, 3_000, 3_100)]],
            [[3.0, NAN, NAN], [-3.0, NAN, NAN]], [BTC_2024, ETH_2024], capital=10_000.0, leverage=20)
    assert r["position"][0] == [0.0, 0.5, 0.5] and r["position"][1] == [0.0, -10.0, -10.0]
    assert r["equity"][-1] == rel(8_500)
    assert round(100 * r["margin_ratio"][-1], 4) == 2.8471
    assert round(r["liquidation_price"][0][-1], 4) == 42_417.6707
    assert round(r["liquidation_price"][1][-1], 4) == 3_922.5100
    assert math.isnan(r["liquidation_price"][0][0]) and r["margin_ratio"][0] == 0.0
    assert r["liquidations"] == [] and r["margin_calls"] == []


# ------------------------------------------------------- spec §7/§9 E1c, E1d
def test_e1c_e1d_freqtrade_cross_vectors():
    # WB 1,535,443.01; ETH 3,683.979 @ 1,456.84 (10 %/135,365), BTC 109.488 @ 32,481.98 (2.5 %/16,300)
    one = lambda mmr, cum: [(0.0, 1e12, mmr, cum, 125)]  # noqa: E731 — the vectors give one tier each
    kw = dict(wallet=1_535_443.01, positions=[3_683.979, 109.488], entries=[1_456.84, 32_481.98],
              tiers=[one(0.10, 135_365.0), one(0.025, 16_300.0)])
    # E1c: ETH, with BTC at its mark 31,967.27 (ETH's own mark is irrelevant)
    lp_eth = cross_liquidation_price(0, marks=[1_456.84, 31_967.27], **kw)
    assert round(lp_eth, 2) == 1153.26
    # E1d: BTC, with ETH at its mark 1,335.18
    lp_btc = cross_liquidation_price(1, marks=[1_335.18, 32_481.98], **kw)
    assert round(lp_btc, 2) == 26316.89


# ------------------------------------------------------------ joint liquidation
# A: one tier at 5 %; B: 2 % up to a notional of 5,200, then 3 % (cum 5,200·1 % = 52, spec §3 continuity)
TAB_A = [(0.0, 1e9, 0.05, 0.0, 20)]
TAB_B = [(0.0, 5_200.0, 0.02, 0.0, 50), (5_200.0, 1e9, 0.03, 52.0, 20)]


def test_two_symbol_intrabar_liquidation_on_the_joint_path():
    # bar 1: long 50 A @ 100 (target 5 of 1,000), short 100 B @ 50 (target −5); WC = 1,000.
    # bar 2: A 100 → low 90, B 50 → high 55: P_A = 100 − 10θ, P_B = 50 + 5θ, MB = 1,000 − 1,000θ.
    # MM = 2.5·P_A + MM_B; B's notional 5,000 + 500θ crosses 5,200 at θ = 0.4:
    #   θ < 0.4: MM = 250 − 25θ + 100 + 10θ, MB − MM = 650 − 985θ > 0 (256 at θ = 0.4)
    #   θ > 0.4: MM = 250 − 25θ + 0.03·(5,000 + 500θ) − 52 = 348 − 10θ, MB − MM = 652 − 990θ -> θ = 652/990
    r = run([[flat(100), flat(100), (100, 100, 90, 95)], [flat(50), flat(50), (50, 55, 50, 52)]],
            [[5.0, NAN, NAN], [-5.0, NAN, NAN]], [TAB_A, TAB_B], capital=1_000.0, leverage=20)
    th = 652 / 990
    pa, pb = 100 - 10 * th, 50 + 5 * th
    mb = 1_000 + 50 * (pa - 100) - 100 * (pb - 50)
    assert mb == rel(0.05 * 50 * pa + 0.03 * 100 * pb - 52)  # MB = MM at θ
    fee = 0.0125 * (50 * pa + 100 * pb)  # clearance fee on Σ|N_s|·X_s
    (liq,) = r["liquidations"]
    assert liq["bar"] == 2 and liq["theta"] == rel(th)
    assert liq["trigger_prices"] == [rel(pa), rel(pb)]
    assert liq["margin_level"] == rel(1.0)
    assert liq["equity_before"] == rel(mb) and liq["fee"] == rel(fee) and liq["bad_debt"] == 0.0
    assert liq["equity_after"] == rel(mb - fee)
    fills = [o for o in r["orders"] if o["kind"] == "liquidation"]
    assert [(o["symbol"], o["side"], o["quantity"], o["fee"]) for o in fills] == [(0, -1, 50.0, 0.0),
                                                                                  (1, 1, 100.0, 0.0)]
    assert fills[0]["price"] == rel(pa) and fills[1]["price"] == rel(pb)
    assert r["final_equity"] == rel(mb - fee) and r["liquidation_fees"] == rel(fee)
    assert r["position"][0][-1] == 0.0 and r["position"][1][-1] == 0.0
    # margin call on the same bar: h at both adverse extremes (90, 55): MB = 0 -> h = 0; bar 1 close h = 1,000/350
    assert r["margin_calls"] == [{"bar": 2, "margin_level": 0.0}]
    # bar 1's liquidation prices (others at their closes): A: (1,000 − 100 − 5,000)/(2.5 − 50) = 86.3158;
    # B: tier 1 gives 5,750/102 = 56.37 (notional 5,637 ≥ 5,200, rejected), tier 2 (5,750 + 52)/103
    assert r["liquidation_price"][0][1] == rel(4_100 / 47.5)
    assert r["liquidation_price"][1][1] == rel(5_802 / 103)


def test_gap_liquidation_then_a_new_target_executes():
    # as above; bar 2 opens A at 85: MB = 1,000 − 750 = 250, MM = 212.5 + 100 -> h = 0.8: liquidated at the
    # opens, fee 0.0125·(4,250 + 5,000) = 115.625, WC = 134.375. B's target changed at bar 1 (−5 -> −1): it
    # still executes on what is left: −1·134.375/50 = −2.6875. A's rebalance would be dropped.
    r = run([[flat(100), flat(100), flat(85), flat(85)], [flat(50), flat(50), flat(50), flat(50)]],
            [[5.0, 5.0, NAN, NAN], [-5.0, -1.0, NAN, NAN]], [TAB_A, TAB_B], capital=1_000.0, leverage=20,
            rebalance=0.01)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 2 and liq["gap"] and liq["margin_level"] == rel(250 / 312.5)
    assert liq["fee"] == rel(115.625) and liq["equity_after"] == rel(134.375)
    assert r["position"][0][2:] == [0.0, 0.0]  # A: suspended, not topped back up
    assert r["position"][1][2] == rel(-2.6875)
    sig = [o for o in r["orders"] if o["bar"] == 2 and o["kind"] == "signal"]
    assert len(sig) == 1 and sig[0]["symbol"] == 1 and sig[0]["side"] == -1
    assert r["final_equity"] == rel(134.375)


def test_stop_on_liquidation_stops_the_account():
    r = run([[flat(100), flat(100), flat(85), flat(85)], [flat(50), flat(50), flat(50), flat(50)]],
            [[5.0, 5.0, 1.0, 1.0], [-5.0, -1.0, 1.0, 1.0]], [TAB_A, TAB_B], capital=1_000.0, leverage=20,
            stop_on_liquidation=True)
    assert len(r["liquidations"]) == 1
    assert [o["bar"] for o in r["orders"] if o["kind"] != "liquidation"] == [1, 1]
    assert r["equity"][2:] == [rel(134.375), rel(134.375)]


def test_joint_theta_is_the_first_root():
    # property check against a dense scan: f(θ*) = 0 and f > 0 before it, on the 2024 tables at large sizes
    rng = random.Random(7)
    tiers = [BTC_2024, ETH_2024]
    for _ in range(300):
        b = CrossBook(rng.uniform(1e5, 5e7), 2)
        b.n = [rng.choice([-1, 1]) * rng.uniform(1, 3_000), rng.choice([-1, 1]) * rng.uniform(10, 30_000)]
        b.ep = [rng.uniform(50_000, 70_000), rng.uniform(2_500, 3_500)]
        mo = [rng.uniform(50_000, 70_000), rng.uniform(2_500, 3_500)]
        ext = [mo[s] * (1 - rng.uniform(0, 0.3)) if b.n[s] > 0 else mo[s] * (1 + rng.uniform(0, 0.3))
               for s in range(2)]

        def f(t):
            p = [mo[s] + t * (ext[s] - mo[s]) for s in range(2)]
            return b.mb(p) - b.mm(tiers, p)

        th = joint_theta(b, tiers, mo, ext)
        if th is None:
            assert f(1.0) > 0
            continue
        scale = b.mm(tiers, mo) + abs(b.wc)
        assert abs(f(th)) <= 1e-9 * scale or th == 0.0
        assert th == 0.0 or all(f(k * th / 50) > 0 for k in range(50))


# -------------------------------------------------------------------- funding
def test_funding_on_each_symbol_on_its_own_bars():
    # capital 10,000 at 10x; bar 1: long 100 A @ 100 (target 1), short 200 B @ 50 (target −1).
    # A: mark bar 2 = (101, 102, 101, 102), else the traded bars.
    #   T = t2 (a bar open): mark open 101 -> 100·101·0.1 % = 10.1 (bar 2)
    #   T = t3 + 30 min: the close of A's bar before, bar 2's mark close 102 -> 100·102·0.05 % = 5.1 (bar 3)
    # B lacks bar 2: its bar 1 pays t1 <= T < t3.
    #   T = t0 (position 0 at bar 0): nothing
    #   T = t2: not a bar open of B; the close of its own bar before bar 1 (bar 0, 49) -> −200·49·0.1 % = −9.8
    #   T = t4 + 30 min (last bar: T < t4 + (t4 − t3)): bar 3's close 50 -> −200·50·0.02 % = −2.0; t5 not paid
    n = 5
    a_bars = [flat(100)] * n
    b_bars = [(50, 50, 50, 49), flat(50), None, flat(50), flat(50)]
    ma = ([NAN, NAN, 101, NAN, NAN], [NAN, NAN, 102, NAN, NAN], [NAN, NAN, 101, NAN, NAN],
          [NAN, NAN, 102, NAN, NAN])
    funding = [[(D + 2 * H, 0.001), (D + 3 * H + 1800, 0.0005)],
               [(D, 0.001), (D + 2 * H, 0.001), (D + 4 * H + 1800, 0.0002), (D + 5 * H, 0.01)]]
    r = run([a_bars, b_bars], [[1.0] + [NAN] * 4, [-1.0] + [NAN] * 4], [BTC_2024, ETH_2024], funding=funding,
            capital=10_000.0, leverage=10, marks=[ma, None])
    assert [(f["bar"], f["symbol"], f["time"], f["mark_price"]) for f in r["fundings"]] == [
        (1, 1, D + 2 * H, 49.0), (2, 0, D + 2 * H, 101.0), (3, 0, D + 3 * H + 1800, 102.0),
        (4, 1, D + 4 * H + 1800, 50.0)]
    assert [f["payment"] for f in r["fundings"]] == [rel(-9.8), rel(10.1), rel(5.1), rel(-2.0)]
    assert [f["position"] for f in r["fundings"]] == [-200.0, 100.0, 100.0, -200.0]
    assert r["funding_paid"] == [0.0, rel(-9.8), rel(0.3), rel(5.4), rel(3.4)]
    assert r["funding_paid_sym"][0] == [0.0, 0.0, rel(10.1), rel(15.2), rel(15.2)]
    assert r["funding_paid_sym"][1] == [0.0, rel(-9.8), rel(-9.8), rel(-9.8), rel(-11.8)]
    # B at its last close (50) on bar 2; traded closes, not marks, value the equity
    assert r["equity"] == [10_000.0, rel(10_009.8), rel(9_999.7), rel(9_994.6), rel(9_996.6)]


# --------------------------------------------------------------------- orders
def test_order_capped_by_the_other_symbols_initial_margin():
    # capital 1,000, 5x, fee 0.1 %. Bar 1: A to 4x: 40 @ 100, IM 800, fee 4 -> WC 996.
    # B to 4x: N* = 4·996/50 = 79.68, but A = E − Σ|N|·P/L = 996 − 800 = 196 and k = 50·(1/5 + 0.001) = 10.05:
    # cut to 196/10.05 = 19.5025 (capped), fee 0.9751; afterwards E equals the total IM
    tab = [(0.0, 1e9, 0.01, 0.0, 125)]
    r = run([[flat(100)] * 3, [flat(50)] * 3], [[4.0, NAN, NAN], [4.0, NAN, NAN]], [tab, tab],
            capital=1_000.0, leverage=5, fee=0.001)
    a, b = r["orders"]
    assert (a["symbol"], a["quantity"], a["fee"], a["capped"]) == (0, rel(40.0), rel(4.0), False)
    q = 196 / 10.05
    assert (b["symbol"], b["side"], b["quantity"], b["capped"], b["kind"]) == (1, 1, rel(q), True, "signal")
    assert b["fee"] == rel(q * 50 * 0.001)
    e = r["equity"][1]
    assert e == rel(996 - q * 50 * 0.001)
    assert e == rel(40 * 100 / 5 + q * 50 / 5)
    assert r["fees_paid"] == rel(4 + q * 0.05)


def test_order_capped_by_the_bracket_notional():
    # B's table allows 5x only up to a notional of 500: at most 10 units at 50 whatever the money
    tab_b = [(0.0, 500.0, 0.01, 0.0, 5), (500.0, 1e9, 0.02, 5.0, 2)]
    r = run([[flat(100)] * 3, [flat(50)] * 3], [[NAN] * 3, [2.0, NAN, NAN]], [TAB_A, tab_b],
            capital=1_000.0, leverage=5)
    (o,) = r["orders"]
    assert o["quantity"] == rel(10.0) and o["capped"]


# --------------------------------------------------------- a symbol lacking bars
def test_symbol_without_a_bar_waits_and_is_valued_at_its_last_close():
    # 10x, no fee. Bar 1: long 10 A @ 100 (1x of 1,000), long 10 B @ 50 (0.5x).
    # B has no bars 2 and 3: it is valued at its last close 55; its target read at bar 1 (1.0) waits and is
    # replaced by the one read at bar 2 (0.25), which executes at B's next bar (4) at its open 60:
    # E = 1,000 + 10·20 + 10·10 = 1,300 -> N* = 0.25·1,300/60 = 5.41667, a sale of 4.58333 realising 45.83
    a_bars = [flat(100), flat(100), flat(110), flat(120), flat(120)]
    b_bars = [flat(50), (50, 55, 50, 55), None, None, flat(60)]
    r = run([a_bars, b_bars], [[1.0, NAN, NAN, NAN, NAN], [0.5, 1.0, 0.25, NAN, NAN]], [TAB_A, TAB_A],
            capital=1_000.0, leverage=10)
    assert r["equity"] == [1_000.0, rel(1_050.0), rel(1_150.0), rel(1_250.0), rel(1_300.0)]
    assert [(o["bar"], o["symbol"]) for o in r["orders"]] == [(1, 0), (1, 1), (4, 1)]
    last = r["orders"][-1]
    assert last["side"] == -1 and last["price"] == 60.0 and last["kind"] == "signal"
    assert last["quantity"] == rel(10 - 0.25 * 1_300 / 60)
    assert r["position"][1] == [0.0, 10.0, 10.0, 10.0, rel(0.25 * 1_300 / 60)]
    # B's liquidation price while it has no bar (A at its close 110, MM 55, uPnL 100):
    # (1,000 − 55 + 100 − 10·50)/(10·0.05 − 10) < 0: unreachable, NaN
    assert math.isnan(r["liquidation_price"][1][2])
