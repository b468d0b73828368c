"""The spec's worked examples (§8) at the level of the margin rules."""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as hs

from backtest import account
from backtest.profiles import PROFILES, max_leverage
from backtest.rules import (
    hour_boundaries_between,
    interest_charge,
    liquidation_price,
    margin_level,
    max_buy,
    max_sell,
    partial_buy_short,
    partial_sell_long,
    safe_band,
)


def test_e1_margin_level_and_net_assets():
    assets, debt = 6.82728457, 0.58633215
    assert margin_level(assets, debt) == pytest.approx(11.64405625, abs=1e-7)  # the API truncates
    assert round(margin_level(assets, debt), 6) == 11.644056
    assert assets - debt == pytest.approx(6.24095242, abs=1e-12)


def test_e2_margin_level():
    assert margin_level(50_000_000.0, 20_000_000.0) == 2.5


def test_margin_level_without_debt_is_infinite():
    assert margin_level(10_000.0, 0.0) == np.inf


def test_e3_liquidation_price_and_entry_ml():
    # 1 BTC held, 20,000 USDT owed: ML 1.5 at 30,000; liquidation (ML 1.1) at 22,000
    assert margin_level(30_000.0, 20_000.0) == 1.5
    price, side = liquidation_price(1.0, 0.0, 0.0, 20_000.0, 1.1)
    assert side == 1
    assert price == pytest.approx(22_000.0, rel=1e-15)


def test_e4_cross_5x_liquidation_price_and_fee():
    assert margin_level(10 * 50_000.0, 400_000.0) == 1.25
    price, side = liquidation_price(10.0, 0.0, 0.0, 400_000.0, 1.1)
    assert (side, price) == (1, pytest.approx(44_000.0, rel=1e-15))
    assert PROFILES["cross-5x"].liquidation_fee * 10 * price == pytest.approx(8_800.0, rel=1e-15)


@pytest.mark.parametrize(
    "principal, daily, hours, expected",
    [
        (1_000.0, 0.0002, 2, 0.01666668),  # E5 with per-charge rounding
        (1_000.0, 0.00001 * 24, 2, 0.02),  # E6: 0.001 %/hour, two charges
        (45.3313, 0.00013233, 1, 0.00024995),  # E8
        (0.00729232, 0.0002, 1, 7e-8),  # E9: rounding up
    ],
)
def test_interest_charges_rounded_up(principal, daily, hours, expected):
    total = hours * interest_charge(principal, daily / 24.0, True)
    assert total == pytest.approx(expected, abs=1e-12)


def test_e5_unrounded_interest():
    assert 2 * interest_charge(1_000.0, 0.0002 / 24.0, False) == pytest.approx(0.01666667, abs=5e-9)


def test_interest_on_nothing_is_nothing():
    assert interest_charge(0.0, 0.001, True) == 0.0
    assert interest_charge(1e-20, 0.001, True) == 0.0


@pytest.mark.parametrize(
    "t0, t1, boundaries",
    [
        ("13:20", "14:15", 1),  # E5: borrow charge + 14:00 = 2 hours
        ("09:20", "10:15", 1),  # E7
        ("09:20", "09:55", 0),  # E7: only the borrow charge
        ("10:00", "11:00", 0),  # spec §4: taken and repaid on whole hours
        ("12:00", "16:00", 3),  # a 4-hour bar: 13, 14, 15
    ],
)
def test_hour_boundaries_strictly_between(t0, t1, boundaries):
    def secs(hhmm):
        h, m = map(int, hhmm.split(":"))
        return 1_700_000_000 // 86400 * 86400 + h * 3600 + m * 60

    assert hour_boundaries_between(secs(t0), secs(t1)) == boundaries


def test_e10_trading_fee_in_the_asset_received():
    st = np.zeros(6)
    st[account.HQ] = 34_525.5
    account._buy(st, 10.0, 3_452.55, 0.001, 0.0, True, True, True)
    assert st[account.HB] == pytest.approx(9.99, abs=1e-12)  # 0.01 ETH fee
    st = np.zeros(6)
    st[account.HB] = 10.0
    account._sell(st, 10.0, 3_452.55, 0.001, 0.0, True, True, True)
    assert 34_525.5 - st[account.HQ] == pytest.approx(34.5255, abs=1e-9)


@pytest.mark.parametrize("initial_ml, leverage", [(1.111, 10), (1.25, 5), (1.5, 3)])
def test_e11_initial_margin_level_is_leverage(initial_ml, leverage):
    assert max_leverage(initial_ml) == pytest.approx(leverage, rel=1e-3)


@pytest.mark.parametrize("profile, ratio", [("cross-3x", 0.73333333333), ("isolated-10x", 0.945)])
def test_e12_fresh_long_at_max_leverage(profile, ratio):
    p = PROFILES[profile]
    L, p0, equity = p.max_leverage, 40_000.0, 10_000.0
    q, _ = max_buy(0.0, equity, 0.0, 0.0, p0, p0, 0.0, 0.0, p.initial_ml, True)
    assert q * p0 == pytest.approx(L * equity, rel=1e-12)  # long up to L times equity
    price, _ = liquidation_price(q, 0.0, 0.0, q * p0 - equity, p.liquidation_ml)
    assert price / p0 == pytest.approx(p.liquidation_ml * (L - 1) / L, rel=1e-12)
    assert price / p0 == pytest.approx(ratio, rel=1e-10)


def test_e13_fresh_short_at_max_leverage():
    p = PROFILES["cross-3x"]
    p0, equity = 40_000.0, 10_000.0
    q, _ = max_sell(0.0, equity, 0.0, 0.0, p0, p0, 0.0, 0.0, p.initial_ml, True)
    assert q * p0 == pytest.approx((p.max_leverage - 1) * equity, rel=1e-12)  # short up to L − 1
    price, side = liquidation_price(0.0, equity + q * p0, q, 0.0, p.liquidation_ml)
    assert side == -1
    assert price / p0 == pytest.approx(3 / (1.1 * 2), rel=1e-12)
    assert price / p0 == pytest.approx(1.3636, abs=1e-4)


def test_e16_partial_liquidation_size():
    fee = 0.02 * 22_000.0
    s = partial_sell_long(1.0, 0.0, 20_000.0, fee, 22_000.0, 1.5)
    assert s == pytest.approx(0.787273, abs=1e-6)
    assert s * 22_000.0 == pytest.approx(17_320.0, rel=1e-12)
    left_b, left_debt = 1.0 - s, 20_000.0 + fee - s * 22_000.0
    assert left_debt == pytest.approx(3_120.0, rel=1e-12)
    assert margin_level(left_b * 22_000.0, left_debt) == pytest.approx(1.5, rel=1e-12)


def test_partial_short_restores_initial_margin_level():
    # short 2 BTC at 30,000 on 30,000 own: 90,000 USDT held against 2 BTC owed
    price, _ = liquidation_price(0.0, 90_000.0, 2.0, 0.0, 1.1)
    fee = 0.02 * 90_000.0
    s = partial_buy_short(2.0, 90_000.0, fee, price, 1.5)
    held, owed = 90_000.0 - s * price - fee, 2.0 - s
    assert margin_level(held, owed * price) == pytest.approx(1.5, rel=1e-12)


def test_borrow_cap_keeps_initial_margin_level_with_fees_and_interest():
    m0, o, fee, rate = 1.5, 30_000.0, 0.001, 0.0002 / 24
    q, borrows = max_buy(0.0, 10_000.0, 0.0, 0.0, o, o, fee, rate, m0, True)
    borrowed = q * o - 10_000.0
    ml = q * (1 - fee) * o / (borrowed * (1 + rate))
    assert ml == pytest.approx(m0, rel=1e-12)
    # a buy paid from own quote is never capped
    assert borrows and q * o > 10_000.0


def test_e14_cross_margin_pro_level_and_liquidation_price():
    from backtest.rules import classic_margin_level, pro_margin_level

    assert pro_margin_level(margin_level(30_000.0, 20_000.0), 0.05) == pytest.approx(10.0, rel=1e-12)
    price, side = liquidation_price(1.0, 0.0, 0.0, 20_000.0, classic_margin_level(1.0, 0.05))
    assert (side, price) == (1, pytest.approx(21_000.0, rel=1e-12))
    pro = PROFILES["cross-pro-10x"]
    assert (pro.liquidation_fee, pro.call_ml, pro.liquidation_ml, pro.restore_ml) == (0.03, None, 1.0, 2.0)
    # the borrow gate "net equity >= debt / (L - 1)" is the classic L / (L - 1)
    assert pro.kernel_levels()[0] == pytest.approx(10 / 9, rel=1e-12)


def test_interest_charge_does_not_overflow_on_huge_principals():
    # 1e16 × 0.01 = 1e14 of interest: 1e22 units of 1e-8, past int64 (the kernel once returned 0)
    from backtest.rules import interest_charge

    assert interest_charge(1e16, 0.01, True) == 1e14
    assert interest_charge(45.3313, 0.00013233 / 24, True) == pytest.approx(0.00024995, abs=1e-15)


def test_borrow_limit_cap_counts_held_plus_room_and_no_float_noise():
    from backtest.rules import borrow_limit_cap

    assert borrow_limit_cap(100.0, 4_000.0, 5_000.0, 10.0) == (110.0, True)  # 100 held + 1,000 of room, at 10
    assert borrow_limit_cap(3.0, 0.5, 2.0, 1.0) == (4.5, True)  # base: price 1
    assert borrow_limit_cap(100.0, 5_000.0 - 1e-13, 5_000.0, 10.0) == (10.0, False)  # at the limit: no room
    assert borrow_limit_cap(100.0, 6_000.0, 5_000.0, 10.0) == (10.0, False)  # over it (never below what is held)
    assert borrow_limit_cap(100.0, 0.0, np.inf, 10.0)[0] == np.inf


def test_safe_band_of_the_spec_long():
    # 10,000 USDT own + 20,000 borrowed buy 1 BTC at 30,000: ML 1.1 at 22,000 (spec §5)
    lo, hi = safe_band(1.0, 0.0, 0.0, 20_000.0, 1.1)
    assert lo == pytest.approx(22_000.0, rel=1e-8) and lo > 22_000.0 and hi == np.inf
    assert margin_level(lo, 20_000.0) > 1.1


def test_safe_band_of_a_short_and_of_no_debt():
    # 1 BTC borrowed and sold at 30,000 beside 10,000 own: ML = 40,000 / P, 1.1 at 36,363.6
    lo, hi = safe_band(0.0, 40_000.0, 1.0, 0.0, 1.1)
    assert lo == -np.inf and hi == pytest.approx(40_000.0 / 1.1, rel=1e-8) and hi < 40_000.0 / 1.1
    assert safe_band(2.0, 100.0, 0.0, 0.0, 1.1) == (-np.inf, np.inf)


def test_safe_band_is_empty_when_ml_hardly_moves_with_price():
    # base held and owed almost alike: ML is nearly flat in the price, the edge lost in float noise
    lo, hi = safe_band(1.0 + 1e-15, 0.0, 1.0 / 1.1, 0.0, 1.1)
    assert not lo < hi


_amount = hs.floats(0.0, 1e6, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(_amount, _amount, _amount, _amount, hs.floats(1.0, 3.0), hs.floats(1e-3, 1e6))
@example(5e-324, 0.0, 5e-324, 0.0, 1.0, 1.0)  # slope underflows to 0 with a = 0: was a division by zero
def test_inside_the_safe_band_ml_is_above_the_level(hb, hq, db, dq, m, price):
    """The kernel skips the exact checks for prices inside the band: there
    the exact comparison must say ML > m, bit for bit."""
    lo, hi = safe_band(hb, hq, db, dq, m)
    if lo < price < hi:
        assets = hb * price + hq
        debt = db * price + dq
        assert debt <= 0.0 or assets > m * debt


@settings(max_examples=400, deadline=None)
@given(hs.floats(1e-3, 1e3), _amount, _amount, hs.floats(1.0, 3.0), hs.floats(-1e-9, 1e-9), hs.floats(1e-3, 1e6))
def test_safe_band_when_base_held_and_owed_nearly_cancel(hb, hq, dq, m, eps, price):
    db = hb / m * (1.0 + eps)
    lo, hi = safe_band(hb, hq, db, dq, m)
    if lo < price < hi:
        assert hb * price + hq > m * (db * price + dq)
