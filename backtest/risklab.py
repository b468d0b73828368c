"""The risk lab: a grid over many paths, and how often each combination is
liquidated.

``risk(...)`` runs every combination of a grid (usually ``leverage`` or
``exposure``) on many paths of ``horizon`` length, each from a fresh
account with the run's settings:

- ``method="windows"``: one path per start on the stride ``every`` across
  the data (``spans.windows``); the strategy's targets are computed on that
  window's bars only, so each path's result is ``backtest.run`` over the
  same span;
- ``method="bootstrap"``: ``paths`` synthetic paths (``bootstrap``), path
  ``k`` from ``default_rng([seed, k])``.

Paths run in chunks on the sweep's machinery (threads, or Dask with
``scheduler``), each chunk saved in ``chunks/part-NNNNN.parquet`` as it
finishes (``resume`` runs only the missing ones; ``sweep_folder`` rules,
``kind="risk"``).  A path runs the kernel through ``engine.simulate_arrays``
on its arrays: no pandas per path beyond the strategy's own input.  A chunk
row is one path × combination; the rows of every ``fan_stride``-th path also
carry its equity at ``riskstats.STEPS`` steps (the fan chart's samples, one
list column ``fan``: ~3 ms a chunk file to write and ~2 ms to read against
~9 and ~10 ms as 101 columns, which chunks written before 2026-12-08 hold and
``_finish`` still reads), so memory stays flat in the number of paths.

At the end: ``risk.parquet`` (one row per path × combination),
``fan.parquet`` (equity quantiles per step per combination), ``risk.json``
(the manifest: settings and grid, and per combination ``riskstats``'
numbers), ``frontier.png``, ``fan.png`` and ``report.pdf``.
"""
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import warm
from . import transfers as transfers_mod
from .assets import daily_rates, split_symbol
from .bootstrap import BlockBootstrap
from .checks import _type_error, api, check_args
from .detail import NO_DETAIL
from .engine import _epoch_seconds, _rate_history, loans_outlive_trades, mark_arrays, simulate_arrays
from .errors import UserError
from .kernel import STATS as KERNEL_STATS
from .grid import MARGIN_AXIS, MAX_COMBOS, MOVE_AXES, iter_combinations, preflight
from .profile_file import load_profiles
from .rates import rate_table
from .riskstats import STEPS, combination_stats, fan_stride, fan_table, sample_steps
from .spans import bar_spacing, check_fits, parse_duration, windows
from .strategy import Orders, load_strategy
from .sweep import (SETTING_NAMES, Progress, _as_user_error, _atomic_parquet, _kept, _run_dask,
                    _run_threads, _Silent, cached_config, grid_profiles, grid_walks, prepare_settings)
from .sweep_folder import (bars_entry, check_folder, chunk_path, finish_folder, finished_chunks, manifest_id,
                           prepare_folder, stored_chunk_size, undo_overwrite, write_manifest)

METHODS = ("windows", "bootstrap")
FAN = [f"fan_{j:03d}" for j in range(STEPS + 1)]  # a chunk's samples before 2026-12-08, a column a step
FAN_COLUMN = "fan"  # since: the samples as one list column (null on the paths not kept)
MAX_CHUNK = 1000  # paths per chunk at most: a chunk's rows (× combinations) stay small
ROW_COLUMNS = ("combination", "path", "start", "end", "final_equity", "return", "liquidated", "first_liquidation",
               "n_liquidations", "max_drawdown", "interest_paid", "fees_paid", "liquidation_fees", "bad_debt",
               "n_margin_calls", "min_margin_level")


@dataclass
class Spec:
    """What the paths are (checked): the method and its lengths in seconds."""

    method: str
    horizon: int
    every: int
    paths: int
    block: int
    seed: int
    texts: dict  # the flags as given, for risk.json

    def as_dict(self):
        return {"method": self.method, "horizon_seconds": self.horizon, "every_seconds": self.every,
                "paths": self.paths, "block_seconds": self.block, "seed": self.seed, **self.texts}


OWN = {"windows": ("every",), "bootstrap": ("paths", "block", "seed")}  # each method's own arguments
DEFAULTS = {"every": "1d", "paths": 1000, "block": "24h", "seed": 0}


def check_spec(method, horizon, every=None, paths=None, block=None, seed=None) -> Spec:
    """The risk lab's own arguments: one line each when wrong; the other
    method's arguments given (not None) are refused, the method's own left
    None take their defaults (``DEFAULTS``)."""
    if not isinstance(method, str):
        raise _type_error("method", method, "'windows' or 'bootstrap'")
    if method not in METHODS:
        raise UserError(f"--method {method}: expected windows or bootstrap")
    given = {"every": every, "paths": paths, "block": block, "seed": seed}
    for other, names in OWN.items():
        for name in names:
            if other != method and given[name] is not None:
                raise UserError(f"--{name}: a --method {other} flag; this run is --method {method}")
    every, paths, block, seed = (DEFAULTS[k] if given[k] is None else given[k] for k in DEFAULTS)
    for name, value in (("paths", paths), ("seed", seed)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise _type_error(name, value, "a whole number")
    if paths < 1:
        raise UserError(f"--paths {paths}: must be ≥ 1")
    if seed < 0:
        raise UserError(f"--seed {seed}: must be ≥ 0")
    return Spec(method, parse_duration(horizon, "--horizon"), parse_duration(every, "--every"), int(paths),
                parse_duration(block, "--block"), int(seed),
                {"horizon": str(horizon), "every": str(every), "block": str(block)})


class RiskContext:
    """What every chunk needs: the bars as arrays (or the bootstrap), the
    strategy, the settings, the combinations and each one's kernel settings."""

    def __init__(self, bars, strategy, settings, spec: Spec, combos, mark=None, funding=None):
        self.bars, self.strategy, self.settings, self.spec, self.combos = bars, strategy, settings, spec, combos
        self.seconds = _epoch_seconds(bars.index)
        self.spacing = bar_spacing(self.seconds)
        symbol = settings["symbol"]
        self.base, self.quote = split_symbol(symbol)
        self.profiles = load_profiles(settings["margin_file"]) if settings.get("margin_file") else {}
        daily = dict(zip((self.base, self.quote), daily_rates(symbol, settings.get("rates"))))
        self.marks = None
        if spec.method == "windows":
            self.ohlc = tuple(bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
            self.starts, self.ends = windows(self.seconds, spec.horizon, spec.every)
            history = _rate_history(settings.get("rate_history"), settings.get("rates"))
            self.rates = rate_table(self.seconds, (self.base, self.quote), daily, history)  # any window's hours
            mark = mark if mark is not None else settings.get("mark")
            if mark is not None:
                self.marks = mark_arrays(mark, bars)[0]
            self.n_paths = len(self.starts)
        else:
            self.boot = BlockBootstrap(bars, spec.horizon // self.spacing, spec.block / self.spacing, spec.seed,
                                       self.spacing)
            self.rates = rate_table(self.boot.seconds, (self.base, self.quote), daily, None)
            self.n_paths = spec.paths
        self.stride = fan_stride(self.n_paths)
        self.configs = {}
        self.perp = None  # perp profiles (windows): the bracket versions, funding rows, zero rates
        if "funding" in settings:  # (bootstrap: a constant rate on the synthetic dates, the table in force then)
            from . import perps
            from .venues.brackets import table_for

            source = funding if funding is not None else settings["funding"]
            dates = self.seconds if spec.method == "windows" else self.boot.seconds
            self.perp = (table_for(self.base + self.quote, settings.get("brackets")),
                         *perps.funding_rows(source, settings.get("funding_rate"), symbol, dates),
                         rate_table(dates, (self.base, self.quote), {self.base: 0.0, self.quote: 0.0}, None))

    def config(self, margin, given: Orders):
        """(profile, kernel settings) of ``margin`` with the strategy's stop fractions."""
        return cached_config(self.configs, self.settings, self.profiles, self.base, self.quote, self.rates, margin,
                             given.fractions, None if self.perp is None else self.perp[3])

    def venue(self, seconds, o, c, marks):
        """A window's perp inputs: the bracket version and funding charges on its bars."""
        from .perps import venue_inputs

        m_open, m_close = (o, c) if marks is None else (marks[0], marks[3])
        return venue_inputs(self.perp[0], seconds, m_open, m_close, self.perp[1], self.perp[2])[0]

    def path(self, k):
        """Path ``k``: (seconds, open, high, low, close, marks, bars for the strategy)."""
        if self.spec.method == "windows":
            a, b = int(self.starts[k]), int(self.ends[k])
            marks = None if self.marks is None else tuple(m[a:b] for m in self.marks)
            return (self.seconds[a:b], *(x[a:b] for x in self.ohlc), marks, self.bars.iloc[a:b])
        frame = self.boot.frame(k)
        return (self.boot.seconds, *(frame[c].to_numpy() for c in ("open", "high", "low", "close")), None, frame)

    def run_chunk(self, block) -> pd.DataFrame:
        s = self.settings
        capital = s["capital"]
        rows, fans = [], []
        for k in block:
            seconds, o, h, lo, c, marks, frame = self.path(k)
            steps = sample_steps(seconds, int(seconds[0]), self.spec.horizon, self.spacing)
            keep = k % self.stride == 0
            targets = {}
            path_venue = None
            for ci, params in enumerate(self.combos):
                plain = {n: v for n, v in params.items() if n != MARGIN_AXIS and n not in MOVE_AXES}
                key = tuple(plain.items())
                if key not in targets:
                    targets[key] = self.strategy.orders(frame, plain)
                given = targets[key]
                exact = loans_outlive_trades(given, s.get("auto_repay", True))  # as run() calls the kernel
                profile, config = self.config(params[MARGIN_AXIS], given)
                venue = None
                if profile.perp:
                    path_venue = self.venue(seconds, o, c, marks) if path_venue is None else path_venue
                    venue = path_venue._replace(funding_out=np.zeros_like(path_venue.funding_out))
                moves = transfers_mod.axes_spec(params, s, given, profile, seconds, config[0].call_ml)
                kept, _, liqs, _, st, *flows = simulate_arrays(seconds, o, h, lo, c, given.target, config, marks,
                                                               NO_DETAIL, given, quote_row=exact, venue=venue,
                                                               flows=moves, per_bar=False)
                stats = dict(zip(KERNEL_STATS, st.tolist()))
                real = liqs[liqs["quantity"] != 0.0]  # a write-off is no liquidation (writeoffs.py)
                n_liq = len(real)
                row = dict(params)
                row.update(combination=ci, path=int(k), start=int(seconds[0]), end=int(seconds[-1]),
                           final_equity=stats["final_equity"], **{"return": stats["final_equity"] / capital - 1.0},
                           liquidated=n_liq > 0, first_liquidation=int(seconds[real[0]["bar"]]) if n_liq else -1,
                           n_liquidations=n_liq, max_drawdown=stats["max_drawdown"],
                           interest_paid=0.0 if profile.perp else stats["interest_paid"], fees_paid=stats["fees_paid"],
                           **({} if self.perp is None else {"funding_paid": stats["interest_paid"] if profile.perp
                                                            else 0.0}),
                           liquidation_fees=stats["liquidation_fees"], bad_debt=stats["bad_debt"],
                           n_margin_calls=int(stats["n_margin_calls"]))
                if any(k in params for k in MOVE_AXES):  # a move grid: what the reserve gave (0 without one)
                    state = flows[0].state if flows else np.zeros(3)
                    row.update(reserve_left=float(state[0]), topped_up=float(state[2]))
                rows.append(row)
                if keep:
                    eq = kept.full()[0]
                    fans.append(np.concatenate(([capital], np.where(steps >= 0, eq[np.maximum(steps, 0)], capital))))
                else:
                    fans.append(None)
        table = pd.DataFrame(rows)
        for col in ("start", "end"):
            table[col] = pd.to_datetime(table[col], unit="s", utc=True)
        first = table["first_liquidation"].to_numpy()
        table["first_liquidation"] = pd.to_datetime(np.where(first >= 0, first, 0), unit="s", utc=True).where(
            first >= 0)
        table[FAN_COLUMN] = pd.Series(fans, dtype=object, index=table.index)
        return table


@dataclass
class RiskResult:
    """``table``: one row per path × combination; ``stats``: one row per
    combination (``risk.json``'s numbers); ``fan``: equity quantiles per
    step and combination; where they were written and how long it took."""

    table: pd.DataFrame
    stats: pd.DataFrame
    fan: pd.DataFrame
    out: Path
    seconds: float
    settings: dict
    resumed: int = 0  # path runs a resumed run found finished (its chunks), not run again


@api()
def risk(
    bars,
    strategy="hold",
    grid: dict | None = None,
    *,
    method="windows",
    horizon="30d",
    every=None,
    paths=None,
    block=None,
    seed=None,
    out=None,
    chunk_size=None,
    workers=None,
    resume=False,
    overwrite=False,
    scheduler=None,
    progress=None,
    max_combos=MAX_COMBOS,
    **settings,
) -> RiskResult:
    """Run every combination of ``grid`` on many paths; write ``out``.

    ``bars``, ``strategy``, ``grid`` and the ``settings`` (``margin``,
    ``capital``, ``fee``, ... ``start``, ``end``) are ``sweep``'s.
    ``method``: ``"windows"`` (a path per start every ``every`` across the
    data, each ``horizon`` long, ``backtest.run`` over that span) or
    ``"bootstrap"`` (``paths`` synthetic paths of ``horizon``, a stationary
    block bootstrap of whole bars with mean block ``block``, reproducible
    with ``seed``).  Durations are strings like ``"30d"``, ``"24h"``.
    ``every`` (default ``"1d"``) is the windows' own; ``paths`` (1000),
    ``block`` (``"24h"``) and ``seed`` (0) the bootstrap's: the other
    method's are refused.
    ``out`` (default ``reports/risk-<strategy>-<symbol>-<profile>``) is
    refused when it holds a risk run, unless ``resume`` (finish the same
    one) or ``overwrite``.  ``workers``, ``scheduler``, ``chunk_size``
    (paths per chunk), ``progress`` as in ``sweep``.
    """
    check_args({k: v for k, v in {**locals(), **settings}.items() if not (k == "out" and v is None)})
    spec = check_spec(method, horizon, every, paths, block, seed)
    unknown = sorted(set(settings) - set(SETTING_NAMES))
    if unknown:
        raise _type_error(unknown[0], settings[unknown[0]], f"one of risk's arguments (not {unknown[0]!r})")
    if spec.method == "bootstrap":
        for name in ("mark", "rate_history"):
            if settings.get(name) is not None:
                flag = {"mark": "--mark", "rate_history": "--rates"}[name]
                raise UserError(f"{flag}: not with --method bootstrap (synthetic paths have no dates of the data); "
                                "use --method windows")
    setup = prepare_settings(bars, strategy, grid, scheduler=scheduler, perps=True, moves=True, **settings)
    strat, grid, bars, margins, s = setup.strategy, setup.grid, setup.bars, setup.margins, setup.settings
    if spec.method == "bootstrap" and s.get("funding") is not None:  # (perps: the file's dates are not the paths')
        raise UserError(f"--funding {s['funding']}: not with --method bootstrap (synthetic paths have no dates of "
                        "the funding file); give a constant --funding-rate, or use --method windows")
    seconds = _epoch_seconds(bars.index)
    spacing = bar_spacing(seconds)
    check_fits(seconds, spec.horizon, "--horizon", spec.texts["horizon"])
    if spec.method == "bootstrap":
        if spec.horizon < 2 * spacing:
            raise UserError(f"--horizon {spec.texts['horizon']}: shorter than two bars ({spacing} s each)")
        if spec.block < spacing:
            raise UserError(f"--block {spec.texts['block']}: shorter than one bar ({spacing} s)")
        n_paths = spec.paths
    else:
        if spec.every < spacing and every is not None:  # (its windows would start on the same bars again)
            raise UserError(f"--every {spec.texts['every']}: shorter than one bar ({spacing} s)")
        if spec.every < spacing:  # the default (1 day) on coarser bars: a window a bar
            spec = replace(spec, every=spacing)
        n_paths = len(windows(seconds, spec.horizon, spec.every)[0])
        if not n_paths:
            raise UserError(f"--horizon {spec.texts['horizon']}: no window of that length has two bars in the data")
    threads = workers or os.cpu_count() or 1
    plan = preflight(strat, grid, margins, 1, threads, max_combos)
    if not plan["combinations"]:
        raise UserError(f"--grid: no valid combination ({plan['skipped']} skipped by the strategy's rule)")
    combos = list(iter_combinations(strat, grid, margins))
    if out is None:
        out = Path("reports") / f"risk-{strat.name}-{s['symbol']}-{'+'.join(margins)}"
    out = Path(out)
    manifest = {
        "kind": "risk", "settings": s, "risk": spec.as_dict(), "grid": {k: list(v) for k, v in grid.items()},
        "margins": margins, "bars": bars_entry(bars, out, "risk"),
        "paths": n_paths, "combinations": len(combos),
    }
    manifest["id"] = manifest_id(manifest)
    check_folder(out, manifest["id"], resume, overwrite, kind="risk")
    stored = stored_chunk_size(out, manifest["id"], kind="risk") if resume else None
    size = stored or chunk_size or max(1, min(MAX_CHUNK, -(-n_paths // (16 * threads))))
    manifest["chunk_size"] = size
    n_chunks = -(-n_paths // size)
    done = prepare_folder(out, manifest, resume, overwrite, kind="risk")
    todo = [k for k in range(n_chunks) if k not in done]
    saved = sum(min(size, n_paths - k * size) for k in done if k < n_chunks)
    if progress is None or progress is True:
        print(f"risk: {len(combos):,} combinations × {n_paths:,} paths ({spec.method}, {spec.texts['horizon']})",
              flush=True)
        report = Progress(n_paths, saved, unit="path", desc="risk")
    else:
        report = _Silent() if progress is False else progress

    def chunks():
        for k in todo:
            yield k, list(range(k * size, min(n_paths, (k + 1) * size)))

    t0 = time.perf_counter()
    helper, perp = (None, None) if scheduler else warm.start_for(grid_profiles(setup), False, grid_walks(setup))
    if not scheduler and progress is not False:
        warm.announce(helper)
    config = {"settings": s, "spec": spec.as_dict(), "combos": combos}
    try:
        if scheduler:
            _run_dask(scheduler, bars, strategy, config, chunks, out, report, task=_dask_chunk)
        else:
            warm.join(helper, perp)
            ctx = RiskContext(bars, strat, s, spec, combos, setup.mark, setup.funding)
            _run_threads(ctx, chunks(), out, threads, report)
    except (UserError, KeyboardInterrupt, OSError) as exc:
        exc = _as_user_error(exc)  # (a full disk: one line, and what is saved)
        done = finished_chunks(out)
        if overwrite and not done:
            undo_overwrite(out, kind="risk")
        raise _kept(exc, out, n_paths, size, done) from None
    finally:
        warm.release(helper)  # (its pipe closed; a wait the cached loop left unrun dropped)
    result = _finish(out, manifest, n_chunks, combos, s["capital"], spec)
    result.seconds = time.perf_counter() - t0
    result.resumed = saved * len(combos)
    return result


def _finish(out, manifest, n_chunks, combos, capital, spec) -> RiskResult:
    """Chunks → risk.parquet, fan.parquet, risk.json and the pictures."""
    pieces, samples = [], {}
    for k in range(n_chunks):  # each chunk read once: its rows, and the kept paths' samples by combination
        part = pd.read_parquet(chunk_path(out, k))
        if FAN_COLUMN in part.columns:
            fans = part.pop(FAN_COLUMN)
            kept = fans.notna().to_numpy()
            combination, values = part["combination"].to_numpy()[kept], fans[kept].to_list()
        else:  # a chunk written before 2026-12-08 (a resumed run): a column a step, NaN on the paths not kept
            wide = part[FAN].to_numpy()
            part = part.drop(columns=FAN)
            kept = ~np.isnan(wide[:, 0])
            combination, values = part["combination"].to_numpy()[kept], list(wide[kept])
        for ci, v in zip(combination.tolist(), values):
            samples.setdefault(int(ci), []).append(v)
        pieces.append(part)
    table = pd.concat(pieces, ignore_index=True)
    days = spec.horizon / 86400
    fan = pd.concat([fan_table(np.vstack(samples[ci]), days).assign(combination=ci) for ci in sorted(samples)],
                    ignore_index=True)
    param_names = [c for c in combos[0]]
    stats = []
    for ci, g in table.groupby("combination", sort=True):
        row = {"combination": int(ci), **{k: combos[int(ci)][k] for k in param_names}}
        row.update(combination_stats(g, capital))
        stats.append(row)
    stats = pd.DataFrame(stats)
    _atomic_parquet(table, out / "risk.parquet")
    _atomic_parquet(fan, out / "fan.parquet")
    manifest = dict(manifest, stats=stats.to_dict("records"))
    write_manifest(out, manifest, kind="risk")
    from .report.risk import draw_risk

    draw_risk(out, stats, fan, manifest)
    finish_folder(out)
    return RiskResult(table, stats, fan, out, 0.0, manifest["settings"])


_WORKER_CONTEXTS: dict = {}


def _dask_chunk(bars, strategy, config, block):
    """One chunk on a Dask worker: the same code path as a local thread."""
    key = (id(bars), str(strategy), json.dumps(config, sort_keys=True, default=str))
    ctx = _WORKER_CONTEXTS.get(key)
    if ctx is None:
        _WORKER_CONTEXTS.clear()
        spec = config["spec"]
        s = Spec(spec["method"], spec["horizon_seconds"], spec["every_seconds"], spec["paths"],
                 spec["block_seconds"], spec["seed"], {k: spec[k] for k in ("horizon", "every", "block")})
        ctx = _WORKER_CONTEXTS[key] = RiskContext(bars, load_strategy(strategy), config["settings"], s,
                                                  config["combos"])
    return ctx.run_chunk(block)


def load_stats(folder: Path) -> tuple:
    """(manifest, stats, fan) of a finished risk folder (``backtest report``)."""
    try:
        manifest = json.loads((folder / "risk.json").read_text())
    except (OSError, ValueError):
        raise UserError(f"{folder / 'risk.json'}: cannot read it; not a risk folder marginbt wrote, or damaged") from None
    if "stats" not in manifest or not (folder / "fan.parquet").exists():
        raise UserError(f"{folder}: the risk run did not finish (run it again with --resume)")
    try:
        fan = pd.read_parquet(folder / "fan.parquet")
    except Exception:  # pyarrow's errors: a damaged file
        raise UserError(f"{folder / 'fan.parquet'}: cannot read it; damaged") from None
    return manifest, pd.DataFrame(manifest["stats"]), fan
