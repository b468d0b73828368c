"""Limit orders in the cross perp reference of several symbols (tests/reference_perps_cross.py), hand-computed.

Rules from docs/model-choices.md (cited MC): "Limit orders" (spot: decision, cancel, expiry, the walk with the
order as one more level), "Limit orders in a cross account of several symbols" (per symbol, own bars, the
joint walk, a flat symbol walking O -> H -> L -> C), and "Perpetual futures": the one-symbol **Limit orders**
and "A cross perp account holding several symbols", bullet *Limit orders* items 1-4 (cited MC cross-perp
*Limit orders*).  Two symbols A (index 0) and B (index 1) on hourly bars of a union grid; a target decided at
bar i's close is placed (limit) or executed (market) at the symbol's next bar's open.  No funding.  Each
expected number is worked out in the comments and written as the arithmetic, never read from the reference."""

import math

import pytest

from test_reference_perps_cross import flat, run

NAN = math.nan
# one tier, mmr 1 %, cum 0, up to 20x: the bracket notional at leverage <= 20 is 1e9 (never binding here)
T1 = [(0.0, 1e9, 0.01, 0.0, 20)]
# one tier, mmr 5 %, up to 20x
T5 = [(0.0, 1e9, 0.05, 0.0, 20)]


def rel(x):
    return pytest.approx(x, rel=1e-12, abs=1e-12)


def limit_orders(r):
    return [o for o in r["orders"] if o["kind"] == "limit"]


def lim(prices, e):
    """(limit prices on the grid, expiry) for one symbol."""
    return (list(prices), e)


def test_buy_limit_fills_where_the_low_reaches_it_while_the_other_symbol_is_held():
    # 10x, fee 0.1 %, capital 1,000.  Bar 0 decides A -> 1 (market) and B -> 1 with a limit 45 (B trades at 50).
    # Bar 1, step (2) in symbol order:
    #   A market: N* = 1·1,000/100 = 10 @ 100, fee 10·100·0.001 = 1 -> WC 999 (cap 1,000/(100·0.101) = 99 > 10).
    #   B placed: E = MB at the opens = 999; T = x·E/L = 999/45 = 22.2 units, δ = 22.2 (opening);
    #     A = MB − Σ|N_j|·P_j/Lv = 999 − 10·100/10 = 899, cap 899/(45·(0.1 + 0.001)) = 197.8 > 22.2: not cut.
    # Bar 1, step (5): an order stands, so the walk runs (no stops).  B flat with a standing order walks
    #   O -> H -> L -> C = 50 -> 51 -> 44 -> 48; leg 1 rises (a buy fires falling); leg 2 51 -> 44 reaches 45
    #   at θ = 6/7, trigger 45 (A flat at 100 on the path).  Fill 22.2 @ 45, no slippage, fee
    #   22.2·45·0.001 = 0.999 -> WC 998.001; cut again at 45: A = 999 − 100 = 899 -> 197.8 units: not cut.
    # Close: equity = 998.001 + 10·(100 − 100) + 22.2·(48 − 45) = 1,064.601.
    bars = [[flat(100)] * 3, [flat(50), (50, 51, 44, 48), flat(48)]]
    targets = [[1.0, NAN, NAN], [1.0, NAN, NAN]]
    r = run(bars, targets, [T1, T1], capital=1_000.0, leverage=10, fee=0.001,
            limits=[None, lim([45.0, NAN, NAN], 1)])
    q = 999 / 45
    assert q == rel(22.2)
    assert limit_orders(r) == [{"bar": 1, "symbol": 1, "side": 1, "quantity": rel(q), "price": 45.0,
                                "fee": rel(q * 45 * 0.001), "capped": False, "kind": "limit"}]
    assert [(o["bar"], o["symbol"], o["kind"]) for o in r["orders"]] == [(1, 0, "signal"), (1, 1, "limit")]
    assert r["position"][1] == [0.0, rel(q), rel(q)] and r["position"][0] == [0.0, 10.0, 10.0]
    assert r["equity"] == [1_000.0, rel(998.001 + q * 3), rel(998.001 + q * 3)]
    assert r["equity"][1] == rel(1_064.601)
    assert r["fees_paid"] == rel(1 + 0.999)
    assert r["n_cancelled"] == 0 and r["n_capped"] == 0 and r["liquidations"] == []


def test_expiry_counts_the_symbols_own_bars():
    # 10x, fee 0.1 %, capital 1,000; A held at nothing (targets NaN), its bars make the grid.  B -> 1 with a
    # limit 40 decided at bar 0, placed at bar 1 (B's own bar 1): E = 1,000, T = 1,000/40 = 25 units
    # (cap 1,000/(40·0.101) = 247.5).  B has no bar at grid bar 2: it does not count, and its order cannot fill
    # there.  Grid bar 3 is B's own bar 2.
    # e = 2: the order has its own bars 1 and 2 (grid 1 and 3); at grid 3, 2 >= 1 + 2 is false: it stands; B
    #   (50, 50, 39, 45) walks 50 -> 50 -> 39 -> 45, leg 2 reaches 40 at θ = 10/11: 25 @ 40, fee 25·40·0.001
    #   = 1 -> WC 999; close 45: equity 999 + 25·5 = 1,124.
    # e = 1: at grid 3 (own bar 2 >= 1 + 1) it is cancelled at step (2) before the walk: no fill, n_cancelled 1.
    a = [flat(100)] * 4
    b = [flat(50), (50, 50, 45, 50), None, (50, 50, 39, 45)]
    targets = [[NAN] * 4, [1.0, NAN, NAN, NAN]]
    prices = [40.0, NAN, NAN, NAN]
    kw = dict(capital=1_000.0, leverage=10, fee=0.001)
    r2 = run([a, b], targets, [T1, T1], limits=[None, lim(prices, 2)], **kw)
    assert limit_orders(r2) == [{"bar": 3, "symbol": 1, "side": 1, "quantity": 25.0, "price": 40.0,
                                 "fee": rel(1.0), "capped": False, "kind": "limit"}]
    assert r2["equity"] == [1_000.0, 1_000.0, 1_000.0, rel(1_124.0)]
    assert r2["n_cancelled"] == 0
    r1 = run([a, b], targets, [T1, T1], limits=[None, lim(prices, 1)], **kw)
    assert r1["orders"] == [] and r1["n_cancelled"] == 1
    assert r1["equity"] == [1_000.0] * 4 and r1["position"][1] == [0.0] * 4
    # e = 2 but the low stops at 41 at grid 3, and grid 4 (own bar 3 >= 1 + 2) cancels it before its low 39
    b4 = [flat(50), (50, 50, 45, 50), None, (50, 50, 41, 45), (45, 45, 39, 44)]
    r3 = run([[flat(100)] * 5, b4], [[NAN] * 5, [1.0] + [NAN] * 4], [T1, T1],
             limits=[None, lim(prices + [NAN], 2)], **kw)
    assert r3["orders"] == [] and r3["n_cancelled"] == 1 and r3["equity"][-1] == 1_000.0


def test_a_new_target_cancels_the_standing_order():
    # 10x, fee 0.1 %, capital 1,000.  B -> 1 limit 40 (expiry 5) at bar 0: placed at bar 1, 25 units; bar 1's
    # low 45 does not reach it.  Bar 1's close decides a new target 0.5 (market).  Bar 2, step (2): the standing
    # order is cancelled first (a new order is pending; n_cancelled 1), then the market order: E = 1,000,
    # N* = 0.5·1,000/50 = 10 @ 50, fee 10·50·0.001 = 0.5 -> WC 999.5.  Bar 2's low 38 would have filled the
    # limit at 40: it is gone.  Close 42: equity 999.5 + 10·(42 − 50) = 919.5.
    bars = [[flat(100)] * 3, [flat(50), (50, 52, 45, 50), (50, 50, 38, 42)]]
    r = run(bars, [[NAN] * 3, [1.0, 0.5, NAN]], [T1, T1], capital=1_000.0, leverage=10, fee=0.001,
            limits=[None, lim([40.0, NAN, NAN], 5)])
    assert r["orders"] == [{"bar": 2, "symbol": 1, "side": 1, "quantity": 10.0, "price": 50.0, "fee": rel(0.5),
                            "capped": False, "kind": "signal"}]
    assert r["n_cancelled"] == 1
    assert r["equity"] == [1_000.0, 1_000.0, rel(919.5)]


def test_order_on_a_flat_symbol_filled_at_a_better_open():
    # 10x, fee 0.1 %, capital 900.  B -> 1 limit 45 at bar 0.  Bar 1 opens at 44, below the limit.
    # Placement at bar 1's open: E = 900, T = 900/45 = 20 units (the size uses the limit, not the open);
    # cap 900/(45·0.101) = 198: not cut.  Walk: on leg 1 at θ = 0 the open is already at or below L: trigger
    # the open 44 (a better price).  Fill 20 @ 44, fee 20·44·0.001 = 0.88 -> WC 899.12; cut again at 44:
    # 900/(44·0.101) = 202.5 > 20.  Close 45: equity 899.12 + 20·(45 − 44) = 919.12.
    bars = [[flat(100)] * 2, [flat(50), (44, 46, 43, 45)]]
    r = run(bars, [[NAN] * 2, [1.0, NAN]], [T1, T1], capital=900.0, leverage=10, fee=0.001,
            limits=[None, lim([45.0, NAN], 1)])
    assert limit_orders(r) == [{"bar": 1, "symbol": 1, "side": 1, "quantity": 20.0, "price": 44.0,
                                "fee": rel(0.88), "capped": False, "kind": "limit"}]
    assert r["equity"] == [900.0, rel(919.12)]
    assert r["n_capped"] == 0


def test_opening_part_cut_again_at_the_fill():
    # (a) The other symbol moved along the path.  10x, no fee, capital 1,000.  Bar 0: A -> 5 (market),
    # B -> 4 limit 50.  Bar 1: A: N* = 5·1,000/100 = 50 @ 100 (cap 1,000/(100·0.1) = 100), WC 1,000.
    # B placed: E = 1,000, T = 4·1,000/50 = 80; A = 1,000 − 50·100/10 = 500, cap 500/(50·0.1) = 100 >= 80.
    # Walk: A long walks 100 -> 90 -> 100 -> 95, B flat with its order 52 -> 52 -> 48 -> 50.  Leg 1: B does not
    # move.  Leg 2: B 52 -> 48 reaches 50 at θ = 2/4 = 0.5, A then at 90 + 0.5·10 = 95.  Cut again at 50 with
    # A at 95: MB = 1,000 + 50·(95 − 100) = 750, A = 750 − 50·95/10 = 275, cap 275/(50·0.1) = 55 < 80: the fill
    # is 55 units, capped (n_capped 1).  (Liquidation: MB 500 at A's low vs MM 0.01·4,500 = 45: none.)
    # Close A 95, B 50: equity 1,000 + 50·(95 − 100) + 55·(50 − 50) = 750.
    bars = [[flat(100), (100, 100, 90, 95)], [flat(52), (52, 52, 48, 50)]]
    targets = [[5.0, NAN], [4.0, NAN]]
    kw = dict(capital=1_000.0, leverage=10, limits=[None, lim([50.0, NAN], 1)])
    r = run(bars, targets, [T1, T1], **kw)
    assert limit_orders(r) == [{"bar": 1, "symbol": 1, "side": 1, "quantity": rel(55.0), "price": 50.0,
                                "fee": 0.0, "capped": True, "kind": "limit"}]
    assert r["n_capped"] == 1 and r["n_cancelled"] == 0
    assert r["position"][1] == [0.0, rel(55.0)] and r["equity"] == [1_000.0, rel(750.0)]
    # with A at 100 throughout the same fill is not cut: A = 1,000 − 500 = 500 -> 100 >= 80
    r0 = run([[flat(100), flat(100)], bars[1]], targets, [T1, T1], **kw)
    (o,) = limit_orders(r0)
    assert o["quantity"] == 80.0 and o["capped"] is False and r0["n_capped"] == 0

    # (b) A sell filled above its limit takes more margin a unit.  10x, no fee, capital 1,000, B -> −10 limit
    # 50, bar 1 opens at 52.  Placement: T = −10·1,000/50 = −200; cap 1,000/(50·0.1) = 200: not cut.  The open
    # is at or above L: trigger the open 52; cut again at 52: 1,000/(52·0.1) = 192.307..., capped.
    # Close 52: equity 1,000.
    r = run([[flat(100)] * 2, [flat(50), (52, 53, 51, 52)]], [[NAN] * 2, [-10.0, NAN]], [T1, T1],
            capital=1_000.0, leverage=10, limits=[None, lim([50.0, NAN], 1)])
    assert limit_orders(r) == [{"bar": 1, "symbol": 1, "side": -1, "quantity": rel(1_000 / 5.2), "price": 52.0,
                                "fee": 0.0, "capped": True, "kind": "limit"}]
    assert r["n_capped"] == 1 and r["equity"] == [1_000.0, rel(1_000.0)]


def test_placement_of_a_flip_closes_at_the_limit_then_caps_the_opening_part():
    # 2x, no fee, capital 1,000.  Bar 0: B -> 1.5 (market) -> bar 1: N* = 1.5·1,000/50 = 30 @ 50
    # (cap 1,000/(50·0.5) = 40).  Bar 1 decides B -> −4 with a limit sell 60.
    # Bar 2 placement at the open 50: E = 1,000, T = −4·1,000/60 = −66.667, δ = −96.667; closing part r = 30;
    # the opening part 66.667 is cut after the closing part done at L = 60: WC 1,000 + 30·(60 − 50) = 1,300,
    # B flat: A = 1,300, cap 1,300/(60·0.5) = 43.333 < 66.667: capped at placement (n_capped 1), q = 73.333.
    # (Had the close been valued at the open 50, the cap would be 1,000/30 = 33.3.)
    # Walk, B long: 50 -> 49 -> 62 -> 61; leg 2 49 -> 62 reaches 60 at θ = 11/13, trigger 60.  Fill: close 30
    # at 60 (+300 -> WC 1,300), then the opening part cut again at 60: 1,300/30 = 43.333 (= u: not cut again,
    # still counted once).  Short 43.333 @ 60; close 61: equity 1,300 − 43.333·1 = 1,256.667.
    bars = [[flat(100)] * 3, [flat(50), flat(50), (50, 62, 49, 61)]]
    r = run(bars, [[NAN] * 3, [1.5, -4.0, NAN]], [T1, T1], capital=1_000.0, leverage=2,
            limits=[None, lim([NAN, 60.0, NAN], 1)])
    u = 1_300 / 30
    assert limit_orders(r) == [{"bar": 2, "symbol": 1, "side": -1, "quantity": rel(30 + u), "price": 60.0,
                                "fee": 0.0, "capped": True, "kind": "limit"}]
    assert r["position"][1] == [0.0, 30.0, rel(-u)]
    assert r["equity"] == [1_000.0, 1_000.0, rel(1_300 - u)]
    assert r["n_capped"] == 1


def test_gap_liquidation_cancels_the_standing_order_first():
    # 20x on T5 (mmr 5 %), no fee, capital 1,000, clearance 1.25 %.  Bar 0: A -> 10 (market), B -> 1 limit 40
    # (expiry 5).  Bar 1: A: 10·1,000/100 = 100 @ 100 (cap 1,000/(100/20) = 200); B placed: E = 1,000,
    # T = 1,000/40 = 25 (A = 1,000 − 100·100/20 = 500, cap 500/(40/20) = 250); B's bar 1 stays at 50.
    # Bar 2 A opens at 94: MB = 1,000 − 100·6 = 400, MM = 0.05·9,400 = 470, h = 400/470 <= 1: the gap
    # liquidation cancels B's order first (n_cancelled 1), then closes A at 94: fee 0.0125·9,400 = 117.5,
    # WC = 400 − 117.5 = 282.5.  B's bar 2 low 38 would have filled the order (25 units: cap
    # 282.5/(40/20) = 141 >= 25): it is gone, nothing fills.
    bars = [[flat(100), flat(100), flat(94)], [flat(50), flat(50), (50, 50, 38, 45)]]
    r = run(bars, [[10.0, NAN, NAN], [1.0, NAN, NAN]], [T5, T5], capital=1_000.0, leverage=20,
            limits=[None, lim([40.0, NAN, NAN], 5)])
    (liq,) = r["liquidations"]
    assert liq["bar"] == 2 and liq["gap"] is True
    assert liq["equity_before"] == rel(400.0) and liq["margin_level"] == rel(400 / 470)
    assert liq["fee"] == rel(117.5) and liq["equity_after"] == rel(282.5) and liq["bad_debt"] == 0.0
    assert limit_orders(r) == [] and r["n_cancelled"] == 1
    assert [(o["bar"], o["symbol"], o["kind"]) for o in r["orders"]] == [(1, 0, "signal"), (2, 0, "liquidation")]
    assert r["position"][1] == [0.0, 0.0, 0.0] and r["equity"][2] == rel(282.5)
    # without A's gap (A stays at 100) the order fills at 40 on bar 2: B walks 50 -> 50 -> 38 -> 45
    r0 = run([[flat(100)] * 3, bars[1]], [[10.0, NAN, NAN], [1.0, NAN, NAN]], [T5, T5], capital=1_000.0,
             leverage=20, limits=[None, lim([40.0, NAN, NAN], 5)])
    (o,) = limit_orders(r0)
    assert (o["bar"], o["quantity"], o["price"]) == (2, 25.0, 40.0) and r0["n_cancelled"] == 0


def test_stop_loss_after_the_fill_later_in_the_same_bar():
    # 10x, fee 0.1 %, capital 900, stop-loss 5 %.  B -> 1 limit 45 at bar 0; placed at bar 1: T = 900/45 = 20.
    # Bar 1, B flat with its order: 50 -> 51 -> 40 -> 44.  Leg 2 (51 -> 40) reaches 45 at θ = 6/11: 20 @ 45,
    # fee 0.9 -> WC 899.1; entry 45, stop-loss 45·0.95 = 42.75, which the same falling leg reaches at
    # θ = (51 − 42.75)/11 = 0.75 > 6/11: sold 20 @ 42.75 (no slippage), realised 20·(42.75 − 45) = −45, fee
    # 20·42.75·0.001 = 0.855 -> WC 853.245; flat at the close.
    bars = [[flat(100)] * 2, [flat(50), (50, 51, 40, 44)]]
    kw = dict(capital=900.0, leverage=10, fee=0.001, limits=[None, lim([45.0, NAN], 1)])
    r = run(bars, [[NAN] * 2, [1.0, NAN]], [T1, T1], stop_loss=0.05, **kw)
    assert r["orders"] == [
        {"bar": 1, "symbol": 1, "side": 1, "quantity": 20.0, "price": 45.0, "fee": rel(0.9), "capped": False,
         "kind": "limit"},
        {"bar": 1, "symbol": 1, "side": -1, "quantity": 20.0, "price": rel(42.75), "fee": rel(0.855),
         "capped": False, "kind": "stop_loss", "trigger": rel(42.75)}]
    assert r["position"][1] == [0.0, 0.0]
    assert r["equity"] == [900.0, rel(853.245)]
    assert r["fees_paid"] == rel(0.9 + 0.855) and r["n_cancelled"] == 0
    # without the stop the position is kept: 899.1 + 20·(44 − 45) = 879.1
    r0 = run(bars, [[NAN] * 2, [1.0, NAN]], [T1, T1], **kw)
    assert r0["position"][1] == [0.0, 20.0] and r0["equity"][1] == rel(879.1)
