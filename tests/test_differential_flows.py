"""Differential test of the trader's own moves (docs/model-choices.md
"Transfers and a reserve"): ``backtest.run`` with scheduled transfers in and
out, a reserve and its top-up rule against the plain-Python references
(``tests/reference.py`` for spot margin, ``tests/reference_perps.py`` for
perpetual futures; written from the docs, never from the engine) on random
one-symbol runs: the scenarios of ``test_differential.py`` and
``test_differential_perps.py`` without stops, limit orders or finer bars
(refused with the moves), plus random transfers (on and between bar opens,
deposits and withdrawals beyond what may leave), a reserve from none to
five times the capital, each top-up rule, and on spot margin a safety
buffer (``keep_ml``: its ``deleverage`` orders are compared as every order).  Per bar the equity, the
reserve and the net transfers, and every move (its bar, reason, amount,
price and levels) must agree to 1e-9, besides everything the base tests
compare; and the books: profit = final equity + reserve left − capital −
reserve − net transfers.

``MARGINBT_EXAMPLES`` sets the number of examples of each venue (default
500, 1000 in all, so the suite stays under 10 minutes; randomized runs of
3,000 per venue without the buffer and 2,000 with it passed when it was
written).
"""
import math
import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
import test_differential as spot
import test_differential_perps as perp
from reference import PROFILES, Profile
from reference_perps import simulate_perps

EXAMPLES = int(os.environ.get("MARGINBT_EXAMPLES", "500"))
HYP = dict(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("MARGINBT_RANDOMIZE", "0") != "1",
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def moves(draw):
    return dict(
        n_transfers=draw(st.sampled_from([0, 0, 1, 2, 4])),
        reserve=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, 5.0])),  # × capital
        rule=draw(st.sampled_from(["default", "ml", "ml", "amount"])),
        ml_above=draw(st.sampled_from([0.01, 0.2, 1.0])),  # ml = call level + this
        amount=draw(st.sampled_from([0.01, 0.1, 0.5])),  # × capital
        keep=draw(st.sampled_from([None, None, 0.3, 0.7])),  # the buffer: this far from liquidation to initial
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _schedule(ts, capital, mv):
    """(reference pairs in seconds, engine pairs as timestamps): on bar opens
    and between them, deposits and withdrawals up to twice the capital."""
    rng = np.random.default_rng(mv["seed"])
    pairs = []
    for _ in range(mv["n_transfers"]):
        k = int(rng.integers(len(ts)))
        t = int(ts[k]) + (int(rng.integers(1, 1800)) if rng.random() < 0.3 and k + 1 < len(ts) else 0)
        t = min(t, int(ts[-1]))
        a = float(rng.uniform(-2.0, 1.0)) * capital
        pairs.append((t, a if abs(a) > 1e-6 * capital else capital))
    return pairs, [(pd.Timestamp(t, unit="s", tz="UTC"), a) for t, a in pairs]


def _rule(mv, call, capital):
    if mv["rule"] == "ml" and call:
        x = call + mv["ml_above"]
        return ("ml", x), f"ml={x!r}"
    if mv["rule"] == "amount":
        a = mv["amount"] * capital
        return ("amount", a), f"amount={a!r}"
    return None, None


def close(a, b, scale=1.0):
    return (abs(a - b) <= 1e-9 * max(abs(a), abs(b)) + 1e-6 * scale or (math.isnan(a) and math.isnan(b))
            or (math.isinf(a) and a == b))


def compare_moves(ref, res, index, capital, reserve, level=lambda x: x):
    got = res.transfers if res.transfers is not None else pd.DataFrame(columns=["time"])
    want = ref["transfers"]
    assert len(got) == len(want), (got, want)
    for (_, row), r in zip(got.iterrows(), want):
        assert row["time"] == index[r["bar"]] and row["reason"] == r["reason"], (row, r)
        assert bool(row["capped"]) == bool(r["capped"]), (row, r)
        for col in ("amount", "requested", "reserve_after"):
            assert close(row[col], r[col], capital), (col, row[col], r[col])
        assert close(row["price"], r["price"], row["price"]), (row, r)
        for col in ("margin_level_before", "margin_level_after"):
            # (levels are O(1): an absolute floor of 1e-9, the float noise of a margin balance near 0)
            assert close(level(row[col]), level(r[col]), 1e-3), (col, row[col], r[col])
    if reserve or len(want):
        eq = res.equity
        for col in ("reserve", "net_transfers"):
            for i, (a, b) in enumerate(zip(eq[col].to_numpy(), ref[col])):
                assert close(a, b, capital), (col, i, a, b)
        s = res.summary
        assert close(s["reserve_left"], ref["reserve"][-1], capital)
        assert close(s["profit"], s["final_equity"] + s["reserve_left"] - capital - reserve - s["net_transfers"],
                     capital)
        flat = (s.get("interest_while_flat") or 0.0) + (s.get("fees_while_flat") or 0.0)
        pnl = float(res.trades["pnl"].sum()) if len(res.trades) else 0.0
        assert close(pnl - flat, s["profit"], capital), (pnl, flat, s["profit"])  # the books


@settings(**HYP)
@given(sc=spot.scenarios(), mv=moves())
def test_spot_moves_match_the_reference(sc, mv):
    sc.update(stop_loss=0.0, take_profit=0.0, trailing_stop=0.0, limit_p=0.0, level_p=0.0, detail="")
    ts, o, h, lo, c, tg = spot.build_case(**sc)
    capital = sc["capital"]
    ref_pairs, run_pairs = _schedule(ts, capital, mv)
    _, rprofile = spot.profiles_of(sc, o[0])
    rprofile = Profile.get(rprofile) if isinstance(rprofile, str) else rprofile
    call = rprofile.margin_call_ml if math.isfinite(rprofile.margin_call_ml) else None
    rule, flag = _rule(mv, call, capital)
    reserve = mv["reserve"] * capital
    keep = None  # the buffer: with auto-repay, between the liquidation and the initial level (not on Pro)
    if mv["keep"] is not None and sc["repay"] == "auto" and "pro" not in sc["profile"]:
        keep = rprofile.liquidation_ml + mv["keep"] * (rprofile.initial_ml - rprofile.liquidation_ml)
    ref, res, bars = spot.run_both(ts, o, h, lo, c, tg, sc,
                                   ref_extra=dict(transfers=ref_pairs, reserve=reserve, top_up=rule, keep_ml=keep),
                                   run_extra=dict(transfers=run_pairs or None, reserve=reserve,
                                                  top_up=flag if reserve else None, keep_ml=keep))
    spot.compare(ref, res, bars, sc)
    compare_moves(ref, res, bars.index, capital, reserve)


@settings(**HYP)
@given(sc=perp.scenarios(), mv=moves())
def test_perp_moves_match_the_reference(sc, mv):
    ts, ohlc, mark, lack, targets, f_times, f_rates = perp.build(
        sc["seed"], sc["n"], sc["start_offset"], sc["vol"], sc["jump_p"], sc["gap_p"], sc["mark_noise"],
        sc["missing_p"], sc["change_p"], sc["pool"])
    bars = perp.frame(ts, ohlc)
    keep = ~lack
    keep[0] = True
    mark_df = perp.frame(ts[keep], [np.asarray(x)[keep] for x in mark])
    capital = sc["capital"]
    ref_pairs, run_pairs = _schedule(ts, capital, mv)
    rule, flag = _rule(mv, 1.25, capital)
    reserve = mv["reserve"] * capital
    buffer = None  # (--keep-ml is spot margin only for now)
    fdf = pd.DataFrame({"timestamp": pd.to_datetime(f_times, unit="s", utc=True), "funding_rate": f_rates})
    mode = "isolated" if sc["isolated"] else "cross"
    res = backtest.run(bars, np.asarray(targets, float), symbol="BTCUSDT", margin=f"usdm-{mode}-{sc['leverage']}x",
                       capital=capital, fee=sc["fee"], slippage=sc["slippage"], rebalance=sc["rebalance"],
                       stop_on_liquidation=sc["stop"], mark=mark_df, funding=fdf, transfers=run_pairs or None,
                       reserve=reserve, top_up=flag if reserve else None, keep_ml=buffer)
    ref_mark = tuple([x if keep[i] else math.nan for i, x in enumerate(col)] for col in mark)
    ref = simulate_perps([int(t) for t in ts], *ohlc, targets, capital=capital, leverage=sc["leverage"],
                         isolated=sc["isolated"], fee=sc["fee"], slippage=sc["slippage"], clearance=0.0125,
                         brackets=perp.VERSIONS, funding=list(zip(f_times, f_rates)), mark=ref_mark,
                         rebalance=sc["rebalance"], stop_on_liquidation=sc["stop"], transfers=ref_pairs,
                         reserve=reserve, top_up=rule, keep_ml=buffer)
    eq = res.equity
    for col in ("equity", "position", "funding_paid", "margin_ratio"):
        for i, (a, b) in enumerate(zip(eq[col].to_numpy(), ref[col])):
            if col == "margin_ratio" and abs(ref["equity"][i]) <= 1e-6 * capital:
                continue  # an account spent to float noise (a buffer selling into slippage): its ratio is noise
            scale = 1.0 if col == "margin_ratio" else (capital / ohlc[3][i] if col == "position" else capital)
            assert perp.close(a, b, scale), f"{col} bar {i}: kernel {a!r} reference {b!r} ({sc}, {mv})"
    assert len(res.liquidations) == len(ref["liquidations"]), (res.liquidations, ref["liquidations"], sc, mv)
    for (_, row), r in zip(res.liquidations.iterrows(), ref["liquidations"]):
        for k in ("trigger_price", "fee", "bad_debt", "equity_before", "equity_after"):
            assert perp.close(row[k], r[k], capital), (k, row[k], r[k], sc, mv)
    assert len(res.orders) == len(ref["orders"]), (res.orders, ref["orders"], sc, mv)
    for (_, row), r in zip(res.orders.iterrows(), ref["orders"]):
        assert row["kind"] == r["kind"] and (1 if row["side"] == "buy" else -1) == r["side"], (row, r, sc, mv)
        assert bool(row["capped"]) == bool(r["capped"]), (row, r, sc, mv)
        for k, scale in (("quantity", capital / row["price"]), ("price", row["price"]), ("fee", capital)):
            assert perp.close(row[k], r[k], scale), (k, row[k], r[k], sc, mv)
    assert res.summary["n_margin_calls"] == ref["n_margin_calls"], (sc, mv)
    compare_moves(ref, res, bars.index, capital, reserve)


def test_the_reference_profiles_have_call_levels():
    """(The spot rule ``ml`` needs a margin-call level: the built-in profiles but Pro have one.)"""
    assert all(PROFILES[p][1] for p in PROFILES if "pro" not in p)
