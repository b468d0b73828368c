"""Differential test of the perpetual-futures venue: the compiled loop
(``backtest.run`` with a ``usdm-*`` profile) against the plain-Python
reference ``tests/reference_perps.py`` (written from docs/perps-model.md and
docs/model-choices.md "Perpetual futures", never from the engine) on random
one-symbol runs.

Each example: an hourly random walk with jumps and opening gaps on a mark
series that strays from the traded one (and lacks some bars); random
targets up to beyond the leverage (caps), flips; funding rows on and between
bar opens; isolated or cross, leverage 1–125; a capital from 1,000 to 200 M
so that positions cross the bracket tiers; runs that straddle a bracket
table change (BTCUSDT's 2024-05-30 and 2025-06-19 versions).  Per bar the
equity, position, funding paid and margin ratio must agree to 1e-9
(relative, absolute floor 1e-6 of the capital), and so must the orders,
liquidations and funding charges.

``MARGINBT_EXAMPLES`` sets the number of examples (default 2000).
"""
import math
import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from backtest.venues.brackets import date_seconds
from backtest.venues.brackets_data import TABLES
from reference_perps import simulate_perps
from hyp_examples import examples

REL = 1e-9
SWITCH = date_seconds("2025-06-19")  # a bracket version starts here


def _versions():
    return [(date_seconds(d), [tuple(float(x) for x in t) for t in tiers]) for d, tiers in TABLES["BTCUSDT"]]


VERSIONS = _versions()


def build(seed, n, start_offset, vol, jump_p, gap_p, mark_noise, missing_p, change_p, pool):
    rng = np.random.default_rng(seed)
    t0 = SWITCH + start_offset * 3600
    ts = t0 + 3600 * np.arange(n, dtype=np.int64)
    p = 30_000.0 * math.exp(rng.uniform(-0.5, 0.5))
    o, h, lo, c, mo, mh, ml, mc = ([] for _ in range(8))
    for i in range(n):
        op = p * (math.exp(rng.normal(0, 4 * vol)) if rng.random() < gap_p else 1.0)
        r = rng.normal(0, vol) + (rng.normal(0, 6 * vol) if rng.random() < jump_p else 0.0)
        cl = op * math.exp(r)
        hi = max(op, cl) * math.exp(abs(rng.normal(0, vol)))
        low = min(op, cl) * math.exp(-abs(rng.normal(0, vol)))
        o.append(op), h.append(hi), lo.append(low), c.append(cl)
        k = [x * math.exp(rng.normal(0, mark_noise)) for x in (op, cl)]
        mo.append(k[0]), mc.append(k[1])
        mh.append(max(k) * math.exp(abs(rng.normal(0, vol))))
        ml.append(min(k) * math.exp(-abs(rng.normal(0, vol))))
        p = cl
    lack = rng.random(n) < missing_p
    targets = []
    last = 0.0
    for i in range(n):
        if rng.random() < change_p:
            last = pool[int(rng.integers(len(pool)))]
            if last is None:
                last = float(rng.uniform(-150, 150))
            targets.append(last)
        else:
            targets.append(math.nan if rng.random() < 0.5 else last)
    # funding: on bar opens every 8 h, some between opens, one before the first bar
    f_times = [int(ts[0]) - 3600] + [int(t) for t in ts if t % (8 * 3600) == 0]
    f_times += [int(ts[i]) + 1800 for i in rng.choice(n, size=min(3, n), replace=False)]
    f_times = sorted(set(f_times))
    f_rates = [float(rng.normal(0.0001, 0.002)) for _ in f_times]
    return ts, (o, h, lo, c), (mo, mh, ml, mc), lack, targets, f_times, f_rates


def frame(ts, cols):
    idx = pd.to_datetime(ts, unit="s", utc=True)
    return pd.DataFrame({"open": cols[0], "high": cols[1], "low": cols[2], "close": cols[3],
                         "volume": np.ones(len(ts))}, index=pd.Index(idx, name="timestamp"))


@st.composite
def scenarios(draw):
    pool = (0.0, 1.0, -1.0, 3.0, -3.0, 10.0, -10.0, 20.0, -20.0, 60.0, None, None)
    return dict(
        seed=draw(st.integers(0, 2**32 - 1)), n=draw(st.integers(2, 120)),
        start_offset=draw(st.integers(-60, 30)), vol=draw(st.sampled_from([0.002, 0.01, 0.03])),
        jump_p=draw(st.sampled_from([0.0, 0.05, 0.2])), gap_p=draw(st.sampled_from([0.0, 0.1, 0.3])),
        mark_noise=draw(st.sampled_from([0.0, 0.001, 0.01])), missing_p=draw(st.sampled_from([0.0, 0.1])),
        change_p=draw(st.sampled_from([0.1, 0.3, 0.8])), pool=pool,
        leverage=draw(st.sampled_from([1, 2, 5, 10, 20, 50, 100, 125])),
        isolated=draw(st.booleans()), capital=draw(st.sampled_from([1_000.0, 10_000.0, 300_000.0, 5e6, 2e8])),
        fee=draw(st.sampled_from([0.0, 0.0005, 0.002])), slippage=draw(st.sampled_from([0.0, 0.0005])),
        rebalance=draw(st.sampled_from([0.0, 0.0, 0.05])), stop=draw(st.booleans()),
        constant=draw(st.sampled_from([None, None, 0.0003])),
    )


def close(a, b, scale):
    return abs(a - b) <= REL * max(abs(a), abs(b)) + 1e-6 * scale or (math.isnan(a) and math.isnan(b)) \
        or (math.isinf(a) and a == b)


@settings(max_examples=examples(2000), deadline=None,
          suppress_health_check=[HealthCheck.too_slow], derandomize=not os.environ.get("MARGINBT_RANDOMIZE"))
@given(sc=scenarios())
def test_kernel_matches_reference(sc):
    ts, ohlc, mark, lack, targets, f_times, f_rates = build(
        sc["seed"], sc["n"], sc["start_offset"], sc["vol"], sc["jump_p"], sc["gap_p"], sc["mark_noise"],
        sc["missing_p"], sc["change_p"], sc["pool"])
    bars = frame(ts, ohlc)
    keep = ~lack
    keep[0] = True  # (the mark overlaps the data)
    mark_df = frame(ts[keep], [np.asarray(x)[keep] for x in mark])
    mode = "isolated" if sc["isolated"] else "cross"
    if sc["constant"] is not None:
        funding_kw = dict(funding_rate=sc["constant"])
        step = 8 * 3600
        ref_funding = [(t, sc["constant"]) for t in range(-(-int(ts[0]) // step) * step, int(ts[-1]) + step, step)]
    else:
        fdf = pd.DataFrame({"timestamp": pd.to_datetime(f_times, unit="s", utc=True), "funding_rate": f_rates})
        funding_kw = dict(funding=fdf)
        ref_funding = list(zip(f_times, f_rates))
    res = backtest.run(bars, np.asarray(targets, float), symbol="BTCUSDT", margin=f"usdm-{mode}-{sc['leverage']}x",
                       capital=sc["capital"], fee=sc["fee"], slippage=sc["slippage"], rebalance=sc["rebalance"],
                       stop_on_liquidation=sc["stop"], mark=mark_df, **funding_kw)
    ref_mark = tuple([x if keep[i] else math.nan for i, x in enumerate(col)] for col in mark)
    ref = simulate_perps([int(t) for t in ts], *ohlc, targets, capital=sc["capital"], leverage=sc["leverage"],
                         isolated=sc["isolated"], fee=sc["fee"], slippage=sc["slippage"], clearance=0.0125,
                         brackets=VERSIONS, funding=ref_funding, mark=ref_mark, rebalance=sc["rebalance"],
                         stop_on_liquidation=sc["stop"])
    eq = res.equity
    scale = sc["capital"]
    for col, ref_col in (("equity", "equity"), ("position", "position"), ("funding_paid", "funding_paid"),
                         ("margin_ratio", "margin_ratio")):
        got = eq[col].to_numpy()
        for i, (a, b) in enumerate(zip(got, ref[ref_col])):
            s = 1.0 if col == "margin_ratio" else (scale / max(ts.size, 1) if col == "position" else scale)
            if col == "position":
                s = scale / ohlc[3][i]
            assert close(a, b, s), f"{col} bar {i}: kernel {a!r} reference {b!r} ({sc})"
    orders = res.orders
    assert len(orders) == len(ref["orders"]), (orders, ref["orders"], sc)
    for (_, row), r in zip(orders.iterrows(), ref["orders"]):
        assert row["kind"] == r["kind"] and (1 if row["side"] == "buy" else -1) == r["side"], (row, r, sc)
        assert close(row["quantity"], r["quantity"], scale / row["price"]), (row, r, sc)
        assert close(row["price"], r["price"], row["price"]) and close(row["fee"], r["fee"], scale), (row, r, sc)
        assert bool(row["capped"]) == bool(r["capped"]), (row, r, sc)
    liq = res.liquidations
    assert len(liq) == len(ref["liquidations"]), (liq, ref["liquidations"], sc)
    for (_, row), r in zip(liq.iterrows(), ref["liquidations"]):
        for k in ("trigger_price", "fee", "bad_debt", "equity_before", "equity_after"):
            assert close(row[k], r[k], scale), (k, row[k], r[k], sc)
    f = res.funding
    assert len(f) == len(ref["fundings"]), (f, ref["fundings"], sc)
    for (_, row), r in zip(f.iterrows(), ref["fundings"]):
        assert close(row["payment"], r["payment"], scale) and close(row["mark_price"], r["mark_price"], 1.0)
    s = res.summary
    assert close(s["final_equity"], ref["final_equity"], scale)
    assert close(s["fees_paid"], ref["fees_paid"], scale) and close(s["liquidation_fees"], ref["liquidation_fees"], scale)
    assert close(s["bad_debt"], ref["bad_debt"], scale)
    assert s["n_margin_calls"] == ref["n_margin_calls"], (s["n_margin_calls"], ref["n_margin_calls"], sc)
