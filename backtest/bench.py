"""``backtest bench``: how fast the kernel runs, measured here.

Synthetic 1-minute bars (a seeded random walk), a strategy that trades
often (a new target every ~120 bars, long 3x / short 2x / flat), margin on:
hourly interest on both assets, intrabar liquidation, fees, slippage.
Reports the compile time (a fresh process with an empty numba cache), the
warm kernel's median bar-steps per second over ``repeat`` runs, the whole
``run()`` (round trips walked and metrics included; its tables are built
on first read, timed apart for the per-bar one) once warm, and peak memory.
"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .profiles import get_profile


def synthetic_bars(n: int, seed: int = 7) -> pd.DataFrame:
    """Fat-tailed, mean-reverting 1-minute bars from 2024-01-01."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(3, n) * 0.0008
    logp = np.empty(n)
    x = 0.0
    for i in range(n):  # mean-reverting log price keeps 1M bars in a tradable range
        x += shocks[i] - 2e-5 * x
        logp[i] = x
    close = 30_000.0 * np.exp(logp)
    open_ = np.concatenate(([30_000.0], close[:-1]))
    wick = np.abs(rng.standard_normal((2, n))) * 0.0006 * close
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    bars = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=idx)
    bars.attrs["symbol"] = "BTCUSDT"
    return bars


def busy_targets(n: int, seed: int = 11) -> np.ndarray:
    """A target that changes about every 120 bars among 3, 1, 0, −1, −2."""
    rng = np.random.default_rng(seed)
    choices = np.array([3.0, 1.0, 0.0, -1.0, -2.0])
    change = rng.random(n) < 1 / 120
    pick = choices[rng.integers(0, 5, n)]
    out = np.full(n, np.nan)
    out[change] = pick[change]
    out[0] = 3.0
    return out


STOPS = {"stop_loss": 0.02, "take_profit": 0.03}  # bench --stops: on every trade
FAR_STOPS = {"stop_loss": 0.9, "take_profit": 0.99}  # armed on every trade, reached on none of the bench's bars


def kernel_args(bars: pd.DataFrame, targets: np.ndarray, profile="cross-3x", stops=None):
    """The arguments of ``engine.simulate_arrays`` for a bench run (fee 0.1 %,
    on perpetual futures ``PERP``'s 0.05 %)."""
    from .engine import _epoch_seconds
    from .settings import RunSettings

    cols = [bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close")]
    from .rates import rate_table

    seconds = _epoch_seconds(bars.index)
    rates = rate_table(seconds, ("BTC", "USDT"), rates_for(["BTC"]), None)
    fee = (PERP if get_profile(profile).perp else SPOT)["fee"]  # (0.1 % on perps too before: not what bench printed)
    config = RunSettings(10_000.0, fee, SPOT["slippage"], **(stops or {})).kernel_config(get_profile(profile), rates)
    return (seconds, *cols, targets, config)


SPOT = dict(margin="cross-3x", fee=0.001, slippage=0.0002)  # every bench on spot margin
RATE_BASE, RATE_QUOTE = 0.0002, 0.0003  # daily interest rates: each base asset's, USDT's
PERP = dict(margin="usdm-cross-5x", fee=0.0005, slippage=0.0002, funding_rate=0.0001)  # bench --venue usdm


def rates_for(bases):
    """The bench's daily rates for base assets ``bases`` and USDT."""
    return {**dict.fromkeys(bases, RATE_BASE), "USDT": RATE_QUOTE}


def perp_venue(bars: pd.DataFrame):
    """The kernel's ``Venue`` of a bench run on perpetual futures: BTCUSDT's
    shipped bracket tables, a constant funding rate every 8 h."""
    from .engine import _epoch_seconds
    from .perps import funding_rows, venue_inputs
    from .venues.brackets import table_for

    seconds = _epoch_seconds(bars.index)
    t, r = funding_rows(None, PERP["funding_rate"], "BTCUSDT", seconds)
    o, c = bars["open"].to_numpy(np.float64), bars["close"].to_numpy(np.float64)
    return venue_inputs(table_for("BTCUSDT"), seconds, o, c, t, r)[0]


def compile_seconds() -> float:
    """Seconds to compile the kernel in a fresh process with an empty cache."""
    code = (
        "import time, numpy as np\n"
        "from backtest.bench import synthetic_bars, busy_targets, kernel_args\n"
        "from backtest.engine import simulate_arrays\n"
        "b = synthetic_bars(2000); a = kernel_args(b, busy_targets(2000))\n"
        "t = time.perf_counter(); simulate_arrays(*a); print(time.perf_counter() - t)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def first_run(repeat: int = 3, data: tuple = (), stops: bool = False, margin: str = "cross-3x") -> str:
    """A fresh environment's first ``backtest run`` (the README's default
    run, without the PDF; ``data``: other bundled files instead, several in
    one ``margin`` account; ``stops``: with a 3 % stop-loss): its wall time with an
    empty numba cache, then a second run's on the cache it left, each a new
    process; the difference is what compiling cost.  Medians of ``repeat``
    fresh caches."""
    cold, warm = [], []
    flags = [a for d in data for a in ("--data", str(d))] + (["--margin", margin] if data else [])
    flags += ["--stop-loss", "0.03"] if stops else []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "cache"))
            for k, times in enumerate((cold, warm)):
                cmd = [sys.executable, "-m", "backtest", "run", *flags, "--no-report", "--out", str(Path(tmp) / f"out{k}")]
                t = time.perf_counter()
                subprocess.run(cmd, env=env, capture_output=True, check=True)
                times.append(time.perf_counter() - t)
    c, w = statistics.median(cold), statistics.median(warm)
    what = "bundled BTCUSDT-1h" if not data else " + ".join(Path(d).stem for d in data) + (
        ", one cross account" if len(data) > 1 else "")
    return "\n".join([
        f"backtest run ({what}, sma_cross, {margin}{', --stop-loss 0.03' if stops else ''}, --no-report), "
        "each run a new process",
        f"first run, empty numba cache  {c:.1f} s  (runs: {', '.join(f'{x:.1f}' for x in cold)})",
        f"second run, cache warm        {w:.1f} s",
        f"compiling (the difference)    {c - w:.1f} s  (median of {repeat} fresh caches)",
    ])


def bench(n_bars: int = 1_000_000, repeat: int = 7, stops: bool = False, venue: str = "margin") -> str:
    """``venue``: "margin" (spot margin, cross-3x) or "usdm" (perpetual
    futures, usdm-cross-5x, funding every 8 h) on the same bars and targets."""
    from .engine import run, simulate_arrays

    bars = synthetic_bars(n_bars)
    targets = busy_targets(n_bars)
    stop_settings = STOPS if stops else {}
    perp = venue == "usdm"
    args = kernel_args(bars, targets, profile=PERP["margin"] if perp else "cross-3x", stops=stop_settings)
    extra = dict(venue=perp_venue(bars), per_bar=False) if perp else dict(per_bar=False)
    compile_s = compile_seconds()
    simulate_arrays(*args, **extra)[0].full()  # warm (loads the cache this process may have)
    times, expands, out = [], [], None
    for _ in range(repeat):
        del out  # (the last run's rows are freed here, not inside the next timing)
        t = time.perf_counter()
        out = simulate_arrays(*args, **extra)  # what run() calls: the account's log, no per-bar rows
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        out[0].full()  # the per-bar rows, as a first read of res.equity makes them
        expands.append(time.perf_counter() - t)
    med = statistics.median(times)
    settings = dict(SPOT, rates=rates_for(["BTC"]), **stop_settings)
    if perp:
        settings = dict(PERP, symbol="BTCUSDT", **stop_settings)
    run(bars, targets, **settings).equity  # warm: the first call also loads compiled helpers and pandas' paths
    runs, tables, res = [], [], None
    for _ in range(max(5, repeat)):
        del res  # (the last result and its tables are freed here, as the kernel's above, not inside the timing)
        t = time.perf_counter()
        res = run(bars, targets, **settings)
        runs.append(time.perf_counter() - t)
        res.equity  # built on first read
        tables.append(time.perf_counter() - t)
    fresh_runs = []
    for _ in range(max(5, repeat)):  # a new frame each run: the times derived from its index are made again
        del res
        fresh = bars.set_axis(bars.index.copy(deep=True))
        t = time.perf_counter()
        res = run(fresh, targets, **settings)
        fresh_runs.append(time.perf_counter() - t)
    full = statistics.median(runs)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    e = res.equity
    alive = np.flatnonzero(np.any([e[c].to_numpy() != 0.0 for c in ("equity", "debt", "position") if c in e], axis=0))
    wiped = alive[-1] + 1 if alive.size and alive[-1] + 1 < n_bars else None
    lines = [
        (f"bars                  {n_bars:,} synthetic 1m, usdm-cross-5x, fee 0.05 %, slippage 0.02 %, funding 8-hourly"
         if perp else
         f"bars                  {n_bars:,} synthetic 1m, cross-3x, fee 0.1 %, slippage 0.02 %, interest on"),
        f"stops                 {'stop-loss 2 %, take-profit 3 % on every trade' if stops else 'off'}",
        f"orders / liquidations {len(out[1]):,} / {len(out[2]):,}  (margin calls {len(out[3]):,})",
        f"wiped out at bar      {wiped:,}: the later bars are closed at once (kernel._zero_tail)" if wiped is not None
        else "wiped out             no",
        f"compile (fresh cache) {compile_s:.2f} s",
        f"kernel median of {repeat}   {med * 1e3:.1f} ms  →  {n_bars / med / 1e6:.1f} M bar-steps/s (one core)",
        f"kernel min / max      {min(times) * 1e3:.1f} / {max(times) * 1e3:.1f} ms",
        f"per-bar rows on read  {statistics.median(expands) * 1e3:.1f} ms  (from the kernel's account log: "
        f"{out[0].n_log:,} rows)",
        f"whole run() median of {len(runs)}  {full * 1e3:.0f} ms  ({full / med:.1f}× the kernel; {len(res.trades):,} "
        "trades walked, metrics included; tables built on first read)",
        f"  and res.equity read   {statistics.median(tables) * 1e3:.0f} ms  (the per-bar table is built on first read)",
        f"  a new frame each run  {statistics.median(fresh_runs) * 1e3:.0f} ms  ({statistics.median(fresh_runs) / med:.1f}× "
        "the kernel: the times of an index are made once per index, backtest/derived.py)",
        f"peak memory (RSS)     {peak_mib:.0f} MiB",
    ]
    if stops:
        lines += _against_plain(bars, targets, PERP["margin"] if perp else "cross-3x", extra, max(15, repeat))
    return "\n".join(lines)


def _against_plain(bars, targets, profile, extra, rounds) -> list:
    """``bench --stops``' kernels against plain's, alternated in this process
    (one machine for all three): the bench's stops, which trade otherwise
    (more orders, a longer-lived account), and stops armed beyond any bar's
    reach, which trade as plain does: what watching the levels costs."""
    from .engine import simulate_arrays

    cases = {"plain": None, "stops": STOPS, "far": FAR_STOPS}
    args = {k: kernel_args(bars, targets, profile=profile, stops=v) for k, v in cases.items()}
    times, orders = {k: [] for k in cases}, {}
    for k, a in args.items():
        orders[k] = len(simulate_arrays(*a, **extra)[1])  # (warm)
    for _ in range(rounds):
        for k, a in args.items():
            t = time.perf_counter()
            out = simulate_arrays(*a, **extra)
            times[k].append(time.perf_counter() - t)
            del out
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}

    def line(k, what):
        return (f"  {what:<31s} {med[k] * 1e3:.1f} ms  {med['plain'] / med[k]:.0%} of plain (minima "
                f"{low['plain'] / low[k]:.0%}), {orders[k]:,} orders")

    return [f"against plain         medians of {rounds} alternated runs in this process; plain {med['plain'] * 1e3:.1f} "
            f"ms, {orders['plain']:,} orders",
            line("stops", "stop-loss 2 %, take-profit 3 %"),
            line("far", "stops beyond reach (90 %, 99 %)")]


def sweep_grid(combos: int) -> dict:
    """An sma_cross grid of about ``combos`` valid combinations (fast < slow always)."""
    if combos >= 10_000:
        return {"fast": list(range(2, 52, 2)), "slow": list(range(60, 460, 10)),
                "leverage": [1.0 + 0.25 * k for k in range(10)]}
    side = max(1, round((combos / 10) ** 0.5))
    return {"fast": [5 + 5 * k for k in range(side)], "slow": [60 + 20 * k for k in range(side)],
            "leverage": [1.0 + 0.25 * k for k in range(10)]}


def bench_sweep(n_bars: int = 1_000_000, combos: int = 1_000, workers: int | None = None) -> str:
    """Time ``sweep`` on synthetic bars with margin on; combos/s, bar-steps/s, peak memory."""
    from .sweep import sweep

    bars = synthetic_bars(n_bars)
    grid = sweep_grid(combos)
    settings = dict(SPOT, rates=rates_for(["BTC"]))
    with tempfile.TemporaryDirectory() as tmp:
        sweep(bars.iloc[:5000], "sma_cross", {"fast": [5], "slow": [60]}, out=Path(tmp) / "warm",
              progress=_Quiet(), **settings)  # compile outside the timing
        t = time.perf_counter()
        res = sweep(bars, "sma_cross", grid, out=Path(tmp) / "sweep", workers=workers, progress=_Quiet(), **settings)
        wall = time.perf_counter() - t
    n = len(res.table)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    threads = workers or os.cpu_count()
    lines = [
        f"sweep                 {n:,} sma_cross combinations × {n_bars:,} synthetic 1m bars, cross-3x,",
        "                      fee 0.1 %, slippage 0.02 %, interest on, intrabar liquidation",
        f"wall (indicators incl.) {wall:.2f} s on {threads} threads",
        f"combinations/s        {n / wall:,.1f}",
        f"bar-steps/s           {n * n_bars / wall / 1e6:,.1f} M",
        f"liquidated combos     {int((res.table['n_liquidations'] > 0).sum()):,}",
        f"final equity 0        {int((res.table['final_equity'] <= 0.0).sum()):,} combos  (one wiped out to every "
        "balance 0 closes its later bars at once, kernel._zero_tail)",
        f"peak memory (RSS)     {peak_mib:,.0f} MiB",
    ]
    lines += _vectorbt_line(bars, grid, n * n_bars / wall)
    return "\n".join(lines)


README_GRID = {"fast": list(range(5, 55, 5)), "slow": list(range(20, 210, 10)), "leverage": [1.0]}


def bench_sweep_real(data, repeat: int = 7, workers: int | None = None) -> str:
    """Time the README's sweep grid on the bundled bars, as a user runs it
    (``backtest.sweep``: indicators, targets, kernel, table), median of
    ``repeat`` warm sweeps."""
    from .data import load_ohlcv
    from .sweep import sweep

    bars = load_ohlcv(data)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeat + 1):  # the first compiles and warms; not timed
            t = time.perf_counter()
            res = sweep(bars, "sma_cross", README_GRID, out=Path(tmp) / f"s{k}", workers=workers, progress=_Quiet())
            if k:
                times.append(time.perf_counter() - t)
    med = statistics.median(times)
    n = len(res.table)
    return "\n".join([
        f"sweep                 {n:,} sma_cross combinations (fast 5:50:5 × slow 20:200:10, leverage 1)",
        f"                      × {len(bars):,} bars of {Path(data).name}, cross-3x defaults",
        f"sweep median of {repeat}    {med * 1e3:.0f} ms on {workers or os.cpu_count()} threads (indicators, targets, "
        "table included)",
        f"bar-steps/s           {n * len(bars) / med / 1e6:,.1f} M  (min / max {min(times) * 1e3:.0f} / "
        f"{max(times) * 1e3:.0f} ms)",
    ])


class _Quiet:
    def advance(self, n):
        pass

    def finish(self):
        pass


def _vectorbt_line(bars, grid, ours):
    """vectorbt's from_signals on the same crossovers (no margin), if installed."""
    try:
        import vectorbt as vbt
    except ImportError:
        return ["vectorbt              not installed (optional): no comparison"]
    close = bars["close"]
    fast = vbt.MA.run(close, grid["fast"], short_name="fast")
    slow = vbt.MA.run(close, grid["slow"], short_name="slow")
    t = time.perf_counter()
    entries = fast.ma_crossed_above(slow)
    exits = fast.ma_crossed_below(slow)
    pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001)
    pf.total_return()
    wall = time.perf_counter() - t
    steps = entries.shape[1] * len(close)
    return [f"vectorbt from_signals {steps / wall / 1e6:,.1f} M bar-steps/s (no margin), ratio {ours / (steps / wall):.1f}×"]


def multi_series(n_bars: int, n_symbols: int):
    """``bench --symbols``' symbols, their synthetic bars (each its own
    seed) and ``busy_targets`` (each its own, a share of the account)."""
    symbols = [f"S{k}USDT" for k in range(n_symbols)]
    bars = [synthetic_bars(n_bars, seed=7 + k) for k in range(n_symbols)]
    return symbols, bars, [busy_targets(n_bars, seed=11 + k) / n_symbols for k in range(n_symbols)]


def multi_args(n_bars: int, n_symbols: int, venue: str = "margin", stops: bool = False):
    """The arrays and settings of ``multi_accounts.simulate_multi_arrays`` for a bench
    run: ``n_symbols`` synthetic series (each its own seed) in one cross
    account (cross-3x, or usdm-cross-5x with ``venue`` "usdm": BTCUSDT's
    bracket tables and a constant funding rate for every symbol), each with
    ``busy_targets`` of its own; ``stops``: a 2 % stop-loss and a 3 %
    take-profit on every symbol (the joint walk)."""
    from .engine import _epoch_seconds
    from .multi import accounts_of, parse_margin
    from .rates import rate_table

    symbols, bars, targets = multi_series(n_bars, n_symbols)
    cols = {c: np.vstack([b[c].to_numpy(np.float64) for b in bars]) for c in ("open", "high", "low", "close")}
    targets = np.vstack(targets)
    perp = venue == "usdm"
    accounts = accounts_of(parse_margin(PERP["margin"] if perp else SPOT["margin"], symbols))
    levels = np.array([a[1].kernel_levels() for a in accounts])
    acct_of = np.array([next(j for j, a in enumerate(accounts) if s in a[2]) for s in symbols], dtype=np.int64)
    seconds = _epoch_seconds(bars[0].index)
    h0, table = rate_table(seconds, symbols + ["USDT"], rates_for(symbols), None)
    config = dict(symbol_account=acct_of, capital=np.full(len(accounts), 10_000.0 / len(accounts)), fee=SPOT["fee"],
                  slippage=SPOT["slippage"], rate_h0=np.int64(h0), rates=np.vstack(table),
                  initial_ml=levels[:, 0].copy(), call_ml=levels[:, 1].copy(), liquidation_ml=levels[:, 2].copy(),
                  liquidation_fee=np.array([a[1].liquidation_fee for a in accounts]),
                  restore_ml=levels[:, 3].copy(), full_liquidation=False, rebalance=0.0, round_interest=True,
                  stop_on_liquidation=False)
    if stops:
        config.update(stop_loss=0.02, take_profit=0.03)
    if perp:
        from .perps import funding_rows
        from .venues.brackets import table_for

        funding = funding_rows(None, PERP["funding_rate"], "BTCUSDT", seconds)
        config.update(fee=PERP["fee"], leverage=np.array([a[1].max_leverage for a in accounts]),
                      isolated=np.zeros(len(accounts), bool),
                      perp={k: (table_for("BTCUSDT"), *funding) for k in range(n_symbols)})
    return (seconds, cols["open"], cols["high"], cols["low"], cols["close"], targets, config)


def compile_seconds_multi(stops: bool = False, venue: str = "margin") -> float:
    """Seconds to compile ``kernel_multi`` for ``venue`` in a fresh process with an empty cache."""
    code = (
        "import time\n"
        "from backtest.bench import multi_args\n"
        "from backtest.multi_accounts import simulate_multi_arrays\n"
        f"a = multi_args(2000, 2, {venue!r}, stops={stops})\n"
        "t = time.perf_counter(); simulate_multi_arrays(*a); print(time.perf_counter() - t)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_multi(n_bars: int = 1_000_000, repeat: int = 7, n_symbols: int = 2, compile_time: bool = True,
                venue: str = "margin", stops: bool = False) -> str:
    """``backtest bench --symbols N``: N symbols in one cross account; warm
    median, reported per symbol so it compares with the one-symbol figure."""
    from .engine import simulate_arrays
    from .multi_accounts import simulate_multi_arrays

    args = multi_args(n_bars, n_symbols, venue, stops)
    compile_s = compile_seconds_multi(stops, venue) if compile_time else float("nan")
    alone = _alone_args(args, venue, stops)
    simulate_multi_arrays(*args)  # warm
    for a, extra in alone:
        simulate_arrays(*a, **extra)
    times, alone_times = [], []
    for _ in range(repeat):  # alternated, so both see the same machine
        t = time.perf_counter()
        out = simulate_multi_arrays(*args)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        for a, extra in alone:
            simulate_arrays(*a, **extra)
        alone_times.append(time.perf_counter() - t)
    med, med_alone = statistics.median(times), statistics.median(alone_times)
    stats = out[7]
    steps = n_bars * n_symbols
    lines = [
        f"bars                  {n_bars:,} synthetic 1m × {n_symbols} symbols in one "
        f"{'usdm-cross-5x' if venue == 'usdm' else 'cross-3x'} account,",
        "                      " + ("fee 0.05 %, slippage 0.02 %, funding 8-hourly" if venue == "usdm" else
                                    "fee 0.1 %, slippage 0.02 %, interest on") + ", joint intrabar liquidation",
        "stops                 " + ("stop-loss 2 %, take-profit 3 % on every trade (the joint walk)" if stops
                                    else "off"),
        f"orders / liquidations {int(stats['n_orders']):,} / {int(stats['n_liquidations']):,}  "
        f"(margin calls {int(stats['n_margin_calls']):,})",
        f"compile (fresh cache) {compile_s:.2f} s",
        f"kernel median of {repeat}   {med * 1e3:.1f} ms  →  {steps / med / 1e6:.1f} M symbol-bar-steps/s "
        f"({n_bars / med / 1e6:.1f} M grid steps/s, one core)",
        f"kernel min / max      {min(times) * 1e3:.1f} / {max(times) * 1e3:.1f} ms",
        f"each symbol alone     {med_alone * 1e3:.1f} ms  →  {steps / med_alone / 1e6:.1f} M bar-steps/s: the one-symbol "
        "kernel on the same bars and targets, one account each,",
        f"                      alternated with the above: the cross account runs at {med_alone / med:.0%} of its speed",
    ]
    if venue == "margin":  # (a perp's bracket tables are the bundled symbols': none for these names)
        whole, n_trades = _whole_multi(n_bars, n_symbols, stops, repeat)
        lines.append(f"whole run_multi() median of {repeat}  {whole * 1e3:.0f} ms  ({whole / med:.1f}× the kernel; "
                     f"{n_trades:,} trades walked, metrics included; tables built on first read)")
    return "\n".join(lines)


def _whole_multi(n_bars, n_symbols, stops, repeat):
    """``bench_multi``'s run through ``backtest.run_multi`` (the same bars,
    targets and settings): its median wall time once warm, and the trades
    it walked (read after the timing, as a caller reading the summary
    never builds them)."""
    from .multi import run_multi

    symbols, bars, targets = multi_series(n_bars, n_symbols)
    data = dict(zip(symbols, bars))
    targets = pd.DataFrame(dict(zip(symbols, targets)), index=bars[0].index)
    settings = dict(SPOT, rates=rates_for([s[:-4] for s in symbols]), **(STOPS if stops else {}))
    run_multi(data, targets, **settings)  # warm
    times, res = [], None
    for _ in range(repeat):
        del res  # (the last result is freed here, not inside the timing)
        t = time.perf_counter()
        res = run_multi(data, targets, **settings)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(res.trades)


def _alone_args(args, venue, stops):
    """``bench_multi``'s symbols each alone: the one-symbol kernel's
    arguments on each symbol's bars and targets (an account of its own with
    the same capital and settings), so the cross account is compared with
    the one-symbol kernel on the same work, bar for bar."""
    seconds, open_, high, low, close, targets, _ = args
    out = []
    for k in range(open_.shape[0]):
        bars = pd.DataFrame({"open": open_[k], "high": high[k], "low": low[k], "close": close[k]},
                            index=pd.to_datetime(seconds, unit="s", utc=True))
        perp = venue == "usdm"
        a = kernel_args(bars, targets[k].copy(), profile=PERP["margin"] if perp else "cross-3x",
                        stops=STOPS if stops else None)
        out.append((a, dict(venue=perp_venue(bars), per_bar=False) if perp else dict(per_bar=False)))
    return out
