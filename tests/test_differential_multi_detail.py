"""Finer bars on a joint path: ``backtest.run_multi`` with ``detail=`` for
every symbol of a cross account against the plain-Python
``tests/reference_multi.py`` (docs/model-choices.md "Finer bars on a joint
path").

Each example: 2–3 symbols in one cross account on an hourly grid, each
hour cut into 2–12 sub-bars of a random walk with jumps and flat sub-bars
(so a sub-step can open beyond the level with nothing left to move), the
hour's bar made from its sub-bars; some symbols miss hours; some hours'
finer bars are broken (one missing: no usable detail there, the bar runs as
without and may count in ``detail_missing_bars``); stops on or off; random
profiles, costs, rates and targets.  Per bar the account's equity, debt and
each symbol's position agree to 1e-9, and so do the orders, the
liquidations (their ``theta`` and ``gap`` too), the margin calls, the
interest and ``detail_missing_bars``.

``MARGINBT_EXAMPLES`` sets the number of examples (default 300 here);
``MARGINBT_RANDOMIZE=1`` draws new ones.
"""
import math
import random

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_multi import simulate_multi
from test_differential import close_enough
from test_differential_multi import SETTINGS
from test_differential_multi_limits import limit_array, limit_specs
from test_differential_multi_stops import symbol_strategy

from backtest.multi import run_multi
from hyp_examples import examples

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
T0 = 1_700_000_000 // 3600 * 3600
EXAMPLES = examples(300)


@st.composite
def detail_scenarios(draw):
    stops = draw(st.sampled_from([False, True, True]))
    fr = [draw(st.sampled_from([0.0, 0.0, 0.005, 0.02, 0.05])) if stops else 0.0 for _ in range(3)]
    return dict(
        seed=draw(st.integers(0, 2**32 - 1)), n_sym=draw(st.sampled_from([2, 2, 3])),
        n=draw(st.sampled_from([2, 5, 20, 30, 40])),  # (not integers(): hypothesis would favour the shortest)
        m=draw(st.sampled_from([2, 3, 4, 6, 12])), vol=draw(st.sampled_from([0.002, 0.01, 0.03, 0.03])),
        jump=draw(st.sampled_from([0.0, 0.05, 0.2])), flat=draw(st.sampled_from([0.0, 0.0, 0.3])),
        holes=draw(st.sampled_from([0.0, 0.0, 0.2])), broken=draw(st.sampled_from([0.0, 0.0, 0.1, 0.3])),
        profile=draw(st.sampled_from(["cross-3x", "cross-5x", "cross-pro-10x", "cross-pro-20x"])),
        fee=draw(st.sampled_from([0.0, 0.001])), slippage=draw(st.sampled_from([0.0, 0.0005])),
        rates=[draw(st.sampled_from([0.0, 0.0002, 0.01])) for _ in range(4)],
        liquidation=draw(st.sampled_from(["partial", "full"])), rebalance=draw(st.sampled_from([0.0, 0.05])),
        stop_loss=fr[0], take_profit=fr[1], trailing_stop=fr[2],
        # a strategy's limit orders for each symbol (limit_specs: None = market orders only), in a third
        limits=[draw(limit_specs()) for _ in range(3)] if draw(st.sampled_from([False, False, True])) else None,
    )


def build(sc):
    """Per symbol its hourly bars (NaN where it has none), its sub-bars per
    hour (None: none usable), its finer bars as the engine reads them (a
    broken hour lacks its last sub-bar), and the targets."""
    rng = random.Random(sc["seed"])
    n, m = sc["n"], sc["m"]
    bars, subs, fine, targets = [], [], [], []
    for s in range(sc["n_sym"]):
        p = 100.0 * (s + 1)
        rows, sub_rows, fine_rows, tg = [], [], [], []
        x = rng.choice([-2.0, -1.0, 1.0, 2.0, 3.0])
        for i in range(n):
            has = s == 0 or i == 0 or rng.random() >= sc["holes"]
            cut = []
            for _ in range(m):
                o = p * (1 + rng.gauss(0, sc["vol"]) + (rng.choice([-1, 1]) * sc["jump"] if rng.random() < 0.05
                                                        else 0.0))
                c = o if rng.random() < sc["flat"] else o * (1 + rng.gauss(0, sc["vol"]))
                wide = c != o
                cut.append((o, max(o, c) * (1 + abs(rng.gauss(0, sc["vol"]))) if wide else o,
                            min(o, c) * (1 - abs(rng.gauss(0, sc["vol"]))) if wide else o, c))
                p = c
            if rng.random() < 0.25:
                x = rng.choice([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
            tg.append(x if has else math.nan)
            if not has:
                rows.append((math.nan,) * 4)
                sub_rows.append(None)
                continue
            rows.append((cut[0][0], max(r[1] for r in cut), min(r[2] for r in cut), cut[-1][3]))
            broken = rng.random() < sc["broken"]
            sub_rows.append(None if broken else cut)
            t = T0 + 3600 * i
            fine_rows += [(t + 3600 // m * j, *r) for j, r in enumerate(cut[:-1] if broken else cut)]
        bars.append(rows)
        subs.append(sub_rows)
        fine.append(fine_rows)
        targets.append(tg)
    return bars, subs, fine, targets


def run_both(sc):
    bars, subs, fine, targets = build(sc)
    n, m, syms = sc["n"], sc["m"], list(SYMBOLS[: sc["n_sym"]])
    ts = [T0 + 3600 * i for i in range(n)]
    cols = [[[r[q] for r in rows] for rows in bars] for q in range(4)]
    detail = [tuple([None if c is None else [r[q] for r in c] for c in sub_rows] for q in range(4))
              for sub_rows in subs]
    kw = dict(fee=sc["fee"], slippage=sc["slippage"], liquidation=sc["liquidation"], rebalance=sc["rebalance"],
              stop_loss=sc["stop_loss"], take_profit=sc["take_profit"], trailing_stop=sc["trailing_stop"])
    index = pd.DatetimeIndex(pd.to_datetime(ts, unit="s", utc=True), name="timestamp")
    limits, strategy = limit_orders(sc, bars, targets, index)
    ref = simulate_multi(ts, *cols, targets, accounts=[(sc["profile"], list(range(len(syms))), 10_000.0)],
                         rates_base_daily=sc["rates"][: len(syms)], rate_quote_daily=sc["rates"][-1], detail=detail,
                         limits=limits, **kw)
    data, finer = {}, {}
    for k, s in enumerate(syms):
        df = pd.DataFrame(dict(zip(("open", "high", "low", "close"), np.array(bars[k]).T)), index=index)
        data[s] = df[df["open"].notna()].assign(volume=1.0)
        data[s].attrs.update(symbol=s, timeframe="1h")
        f = pd.DataFrame(fine[k], columns=["t", "open", "high", "low", "close"])
        f.index = pd.DatetimeIndex(pd.to_datetime(f.pop("t"), unit="s", utc=True), name="timestamp")
        finer[s] = f.assign(volume=1.0)
        finer[s].attrs.update(symbol=s, timeframe=f"{60 // m}m")
    rates = {s[:-4]: r for s, r in zip(syms, sc["rates"])} | {"USDT": sc["rates"][-1]}
    if isinstance(strategy, dict):
        strategy = symbol_strategy(data, strategy)
    res = run_multi(data, strategy, margin=sc["profile"], rates=rates, detail=finer, **kw)
    return ref, res, index, syms


def limit_orders(sc, bars, targets, index):
    """The reference's ``limits`` (per symbol (limit prices on the grid,
    expiry) or None) and the engine's strategy: the targets on the grid, or
    with limit orders a function giving each symbol its targets, limit
    prices and expiry on its own bars (``limit_array``)."""
    syms = SYMBOLS[: sc["n_sym"]]
    grid_targets = pd.DataFrame({s: targets[k] for k, s in enumerate(syms)}, index=index)
    if not sc.get("limits") or all(spec is None for spec in sc["limits"][: len(syms)]):
        return None, grid_targets
    limits, outputs = [], {}
    for k, s in enumerate(syms):
        own = [i for i, r in enumerate(bars[k]) if r[0] == r[0]]
        target = np.asarray([targets[k][i] for i in own], dtype="float64")
        spec = sc["limits"][k]
        lim = limit_array(spec, [bars[k][i][3] for i in own])
        outputs[s] = target if lim is None else {"target": target, "limit": lim, "expiry": spec[2]}
        grid = [math.nan] * len(index)
        for j, i in enumerate(own):
            grid[i] = math.nan if lim is None else float(lim[j])
        limits.append(None if lim is None else (grid, spec[2]))
    return limits, outputs


def _series(name, got, want, sc):
    for i, (g, w) in enumerate(zip(got, want)):
        assert close_enough(w, float(g)), f"{name} at bar {i}: reference {w!r} kernel {float(g)!r}\nscenario={sc!r}"


def compare(ref, res, index, syms, sc):
    eq = res.equity
    _series("equity", eq["equity_cross"], ref["equity"][0], sc)
    _series("debt", eq["debt_cross"], ref["debt"][0], sc)
    for k, s in enumerate(syms):
        _series(f"position_{s}", eq[f"position_{s}"], ref["position"][k], sc)
    ko = res.orders
    got = [(int(index.get_loc(t)), s, sd, kd, bool(cp)) for t, s, sd, kd, cp in
           zip(ko["time"], ko["symbol"], ko["side"], ko["kind"], ko["capped"])]
    want = [(o["bar"], syms[o["symbol"]], o["side"], o["kind"], o["capped"]) for o in ref["orders"]]
    assert got == want, f"orders: reference {want} kernel {got}\nscenario={sc!r}"
    for j, o in enumerate(ref["orders"]):
        for col in ("quantity", "price", "fee"):
            assert close_enough(o[col], float(ko[col].iloc[j])), f"order #{j} {col}\nscenario={sc!r}"
    kl = res.liquidations.drop_duplicates("event") if len(res.liquidations) else res.liquidations
    assert len(kl) == len(ref["liquidations"]), f"liquidations {len(ref['liquidations'])} / {len(kl)}\n{sc!r}"
    for j, e in enumerate(ref["liquidations"]):
        assert int(index.get_loc(kl["time"].iloc[j])) == e["bar"], f"liquidation #{j} bar\nscenario={sc!r}"
        for col in ("margin_level", "fee", "equity_before", "equity_after", "bad_debt", "theta"):
            assert close_enough(e[col], float(kl[col].iloc[j])), (
                f"liquidation #{j} {col}: reference {e[col]!r} kernel {float(kl[col].iloc[j])!r}\nscenario={sc!r}")
        assert bool(e["gap"]) == bool(kl["gap"].iloc[j]), f"liquidation #{j} gap\nscenario={sc!r}"
    calls = [(int(index.get_loc(t))) for t in res.margin_calls["time"]]
    assert calls == [c["bar"] for c in ref["margin_calls"]], f"margin calls\nscenario={sc!r}"
    s = res.summary
    assert s["detail_missing_bars"] == ref["detail_missing_bars"], (
        f"detail_missing_bars: reference {ref['detail_missing_bars']} kernel {s['detail_missing_bars']}\n{sc!r}")
    for k, sym in enumerate(syms):
        assert s[f"detail_bars_{sym}"] == ref["detail_bars"][k], f"detail_bars_{sym}\nscenario={sc!r}"
        assert close_enough(ref["interest_base"][k], s[f"interest_paid_{sym[:-4]}"], abs_=1e-12)
    assert close_enough(sum(ref["interest_quote"]), s["interest_paid_USDT"])
    assert close_enough(ref["fees_paid"], s["fees_paid"])
    assert s.get("n_cancelled", 0) == ref["n_cancelled"], f"n_cancelled\nscenario={sc!r}"


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=detail_scenarios())
def test_kernel_matches_reference_on_finer_bars(sc):
    ref, res, index, syms = run_both(sc)
    compare(ref, res, index, syms, sc)


def test_the_examples_reach_what_they_test():
    """The scenarios above liquidate, fire stops, and meet hours without
    usable detail, in sub-steps (a theta past 1, or past 3 with stops)."""
    seen = dict(liq=0, sub=0, stop=0, missing=0, gap=0)
    for seed in range(40):
        rng = random.Random(seed)
        sc = dict(seed=seed, n_sym=2, n=30, m=rng.choice([4, 6]), vol=0.03, jump=0.2, flat=0.3, holes=0.2,
                  broken=0.2, profile="cross-5x", fee=0.001, slippage=0.0, rates=[0.0002] * 4, liquidation="partial",
                  rebalance=0.0, stop_loss=0.02 if seed % 2 else 0.0, take_profit=0.0, trailing_stop=0.0)
        ref, res, index, syms = run_both(sc)
        compare(ref, res, index, syms, sc)
        liq = res.liquidations
        seen["liq"] += len(liq)
        seen["sub"] += int((liq["theta"] >= (3.0 if sc["stop_loss"] else 1.0)).sum())
        seen["gap"] += int((liq["gap"] & (liq["theta"] > 0)).sum())
        seen["stop"] += int((res.orders["kind"] == "stop_loss").sum())
        seen["missing"] += res.summary["detail_missing_bars"]
    assert all(v > 0 for v in seen.values()), seen


def test_the_limit_examples_fill_and_cancel_in_sub_steps():
    """With limit orders: fills in a sub-step after the first (a price
    outside the first sub-bar's range: had it reached the order, the order
    would have filled there), cancels, a liquidation after a fill in the
    same bar (the orders are recorded in event order)."""
    seen = dict(fill=0, later=0, cancel=0, liq_after_fill=0)
    for seed in range(30):
        rng = random.Random(seed)
        sc = dict(seed=seed, n_sym=2, n=30, m=rng.choice([4, 6]), vol=0.02, jump=0.2, flat=0.3, holes=0.2,
                  broken=0.2, profile="cross-5x", fee=0.001, slippage=0.0, rates=[0.0002] * 4, liquidation="partial",
                  rebalance=0.0, stop_loss=0.02 if seed % 3 == 0 else 0.0, take_profit=0.0, trailing_stop=0.0,
                  limits=[(0.7, seed, 2), (1.0, seed + 100, 1), None])
        ref, res, index, syms = run_both(sc)
        compare(ref, res, index, syms, sc)
        fills = res.orders[res.orders["kind"] == "limit"]
        seen["fill"] += len(fills)
        subs = dict(zip(syms, build(sc)[1]))
        for t, s, price in zip(fills["time"], fills["symbol"], fills["price"]):
            cut = subs[s][index.get_loc(t)]
            seen["later"] += cut is not None and not cut[0][2] <= price <= cut[0][1]
        seen["cancel"] += res.summary.get("n_cancelled", 0)
        for _, bar in res.orders.groupby("time", sort=False):
            kinds = list(bar["kind"])
            seen["liq_after_fill"] += "limit" in kinds and "liquidation" in kinds[kinds.index("limit"):]
    assert all(v > 0 for v in seen.values()), seen
