"""Differential test: the compiled kernel (``backtest.run``) against the plain
Python reference model (``tests/reference.py``) on random single-symbol runs.

Each example is a random walk (with jumps, opening gaps and spikes, so that
liquidations, gap liquidations and bad debt all happen), on an hourly,
15-minute, 4-hour or irregular time grid, with a random target path, profile,
fees, slippage, rates and settings.  Per bar the equity, debt, interest paid,
position and margin level must agree to 1e-9 (relative, with an absolute
floor of 1e-6 on values in the quote asset; for the margin level A/D this floor
becomes 1e-6*(1+ML)/D), and so must the liquidation events, the margin-call
bars and the orders.

2000 examples in CI, a quarter locally (``hyp_examples``; ``MARGINBT_EXAMPLES`` sets it);
``MARGINBT_RANDOMIZE=1`` draws new examples instead of the fixed sequence.
A failure message names the first differing bar, both values and the
scenario; ``build_case(**scenario)`` rebuilds its inputs.
"""

import math
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from reference import PROFILES, Profile, simulate
from hyp_examples import examples

REL = 1e-9
ABS = 1e-6
DAY = 1_600_041_600  # 2020-09-14 00:00:00 UTC
TARGET_POOL = (math.nan, 0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 5.0, -5.0,
               10.0, -10.0, None, None)  # None: a random float in [-12, 12]


# ------------------------------------------------------------------ inputs
def build_case(n, seed, spacing, start, missing, vol, jump_p, jump_size, gap_p,
               change_p, flip_p, **_):
    """Timestamps, OHLC and targets of a scenario (cheap, numpy, prefix-stable)."""
    rng = np.random.default_rng(seed)
    u = rng.random((n, 17))
    # time grid
    ts = []
    t = DAY + start
    for i in range(n):
        ts.append(t)
        if spacing == "irregular":
            t += 60 * (1 + int(u[i, 0] * 150))
        else:
            step = {"1h": 3600, "15m": 900, "4h": 14400}[spacing]
            t += step * (2 if u[i, 0] < missing else 1)
    # prices: log random walk, jumps, gaps at the open, spikes in the wicks
    lp = math.log(100.0 * (1.0 + 999.0 * u[0, 1]))
    lo_bound, hi_bound = lp - 7.0, lp + 7.0
    o, h, lo, c = [], [], [], []
    prev_close = None
    for i in range(n):
        ret = vol * 2.0 * (u[i, 2] + u[i, 3] + u[i, 4] - 1.5)
        if u[i, 5] < jump_p:
            ret += (1.0 if u[i, 6] < 0.5 else -1.0) * jump_size * (0.3 + u[i, 7])
        if prev_close is None:
            lo_ = lp
        elif u[i, 8] < gap_p:
            lo_ = prev_close + ret * u[i, 9]
            ret -= ret * u[i, 9]
        else:
            lo_ = prev_close
        lc = lo_ + ret
        lo_ = min(max(lo_, lo_bound), hi_bound)
        lc = min(max(lc, lo_bound), hi_bound)
        wick_up = vol * u[i, 10]
        wick_dn = vol * u[i, 11]
        if u[i, 12] < jump_p:
            if u[i, 13] < 0.5:
                wick_dn += jump_size * u[i, 12] / max(jump_p, 1e-12)
            else:
                wick_up += jump_size * u[i, 12] / max(jump_p, 1e-12)
        po, pc = math.exp(lo_), math.exp(lc)
        o.append(po)
        c.append(pc)
        h.append(max(po, pc) * math.exp(wick_up))
        lo.append(min(po, pc) * math.exp(-wick_dn))
        prev_close = lc
    # targets: holds (repeats), changes from the pool, flips
    tg = []
    x = math.nan
    v = u[:, 14:]
    for i in range(n):
        if v[i, 0] < change_p:
            pick = TARGET_POOL[int(v[i, 1] * len(TARGET_POOL))]
            x = (24.0 * v[i, 2] - 12.0) if pick is None else pick
        elif v[i, 0] < change_p + flip_p and not math.isnan(x):
            x = -x
        tg.append(x)
    return ts, o, h, lo, c, tg


@st.composite
def scenarios(draw):
    spacing = draw(st.sampled_from(["1h", "1h", "1h", "1h", "15m", "4h", "irregular"]))
    sc = dict(
        n=draw(st.integers(2, 300)),
        seed=draw(st.integers(0, 2**32 - 1)),
        spacing=spacing,
        start=draw(st.integers(0, 23)) * 3600
        + (draw(st.integers(0, 59)) * 60 if spacing == "irregular" else 0)
        + (draw(st.integers(0, 3)) * 900 if spacing == "15m" else 0),
        missing=draw(st.sampled_from([0.0, 0.0, 0.05, 0.3])),
        vol=draw(st.sampled_from([0.002, 0.01, 0.03, 0.08])),
        jump_p=draw(st.sampled_from([0.0, 0.01, 0.05, 0.15])),
        jump_size=draw(st.sampled_from([0.05, 0.2, 0.5, 1.0])),
        gap_p=draw(st.sampled_from([0.0, 0.1, 0.5])),
        change_p=draw(st.sampled_from([0.02, 0.1, 0.3, 0.9])),
        flip_p=draw(st.sampled_from([0.0, 0.05, 0.2])),
        profile=draw(st.sampled_from(sorted(PROFILES) + ["custom", "custom", "custom-pro"])),
        capital=draw(st.sampled_from([10_000.0, 1_234.5678, 1e6])),
        fee=draw(st.one_of(st.just(0.0), st.just(0.001), st.floats(0.0, 0.003))),
        slippage=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.002))),
        rate_base_daily=draw(st.one_of(st.just(0.0), st.just(0.0002), st.floats(0.0, 0.01))),
        rate_quote_daily=draw(st.one_of(st.just(0.0), st.just(0.0002), st.floats(0.0, 0.01))),
        liquidation=draw(st.sampled_from(["partial", "full"])),
        rebalance=draw(st.one_of(st.just(0.0), st.floats(0.001, 0.5))),
        round_interest=draw(st.booleans()),
        # stops (0 = off) in most examples; both path settings
        stop_loss=draw(st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.2, 0.5])),
        take_profit=draw(st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.2, 0.9])),
        trailing_stop=draw(st.sampled_from([0.0, 0.0, 0.0, 0.02, 0.1, 0.4])),
        path=draw(st.sampled_from(["ohlc-heuristic", "pessimistic"])),
        mark_noise=draw(st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.05])),  # a mark series
        # a strategy's limit orders (share of new targets with a limit price, spread, expiry)
        limit_p=draw(st.sampled_from([0.0, 0.0, 0.3, 0.7, 1.0])),
        limit_spread=draw(st.sampled_from([0.003, 0.02, 0.1])),
        expiry=draw(st.sampled_from([1, 1, 2, 5, 30])),
        # a strategy's stop-loss / take-profit prices (share of bars that give one)
        level_p=draw(st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0])),
        # a rate history for none / one / both assets (rows on and between hours)
        rate_history=draw(st.sampled_from(["", "", "", "USDT", "BTC", "BTC,USDT"])),
        # auto-repay on (the default), off with loans running to the end, off with repay on flat
        repay=draw(st.sampled_from(["auto", "auto", "off", "off-flat"])),
        # a custom profile's numbers (used when profile is custom / custom-pro)
        custom_leverage=draw(st.sampled_from([1.5, 2.0, 4.0, 7.5, 12.0, 25.0])),
        custom_liq=draw(st.sampled_from([0.2, 0.5, 0.8])),  # where between the floor and the initial ML
        custom_call=draw(st.booleans()),
        custom_fee=draw(st.sampled_from([0.0, 0.01, 0.05])),
        custom_mmr=draw(st.sampled_from([0.02, 0.05, 0.1])),
        # per-asset max borrow, as a fraction of the capital's worth
        max_borrow=draw(st.sampled_from(["", "", "", "BTC", "USDT", "BTC,USDT"])),
        borrow_frac=draw(st.sampled_from([0.1, 0.5, 1.5, 5.0])),
        # finer bars under the bars: none, under every bar, or with holes and mismatches
        detail=draw(st.sampled_from(["", "", "", "all", "holes"])),
    )
    if sc["spacing"] == "irregular" or sc["mark_noise"]:
        sc["detail"] = ""  # finer bars need a fixed timeframe, and are not combined with a mark
    if sc["repay"] != "auto":
        sc["limit_p"] = 0.0  # limit orders need auto-repay (refused otherwise)
    return sc


DETAIL_STEP = {"1h": 900, "15m": 300, "4h": 3600}  # the finer timeframe under each spacing (s)
SPACING_S = {"1h": 3600, "15m": 900, "4h": 14400}


def detail_of(ts, o, h, lo, c, seed, spacing, mode):
    """Finer bars under each bar that add up to it, with gaps between them
    (their opens and closes drawn anywhere in the bar's range); with
    ``holes`` about a fifth of the bars lose a sub-bar or get a sub-bar
    whose high does not match.  Returns (ts, o, h, l, c) lists, or None."""
    if not mode:
        return None
    step, tf = DETAIL_STEP[spacing], SPACING_S[spacing]
    k = tf // step
    rng = np.random.default_rng(seed + 3)
    out = ([], [], [], [], [])
    for i in range(len(ts)):
        a = [o[i]] + [lo[i] + (h[i] - lo[i]) * rng.random() for _ in range(2 * k - 2)] + [c[i]]
        ia, ib = int(rng.integers(0, k)), int(rng.integers(0, k))
        drop = int(rng.integers(0, k)) if mode == "holes" and rng.random() < 0.1 else -1
        bump = int(rng.integers(0, k)) if mode == "holes" and rng.random() < 0.1 else -1
        for j in range(k):
            so, sc_ = a[2 * j], a[2 * j + 1]
            top, bot = max(so, sc_), min(so, sc_)
            sh = h[i] if j == ia else top + (h[i] - top) * rng.random()
            sl = lo[i] if j == ib else bot - (bot - lo[i]) * rng.random()
            if j == bump:
                sh = h[i] * 1.001
            if j != drop:
                for col, v in zip(out, (ts[i] + j * step, so, sh, sl, sc_)):
                    col.append(v)
    return out


def strategy_orders(c, tg, sc):
    """A strategy's limit prices and stop-loss / take-profit prices per bar
    (NaN where none), random around the close, or None."""
    n = len(c)
    u = np.random.default_rng(sc.get("seed", 0) + 3).random((n, 6))
    limit = sl = tp = None
    if sc.get("limit_p"):
        spread = sc["limit_spread"]
        limit = [c[i] * math.exp(spread * (2.0 * u[i, 1] - 1.0)) if u[i, 0] < sc["limit_p"] else math.nan
                 for i in range(n)]
    if sc.get("level_p"):
        d = [1.0 if (tg[i] == tg[i] and tg[i] >= 0.0) else -1.0 for i in range(n)]
        sl = [c[i] * (1.0 - d[i] * 0.1 * u[i, 3]) if u[i, 2] < sc["level_p"] else math.nan for i in range(n)]
        tp = [c[i] * (1.0 + d[i] * 0.15 * u[i, 5]) if u[i, 4] < sc["level_p"] else math.nan for i in range(n)]
    return limit, sl, tp


def mark_of(o, h, lo, c, seed, noise):
    """A mark series near the traded bars (valid OHLC), or None."""
    if not noise:
        return None
    u = np.random.default_rng(seed + 1).random((len(o), 4)) - 0.5
    mo = [o[i] * math.exp(noise * u[i, 0]) for i in range(len(o))]
    mc = [c[i] * math.exp(noise * u[i, 3]) for i in range(len(o))]
    mh = [max(h[i] * math.exp(noise * u[i, 1]), mo[i], mc[i]) for i in range(len(o))]
    ml = [min(lo[i] * math.exp(noise * u[i, 2]), mo[i], mc[i]) for i in range(len(o))]
    return mo, mh, ml, mc


# ----------------------------------------------------------------- running
def rate_rows(ts, seed, assets):
    """A random rate history: each asset's first row at or before the first
    bar's hour, then rows every few hours, some between whole hours."""
    rng = np.random.default_rng(seed + 2)
    rows = []
    for asset in assets:
        t = (ts[0] // 3600) * 3600 - int(rng.integers(0, 3)) * 3600 - int(rng.integers(0, 2)) * 1800
        while t <= ts[-1]:
            rows.append((t, asset, float(rng.choice([0.0, 0.0001, 0.0003, 0.002, 0.01]) * rng.random())))
            t += int(rng.integers(1, 12)) * 1800
    return rows


def hourly_rates_of(ts, rows, asset, daily):
    """MC "Rate histories", plainly: at each whole hour the last row at or before it."""
    mine = sorted((t, r) for t, a, r in rows if a == asset)
    out = []
    for h in range(ts[0] // 3600, ts[-1] // 3600 + 1):
        rate = daily if not mine else None
        for t, r in mine:
            if t <= h * 3600:
                rate = r
        out.append(rate / 24.0)
    return out


def profiles_of(sc, price0):
    """(what backtest.run takes, the reference's Profile) for the scenario:
    a built-in name, or a custom profile, with per-asset max borrow."""
    name = sc["profile"]
    limits = {a: (sc["capital"] * sc["borrow_frac"] / (price0 if a == "BTC" else 1.0))
              for a in sc.get("max_borrow", "").split(",") if a}
    if name == "custom":
        lev = sc["custom_leverage"]
        m0 = lev / (lev - 1.0)
        liq = 1.0 + (m0 - 1.0) * sc["custom_liq"]
        numbers = (lev, (liq + m0) / 2.0 if sc["custom_call"] else None, liq, sc["custom_fee"], 0.0)
    elif name == "custom-pro":
        lev, mmr = sc["custom_leverage"], sc["custom_mmr"]
        top = min(1.0 / ((lev - 1.0) * mmr), 2.0)  # Pro's initial ML and the restore level 2
        liq = top * sc["custom_liq"]
        numbers = (lev, (liq + top) / 2.0 if sc["custom_call"] else None, liq, sc["custom_fee"] / 2 + 0.01, mmr)
    else:
        numbers = tuple(PROFILES[name]) + (0.0,) * (5 - len(PROFILES[name]))
        if not limits:
            return name, name
    ref = Profile(*numbers, max_borrow_base=limits.get("BTC", math.inf),
                  max_borrow_quote=limits.get("USDT", math.inf))
    lev, call, liq, fee, mmr = numbers
    return backtest.Profile(name, lev, call, liq, fee, mmr, (), tuple(limits.items())), ref


def run_both(ts, o, h, lo, c, tg, sc, ref_extra=None, run_extra=None):
    """The reference and ``backtest.run`` on one scenario (``ref_extra``,
    ``run_extra``: more keyword arguments for each, e.g. transfers)."""
    mark = sc.get("mark") or mark_of(o, h, lo, c, sc.get("seed", 0), sc.get("mark_noise", 0.0))
    fine = sc.get("detail_bars") or detail_of(ts, o, h, lo, c, sc.get("seed", 0), sc.get("spacing"),
                                              sc.get("detail", ""))
    step = sc.get("detail_step") or DETAIL_STEP.get(sc.get("spacing"))  # seconds
    hist_assets = [a for a in sc.get("rate_history", "").split(",") if a]
    rows = rate_rows(ts, sc.get("seed", 0), hist_assets) if hist_assets else []
    rate_hours = None
    if rows:
        rate_hours = (ts[0] // 3600, hourly_rates_of(ts, rows, "BTC", sc["rate_base_daily"]),
                      hourly_rates_of(ts, rows, "USDT", sc["rate_quote_daily"]))
    kprofile, rprofile = profiles_of(sc, o[0])
    limit, sl, tp = sc["orders"] if "orders" in sc else strategy_orders(c, tg, sc)
    ref = simulate(ts, o, h, lo, c, tg, profile=rprofile, capital=sc["capital"],
                   fee=sc["fee"], slippage=sc["slippage"],
                   rate_base_daily=sc["rate_base_daily"],
                   rate_quote_daily=sc["rate_quote_daily"],
                   liquidation=sc["liquidation"], rebalance=sc["rebalance"],
                   round_interest=sc["round_interest"], mark=mark, rate_hours=rate_hours, **stop_settings(sc),
                   **repay_settings(sc),
                   detail=None if fine is None else (SPACING_S[sc["spacing"]], step, *fine),
                   limit=limit, expiry=sc.get("expiry", 1), sl_price=sl, tp_price=tp, **(ref_extra or {}))
    index = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(ts, dtype="int64") * 1_000_000_000, unit="ns", utc=True),
        name="timestamp").as_unit("ns")
    bars = pd.DataFrame({"open": np.asarray(o, dtype="float64"),
                         "high": np.asarray(h, dtype="float64"),
                         "low": np.asarray(lo, dtype="float64"),
                         "close": np.asarray(c, dtype="float64"),
                         "volume": np.ones(len(ts))}, index=index)
    detail = None
    if fine is not None:
        bars.attrs["timeframe"] = sc["spacing"]  # not guessed from a few bars with gaps
        detail = pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in zip(
            ("open", "high", "low", "close"), fine[1:])}, index=pd.DatetimeIndex(
            pd.to_datetime(np.asarray(fine[0], dtype="int64"), unit="s", utc=True), name="timestamp"))
        detail["volume"] = 1.0
        detail.attrs.update(symbol="BTCUSDT", timeframe=f"{step // 60}m")
    strategy = np.asarray(tg, dtype="float64")
    if limit is not None or sl is not None or tp is not None or sc.get("loans"):
        given = {"target": strategy, "limit": limit, "expiry": sc.get("expiry", 1), "stop_loss": sl, "take_profit": tp,
                 **(sc.get("loans") or {})}  # (manual loans: the strategy's borrow / repay, engine's form)
        strategy = lambda _bars: given  # noqa: E731 (a strategy function returning orders)
    res = backtest.run(bars, strategy=strategy, margin=kprofile,
                       capital=sc["capital"], fee=sc["fee"], slippage=sc["slippage"],
                       rates={a: r for a, r in (("BTC", sc["rate_base_daily"]), ("USDT", sc["rate_quote_daily"]))
                              if a not in hist_assets},
                       rate_history=None if not rows else pd.DataFrame(
                           {"timestamp": pd.to_datetime([t for t, _, _ in rows], unit="s", utc=True),
                            "asset": [a for _, a, _ in rows], "daily_rate": [r for _, _, r in rows]}),
                       liquidation=sc["liquidation"], rebalance=sc["rebalance"],
                       symbol="BTCUSDT", round_interest=sc["round_interest"], **stop_settings(sc), **repay_settings(sc),
                       mark=None if mark is None else pd.DataFrame(
                           {"open": mark[0], "high": mark[1], "low": mark[2],
                            "close": mark[3] if len(mark) > 3 else c,
                            "volume": np.ones(len(ts))}, index=index), detail=detail, **(run_extra or {}))
    return ref, res, bars


def stop_settings(sc):
    return {k: sc.get(k, d) for k, d in (("stop_loss", 0.0), ("take_profit", 0.0), ("trailing_stop", 0.0),
                                         ("path", "ohlc-heuristic"))}


def repay_settings(sc):
    repay = sc.get("repay", "auto")
    return {"auto_repay": repay == "auto", "repay_on_flat": repay == "off-flat"}


def close_enough(a, b, rel=REL, abs_=ABS):
    a, b = float(a), float(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(abs(a), abs(b)) + abs_


def ml_close(a, b, debt):
    """ML = A/D: assets and debt agree to REL with an absolute floor ABS, so
    the ML may differ by REL*ML + ABS*(1 + ML)/D (both +inf together, unless
    the other side's debt is below ABS)."""
    a, b = float(a), float(b)
    if math.isinf(a) or math.isinf(b):
        # +inf (no debt) on one side only: accepted for a leftover debt below
        # the absolute floor (a float-noise "ghost" of a repaid loan)
        return a == b or debt <= ABS
    ml = max(abs(a), abs(b))
    return abs(a - b) <= REL * ml + ABS * (1.0 + ml) / debt


def bar_of(times, bars):
    pos = {int(v): i for i, v in enumerate(bars.index.as_unit("ns").asi8)}
    out = []
    for t in pd.to_datetime(pd.Series(times), utc=True):
        out.append(pos.get(int(t.as_unit("ns").value), f"?{t}"))
    return out


def describe(sc, bars):
    return f"scenario={sc!r}\n(rebuild with build_case(**scenario))"


def compare(ref, res, bars, sc):
    problems = []
    eq = res.equity
    n = len(bars)
    assert len(eq) == n, f"kernel equity has {len(eq)} rows for {n} bars\n{describe(sc, bars)}"
    # ---- per-bar series: first differing bar of each column
    kdebt = eq["debt"].to_numpy(dtype="float64")
    for col in ("equity", "debt", "interest_paid", "position", "margin_level",
                "interest_owed", "fees_paid"):
        kv = eq[col].to_numpy(dtype="float64")
        rv = ref[col]
        for i in range(n):
            if col == "margin_level":
                ok = ml_close(rv[i], kv[i], max(ref["debt"][i], kdebt[i]))
            else:
                ok = close_enough(rv[i], kv[i])
            if not ok:
                problems.append(
                    f"{col}: first difference at bar {i} ({bars.index[i]}): "
                    f"reference {float(rv[i])!r} kernel {float(kv[i])!r}")
                break
    kamb = eq["ambiguous"].to_numpy(dtype=bool)
    for i in range(n):
        if bool(ref["ambiguous"][i]) != bool(kamb[i]):
            problems.append(f"ambiguous: first difference at bar {i} ({bars.index[i]}): "
                            f"reference {ref['ambiguous'][i]} kernel {bool(kamb[i])}")
            break
    if problems:
        first = min(int(p.split(" at bar ")[1].split()[0]) for p in problems)
        lo_, hi_ = max(first - 2, 0), min(first + 2, n - 1)
        ctx = "\n".join(
            f"  bar {i} t={bars.index[i]} O={float(bars.open.iloc[i])!r} "
            f"H={float(bars.high.iloc[i])!r} L={float(bars.low.iloc[i])!r} "
            f"C={float(bars.close.iloc[i])!r}" for i in range(lo_, hi_ + 1))
        ref_ev = [(e["bar"], e["trigger_price"]) for e in ref["liquidations"]
                  if lo_ <= e["bar"] <= hi_]
        ref_or = [(o_["bar"], o_["side"], o_["kind"], o_["quantity"]) for o_ in ref["orders"]
                  if lo_ <= o_["bar"] <= hi_]
        raise AssertionError("\n".join(problems) + f"\nbars around:\n{ctx}\n"
                             f"reference liquidations there: {ref_ev}\n"
                             f"reference orders there: {ref_or}\n{describe(sc, bars)}")
    # ---- liquidation events
    kl = res.liquidations
    kbars = bar_of(kl["time"], bars) if len(kl) else []
    rbars = [e["bar"] for e in ref["liquidations"]]
    assert kbars == rbars, (f"liquidation bars differ: reference {rbars} kernel {kbars}\n"
                            f"{describe(sc, bars)}")
    for j, e in enumerate(ref["liquidations"]):
        for col in ("trigger_price", "fill_price", "fee", "bad_debt", "margin_level",
                    "quantity", "equity_before", "equity_after"):
            kvj = kl[col].iloc[j]
            assert close_enough(e[col], kvj), (
                f"liquidation #{j} at bar {e['bar']} ({bars.index[e['bar']]}): {col} "
                f"reference {e[col]!r} kernel {float(kvj)!r}\n{describe(sc, bars)}")
    # ---- margin calls
    km = res.margin_calls
    kmb = bar_of(km["time"], bars) if len(km) else []
    rmb = [m["bar"] for m in ref["margin_calls"]]
    assert kmb == rmb, f"margin-call bars differ: reference {rmb} kernel {kmb}\n{describe(sc, bars)}"
    for j, m in enumerate(ref["margin_calls"]):
        kvj = km["margin_level"].iloc[j]
        assert close_enough(m["margin_level"], kvj), (
            f"margin call #{j} at bar {m['bar']}: margin_level reference {m['margin_level']!r} "
            f"kernel {float(kvj)!r}\n{describe(sc, bars)}")
    # ---- orders
    ko = res.orders
    kob = bar_of(ko["time"], bars) if len(ko) else []
    rows_k = [(b, str(s), str(k), bool(cp)) for b, s, k, cp in
              zip(kob, ko["side"] if len(ko) else [], ko["kind"] if len(ko) else [],
                  ko["capped"] if len(ko) else [])]
    rows_r = [(o_["bar"], o_["side"], o_["kind"], o_["capped"]) for o_ in ref["orders"]]
    if rows_k != rows_r:
        j = next((j for j, (a, b) in enumerate(zip(rows_r, rows_k)) if a != b),
                 min(len(rows_r), len(rows_k)))
        raise AssertionError(
            f"orders differ from #{j}: reference {rows_r[j:j + 3]} kernel {rows_k[j:j + 3]} "
            f"(counts {len(rows_r)} / {len(rows_k)})\n{describe(sc, bars)}")
    for j, o_ in enumerate(ref["orders"]):
        for col in ("quantity", "price", "fee"):
            kvj = ko[col].iloc[j]
            assert close_enough(o_[col], kvj), (
                f"order #{j} at bar {o_['bar']} ({o_['side']} {o_['kind']}): {col} "
                f"reference {o_[col]!r} kernel {float(kvj)!r}\n{describe(sc, bars)}")
    # ---- summary
    summ = res.summary
    if "n_liquidations" in summ:
        assert summ["n_liquidations"] == len(ref["liquidations"]), describe(sc, bars)
    assert summ["ambiguous_bars"] == sum(map(bool, ref["ambiguous"])), describe(sc, bars)
    assert summ["n_cancelled"] == ref["n_cancelled"], (
        f"n_cancelled reference {ref['n_cancelled']} kernel {summ['n_cancelled']}\n{describe(sc, bars)}")
    if "bad_debt" in summ:
        bd = sum(e["bad_debt"] for e in ref["liquidations"] + ref["write_offs"])
        assert summ.get("n_write_offs", 0) == len(ref["write_offs"]), describe(sc, bars)
        assert close_enough(bd, summ["bad_debt"]), (
            f"summary bad_debt reference {bd!r} kernel {summ['bad_debt']!r}\n{describe(sc, bars)}")


def check(sc):
    ts, o, h, lo, c, tg = build_case(**sc)
    ref, res, bars = run_both(ts, o, h, lo, c, tg, sc)
    compare(ref, res, bars, sc)
    return ref


# ------------------------------------------------------------- hypothesis
@settings(max_examples=examples(2000), deadline=None,
          derandomize=os.environ.get("MARGINBT_RANDOMIZE", "0") != "1",
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sc=scenarios())
def test_kernel_matches_reference(sc):
    ref = check(sc)
    # what the examples covered (--hypothesis-show-statistics)
    event(f"repay={sc['repay']}")
    event(f"profile={'custom' if sc['profile'].startswith('custom') else 'built-in'}"
          f"{' max_borrow' if sc['max_borrow'] else ''}")
    event(f"repay={sc['repay']} liquidated={bool(ref['liquidations'])} capped={any(o['capped'] for o in ref['orders'])}")
    stops = bool(sc["stop_loss"] or sc["take_profit"] or sc["trailing_stop"] or sc["level_p"])
    event(f"repay={sc['repay']} mark={bool(sc['mark_noise'])} stops={stops} detail={bool(sc['detail'])}")
    event(f"limit orders={bool(sc['limit_p'])} max_borrow={bool(sc['max_borrow'])}")
    event(f"limit orders with finer bars={bool(sc['limit_p']) and bool(sc['detail'])}")


# -------------------------------------------------------- targeted cases
BASE = dict(profile="cross-3x", capital=10_000.0, fee=0.001, slippage=0.0005,
            rate_base_daily=0.0002, rate_quote_daily=0.0002, liquidation="partial",
            rebalance=0.0, round_interest=True)
T0 = DAY + 5 * 3600


def run_manual(rows, targets, **kw):
    sc = dict(BASE, **kw)
    ts = [T0 + 3600 * i for i in range(len(rows))]
    o, h, lo, c = (list(col) for col in zip(*rows))
    ref, res, bars = run_both(ts, o, h, lo, c, targets, sc)
    compare(ref, res, bars, dict(sc, rows=rows, targets=targets))
    return ref


def flat(p):
    return (p, p, p, p)


@pytest.mark.parametrize("liquidation", ["partial", "full"])
def test_gap_through_liquidation_price(liquidation):
    rows = [flat(100.0), flat(100.0), (100.0, 101.0, 99.0, 100.0), (72.0, 75.0, 71.0, 74.0),
            flat(64.0)]
    ref = run_manual(rows, [3.0, 3.0, 3.0, 1.0, 1.0], liquidation=liquidation)
    (liq, *_) = ref["liquidations"]
    assert liq["bar"] == 3 and liq["trigger_price"] == 72.0 and liq["bad_debt"] == 0.0
    # the target change decided at bar 3's close runs at bar 4
    assert any(o["kind"] == "signal" and o["bar"] == 4 for o in ref["orders"])


@pytest.mark.parametrize("side", [1.0, -1.0])
@pytest.mark.parametrize("liquidation", ["partial", "full"])
def test_bad_debt(side, liquidation):
    jump = 40.0 if side > 0 else 250.0
    rows = [flat(100.0), flat(100.0), (jump, jump, jump, jump), flat(jump)]
    ref = run_manual(rows, [3.0 * side, 3.0 * side, 3.0 * side, 0.0], liquidation=liquidation)
    (liq,) = ref["liquidations"]
    assert liq["bad_debt"] > 0.0 and liq["equity_after"] == 0.0
    assert ref["equity"][-1] == 0.0


def test_bad_debt_inside_the_bar_is_impossible_but_gap_is():
    # a bar whose low spikes far below the liquidation price: filled at P_liq
    rows = [flat(100.0), flat(100.0), (100.0, 100.0, 1.0, 90.0), flat(90.0)]
    ref = run_manual(rows, [3.0] * 4, liquidation="full")
    (liq,) = ref["liquidations"]
    assert liq["bad_debt"] == 0.0 and liq["trigger_price"] < 100.0


@pytest.mark.parametrize("target", [10.0, -10.0, 3.0, -3.0, 2.0, -2.0])
def test_capped_orders(target):
    rows = [flat(100.0)] * 4
    ref = run_manual(rows, [target] * 4)
    # with fees and interest the maximum exposures (3x long, 2x short) are capped too
    assert ref["orders"][0]["capped"] is (target >= 3.0 or target <= -2.0)


def test_flip_long_to_short_and_back():
    rows = [flat(100.0), flat(100.0), (101.0, 103.0, 99.0, 102.0), (102.0, 104.0, 98.0, 99.0),
            flat(97.0), flat(97.0)]
    ref = run_manual(rows, [2.0, -2.0, 3.0, -1.0, 0.0, 0.0])
    sides = [(o["bar"], o["side"]) for o in ref["orders"]]
    assert sides == [(1, "buy"), (2, "sell"), (3, "buy"), (4, "sell"), (5, "buy")]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_partial_liquidation_twice_in_one_bar(profile):
    lev = PROFILES[profile][0]
    rows = [flat(100.0), flat(100.0), (100.0, 100.0, 45.0, 60.0), flat(60.0)]
    ref = run_manual(rows, [lev] * 4, profile=profile)
    assert sum(1 for e in ref["liquidations"] if e["bar"] == 2) >= 2


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_short_partial_liquidations_in_one_bar(profile):
    lev = PROFILES[profile][0]
    rows = [flat(100.0), flat(100.0), (100.0, 190.0, 100.0, 150.0), flat(150.0)]
    ref = run_manual(rows, [-(lev - 1)] * 4, profile=profile)
    assert sum(1 for e in ref["liquidations"] if e["bar"] == 2) >= 2


def test_rebalance_and_hour_boundaries_in_gaps():
    rows = [flat(100.0), (100.0, 104.0, 99.0, 103.0), (103.0, 103.0, 95.0, 96.0),
            (96.0, 99.0, 95.0, 98.0), flat(98.0), flat(99.0)]
    sc = dict(BASE, rebalance=0.01, rate_quote_daily=0.01, rate_base_daily=0.005)
    ts = [T0, T0 + 1200, T0 + 3 * 3600 + 60, T0 + 4 * 3600, T0 + 4 * 3600 + 900, T0 + 9 * 3600]
    o, h, lo, c = (list(col) for col in zip(*rows))
    for tg in ([2.5] * 6, [-1.5] * 6):
        ref, res, bars = run_both(ts, o, h, lo, c, tg, sc)
        compare(ref, res, bars, dict(sc, ts=ts, rows=rows, targets=tg))
        assert any(o_["kind"] == "rebalance" for o_ in ref["orders"])


def test_dust_position_against_real_debt():
    # 1e-7 USDT at 5x on a 1,000,000 price buys 5e-13 BTC: below the 1e-12
    # dust limit, while the 4e-7 USDT borrowed is not.  The reference zeroes
    # the dust holding, so the debt is uncovered: below the level at every
    # price, written off in that bar's step 5 with nothing to sell (MC step 5
    # with a == 0; MC "No empty liquidations": a write-off, not a
    # liquidation; before 2026-12-07 it waited for the next open).  The kernel
    # must not crash on it, and must not list it.
    rows = [flat(1e6)] * 4
    ref = run_manual(rows, [5.0] * 4, profile="isolated-10x", capital=1e-7, fee=0.0,
                     slippage=0.0, rate_base_daily=0.0, rate_quote_daily=0.0)
    assert ref["liquidations"] == []
    (wo,) = ref["write_offs"]
    assert wo["bar"] == 1 and wo["quantity"] == 0.0 and wo["bad_debt"] > 0.0


def test_spec_e3_e16_through_the_kernel():
    # spec §8 E3/E16: 10,000 USDT at 3x buys 1 BTC at 30,000 (20,000 borrowed);
    # the low touches 22,000: partial liquidation sells 0.787273 BTC, fee 440,
    # leaving 0.212727 BTC against 3,120 USDT (ML 1.5, equity 1,560).
    rows = [flat(30_000.0), flat(30_000.0), (30_000.0, 30_000.0, 22_000.0, 22_000.0)]
    ref = run_manual(rows, [3.0] * 3, fee=0.0, slippage=0.0, rate_base_daily=0.0,
                     rate_quote_daily=0.0)
    (liq,) = ref["liquidations"]
    assert liq["trigger_price"] == pytest.approx(22_000.0, rel=1e-12)
    assert liq["fee"] == pytest.approx(440.0, rel=1e-12)
    assert liq["quantity"] == pytest.approx(8660.0 / 11000.0, rel=1e-12)
    assert ref["equity"][2] == pytest.approx(1_560.0, rel=1e-12)
    assert ref["debt"][2] == pytest.approx(3_120.0, rel=1e-12)


def test_rebalance_of_a_short_held_at_its_max_borrow():
    # found by the randomized run: a short held at its BTC limit, rebalanced every bar; the
    # room under the limit is float noise (1e-16) on one side only unless taken as none
    sc = {'n': 30, 'seed': 0, 'spacing': '1h', 'start': 0, 'missing': 0.0, 'vol': 0.002, 'jump_p': 0.0, 'jump_size': 0.05, 'gap_p': 0.5, 'change_p': 0.02, 'flip_p': 0.2, 'profile': 'custom-pro', 'capital': 10000.0, 'fee': 0.0, 'slippage': 0.0, 'rate_base_daily': 0.0, 'rate_quote_daily': 0.0, 'liquidation': 'partial', 'rebalance': 0.125, 'round_interest': False, 'stop_loss': 0.0, 'take_profit': 0.0, 'trailing_stop': 0.0, 'path': 'ohlc-heuristic', 'mark_noise': 0.0, 'rate_history': '', 'repay': 'auto', 'custom_leverage': 4.0, 'custom_liq': 0.2, 'custom_call': False, 'custom_fee': 0.0, 'custom_mmr': 0.02, 'max_borrow': 'BTC', 'borrow_frac': 1.5}
    ref = check(sc)
    assert ref["orders"][-1]["capped"] and ref["orders"][-1]["bar"] == 28


def test_a_buy_with_all_the_cash_leaves_no_sliver():
    # found by the randomized run: with a BTC loan running (auto-repay off), a 1x target buys
    # exactly the cash; float noise left 3.6e-12 USDT on one side, bought with at the next target
    sc = {'n': 24, 'seed': 117, 'spacing': '1h', 'start': 0, 'missing': 0.0, 'vol': 0.002, 'jump_p': 0.0, 'jump_size': 0.05, 'gap_p': 0.1, 'change_p': 0.9, 'flip_p': 0.0, 'profile': 'custom-pro', 'capital': 10000.0, 'fee': 0.0, 'slippage': 0.0, 'rate_base_daily': 0.0, 'rate_quote_daily': 0.0, 'liquidation': 'partial', 'rebalance': 0.0, 'round_interest': False, 'stop_loss': 0.0, 'take_profit': 0.0, 'trailing_stop': 0.0, 'path': 'ohlc-heuristic', 'mark_noise': 0.0, 'rate_history': '', 'repay': 'off', 'custom_leverage': 4.0, 'custom_liq': 0.2, 'custom_call': False, 'custom_fee': 0.0, 'custom_mmr': 0.02, 'max_borrow': '', 'borrow_frac': 0.1}
    ref = check(sc)
    assert [o["bar"] for o in ref["orders"]][-2:] == [21, 22]


def test_an_order_of_float_noise_is_no_order():
    # found by the randomized run: a 1x long bought with all the cash, asked for 1x again:
    # delta is +-4e-17 BTC, a sell on one side and nothing on the other unless taken as none
    sc = {'n': 38, 'seed': 118, 'spacing': '1h', 'start': 0, 'missing': 0.0, 'vol': 0.002, 'jump_p': 0.0, 'jump_size': 0.05, 'gap_p': 0.0, 'change_p': 0.9, 'flip_p': 0.0, 'profile': 'custom-pro', 'capital': 10000.0, 'fee': 0.0, 'slippage': 0.0, 'rate_base_daily': 0.0, 'rate_quote_daily': 0.0, 'liquidation': 'partial', 'rebalance': 0.0, 'round_interest': False, 'stop_loss': 0.0, 'take_profit': 0.0, 'trailing_stop': 0.0, 'path': 'ohlc-heuristic', 'mark_noise': 0.0, 'rate_history': '', 'repay': 'off', 'custom_leverage': 4.0, 'custom_liq': 0.2, 'custom_call': False, 'custom_fee': 0.0, 'custom_mmr': 0.02, 'max_borrow': '', 'borrow_frac': 0.1}
    ref = check(sc)
    assert ref["orders"][-1]["bar"] == 36


def test_a_gap_on_a_mark_that_netting_answers_is_no_liquidation():
    # found merging auto-repay off with stops on a mark: a short's base interest (a position no
    # fill opened) met a gap on the mark at bar 53; netting alone answers it, so (MC "No empty
    # liquidations") there is no liquidation, no fee, and the kernel agrees (it used to record a
    # buy-back of quantity 0 here)
    sc = {'n': 54, 'seed': 8122, 'spacing': '1h', 'start': 0, 'missing': 0.3, 'vol': 0.08, 'jump_p': 0.0, 'jump_size': 0.05, 'gap_p': 0.0, 'change_p': 0.02, 'flip_p': 0.2, 'profile': 'cross-pro-20x', 'capital': 10000.0, 'fee': 0.0, 'slippage': 0.0, 'rate_base_daily': 0.0002, 'rate_quote_daily': 0.0, 'liquidation': 'partial', 'rebalance': 0.0, 'round_interest': False, 'stop_loss': 0.0, 'take_profit': 0.0, 'trailing_stop': 0.02, 'path': 'pessimistic', 'mark_noise': 0.01, 'limit_p': 0.0, 'limit_spread': 0.003, 'expiry': 1, 'level_p': 1.0, 'rate_history': '', 'repay': 'off', 'custom_leverage': 1.5, 'custom_liq': 0.2, 'custom_call': False, 'custom_fee': 0.0, 'custom_mmr': 0.02, 'max_borrow': '', 'borrow_frac': 0.1, 'detail': ''}  # noqa: E501
    ref = check(sc)
    assert ref["liquidations"] == [] and ref["write_offs"] == []
    assert [(o_["bar"], o_["kind"]) for o_ in ref["orders"][-2:]] == [(52, "signal"), (52, "stop_loss")]
