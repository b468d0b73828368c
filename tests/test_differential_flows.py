"""Differential test of the trader's own moves (docs/model-choices.md
"Transfers and a reserve"): ``backtest.run`` with scheduled transfers in and
out, a reserve and its top-up rule against the plain-Python references
(``tests/reference.py`` for spot margin, ``tests/reference_perps.py`` for
perpetual futures; written from the docs, never from the engine) on random
one-symbol runs: the scenarios of ``test_differential.py`` and
``test_differential_perps.py`` without stops, limit orders or finer bars
(refused with the moves), plus random transfers (on and between bar opens,
deposits and withdrawals beyond what may leave), a reserve from none to
five times the capital, each top-up rule, and a safety buffer
(``keep_ml``: on spot margin between the liquidation and the initial
level, on cross perps a health in (1, 4); its ``deleverage`` orders are
compared as every order).  Per bar the equity, the
reserve and the net transfers, and every move (its bar, reason, amount,
price and levels) must agree to 1e-9, besides everything the base tests
compare; and the books: profit = final equity + reserve left − capital −
reserve − net transfers.

Manual loans (docs/model-choices.md "Manual loans": auto-borrow off or on,
a strategy's borrow / repay of either asset, +inf repays, amounts beyond
every cap) beside transfers and a reserve: their ``loans.csv`` rows as
well, compared up to the bar an account is spent to float noise.

Each test runs 700 examples in CI, a quarter locally (``hyp_examples``;
``MARGINBT_EXAMPLES`` sets it; 2,100 scenarios with moves in CI, about
40 s; randomized runs of 3,000 per venue without the buffer and 2,000
with it passed when it was written, 3,000 with manual loans, and 2,000 and
2,500 of perps with a buffer).
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
from hyp_examples import examples

EXAMPLES = examples(700)
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


def _spot_case(sc, mv):
    """A spot scenario without what the moves refuse (stops, limits, finer bars): its bars and targets, the
    reference's profile, the transfers (reference, engine), the top-up rule (reference, flag), the reserve."""
    sc.update(stop_loss=0.0, take_profit=0.0, trailing_stop=0.0, limit_p=0.0, level_p=0.0, detail="")
    ts, o, h, lo, c, tg = spot.build_case(**sc)
    capital = sc["capital"]
    _, rprofile = spot.profiles_of(sc, o[0])
    rprofile = Profile.get(rprofile) if isinstance(rprofile, str) else rprofile
    call = rprofile.margin_call_ml if math.isfinite(rprofile.margin_call_ml) else None
    return (ts, o, h, lo, c, tg, rprofile, _schedule(ts, capital, mv), _rule(mv, call, capital),
            mv["reserve"] * capital)


@settings(**HYP)
@given(sc=spot.scenarios(), mv=moves())
def test_spot_moves_match_the_reference(sc, mv):
    ts, o, h, lo, c, tg, rprofile, (ref_pairs, run_pairs), (rule, flag), reserve = _spot_case(sc, mv)
    capital = sc["capital"]
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
    buffer = None if mv["keep"] is None or sc["isolated"] else 1.0 + 3.0 * mv["keep"]  # a health in (1, 4)
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
    # events up to the bar an account is spent to float noise (a buffer at 50x that realizes 62 % of the margin
    # at each touch reaches 1e-12 in a few dozen): after it, their count is the noise's
    cut = _spent(ref, res, capital)
    before = bars.index[cut] if cut < len(bars) else bars.index[-1] + pd.Timedelta(1, "s")
    kl, ko = res.liquidations[res.liquidations["time"] < before], res.orders[res.orders["time"] < before]
    rl, ro = ([e for e in ref[k] if e["bar"] < cut] for k in ("liquidations", "orders"))
    assert len(kl) == len(rl), (kl, rl, sc, mv)
    for (_, row), r in zip(kl.iterrows(), rl):
        for k in ("trigger_price", "fee", "bad_debt", "equity_before", "equity_after"):
            assert perp.close(row[k], r[k], capital), (k, row[k], r[k], sc, mv)
    assert len(ko) == len(ro), (ko, ro, sc, mv)
    for (_, row), r in zip(ko.iterrows(), ro):
        assert row["kind"] == r["kind"] and (1 if row["side"] == "buy" else -1) == r["side"], (row, r, sc, mv)
        assert bool(row["capped"]) == bool(r["capped"]), (row, r, sc, mv)
        for k, scale in (("quantity", capital / row["price"]), ("price", row["price"]), ("fee", capital)):
            assert perp.close(row[k], r[k], scale), (k, row[k], r[k], sc, mv)
    if cut == len(bars):
        assert res.summary["n_margin_calls"] == ref["n_margin_calls"], (sc, mv)
        compare_moves(ref, res, bars.index, capital, reserve)


@st.composite
def loan_plans(draw):
    return dict(
        auto_borrow=draw(st.booleans()),
        density=draw(st.sampled_from([0.02, 0.05, 0.2, 0.5])),  # share of bars with a borrow / repay of an asset
        assets=draw(st.sampled_from(["quote", "base", "both"])),
        size=draw(st.sampled_from([0.05, 0.5, 2.0, 20.0])),  # × capital (a base amount: at the first open)
        all_p=draw(st.sampled_from([0.0, 0.3, 1.0])),  # share of repays of +inf (all owed)
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _loans(n, o0, capital, plan):
    """(reference form {"base"|"quote": amounts}, engine form {asset: amounts}) for borrow and repay; NaN,
    0, finite amounts and +inf repays."""
    rng = np.random.default_rng(plan["seed"])
    ref, run = {"borrow": {}, "repay": {}}, {"borrow": {}, "repay": {}}
    assets = ["quote", "base"] if plan["assets"] == "both" else [plan["assets"]]
    for key in ("borrow", "repay"):
        for asset in assets:
            unit = capital if asset == "quote" else capital / o0
            a = np.where(rng.random(n) < plan["density"], rng.uniform(0.0, plan["size"], n) * unit, np.nan)
            a[rng.random(n) < 0.02] = 0.0
            if key == "repay":
                a[(a > 0) & (rng.random(n) < plan["all_p"])] = np.inf
            ref[key][asset] = a
            run[key]["BTC" if asset == "base" else "USDT"] = a
    return ref, {k: v for k, v in run.items() if v}


def _inverse(x):
    return math.inf if x == 0 else 1.0 / x


def compare_loans(ref, res, index, capital, level=lambda x: x):
    """The rows of ``loans.csv``; a row asking float noise (an +inf repay of a debt of 1e-12 left on one side
    only: amounts agree to 1e-9, dust cleaning is absolute) is left out on both sides."""
    got, want = res.loans, ref["loans"]
    assert got is not None
    value = np.where(got["asset"] == "BTC", got["price"], 1.0)
    got = got[got["requested"] * value > 1e-9 * capital]
    want = [r for r in want if r["requested"] * (r["price"] if r["asset"] == "base" else 1.0) > 1e-9 * capital]
    assert len(got) == len(want), (got, want)
    for (_, row), r in zip(got.iterrows(), want):
        assert row["time"] == index[r["bar"]] and row["reason"] == r["reason"], (row, r)
        assert row["asset"] == ("BTC" if r["asset"] == "base" else "USDT"), (row, r)
        assert bool(row["capped"]) == bool(r["capped"]), (row, r)
        scale = capital if r["asset"] == "quote" else capital / row["price"]
        for col in ("amount", "requested"):
            assert close(row[col], r[col], scale), (col, row[col], r[col])
        assert row["price"] == r["price"]
        for col in ("margin_level_before", "margin_level_after"):
            # (as D / A: a repay can leave a debt of float-noise size, whose ML is huge and noisy)
            assert close(_inverse(level(row[col])), _inverse(level(r[col])), 1e-3), (col, row[col], r[col])
    assert res.summary["n_borrows"] == sum(1 for r in want if r["reason"] == "borrow" and r["amount"] > 0)


@settings(**HYP)
@given(sc=spot.scenarios(), mv=moves(), plan=loan_plans())
def test_spot_manual_loans_match_the_reference(sc, mv, plan):
    """Manual loans (auto-borrow off or on, borrow / repay of either asset) beside transfers and a reserve."""
    ts, o, h, lo, c, tg, _, (ref_pairs, run_pairs), (rule, flag), reserve = _spot_case(sc, mv)
    capital = sc["capital"]
    ref_loans, run_loans = _loans(len(ts), o[0], capital, plan)
    sc["loans"] = run_loans
    ref, res, bars = spot.run_both(
        ts, o, h, lo, c, tg, sc,
        ref_extra=dict(transfers=ref_pairs, reserve=reserve, top_up=rule, auto_borrow=plan["auto_borrow"],
                       borrow=ref_loans["borrow"] or None, repay=ref_loans["repay"] or None),
        run_extra=dict(transfers=run_pairs or None, reserve=reserve, top_up=flag if reserve else None,
                       auto_borrow=plan["auto_borrow"]))
    cut = _spent(ref, res, capital)
    whole = cut == len(bars)
    if not whole:  # compared up to the bar the account is spent to float noise
        ref, res, bars = _until(ref, res, bars, cut)
    spot.compare(ref, res, bars, sc)
    compare_loans(ref, res, bars.index, capital)
    if whole:
        compare_moves(ref, res, bars.index, capital, reserve)


def _spent(ref, res, capital):
    """The first bar an account is spent to float noise (equity ≤ 1e-6 of the capital on either side), else
    the number of bars.  Manual loans keep acting on such an account (a borrow at the cap of 1e-7 USDT, a
    repay cleaning 1e-13 BTC of dust): its liquidation prices are then the ratio of float residues, and the
    reference and the engine part ways at that noise."""
    eq = np.minimum(np.asarray(ref["equity"], float), res.equity["equity"].to_numpy())
    hit = np.flatnonzero(eq <= 1e-6 * capital)
    return int(hit[0]) if hit.size else len(eq)


def _until(ref, res, bars, cut):
    """The reference's and the engine's results before bar ``cut``."""
    from types import SimpleNamespace

    ref = {k: (v[:cut] if isinstance(v, list) and len(v) == len(bars) and not (v and isinstance(v[0], dict))
               else [e for e in v if e["bar"] < cut] if isinstance(v, list) else v) for k, v in ref.items()}
    end = bars.index[cut]
    eq = res.equity.iloc[:cut]
    res = SimpleNamespace(
        equity=eq, summary={"ambiguous_bars": int(eq["ambiguous"].sum()), "n_cancelled": 0,
                            "n_borrows": int(((res.loans["time"] < end) & (res.loans["reason"] == "borrow")
                                              & (res.loans["amount"] > 0)).sum())},
        **{k: getattr(res, k)[getattr(res, k)["time"] < end] for k in ("liquidations", "margin_calls", "orders",
                                                                         "loans")})
    return ref, res, bars.iloc[:cut]


def test_the_reference_profiles_have_call_levels():
    """(The spot rule ``ml`` needs a margin-call level: the built-in profiles but Pro have one.)"""
    assert all(PROFILES[p][1] for p in PROFILES if "pro" not in p)
