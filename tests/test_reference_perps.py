"""The perps reference model (tests/reference_perps.py) against hand-computed
cases built from the worked examples of docs/perps-model.md §9 and the rules
of the "Perpetual futures" section of docs/model-choices.md (MC).

The bracket tables are copied from spec §3 (BTCUSDT / ETHUSDT, 2024-05-30 and
BTCUSDT 2025-06-19), not imported from the engine.  Bars are hourly; a target
decided at bar i's close fills at bar i+1's open.
"""

import math

import pytest

from reference_perps import max_notional, simulate_perps

REL = 1e-6
H = 3600
D = 1_717_200_000        # 2024-06-01 00:00:00 UTC
V2024 = 1_717_027_200    # 2024-05-30 00:00:00 UTC (capture d9835723)
V2025 = 1_750_291_200    # 2025-06-19 00:00:00 UTC (capture d46cc552)
NAN = math.nan

# (floor, cap, mmr, cum, maxlev), spec §3
BTC_2024 = [
    (0.0, 50e3, 0.004, 0.0, 125), (50e3, 600e3, 0.005, 50.0, 100), (600e3, 3e6, 0.0065, 950.0, 75),
    (3e6, 12e6, 0.01, 11_450.0, 50), (12e6, 70e6, 0.02, 131_450.0, 25), (70e6, 100e6, 0.025, 481_450.0, 20),
    (100e6, 230e6, 0.05, 2_981_450.0, 10), (230e6, 480e6, 0.10, 14_481_450.0, 5),
    (480e6, 600e6, 0.125, 26_481_450.0, 4), (600e6, 800e6, 0.15, 41_481_450.0, 3),
    (800e6, 1.2e9, 0.25, 121_481_450.0, 2), (1.2e9, 1.8e9, 0.50, 421_481_450.0, 1),
]
BTC_2025 = [
    (0.0, 300e3, 0.004, 0.0, 125), (300e3, 800e3, 0.005, 300.0, 100), (800e3, 3e6, 0.0065, 1_500.0, 75),
    (3e6, 12e6, 0.01, 12_000.0, 50), (12e6, 70e6, 0.02, 132_000.0, 25), (70e6, 100e6, 0.025, 482_000.0, 20),
    (100e6, 230e6, 0.05, 2_982_000.0, 10), (230e6, 480e6, 0.10, 14_482_000.0, 5),
    (480e6, 600e6, 0.125, 26_482_000.0, 4), (600e6, 800e6, 0.15, 41_482_000.0, 3),
    (800e6, 1.2e9, 0.25, 121_482_000.0, 2), (1.2e9, 1.8e9, 0.50, 421_482_000.0, 1),
]
ETH_2024 = [
    (0.0, 50e3, 0.004, 0.0, 125), (50e3, 600e3, 0.005, 50.0, 100), (600e3, 3e6, 0.0065, 950.0, 75),
    (3e6, 12e6, 0.01, 11_450.0, 50), (12e6, 50e6, 0.02, 131_450.0, 25), (50e6, 65e6, 0.025, 381_450.0, 20),
    (65e6, 150e6, 0.05, 2_006_450.0, 10), (150e6, 320e6, 0.10, 9_506_450.0, 5),
    (320e6, 400e6, 0.125, 17_506_450.0, 4), (400e6, 530e6, 0.15, 27_506_450.0, 3),
    (530e6, 800e6, 0.25, 80_506_450.0, 2), (800e6, 1.2e9, 0.50, 280_506_450.0, 1),
]
BR = [(V2024, BTC_2024)]


def rel(x):
    return pytest.approx(x, rel=REL)


def run(bars, targets, t0=D, brackets=BR, **kw):
    """``bars``: (open, high, low, close) per hourly bar from ``t0``."""
    kw.setdefault("fee", 0.0)
    ts = [t0 + k * H for k in range(len(bars))]
    o, h, lo, c = (list(col) for col in zip(*bars))
    return simulate_perps(ts, o, h, lo, c, targets, brackets=brackets, **kw)


def flat(p):
    return (p, p, p, p)


# ------------------------------------------------------------------ tables
@pytest.mark.parametrize("table", [BTC_2024, BTC_2025, ETH_2024])
def test_copied_tables_are_continuous(table):
    # spec §3: cum_n = floor_n·(mmr_n − mmr_{n−1}) + cum_{n−1}; each floor is the previous cap
    for prev, cur in zip(table, table[1:]):
        assert cur[0] == prev[1]
        assert cur[3] == pytest.approx(cur[0] * (cur[2] - prev[2]) + prev[3], abs=1e-6)


def test_max_notional_at_leverage():
    # spec §2: max{cap_i : maxLev_i >= L}; 2024-05-30 BTC: 125x -> 50k, 100x -> 600k, 50x -> 12M, 20x -> 100M
    assert max_notional(BTC_2024, 125) == 50e3
    assert max_notional(BTC_2024, 100) == 600e3
    assert max_notional(BTC_2024, 50) == 12e6
    assert max_notional(BTC_2024, 20) == 100e6
    # E10 (2025-08-21 table = 2025-06-19 with tier 1 at 150x): 5M needs <= 50x (75x only up to 3M); 150x up to 300k
    t = [(0.0, 300e3, 0.004, 0.0, 150)] + BTC_2025[1:]
    assert max_notional(t, 75) == 3e6 < 5e6 <= max_notional(t, 50)
    assert max_notional(t, 150) == 300e3 >= 250e3


# ----------------------------------------------------------- E3 isolated LP
@pytest.mark.parametrize("lev, lp, mm_at_lp, above, below", [
    # LP = (N/L + 50 − 120,000)/(2·0.005 − 2), tier 2 (0.5 % / 50) holds 2·LP
    (10, 54_246.2312, 492.4623, 54_246.24, 54_246.23),   # −107,950/−1.99
    (20, 57_261.3065, 522.6131, 57_261.31, 57_261.30),   # −113,950/−1.99
    (50, 59_070.3518, 540.7035, 59_070.36, 59_070.35),   # −117,550/−1.99
])
def test_e3_isolated_long_liquidation_price(lev, lp, mm_at_lp, above, below):
    # capital 100,000, target 1.2 at 60,000 -> 1.2·100,000/60,000 = 2 BTC; WI = 2·60,000/L
    bars = [flat(60_000), flat(60_000), (60_000, 60_000, above, 60_000), (60_000, 60_000, below, 55_000),
            flat(55_000)]
    r = run(bars, [1.2] * 5, capital=100_000.0, leverage=lev, isolated=True)
    assert r["position"][1] == rel(2.0)
    assert r["position"][2] == rel(2.0)             # a low 0.01 above LP does not liquidate
    assert r["position"][3] == 0.0                  # a low 0.01 below does, at LP (the open is above)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 3
    assert liq["trigger_price"] == rel(lp)
    assert liq["margin_level"] == rel(1.0)          # MB(LP) = MM(LP)
    # fee 1.25 %·2·LP (≈1,356–1,477) exceeds MB(LP) = MM(LP): only MB is taken, nothing kept
    assert liq["fee"] == rel(mm_at_lp)
    assert liq["bad_debt"] == 0.0
    assert liq["equity_before"] == rel(100_000 + 2 * (lp - 60_000))
    assert liq["equity_after"] == rel(100_000 - 120_000 / lev)   # the whole isolated wallet is lost
    assert r["final_equity"] == rel(100_000 - 120_000 / lev)
    assert r["liquidation_fees"] == rel(mm_at_lp)
    assert [o["kind"] for o in r["orders"]] == ["signal", "liquidation"]
    assert r["orders"][1]["side"] == -1 and r["orders"][1]["quantity"] == rel(2.0)
    assert r["orders"][1]["price"] == rel(lp)


# ---------------------------------------------------------- E4 bracket edge
def test_e4_short_at_the_liquidation_notional_bracket():
    # short 10 @ 58,000 isolated 10x (WI = 58,000): tier 2 gives 63,487.5622 whose notional is >= 600k;
    # tier 3 (0.65 %/950): (58,000 + 950 + 580,000)/10.065 = 63,482.3646. A mark high of 63,485 lies between.
    bars = [flat(58_000), flat(58_000), (58_000, 58_000, 58_000, 58_000), (58_000, 63_485, 58_000, 60_000)]
    r = run(bars, [-5.8] * 4, capital=100_000.0, leverage=10, isolated=True)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 3
    assert liq["trigger_price"] == rel(63_482.3646)
    # MB = 58,000 + 10·(58,000 − 63,482.3646) = 3,176.3537 = MM; fee 7,935.30 > MB
    assert liq["fee"] == rel(3_176.3537)
    assert r["final_equity"] == rel(42_000.0)       # 100,000 − 58,000


def test_e4_long_mirror():
    # long 10 @ 62,000 isolated 10x: naive tier 3 gives 56,069.4514 (notional in tier 2);
    # tier 2: (62,000 + 50 − 620,000)/(0.05 − 10) = 56,075.3769. A mark low of 56,072 lies between.
    bars = [flat(62_000), flat(62_000), (62_000, 62_000, 56_072, 57_000)]
    r = run(bars, [6.2] * 3, capital=100_000.0, leverage=10, isolated=True)
    (liq,) = r["liquidations"]
    assert liq["trigger_price"] == rel(56_075.3769)
    assert liq["fee"] == rel(2_753.7688)            # MB = MM = 560,753.769·0.005 − 50
    assert r["final_equity"] == rel(38_000.0)       # 100,000 − 62,000


def test_bracket_version_follows_bar_time():
    # the E4 short under the 2025-06-19 table (tier 2 = 0.5 %/300, 300k–800k):
    # (58,000 + 300 + 580,000)/10.05 = 63,512.4378; a high of 63,500 (above the 2024 LP) does not trigger
    brackets = [(V2024, BTC_2024), (V2025, BTC_2025)]
    t0 = 1_751_328_000  # 2025-07-01
    bars = [flat(58_000), flat(58_000), (58_000, 63_500, 58_000, 58_000), (58_000, 63_513, 58_000, 58_000)]
    r = run(bars, [-5.8] * 4, t0=t0, brackets=brackets, capital=100_000.0, leverage=10, isolated=True)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 3
    assert liq["trigger_price"] == rel(63_512.4378)
    # before the first version (2024-01-01): the first version, LP 63,482.3646 -> a high of 63,500 triggers
    r = run(bars, [-5.8] * 4, t0=1_704_067_200, brackets=brackets, capital=100_000.0, leverage=10, isolated=True)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 2
    assert liq["trigger_price"] == rel(63_482.3646)


# ---------------------------------------------------------------- E5 short
def test_e5_eth_isolated_short():
    # short 10 ETH @ 3,000, 20x, WI = 1,500, tier 1 (0.4 %/0): 31,500/10.04 = 3,137.4502
    bars = [flat(3_000), flat(3_000), (3_000, 3_137.44, 3_000, 3_000), (3_000, 3_140, 3_000, 3_000)]
    r = run(bars, [-3.0] * 4, capital=10_000.0, leverage=20, isolated=True, brackets=[(V2024, ETH_2024)])
    assert r["position"][2] == rel(-10.0)           # −3·10,000/3,000
    (liq,) = r["liquidations"]
    assert liq["bar"] == 3 and liq["trigger_price"] == rel(3_137.4502)
    assert r["final_equity"] == rel(8_500.0)        # 10,000 − 1,500


# ------------------------------------------------------------- E8 outcomes
def test_e8a_small_isolated_long_on_the_mark():
    # long 0.1 @ 60,000 isolated 20x: WI = 300, WC = 9,700. LP = (300 − 6,000)/(0.0004 − 0.1) = 57,228.9157
    bars = [flat(60_000), flat(60_000), (60_000, 60_000, 57_000, 59_000), (60_000, 60_000, 58_500, 59_000)]
    mark = ([60_000, 60_000, 60_000, 60_000], [60_000, 60_000, 60_000, 60_000],
            [60_000, 60_000, 58_000, 57_000], [60_000, 60_000, 59_000, 59_000])
    r = run(bars, [0.6] * 4, capital=10_000.0, leverage=20, isolated=True, mark=mark)
    assert r["position"][2] == rel(0.1)             # the traded low 57,000 does not trigger (mark low 58,000)
    assert r["equity"][2] == rel(9_900.0)           # 10,000 + 0.1·(59,000 − 60,000)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 3
    assert liq["trigger_price"] == rel(57_228.9157)
    # MB = MM = 0.004·5,722.89157 = 22.8916 < fee 71.5361: the trader keeps 0
    assert liq["fee"] == rel(0.0004 * 5_700 / 0.0996)           # 22.8916
    assert liq["bad_debt"] == 0.0
    assert liq["equity_before"] == rel(10_000 + 0.1 * (5_700 / 0.0996 - 60_000))  # 9,722.8916
    assert liq["equity_after"] == rel(9_700.0)      # the cross wallet is untouched
    assert r["final_equity"] == rel(9_700.0)


def test_e8b_large_isolated_long_keeps_the_remainder():
    # long 500 @ 80,000 isolated 20x (N = 40M, tier 5 2 %/131,450, max 25x), WI = 2,000,000, WC = 8,000,000.
    # LP = (2,000,000 + 131,450 − 40,000,000)/(10 − 500) = 77,282.7551; MM(LP) = 641,377.5510,
    # fee = 0.0125·500·LP = 483,017.2194, kept 158,360.3316 -> WC = 8,158,360.3316
    bars = [flat(80_000), flat(80_000), (80_000, 80_000, 77_000, 78_000)]
    r = run(bars, [4.0] * 3, capital=10_000_000.0, leverage=20, isolated=True)
    (liq,) = r["liquidations"]
    assert liq["trigger_price"] == rel(77_282.7551)
    assert liq["fee"] == rel(483_017.2194)
    assert liq["margin_level"] == rel(1.0)
    assert liq["equity_after"] == rel(8_158_360.3316)
    assert r["final_equity"] == rel(8_158_360.3316)


# ---------------------------------------------------------------- cross loss
def test_cross_whole_wallet_lost_intrabar():
    # cross 20x, capital 1,000, target 10 at 60,000: N = 1/6. c = 1,000 − 10,000 = −9,000,
    # LP = −9,000/((1/6)·(0.004 − 1)) = 54,216.8675 (notional 9,036.14, tier 1); MM = MB = 36.1446 < fee 112.95
    bars = [flat(60_000), flat(60_000), (60_000, 60_000, 54_000, 55_000), flat(60_000), flat(60_000)]
    r = run(bars, [10.0, 10.0, 10.0, 5.0, 5.0], capital=1_000.0, leverage=20, isolated=False)
    (liq,) = r["liquidations"]
    assert liq["trigger_price"] == rel(54_216.8675)
    assert liq["fee"] == rel(0.004 * 9_000 / 0.996)              # 36.1446
    assert liq["equity_before"] == rel(0.004 * 9_000 / 0.996)    # cross: E = MB
    assert liq["equity_after"] == 0.0
    assert r["equity"][2:] == [0.0, 0.0, 0.0]
    # the new target 5 (decided at bar 3) meets a zero equity: no order
    assert [o["kind"] for o in r["orders"]] == ["signal", "liquidation"]


def test_cross_gap_liquidation_with_bad_debt():
    # the same 1/6 BTC, the mark opens at 50,000 (below LP): liquidation at the open 50,000.
    # MB = 1,000 + (1/6)·(50,000 − 60,000) = −666.6667 -> bad debt 666.6667, fee 0;
    # h = −666.6667/(8,333.33·0.004) = −20
    bars = [flat(60_000), flat(60_000), (50_000, 51_000, 49_000, 50_000)]
    r = run(bars, [10.0] * 3, capital=1_000.0, leverage=20, isolated=False)
    (liq,) = r["liquidations"]
    assert liq["trigger_price"] == 50_000.0
    assert liq["bad_debt"] == rel(666.666667)
    assert liq["fee"] == 0.0
    assert liq["margin_level"] == rel(-20.0)
    assert liq["equity_before"] == rel(-666.666667)
    assert liq["equity_after"] == 0.0
    assert r["bad_debt"] == rel(666.666667)


# ------------------------------------------------------------------- funding
def _funding_case(open_bar, close_bar, x, isolated=False, extra=()):
    """Hourly bars from D 06:00 to D+1 02:00 (21 bars), traded price 60,000; the mark has
    only the bars at 08:00, 16:00 and 00:00 (NaN elsewhere: the traded bar is used)."""
    n = 21
    bars = [flat(60_000)] * n + list(extra)
    n = len(bars)
    mo = [NAN] * n
    for hh, p in ((8, 60_100), (16, 61_000), (24, 59_500)):
        mo[hh - 6] = p
    mark = (mo, list(mo), list(mo), list(mo))
    targets = [NAN] * n
    targets[open_bar - 1] = x
    if close_bar is not None:
        targets[close_bar - 1] = 0.0
    funding = [(D, 0.001), (D + 8 * H, 0.0001), (D + 16 * H, 0.00025), (D + 24 * H, -0.00005),
               (D + 32 * H, 0.001)]
    return run(bars, targets, t0=D + 6 * H, capital=100_000.0, leverage=10, isolated=isolated,
               funding=funding, mark=mark)


def test_e7_funding_three_settlements():
    # long 0.5 (0.3·100,000/60,000) from 07:00 to 01:00 next day:
    # 0.5·60,100·0.01 % = 3.0050; 0.5·61,000·0.025 % = 7.6250; 0.5·59,500·(−0.005 %) = −1.4875 -> 9.1425
    r = _funding_case(1, 19, 0.3)
    assert [f["payment"] for f in r["fundings"]] == [rel(3.005), rel(7.625), rel(-1.4875)]
    assert [f["mark_price"] for f in r["fundings"]] == [60_100, 61_000, 59_500]
    assert [f["time"] for f in r["fundings"]] == [D + 8 * H, D + 16 * H, D + 24 * H]
    assert [f["bar"] for f in r["fundings"]] == [2, 10, 18]
    assert r["funding_paid"][-1] == rel(9.1425)
    assert r["funding_paid"][1] == 0.0 and r["funding_paid"][2] == rel(3.005)
    assert r["final_equity"] == rel(100_000 - 9.1425)
    # a 0.5 short receives it
    r = _funding_case(1, 19, -0.3)
    assert r["funding_paid"][-1] == rel(-9.1425)
    assert r["final_equity"] == rel(100_000 + 9.1425)


def test_e7_funding_boundaries():
    # opened exactly at 08:00 pays 08:00; closed exactly at 00:00 does not pay 00:00: 3.005 + 7.625
    r = _funding_case(2, 18, 0.3)
    assert [f["time"] for f in r["fundings"]] == [D + 8 * H, D + 16 * H]
    assert r["funding_paid"][-1] == rel(10.63)


def test_funding_moves_the_isolated_lp():
    # isolated long 0.5 @ 60,000 at 10x: WI = 3,000; LP = −27,000/(0.5·(0.004 − 1)) = 54,216.8675.
    # After 9.1425 of funding WI = 2,990.8575: LP = −27,009.1425/−0.498 = 54,235.2259. A mark low of 54,230
    # (a bar after 02:00, still held) liquidates only because of the funding.
    r = _funding_case(1, None, 0.3, isolated=True, extra=[(60_000, 60_000, 54_230, 60_000)])
    (liq,) = r["liquidations"]
    assert liq["bar"] == 21
    assert liq["trigger_price"] == rel(54_235.2259)
    assert r["final_equity"] == rel(100_000 - 3_000)


def test_funding_window_of_the_last_bar():
    # last bar at t: T < t + (t − t_prev) = t + 1h counts. T = t + 30 min is not a bar open: mark = the last
    # close before T (bar i−1's close, 61,000): 0.5·61,000·0.01 % = 3.05. T = t + 1h is not paid.
    bars = [flat(60_000), flat(60_000), (60_000, 61_000, 60_000, 61_000), flat(60_500)]
    t_last = D + 3 * H
    r = run(bars, [0.3] * 4, capital=100_000.0, leverage=10, isolated=False,
            funding=[(t_last + 1800, 0.0001), (t_last + H, 0.0001)])
    assert [(f["time"], f["mark_price"]) for f in r["fundings"]] == [(t_last + 1800, 61_000)]
    assert r["funding_paid"][-1] == rel(3.05)


# ------------------------------------------------------------------- sizing
def test_cap_by_initial_margin_and_fee():
    # cross 10x, fee 0.05 %, capital 10,000, target 15 at 60,000 -> N* = 2.5;
    # k = 60,000·(1/10 + 0.0005) = 6,030 per unit, A = 10,000 -> 1.6583748 BTC, fee 1.6583748·30 = 49.7512
    bars = [flat(60_000), flat(60_000), flat(60_000)]
    r = run(bars, [15.0] * 3, capital=10_000.0, leverage=10, isolated=False, fee=0.0005)
    (o,) = r["orders"]
    assert o["capped"] is True and o["kind"] == "signal" and o["side"] == 1
    assert o["quantity"] == rel(1.6583748)
    assert o["fee"] == rel(49.7512438)
    # isolated: the same cut; WI = 1.6583748·6,000 = 9,950.2488 and WC is left at 0
    r = run(bars, [15.0] * 3, capital=10_000.0, leverage=10, isolated=True, fee=0.0005)
    assert r["orders"][0]["quantity"] == rel(1.6583748)
    assert r["equity"][1] == rel(9_950.2487562)
    # target 5: 0.8333 BTC, k·0.8333 = 5,025 < 10,000: not capped
    r = run(bars, [5.0] * 3, capital=10_000.0, leverage=10, isolated=False, fee=0.0005)
    assert r["orders"][0]["capped"] is False and r["orders"][0]["quantity"] == rel(5 / 6)


def test_cap_by_bracket_max_notional():
    # cross 100x, capital 10,000, target 80 at 60,000 -> 13.333 BTC; margin allows 16.67; the largest
    # notional at 100x is 600,000 -> 10 BTC
    bars = [flat(60_000), flat(60_000), flat(60_000)]
    r = run(bars, [80.0] * 3, capital=10_000.0, leverage=100, isolated=False)
    (o,) = r["orders"]
    assert o["capped"] is True and o["quantity"] == rel(10.0)


def test_e9_accounting_with_a_flip():
    # cross 20x, fee 0.05 %. Buy 1 @ 60,000 (fee 30), buy 1 @ 62,000 (fee 31): EP 61,000.
    # Sell 0.5 @ 63,000: realised 1,000, fee 15.75 -> WC 10,923.25; at 62,500 equity 13,173.25.
    # Sell 2.5 @ 62,000: realises 1,500, fee 77.5, short 1 at EP 62,000 -> WC = equity = 12,345.75.
    bars = [flat(60_000), flat(60_000), flat(62_000), (63_000, 63_000, 62_500, 62_500), flat(62_000)]
    targets = [6.0,                       # 6·10,000/60,000 = 1
               2 * 62_000 / 11_970,       # E(62,000) = 9,970 + 2,000 -> 2
               1.5 * 63_000 / 13_939,     # E(63,000) = 9,939 + 2·2,000 -> 1.5
               -62_000 / 12_423.25,       # E(62,000) = 10,923.25 + 1.5·1,000 -> −1
               NAN]
    r = run(bars, targets, capital=10_000.0, leverage=20, isolated=False, fee=0.0005)
    assert [(o["side"], o["quantity"], o["fee"]) for o in r["orders"]] == [
        (1, rel(1.0), rel(30.0)), (1, rel(1.0), rel(31.0)), (-1, rel(0.5), rel(15.75)), (-1, rel(2.5), rel(77.5))]
    assert r["equity"][1:] == [rel(9_970.0), rel(11_939.0), rel(13_173.25), rel(12_345.75)]
    assert r["position"][1:] == [rel(1.0), rel(2.0), rel(1.5), rel(-1.0)]
    assert r["fees_paid"] == rel(154.25)
    assert not any(o["capped"] for o in r["orders"])


# ------------------------------------------------------------ margin calls
def test_margin_call_entries():
    # isolated long 2 @ 60,000 at 10x (WI 12,000): the margin-call price is
    # (−108,000 + 1.25·50)/(1.25·2·0.005 − 2) = 54,308.1761 (LP 54,246.2312 not reached).
    # bar 2: low 54,300 -> call; close 54,300: h = 600/493 = 1.2170 (margin ratio 0.821667)
    # bar 3: low 54,290, but the last close was already in the band -> no call; close 60,000 (h = 12,000/550)
    # bar 4: low 54,300 -> call. Two calls.
    bars = [flat(60_000), flat(60_000), (60_000, 60_000, 54_300, 54_300), (54_300, 60_000, 54_290, 60_000),
            (60_000, 60_000, 54_300, 60_000)]
    r = run(bars, [1.2] * 5, capital=100_000.0, leverage=10, isolated=True)
    assert r["liquidations"] == []
    assert r["n_margin_calls"] == 2
    assert r["margin_ratio"][0] == 0.0
    assert r["margin_ratio"][1] == rel(550 / 12_000)   # MM = 120,000·0.005 − 50
    assert r["margin_ratio"][2] == rel(493 / 600)      # MM = 108,600·0.005 − 50, MB = 12,000 − 11,400


# ---------------------------------------------- liquidation and the pending order
def test_gap_liquidation_then_the_new_target_executes():
    # isolated long 0.1 @ 60,000 at 20x (WI 300, WC 9,700); at bar 2's close the target becomes −0.5.
    # Bar 3: the mark opens at 56,000 (below LP 57,228.9157): MB = 300 − 400 = −100 -> bad debt 100,
    # h = −100/(5,600·0.004) = −4.4643; then the short fills at the traded open 56,500:
    # −0.5·9,700/56,500 = −0.0858407
    bars = [flat(60_000), flat(60_000), flat(60_000), flat(56_500)]
    mark = ([60_000, 60_000, 60_000, 56_000], [60_000, 60_000, 60_000, 56_500],
            [60_000, 60_000, 60_000, 56_000], [60_000, 60_000, 60_000, 56_500])
    r = run(bars, [0.6, 0.6, -0.5, -0.5], capital=10_000.0, leverage=20, isolated=True, mark=mark)
    (liq,) = r["liquidations"]
    assert liq["bar"] == 3 and liq["trigger_price"] == 56_000.0
    assert liq["bad_debt"] == rel(100.0) and liq["fee"] == 0.0
    assert liq["margin_level"] == rel(-4.4642857)
    assert [(o["bar"], o["kind"]) for o in r["orders"]] == [(1, "signal"), (3, "liquidation"), (3, "signal")]
    assert r["orders"][2]["price"] == 56_500.0
    assert r["position"][3] == rel(-0.0858407)
    assert r["equity"][3] == rel(9_700.0)


def _suspension_case(**kw):
    # isolated 10x, rebalance 0.1. Bar 1: long 200 @ 100 (2·10,000/100), WI 2,000, WC 8,000.
    # Bar 2: low 50 < LP = −18,000/(200·(0.004 − 1)) = 90.3614 -> WI lost, WC 8,000.
    # Bars 2–3: target 2 unchanged, exposure 0: no rebalance (suspended).
    # Bar 4 decides 1.5 -> bar 5 opens 1.5·8,000/100 = 120 (WI 1,200, WC 6,800).
    # Bar 5 closes 140: E = 8,000 + 120·40 = 12,800, exposure 120·140/12,800 = 1.3125,
    # |1.3125 − 1.5| = 0.1875 > 0.1·1.5 -> rebalance at bar 6's open 140: 1.5·12,800/140 = 137.142857 (+17.142857)
    bars = [flat(100), flat(100), (100, 100, 50, 100), flat(100), flat(100), (100, 140, 100, 140), flat(140)]
    return run(bars, [2.0, 2.0, 2.0, 2.0, 1.5, 1.5, 1.5], capital=10_000.0, leverage=10, isolated=True,
               rebalance=0.1, **kw)


def test_liquidation_suspends_rebalancing_until_the_target_changes():
    r = _suspension_case()
    assert [(o["bar"], o["kind"]) for o in r["orders"]] == [
        (1, "signal"), (2, "liquidation"), (5, "signal"), (6, "rebalance")]
    assert r["liquidations"][0]["trigger_price"] == rel(90.3614458)
    assert r["equity"][2] == rel(8_000.0)
    assert r["position"][5] == rel(120.0)
    assert r["orders"][3]["quantity"] == rel(17.1428571)
    assert r["position"][6] == rel(137.1428571)


def test_stop_on_liquidation():
    r = _suspension_case(stop_on_liquidation=True)
    assert [(o["bar"], o["kind"]) for o in r["orders"]] == [(1, "signal"), (2, "liquidation")]
    assert r["final_equity"] == rel(8_000.0)


def test_last_bar_decision_never_executes():
    r = run([flat(100)] * 3, [NAN, NAN, 1.0], capital=1_000.0, leverage=5, isolated=False)
    assert r["orders"] == [] and r["position"] == [0.0, 0.0, 0.0] and r["margin_ratio"] == [0.0, 0.0, 0.0]
