"""Binance USDⓈ-M rules, as compiled in ``backtest/venues/binance_usdm.py``,
against the worked examples of docs/perps-model.md §9 (E1–E10; E1 is
freqtrade's four test vectors of §7).  Every number is produced by the
venue's own functions; the test only builds their inputs.

Inputs: a position ``n`` (signed) and ``c`` = margin balance − n·P, i.e.
``WB − n·EP`` for a position with entry EP and wallet WB; in cross mode the
other positions, held at their marks, add ``−TMM_other + UPNL_other`` to c
(what the venue's margin balance does with them).
"""
import numpy as np
import pytest

from backtest.account import HB, HQ, IB, IQ, PB, PQ
from backtest.records import liquidation_dt
from backtest.venues.binance_usdm import (FREE, N_SLOTS, TAB0, TAB_N, liquidate, liquidation_price_of,
                                          load_table, maintenance, max_notional, pay_funding, trade_to)
from backtest.venues.brackets import bracket_arrays, version_at
from backtest.venues.brackets_data import TABLES

TOL = 1e-4
INF = float("inf")


# --------------------------------------------------------------------------- helpers

def _fs_rows(rows):
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    fs = np.zeros(N_SLOTS)
    load_table(fs, rows, 0, len(rows))
    return fs


def _fs_one_tier(mmr, cum, maxlev=125.0):
    """A one-tier table: the vector fixes the bracket."""
    return _fs_rows([[0.0, INF, mmr, cum, maxlev]])


def _fs_version(symbol, date):
    versions = TABLES[symbol]
    v = version_at(versions, date)
    assert versions[v][0] == date
    _, start, rows = bracket_arrays(versions)
    fs = np.zeros(N_SLOTS)
    load_table(fs, rows, start[v], start[v + 1])
    return fs


def _state(n, c, free=0.0):
    """Account state of position ``n`` and net quote ``c`` (incl. the cross
    wallet ``free`` kept apart in isolated mode)."""
    c = c + free
    st = np.zeros(6)
    st[HB], st[PB] = max(n, 0.0), max(-n, 0.0)
    st[HQ], st[PQ] = max(c, 0.0), max(-c, 0.0)
    return st


def _n(st):
    return st[HB] - st[PB]


def _c(st):
    return st[HQ] - st[PQ]


def _lp(n, c, fs):
    return liquidation_price_of(n, c, fs, 1.0)


# --------------------------------------------------------------------------- E1: freqtrade's four vectors

WB1 = 1_535_443.01
ETH_Q, ETH_EP, ETH_MARK, ETH_MMR, ETH_CUM = 3_683.979, 1_456.84, 1_335.18, 0.10, 135_365.0
BTC_Q, BTC_EP, BTC_MARK, BTC_MMR, BTC_CUM = 109.488, 32_481.98, 31_967.27, 0.025, 16_300.0


def test_e1_freqtrade_vectors():
    fs_eth = _fs_one_tier(ETH_MMR, ETH_CUM)
    fs_btc = _fs_one_tier(BTC_MMR, BTC_CUM)

    # 1, 2: isolated (TMM = UPNL = 0)
    p, side = _lp(ETH_Q, WB1 - ETH_Q * ETH_EP, fs_eth)
    assert side == 1 and round(p, 2) == 1114.78
    p, side = _lp(BTC_Q, WB1 - BTC_Q * BTC_EP, fs_btc)
    assert side == 1 and round(p, 2) == 18778.73

    # the other position at its mark: its MM (venue's maintenance) and uPnL
    tmm_btc = maintenance(fs_btc, BTC_Q * BTC_MARK)
    upnl_btc = BTC_Q * (BTC_MARK - BTC_EP)
    tmm_eth = maintenance(fs_eth, ETH_Q * ETH_MARK)
    upnl_eth = ETH_Q * (ETH_MARK - ETH_EP)
    assert tmm_btc == pytest.approx(71_200.8114, abs=TOL)
    assert upnl_btc == pytest.approx(-56_354.5685, abs=TOL)
    assert tmm_eth == pytest.approx(356_512.5081, abs=TOL)
    assert upnl_eth == pytest.approx(-448_192.8851, abs=TOL)

    # 3, 4: cross
    p, side = _lp(ETH_Q, WB1 - tmm_btc + upnl_btc - ETH_Q * ETH_EP, fs_eth)
    assert side == 1 and round(p, 2) == 1153.26
    p, side = _lp(BTC_Q, WB1 - tmm_eth + upnl_eth - BTC_Q * BTC_EP, fs_btc)
    assert side == 1 and round(p, 2) == 26316.89


# --------------------------------------------------------------------------- E2: old Binance FAQ cross example

def test_e2_binance_faq_cross():
    wb = 10.72
    # BTC short 0.005 @ 9,451.53, 0.4 %, other: TMM 1.3, UPNL 0.47
    p, side = _lp(-0.005, wb - 1.3 + 0.47 + 0.005 * 9_451.53, _fs_one_tier(0.004, 0.0))
    assert side == -1 and round(p, 2) == 11383.99
    # ETH long 1 @ 199.53, 0.65 %, other: TMM 0.19, UPNL -0.06 (Binance prints 190.29)
    p, side = _lp(1.0, wb - 0.19 - 0.06 - 199.53, _fs_one_tier(0.0065, 0.0))
    assert side == 1 and abs(p - 190.29) <= 0.01


# --------------------------------------------------------------------------- E3: isolated long 2 BTC @ 60,000

@pytest.mark.parametrize("lev, lp, mm_at_lp", [
    (10, 54_246.2312, 492.4623),
    (20, 57_261.3065, 522.6131),
    (50, 59_070.3518, 540.7035),
])
def test_e3_isolated_long_btc(lev, lp, mm_at_lp):
    fs = _fs_version("BTCUSDT", "2024-05-30")
    n, ep = 2.0, 60_000.0
    wb = n * ep / lev
    c = wb - n * ep
    p, side = _lp(n, c, fs)
    assert side == 1
    assert p == pytest.approx(lp, abs=TOL)
    mb = c + n * p
    mm = maintenance(fs, n * p)
    assert mb == pytest.approx(mm, abs=TOL)
    assert mm == pytest.approx(mm_at_lp, abs=TOL)
    # not freqtrade's bracket-by-collateral answer at 10x
    assert abs(p - 54_216.8675) > 1.0


# --------------------------------------------------------------------------- E4: the bracket at the liquidation notional

def test_e4_bracket_boundary():
    fs = _fs_version("BTCUSDT", "2024-05-30")
    # short 10 @ 58,000 (N 580k, tier 2), 10x, WB = 58,000
    n, ep, wb = -10.0, 58_000.0, 58_000.0
    c = wb - n * ep
    p, side = _lp(n, c, fs)
    assert side == -1
    assert p == pytest.approx(63_482.3646, abs=TOL)
    assert abs(p - 63_487.5622) > 1.0  # not the naive tier-2 answer
    assert 600_000 <= abs(n) * p < 3_000_000  # tier 3
    assert c + n * p == pytest.approx(3_176.3537, abs=TOL)
    assert c + n * p == pytest.approx(maintenance(fs, abs(n) * p), abs=TOL)
    # mirror: long 10 @ 62,000 (N 620k, tier 3), 10x, WB = 62,000
    n, ep, wb = 10.0, 62_000.0, 62_000.0
    c = wb - n * ep
    p, side = _lp(n, c, fs)
    assert side == 1
    assert p == pytest.approx(56_075.3769, abs=TOL)
    assert abs(p - 56_069.4514) > 1.0  # not the naive tier-3 answer
    assert 50_000 <= n * p < 600_000  # tier 2
    assert c + n * p == pytest.approx(maintenance(fs, n * p), abs=TOL)


# --------------------------------------------------------------------------- E5: isolated short 10 ETH @ 3,000

def test_e5_isolated_short_eth():
    fs = _fs_version("ETHUSDT", "2024-05-30")
    n, ep, wb = -10.0, 3_000.0, 1_500.0
    c = wb - n * ep
    p, side = _lp(n, c, fs)
    assert side == -1
    assert p == pytest.approx(3_137.4502, abs=TOL)
    assert c + n * p == pytest.approx(maintenance(fs, abs(n) * p), abs=TOL)


# --------------------------------------------------------------------------- E6: cross, two positions

def test_e6_cross_two_positions():
    fs_btc = _fs_version("BTCUSDT", "2024-05-30")
    fs_eth = _fs_version("ETHUSDT", "2024-05-30")
    wb = 10_000.0
    nb, epb, mb_btc = 0.5, 60_000.0, 59_000.0
    ne, epe, mk_eth = -10.0, 3_000.0, 3_100.0

    upnl_btc = nb * (mb_btc - epb)
    upnl_eth = ne * (mk_eth - epe)
    mm_btc = maintenance(fs_btc, abs(nb) * mb_btc)
    mm_eth = maintenance(fs_eth, abs(ne) * mk_eth)
    assert upnl_btc == pytest.approx(-500.0, abs=TOL)
    assert upnl_eth == pytest.approx(-1_000.0, abs=TOL)
    assert mm_btc == pytest.approx(118.0, abs=TOL)
    assert mm_eth == pytest.approx(124.0, abs=TOL)
    mb = wb + upnl_btc + upnl_eth
    assert mb == pytest.approx(8_500.0, abs=TOL)
    assert 100 * (mm_btc + mm_eth) / mb == pytest.approx(2.8471, abs=TOL)

    # LP of BTC, ETH held at 3,100
    c = wb - mm_eth + upnl_eth - nb * epb
    p, side = _lp(nb, c, fs_btc)
    assert side == 1
    assert p == pytest.approx(42_417.6707, abs=TOL)
    # at LP the account's MB equals its total MM (c holds −MM_eth, so add it back)
    assert c + mm_eth + nb * p == pytest.approx(208.8353, abs=TOL)
    assert maintenance(fs_btc, nb * p) + mm_eth == pytest.approx(208.8353, abs=TOL)

    # LP of ETH, BTC held at 59,000
    c = wb - mm_btc + upnl_btc - ne * epe
    p, side = _lp(ne, c, fs_eth)
    assert side == -1
    assert p == pytest.approx(3_922.5100, abs=TOL)
    assert c + mm_btc + ne * p == pytest.approx(274.9004, abs=TOL)
    assert maintenance(fs_eth, abs(ne) * p) + mm_btc == pytest.approx(274.9004, abs=TOL)


# --------------------------------------------------------------------------- E7: funding over 3 settlements

SETTLEMENTS = [(60_100.0, 0.0001, 3.0050), (61_000.0, 0.00025, 7.6250), (59_500.0, -0.00005, -1.4875)]


@pytest.mark.parametrize("n", [0.5, -0.5])
def test_e7_funding(n):
    fs = _fs_version("BTCUSDT", "2024-05-30")
    c0 = 10_000.0 - n * 60_000.0
    st = _state(n, c0)
    total = 0.0
    for mark, rate, long_pays in SETTLEMENTS:
        pay = pay_funding(st, fs, mark, rate)
        assert pay == pytest.approx(long_pays if n > 0 else -long_pays, abs=TOL)
        total += pay
    assert total == pytest.approx(9.1425 if n > 0 else -9.1425, abs=TOL)
    assert _n(st) == n
    assert _c(st) == pytest.approx(c0 - total, abs=TOL)  # the wallet moved by the payments (short receives)
    assert st[IB] == 0.0 and st[IQ] == 0.0


# --------------------------------------------------------------------------- E8: liquidation with clearance fee

LIQ_FEE = 0.0125


def test_e8a_small_isolated_loses_all():
    fs = _fs_version("BTCUSDT", "2024-05-30")
    cross = 1_000.0
    fs[FREE] = cross
    n, ep, wb = 0.1, 60_000.0, 300.0
    c_pos = wb - n * ep
    lp, side = _lp(n, c_pos, fs)
    assert side == 1
    assert lp == pytest.approx(57_228.9157, abs=TOL)
    mb_at_lp = c_pos + n * lp
    assert mb_at_lp == pytest.approx(22.8916, abs=TOL)
    assert LIQ_FEE * n * lp == pytest.approx(71.5361, abs=TOL)  # fee > MM

    st = _state(n, c_pos, free=cross)
    rec = np.zeros(1, liquidation_dt)[0]
    out_side, q, fee, bad = liquidate(st, fs, lp, LIQ_FEE, True, rec)
    assert out_side == -1 and q == pytest.approx(n, abs=1e-12)
    assert fee == pytest.approx(mb_at_lp, abs=TOL)  # the fee takes the whole MB at LP
    assert bad == 0.0
    assert _n(st) == 0.0
    assert fs[FREE] == pytest.approx(cross, abs=TOL)  # the trader keeps 0 of the isolated wallet
    assert _c(st) == pytest.approx(cross, abs=TOL)
    assert rec["fee"] == pytest.approx(mb_at_lp, abs=TOL)
    assert rec["margin_level"] == pytest.approx(1.0, abs=1e-6)
    assert rec["equity_after"] == pytest.approx(cross, abs=TOL)


def test_e8b_large_isolated_remainder_returned():
    fs = _fs_version("BTCUSDT", "2024-05-30")
    cross = 5_000_000.0
    fs[FREE] = cross
    n, ep, wb = 500.0, 80_000.0, 2_000_000.0
    c_pos = wb - n * ep
    lp, side = _lp(n, c_pos, fs)
    assert side == 1
    assert lp == pytest.approx(77_282.7551, abs=TOL)
    assert 12_000_000 <= n * lp < 70_000_000  # tier 5
    assert maintenance(fs, n * lp) == pytest.approx(641_377.5510, abs=TOL)

    st = _state(n, c_pos, free=cross)
    rec = np.zeros(1, liquidation_dt)[0]
    out_side, q, fee, bad = liquidate(st, fs, lp, LIQ_FEE, True, rec)
    assert out_side == -1 and q == pytest.approx(n, abs=1e-9)
    assert fee == pytest.approx(483_017.2194, abs=TOL)
    assert bad == 0.0
    assert fs[FREE] - cross == pytest.approx(158_360.3316, abs=TOL)  # the remainder returned
    assert _c(st) == pytest.approx(cross + 158_360.3316, abs=TOL)
    assert _n(st) == 0.0
    assert rec["equity_after"] == pytest.approx(cross + 158_360.3316, abs=TOL)


# --------------------------------------------------------------------------- E9: accounting through trade_to

def test_e9_accounting():
    fs = _fs_version("BTCUSDT", "2024-05-30")
    fee, lev = 0.0005, 20.0
    st = _state(0.0, 10_000.0)

    def order(price, quantity, entry):
        """Trade to ``quantity`` at ``price``: x = position value / equity."""
        eq = _n(st) * price + _c(st)
        return trade_to(st, fs, quantity * price / eq, price, fee, 0.0, lev, False, entry)

    # buy 1 @ 60,000 (fee 30)
    side, q, f, fv, capped = order(60_000.0, 1.0, 0.0)
    assert (side, capped) == (1, False)
    assert q == pytest.approx(1.0, abs=1e-9) and f == 60_000.0
    assert fv == pytest.approx(30.0, abs=TOL)
    entry = f

    # buy 1 @ 62,000 (fee 31), entry passed in is the one before the order
    side, q, f, fv, capped = order(62_000.0, 2.0, entry)
    assert (side, capped) == (1, False)
    assert q == pytest.approx(1.0, abs=1e-9)
    assert fv == pytest.approx(31.0, abs=TOL)
    n_before = _n(st) - q
    entry = (n_before * entry + q * f) / _n(st)
    assert entry == pytest.approx(61_000.0, abs=TOL)
    assert _n(st) == pytest.approx(2.0, abs=1e-9)

    # sell 0.5 @ 63,000 (fee 15.75): realized 1,000, entry unchanged
    side, q, f, fv, capped = order(63_000.0, 1.5, entry)
    assert (side, capped) == (-1, False)
    assert q == pytest.approx(0.5, abs=1e-9)
    assert fv == pytest.approx(15.75, abs=TOL)
    assert q * (f - entry) == pytest.approx(1_000.0, abs=TOL)
    n = _n(st)
    assert n == pytest.approx(1.5, abs=1e-9)

    wb = _c(st) + n * entry
    assert wb == pytest.approx(10_923.25, abs=TOL)
    assert n * 62_500.0 + _c(st) == pytest.approx(13_173.25, abs=TOL)  # MB at mark 62,500
    assert n * (62_500.0 - entry) == pytest.approx(2_250.0, abs=TOL)


# --------------------------------------------------------------------------- E10: leverage cap

def test_e10_leverage_cap():
    fs = _fs_version("BTCUSDT", "2025-08-21")
    assert max_notional(fs, 75.0) == pytest.approx(3_000_000.0, abs=TOL)
    assert 5_000_000 > max_notional(fs, 75.0)  # 5M at 75x is rejected
    assert max_notional(fs, 50.0) >= 5_000_000  # tier 4 allows 50x: IM 100,000
    assert 5_000_000 / 50.0 == pytest.approx(100_000.0, abs=TOL)
    assert max_notional(fs, 150.0) == pytest.approx(300_000.0, abs=TOL)
    assert 250_000 <= max_notional(fs, 150.0)  # 250k at 150x is allowed
    assert 250_000 / 150.0 == pytest.approx(1_666.67, abs=0.01)
    assert max_notional(fs, 151.0) == 0.0


def test_a_liquidation_price_beyond_the_top_tiers_cap():
    """The top tier is open above its cap (its maintenance holds there), so a
    short whose liquidation notional passes the table's last cap still has
    a liquidation price: the top tier's closed form (found by a random
    differential run: 116,077 BTC short at 2x through 1.8 B notional)."""
    fs = _fs_version("BTCUSDT", "2025-06-19")
    n_tiers = int(fs[TAB_N])
    top = TAB0 + 5 * (n_tiers - 1)
    cap, mmr, cum = fs[top + 1], fs[top + 2], fs[top + 3]
    n = -116_077.35703175089
    c = 1.5e9 - n * 10_000.0  # margin balance 1.5 B at 10,000
    lp, side = liquidation_price_of(n, c, fs, 1.0)
    want = (c + cum) / (abs(n) * mmr - n)
    assert side == -1 and abs(n) * want > cap
    assert lp == pytest.approx(want, rel=1e-12)
