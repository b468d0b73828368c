"""The joint liquidation path of a cross perp account of several symbols
(``venues/binance_usdm_cross.joint_theta``) against a bisection of
MB(θ) − MM(θ) on random positions through the bracket tiers of BTCUSDT and
ETHUSDT: the root is exact to float rounding, including when the path
starts on a tier boundary (a random differential run found the loop stuck
there: it returned θ = 1 with the margin balance far below 0); and on a leg
of the walk with stops, where prices move either way and the search starts
at the last event's θ, the first root from there."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.venues import binance_usdm as usdm
from backtest.venues.binance_usdm_cross import balance, joint_theta
from backtest.venues.brackets import bracket_arrays, version_at
from backtest.venues.brackets_data import TABLES

MCUR, EXT, SCRATCH = 0, 1, 2


def tables():
    fsv = np.zeros((2, usdm.N_SLOTS))
    for k, sym in enumerate(("BTCUSDT", "ETHUSDT")):
        versions = TABLES[sym]
        v = version_at(versions, "2025-06-19")
        _, start, rows = bracket_arrays(versions)
        usdm.load_table(fsv[k], rows, start[v], start[v + 1])
    return fsv


FSV = tables()
SYMS = np.array([[0, 1]], dtype=np.int64)


def f_of(sb, k_net, px, theta):
    row = px[MCUR] + theta * (px[EXT] - px[MCUR])
    p = np.zeros((3, 2))
    p[MCUR] = row
    mb, mm = balance(sb, k_net, SYMS[0], 2, FSV, p[MCUR])
    return mb - mm


def case(q_btc, q_eth, o_btc, o_eth, move_btc, move_eth, margin):
    sb = np.zeros((2, 3))
    sb[0, 0], sb[1, 0] = q_btc, q_eth
    px = np.zeros((3, 2))
    px[MCUR] = (o_btc, o_eth)
    px[EXT] = (o_btc * (1.0 - move_btc if q_btc > 0 else 1.0 + move_btc),
               o_eth * (1.0 - move_eth if q_eth > 0 else 1.0 + move_eth))
    _, mm0 = balance(sb, 0.0, SYMS[0], 2, FSV, px[MCUR])
    k_net = mm0 * margin - (q_btc * o_btc + q_eth * o_eth)  # MB at the open = margin × MM
    return sb, k_net, px


@settings(max_examples=300, deadline=None)
@given(q_btc=st.floats(-3000, 3000), q_eth=st.floats(-60000, 60000), o_btc=st.floats(20_000, 120_000),
       o_eth=st.floats(1_000, 5_000), move_btc=st.floats(0, 0.6), move_eth=st.floats(0, 0.6),
       margin=st.floats(1.01, 20.0))
def test_joint_theta_is_the_root_of_mb_minus_mm(q_btc, q_eth, o_btc, o_eth, move_btc, move_eth, margin):
    if abs(q_btc) < 1e-3 and abs(q_eth) < 1e-3:
        return
    sb, k_net, px = case(q_btc, q_eth, o_btc, o_eth, move_btc, move_eth, margin)
    theta = joint_theta(sb, k_net, SYMS, 0, 2, FSV, (px.copy(), MCUR, EXT, SCRATCH), 0.0)
    if f_of(sb, k_net, px, 1.0) > 0:
        assert theta == -1.0
        return
    lo, hi = 0.0, 1.0  # bisection: f falls along the path
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f_of(sb, k_net, px, mid) > 0 else (lo, mid)
    assert theta == pytest.approx(hi, abs=1e-9)


def test_a_path_starting_on_a_tier_boundary_finds_its_root():
    # ETH short of 48,454.148 at 20x whose notional sits on the 65 M boundary as the path starts
    q_eth = -48_454.148296809435
    o_eth = 65e6 / abs(q_eth)
    sb, k_net, px = case(-2440.0519229082365, q_eth, 23_265.708245817477, o_eth, 0.004, 0.4, 1.5)
    theta = joint_theta(sb, k_net, SYMS, 0, 2, FSV, (px.copy(), MCUR, EXT, SCRATCH), 0.0)
    assert 0.0 < theta < 1.0
    assert abs(f_of(sb, k_net, px, theta)) <= 1e-6 * abs(k_net)


@settings(max_examples=300, deadline=None)
@given(q_btc=st.floats(-3000, 3000), q_eth=st.floats(-60000, 60000), o_btc=st.floats(20_000, 120_000),
       o_eth=st.floats(1_000, 5_000), move_btc=st.floats(0, 0.6), move_eth=st.floats(0, 0.6),
       margin=st.floats(0.5, 20.0), rises=st.booleans(), after=st.sampled_from([0.0, 0.0, 0.3, 0.9]))
def test_a_legs_root_from_the_last_event(q_btc, q_eth, o_btc, o_eth, move_btc, move_eth, margin, rises, after):
    """A leg of the walk with stops: every symbol toward its adverse extreme
    (legs 1 and 3) or away from it (leg 2, ``rises``), the search from the
    last event's θ ``after``: the first θ ≥ ``after`` where MB ≤ MM,
    ``after`` when already there (a margin below 1 at the leg's start, or a
    stop's fill that brought it), −1 when none."""
    if abs(q_btc) < 1e-3 and abs(q_eth) < 1e-3:
        return
    sign = -1.0 if rises else 1.0
    sb, k_net, px = case(q_btc, q_eth, o_btc, o_eth, sign * move_btc, sign * move_eth, margin)
    theta = joint_theta(sb, k_net, SYMS, 0, 2, FSV, (px.copy(), MCUR, EXT, SCRATCH), after)
    if f_of(sb, k_net, px, after) <= 0.0:
        assert theta == after
        return
    if f_of(sb, k_net, px, 1.0) > 0:
        assert theta == -1.0
        return
    assert not rises  # (MB − MM rises along a favourable leg: above the level at its start, above it all along)
    lo, hi = after, 1.0  # bisection: f falls along the leg
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f_of(sb, k_net, px, mid) > 0 else (lo, mid)
    assert theta == pytest.approx(hi, abs=1e-9)
