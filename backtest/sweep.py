"""Parameter sweeps with the whole margin model on.

A sweep is the cartesian product of grid axes (strategy parameters and
``margin`` profiles), minus the combinations the strategy's ``valid`` rule
rejects (counted).  Combinations run in chunks, on threads (the kernel
releases the GIL) or on a Dask cluster; each finished chunk is written to
``chunks/part-NNNNN.parquet`` at once, so an interrupted sweep keeps its work
and ``resume=True`` runs only what is missing.  Only summary metrics are kept
per combination: memory does not grow with combinations × bars.

A strategy with the sweep hooks ``indicator(bars, name, value)`` and
``fill_targets(out, bank, rows, scalars)`` (``strategies/sma_cross.py``, ``rsi_revert.py``)
has each indicator computed once per distinct value, into one shared array
(on every thread at once: a hook must not change shared state),
and each combination's targets written by compiled code (no GIL, no copy)
into one reusable buffer per thread; one without them is called once per
combination through ``targets``.
"""
import contextlib
import hashlib
import inspect
import itertools
import json
import os
import queue
import shutil
import sys
import threading
import types
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import bar_rows, kernel, warm
from . import perps as perps_mod
from . import transfers as transfers_mod
from .assets import daily_rates, split_symbol
from .engine import (_epoch_seconds, _prepare_bars, _rate_history, loans_outlive_trades, mark_arrays, summary_of,
                     symbol_of)
from .inputs import Bars, Given, marks_of, read_only
from .settings import SPOT_FEE, STOP_FRACTIONS, RunSettings
from .detail import NO_DETAIL, for_kernel
from .rates import rate_table
from .checks import api, check_args
from .errors import UserError
from .grid import MARGIN_AXIS, MAX_COMBOS, MOVE_AXES, axis, describe, iter_combinations, preflight
from .grid import chunks as grid_chunks
from .metrics import periods_per_year
from .profile_file import load_profiles
from .profiles import get_profile
from .ranking import ranked
from .records import liquidation_dt, margin_call_dt, order_dt
from .strategy import Orders, coerce_param, load_strategy
from .sweep_folder import (bars_entry, check_folder, chunk_path, file_digest, finish_folder, finished_chunks,
                           manifest_id, prepare_folder, stored_chunk_size, undo_overwrite)


def parse_grid(specs: list[str], defaults: dict, profiles: dict | None = None, max_combos=MAX_COMBOS) -> dict:
    """``["fast=5:50:5", "slow=20,50"]`` → ``{"fast": [5, 10, ..., 50], "slow": [20, 50]}``.

    ``START:STOP:STEP`` includes STOP when the steps land on it. Values take
    the type of the strategy's default; ``margin`` takes profile names
    (built-in, or of ``profiles``: a ``--margin-file``'s).
    """
    grid = {}
    for spec in specs or []:
        key, sep, body = spec.partition("=")
        key = key.strip()
        if not sep or not body:
            raise UserError(f"--grid {spec}: expected KEY=START:STOP:STEP or KEY=v1,v2,...")
        if key in grid:  # (the last one would win unseen: one axis, not the two the user meant)
            raise UserError(f"--grid {spec}: {key} given twice; list every value in one --grid {key}=...")
        if key in MOVE_AXES and key in defaults:
            raise UserError(f"--grid {key}: both a parameter of the strategy and a move axis; rename the parameter")
        if key != MARGIN_AXIS and key not in defaults and key not in MOVE_AXES:
            raise UserError(f"--grid {key}: the strategy takes {', '.join(defaults) or 'no parameters'} (and margin, "
                            f"{', '.join(MOVE_AXES)})")
        grid[key] = _grid_values(key, body, defaults.get(key, 0.0), spec, profiles, max_combos)
    return grid


def _grid_values(key, body, default, spec, profiles=None, max_combos=MAX_COMBOS):
    parts = [v.strip() for v in body.split(",")]
    if len(parts) > 1 and not all(parts):  # (5,,10 ran 5 and 10: a value lost unsaid)
        raise UserError(f"--grid {spec}: an empty value in the list")
    if key == MARGIN_AXIS:
        names = list(dict.fromkeys(v for v in parts if v))  # (a name twice: once, as a parameter's value)
        for name in names:
            get_profile(name, profiles, flag=f"--grid {spec}")
        return names
    if ":" in body:
        kind = float if isinstance(default, float) else type(default)
        try:
            start, stop, step = (kind(x) for x in body.split(":"))
            if not (step > 0 and stop >= start and all(np.isfinite([start, stop, step]))):
                raise ValueError
        except (TypeError, ValueError):
            raise UserError(f"--grid {spec}: START:STOP:STEP must be {kind.__name__}s, START ≤ STOP, STEP > 0") from None
        return axis(kind, start, stop, step, spec, max_combos)  # lazy: counted before any value is made
    else:  # the same conversion and checks as --param
        values = [coerce_param(key, v, default, flag="--grid") for v in parts if v]
    if not values:
        raise UserError(f"--grid {spec}: no values")
    return list(dict.fromkeys(values))


PERP_METRICS = ("funding_paid", "n_funding", "max_margin_ratio")  # (rows of perpetual-futures profiles only)


def check_rank(rank, perp=True):
    """``rank`` (``--rank``): a numeric metric of a sweep's rows, else one line; a perpetual's metric only
    where ``perp`` (a profile of the grid is a perpetual's: without, its column is missing)."""
    from .engine import numeric_summary_keys

    metrics = [k for k in numeric_summary_keys() if not k.startswith("interest_paid_")]
    if rank in PERP_METRICS and not perp:
        raise UserError(f"--rank {rank}: a perpetual's metric, and no profile of this grid is a perpetual's")
    if rank not in metrics + list(PERP_METRICS):
        raise UserError(f"--rank {rank}: not a metric (one of {', '.join(metrics + list(PERP_METRICS))})")


def combinations(strategy, grid: dict, margins: list[str]):
    """All parameter dicts of the grid (margin included), as a list, and how
    many the strategy's ``valid`` rule skipped (a small grid's view; sweeps
    use ``grid.iter_combinations``, which keeps none)."""
    skipped = [0]
    combos = list(iter_combinations(strategy, grid, margins, skipped))
    return combos, skipped[0]


@dataclass
class SweepContext:
    """What every chunk needs: the bars as arrays, the strategy, the settings
    and the indicator bank: one row per distinct indicator value, built once
    by ``prepare`` and only read while threads run combinations."""

    bars: pd.DataFrame
    strategy: object
    settings: dict
    mark: object = None  # mark-price bars (path or DataFrame) liquidation is checked against
    funding: object = None  # perps: a funding table given as a DataFrame (else settings["funding"] names a file)
    seconds: np.ndarray = field(init=False)
    ohlc: tuple = field(init=False)

    def __post_init__(self):
        self.seconds = _epoch_seconds(self.bars.index)
        self.ohlc = tuple(self.bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
        module = self.strategy.module
        self.hooks = module is not None and hasattr(module, "fill_targets") and hasattr(module, "indicator")
        symbol = self.settings["symbol"]
        self.base, self.quote = split_symbol(symbol)
        daily = daily_rates(symbol, self.settings.get("rates"))
        self.profiles = load_profiles(self.settings["margin_file"]) if self.settings.get("margin_file") else {}
        self.rates = rate_table(self.seconds, (self.base, self.quote), dict(zip((self.base, self.quote), daily)),
                                _rate_history(self.settings.get("rate_history"), self.settings.get("rates")))
        self.ppy = periods_per_year(self.seconds)  # a median over every bar: once, not per combination
        mark = self.mark if self.mark is not None else self.settings.get("mark")
        self.kernel_bars = read_only(Bars(self.seconds, *self.ohlc))  # (once: kernel.simulate takes them so)
        self.marks, self.mark_missing = marks_of(self.kernel_bars), None
        if mark is not None:
            cols, self.mark_missing = mark_arrays(mark, self.bars)
            self.marks = read_only(marks_of(self.kernel_bars, cols))
        self.venue, self.no_rates = None, None
        if "funding" in self.settings:  # perpetual-futures profiles in the sweep: their tables and funding
            self.venue, self.no_rates = self._perp_venue()
        self.bank = np.empty((0, len(self.seconds)))
        self.rows = {}  # (name, value) → row of bank; None for a plain-number parameter
        self._configs = {}  # (margin, stop fractions) → (profile, kernel settings)
        self._scratch = threading.local()  # each thread's target buffer and record scratch (``table_rows``)
        self._preparing = threading.Lock()  # a Dask worker runs its tasks' ``prepare`` on several threads

    def prepare(self, combos, workers=1):
        """Compute each distinct indicator of ``combos`` once, into one array
        (rows filled in place: no second copy of the bank in memory), on
        ``workers`` threads (the shipped indicators release the GIL)."""
        if not self.hooks:
            return
        with self._preparing:  # (the bank and the row numbers change together)
            self._prepare(combos, workers)

    def _prepare(self, combos, workers):
        probe = self.bars.iloc[:2]
        wanted = {}
        for params in combos:
            for name in self.strategy.params:
                key = (name, params[name])
                if key not in self.rows and key not in wanted:
                    wanted[key] = self.strategy.module.indicator(probe, *key) is not None
        arrays = [k for k, is_array in wanted.items() if is_array]
        self.rows.update({k: None for k, is_array in wanted.items() if not is_array})
        if arrays:
            bank = np.empty((self.bank.shape[0] + len(arrays), len(self.seconds)))
            bank[: self.bank.shape[0]] = self.bank
            first = self.bank.shape[0]

            def fill(r):
                bank[first + r] = self.strategy.module.indicator(self.bars, *arrays[r])

            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(arrays)))) as pool:
                list(pool.map(fill, range(len(arrays))))  # (list: an indicator's error is raised here)
            self.bank = bank  # (then the rows: a thread running a chunk meanwhile finds its rows in the bank it reads)
            self.rows.update({key: first + r for r, key in enumerate(arrays)})

    def targets(self, params, buf):
        """The combination's targets, or (without the sweep hooks) its
        ``strategy.Orders``."""
        if not self.hooks:
            return self.strategy.orders(self.bars, {k: v for k, v in params.items()
                                                    if k != MARGIN_AXIS and k not in MOVE_AXES})
        rows, scalars = [], []
        for name in self.strategy.params:
            r = self.rows[(name, params[name])]
            if r is None:
                scalars.append(float(params[name]))
            else:
                rows.append(r)
        self.strategy.module.fill_targets(buf, self.bank, np.array(rows, dtype=np.int64),
                                          np.array(scalars, dtype=np.float64))
        return buf

    def run_one(self, params, buf, scratch) -> dict:
        s = self.settings
        given = self.targets(params, buf)
        if not isinstance(given, Orders):
            given = Orders(given)
        loans_outlive_trades(given, s.get("auto_repay", True))  # (refuses limit orders with auto-repay off)
        profile, config = self.config(params[MARGIN_AXIS], given.fractions)
        venue = self.venue._replace(funding_out=np.empty_like(self.venue.funding_out)) if profile.perp else None
        moves = transfers_mod.axes_spec(params, s, given, profile, self.seconds, config[0].call_ml)
        if moves is None:
            kept = Given(given.target, *given.kernel_args())
            stats = kernel.simulate(self.kernel_bars, self.marks, *config, for_kernel(NO_DETAIL, config[0], kept), kept,
                                    *scratch, venue)[4]
            moved = {}
        else:
            stats, moved = self.run_moves(given, config, venue, moves, profile)
        summary = summary_of(stats, s["capital"], self.seconds, self.base, self.quote, self.ppy, profile=profile)
        if moves is None and any(k in params for k in MOVE_AXES):  # (a row of a move sweep without moves)
            moved = dict(reserve_left=0.0, net_transfers=0.0, n_top_ups=0, topped_up=0.0,
                         profit=summary["final_equity"] - s["capital"])
        moved.pop("reserve", None)  # (the reserve is the row's setting: its axis column when swept)
        summary.update(moved)
        if profile.perp:
            perps_mod.perp_summary(summary, venue, self.base, self.quote)
        # a parameter keeps its name (hold's exposure); a metric of the same name becomes metric_<name>
        row = dict(params)
        row.update({f"metric_{k}" if k in params else k: v for k, v in summary.items()})
        if self.mark_missing is not None:
            row["mark_missing_bars"] = self.mark_missing
        return row

    def run_moves(self, given, config, venue, spec, profile):
        """A combination with moves, as ``run`` does it (per-bar equity: the summary's returns are of equity +
        reserve); (kernel stats, the moves' summary fields)."""
        from .engine import level_terms, simulate_arrays

        mark = None if self.mark_missing is None else tuple(self.marks)
        out, _, _, _, stats, flows = simulate_arrays(self.seconds, *self.ohlc, given.target, config, mark, NO_DETAIL,
                                                     given, quote_row=not self.settings.get("auto_repay", True),
                                                     venue=venue, flows=spec)
        fields = transfers_mod.outputs(flows, spec, self.bars.index, out[0], self.quote, self.settings["capital"],
                                       self.ppy, level_terms(profile), self.base)[3]
        return stats, fields

    def config(self, margin, fractions):
        return cached_config(self._configs, self.settings, self.profiles, self.base, self.quote, self.rates, margin,
                             fractions, self.no_rates)

    def _perp_venue(self):
        """(the kernel's ``Venue``, the zero rate table) of the sweep's perp profiles."""
        from .venues.brackets import table_for

        s = self.settings
        source = self.funding if self.funding is not None else s["funding"]
        times, rates = perps_mod.funding_rows(source, s.get("funding_rate"), self.settings["symbol"], self.seconds)
        versions = table_for(self.base + self.quote, s.get("brackets"))
        venue = perps_mod.venue_inputs(versions, self.seconds, self.marks.open, self.marks.close
                                       if self.marks.close.shape[0] else self.ohlc[3], times, rates)[0]
        zero = rate_table(self.seconds, (self.base, self.quote), {self.base: 0.0, self.quote: 0.0}, None)
        return venue, zero

    def table_rows(self, combos) -> list:
        """The table rows of ``combos`` (``_run_threads`` runs a chunk in
        pieces of a few combinations and builds its table once)."""
        mine = self._scratch.__dict__
        if not mine:  # a thread's own buffers, made once: a new target buffer per piece cost ~5 ms a sweep
            mine["buf"] = np.empty(len(self.seconds))
            mine["scratch"] = (np.empty((0, bar_rows.LOG)), np.empty(1, order_dt), np.empty(1, liquidation_dt),
                               np.empty(1, margin_call_dt))  # (no log: summary only)
        return [self.run_one(p, mine["buf"], mine["scratch"]) for p in combos]

    def run_chunk(self, combos) -> pd.DataFrame:
        return pd.DataFrame(self.table_rows(combos))


@dataclass
class Setup:
    """A sweep's inputs checked once: the strategy, its grid, the bars (cut to
    start/end), the margin profiles and the settings dict every chunk reads."""

    strategy: object
    grid: dict
    bars: pd.DataFrame
    margins: list
    settings: dict
    custom: dict
    mark: object = None
    funding: object = None  # a funding table given as a DataFrame (local threads)


def grid_profiles(setup: Setup):
    """Every margin profile a sweep's or risk run's grid uses."""
    return _profiles(setup.margins, setup.grid, setup.custom)


def grid_walks(setup: Setup) -> bool:
    """Does a combination of the grid walk a bar's path (a stop fraction in
    the settings or on an axis; a strategy's own levels, known later, walk
    too: ``warm.start``'s ``walk``)?"""
    return any(setup.settings.get(k) or k in setup.grid for k in STOP_FRACTIONS)


def _profiles(margins, grid, custom):
    return [get_profile(name, custom) for name in list(margins) + list(grid.get(MARGIN_AXIS, []))]


def prepare_settings(
    bars, strategy, grid, *, margin=None, capital=10_000.0, fee=None, slippage=0.0, rates=None,
    liquidation="partial", rebalance=0.0, symbol=None, round_interest=True, start=None, end=None,
    stop_on_liquidation=False, stop_loss=0.0, take_profit=0.0, trailing_stop=0.0, path="ohlc-heuristic",
    rate_history=None, mark=None, auto_repay=True, repay_on_flat=False, margin_file=None, funding=None,
    funding_rate=None, brackets=None, scheduler=None, perps=False, moves=False,
) -> Setup:
    """Check ``run``'s settings for a grid and build the one settings dict
    (``sweep``, ``risk`` and the walk-forward all start here).  ``perps``:
    the caller takes perpetual-futures profiles (a sweep does; the risk lab
    and the walk-forward not yet); ``moves``: it takes the move axes (a
    sweep)."""
    check_args(locals())
    for key in MOVE_AXES:
        if grid and key in grid and not moves:
            raise UserError(f"--grid {key}: a move axis is swept by backtest sweep and risk only (not the "
                            "walk-forward yet)")
    source = None if isinstance(bars, pd.DataFrame) else bars
    rs = RunSettings(capital, SPOT_FEE if fee is None else fee, slippage, rates or {}, liquidation, rebalance,
                     round_interest, stop_on_liquidation, stop_loss, take_profit, trailing_stop, path, auto_repay,
                     repay_on_flat)
    strat = load_strategy(strategy)
    strat.check_one_symbol()  # (before a folder is made)
    if grid is None:
        grid = dict(getattr(strat.module, "GRID", {}) or {})
    for key, values in grid.items():  # a Python grid's values, checked as --grid's are (kept as given: the id)
        if key in strat.params and isinstance(values, (list, tuple)):
            for v in values:
                coerce_param(key, v, strat.params[key], flag="--grid")
    bars = _prepare_bars(bars, start, end)
    symbol = symbol_of(bars, symbol)
    custom = load_profiles(margin_file) if margin_file is not None else {}
    if margin is None:
        margin = list(custom) or "cross-3x"
    margins = [margin] if isinstance(margin, str) else list(margin)
    base, quote = split_symbol(symbol)
    _check_move_axes(grid, grid.get(MARGIN_AXIS) or margins, custom, base, quote, auto_repay, rs)
    perp_profiles = [p.for_pair(base, quote) for p in _profiles(margins, grid, custom)]  # refused here, not in a worker
    perp_profiles = [p for p in perp_profiles if p.perp]
    if perp_profiles and not perps:
        raise UserError(f"--margin {perp_profiles[0].name}: the walk-forward takes spot-margin profiles only so far "
                        "(perpetual futures: run, sweep, risk)")
    settings = {"strategy": strat.name, "symbol": symbol,
                **rs.as_dict(rate_history=None if rate_history is None else str(rate_history))}
    del settings["auto_repay"], settings["repay_on_flat"], settings["auto_borrow"]  # (a sweep borrows as it
    # always did: the id of an existing sweep is unchanged, --resume)
    settings["rate_history"] = settings.pop("rate_history")  # (the order sweep.json has always had)
    if not auto_repay:  # only when set, so the id of an existing default sweep is unchanged (--resume)
        settings.update(auto_repay=False, repay_on_flat=bool(repay_on_flat))
    if margin_file is not None:  # a changed file is a different sweep
        settings["margin_file"] = str(margin_file)
        settings["margin_file_sha256"] = file_digest(margin_file)
    if perp_profiles:  # a perp sweep: its venue's files; only then, so a spot sweep's id is unchanged (--resume)
        mark = _perp_settings(settings, perp_profiles, source, bars, symbol, fee, funding, funding_rate, brackets,
                              mark, auto_repay)
    else:  # (--funding and the like without a perp profile: one line)
        perps_mod.check_settings(get_profile(margins[0], custom), symbol, None, None, True, None, brackets,
                                 funding, funding_rate)
    if mark is not None:  # checked before any chunk runs; a changed file is a different sweep
        frame = isinstance(mark, pd.DataFrame)
        if frame and scheduler:
            raise UserError("--scheduler: give the mark series as a file the workers can read")
        cols, _ = mark_arrays(mark, bars, symbol)
        settings["mark"] = None if frame else str(mark)
        settings["mark_hash"] = hashlib.blake2b(b"".join(c.tobytes() for c in cols), digest_size=8).hexdigest()
    if rate_history is not None:  # checked before any chunk runs; a changed file is a different sweep
        _rate_history(str(rate_history), rates)
        settings["rate_history_sha256"] = file_digest(rate_history)
    if isinstance(funding, pd.DataFrame) and scheduler:
        raise UserError("--scheduler: give the funding table as a file the workers can read")
    return Setup(strat, grid, bars, margins, settings, custom, mark if isinstance(mark, pd.DataFrame) else None,
                 funding if isinstance(funding, pd.DataFrame) else None)


def _check_move_axes(grid, margins, custom, base, quote, auto_repay, rs):
    """The move axes' values against every profile swept and the settings
    (``rs``: stops), before anything runs (one line each; a strategy's own
    stop fractions are checked per combination)."""
    if not any(k in grid for k in MOVE_AXES):
        return
    for value in grid.get("reserve", ()):
        if value is not None and not (isinstance(value, (int, float)) and value >= 0):  # (None: no reserve)
            raise UserError(f"--grid reserve={value}: a reserve is an amount ≥ 0")
    reserve = next((v for v in grid.get("reserve", ()) if v), 0.0)
    keep = next((v for v in grid.get("keep_ml", ()) if v), None)
    transfers_mod.check_combination(rs, Orders(np.zeros(1)), None, reserve, (), keep)
    for name in margins:
        profile = get_profile(name, custom).for_pair(base, quote)
        for top in grid.get("top_up_ml", [None]):
            for keep in grid.get("keep_ml", [None]):
                transfers_mod.flows_spec((), 1.0, None if top is None else f"ml={top}", profile,
                                         np.zeros(1, np.int64), profile.kernel_levels()[1], keep or None, auto_repay)


def _perp_settings(settings, profiles, source, bars, symbol, fee, funding, funding_rate, brackets, mark, auto_repay):
    """A sweep with perpetual-futures profiles: the venue's fee default,
    the bundled mark and funding beside bundled perp data, the files' hashes
    (a changed file is a different sweep), every profile's leverage checked
    against the bracket table; returns the mark series to use."""
    if settings["rates"] and any(settings["rates"].values()) or settings.get("rate_history"):
        raise UserError("--rate/--rates: not with perpetual-futures profiles in a sweep (no borrowing)")
    own_mark, own_funding = perps_mod.companions(source)
    if funding is None and funding_rate is None:
        funding = own_funding
    versions = perps_mod.check_settings(profiles[0], symbol, None, None, auto_repay, None,
                                        brackets, funding, funding_rate)
    seconds = _epoch_seconds(bars.index)
    for p in profiles:
        perps_mod.check_leverage(p, versions, seconds[0])
    perps_mod.funding_rows(funding, funding_rate, symbol, seconds)  # checked here, not in a worker
    if fee is None:
        settings["fee"] = None  # each profile's venue default (0.001 spot, 0.0005 perps)
    frame = isinstance(funding, pd.DataFrame)
    settings.update(funding="table" if frame else (None if funding is None else str(funding)),
                    funding_rate=funding_rate, brackets=None if brackets is None else str(brackets))
    if frame:  # a changed table is a different sweep; the table itself travels in the Setup
        settings["funding_hash"] = hashlib.blake2b(
            pd.util.hash_pandas_object(funding, index=True).to_numpy().tobytes(), digest_size=8).hexdigest()
    for key, path in (("funding", None if frame else funding), ("brackets", brackets)):
        if path is not None:
            settings[f"{key}_sha256"] = file_digest(path)
    return own_mark if mark is None else mark


def settings_config(s: dict, profile, base: str, quote: str, rates, fractions: dict) -> tuple:
    """The kernel's settings tuple from a settings dict (``prepare_settings``')
    for ``profile`` (already ``for_pair``), a strategy's own stop
    ``fractions`` (``Orders.fractions``) over the settings' ones.  A fee of
    None is the venue's default."""
    rs = RunSettings.from_dict(s).with_stops(fractions)  # (a fee of None: the venue's, kernel_config)
    return rs.kernel_config(profile, rates, profile.borrow_limits(base, quote))


def cached_config(cache: dict, s: dict, profiles: dict, base: str, quote: str, rates, margin: str,
                  fractions: dict, no_rates=None) -> tuple:
    """``(profile, kernel settings)`` for ``margin`` and a strategy's stop
    ``fractions``, built once per distinct pair into ``cache`` (the same for
    most combinations or paths; threads may race to build the same value).
    ``no_rates``: the zero rate table a perp profile takes (no borrowing)."""
    key = (margin, tuple(sorted(fractions.items())))
    if key not in cache:
        profile = get_profile(margin, profiles).for_pair(base, quote)
        table = no_rates if profile.perp else rates
        cfg, kernel_rates = settings_config(s, profile, base, quote, table, fractions)
        cache[key] = profile, (cfg, read_only(kernel_rates))  # (read-only once, not per combination)
    return cache[key]


# the settings a sweep (and risk, walk-forward) shares with ``run``: prepare_settings' keywords
SETTING_NAMES = tuple(n for n, p in inspect.signature(prepare_settings).parameters.items()
                      if p.kind is p.KEYWORD_ONLY and n not in ("scheduler", "perps", "moves"))


def run_settings(settings: dict) -> dict:
    """The settings dict as ``backtest.run``'s keyword arguments (what a
    walk-forward test span and the tests run with)."""
    out = RunSettings.from_dict(settings).as_dict()
    out.update({k: settings[k] for k in ("rate_history", "margin_file", "mark") if settings.get(k) is not None})
    out["symbol"] = settings["symbol"]
    return out


@dataclass
class SweepResult:
    """The table of one row per combination, and where it was written."""

    table: pd.DataFrame
    out: Path
    skipped: int
    seconds: float
    settings: dict

    def top(self, metric="sharpe", n=10, ascending=False) -> pd.DataFrame:
        """The ``n`` best rows by ``metric`` among the never-liquidated
        combinations, then the liquidated ones (``ranking.ranked``)."""
        if metric not in self.table:
            raise UserError(f"--rank {metric}: not a metric (try {', '.join(_metric_names(self.table)[:8])}, ...)")
        return ranked(self.table, metric, ascending).head(n)


@api()
def sweep(
    bars,
    strategy="sma_cross",
    grid: dict | None = None,
    *,
    out="reports/sweep",
    margin=None,
    capital=10_000.0,
    fee=None,
    slippage=0.0,
    rates=None,
    liquidation="partial",
    rebalance=0.0,
    symbol=None,
    round_interest=True,
    start=None,
    end=None,
    stop_on_liquidation=False,
    stop_loss=0.0,
    take_profit=0.0,
    trailing_stop=0.0,
    path="ohlc-heuristic",
    rate_history=None,
    mark=None,
    auto_repay=True,
    repay_on_flat=False,
    margin_file=None,
    funding=None,
    funding_rate=None,
    brackets=None,
    chunk_size=None,
    workers=None,
    resume=False,
    scheduler=None,
    progress=None,
    overwrite=False,
    max_combos=MAX_COMBOS,
    walk_forward=None,
    rank="sharpe",
) -> SweepResult:
    """Run every combination of ``grid`` and write ``out/sweep.parquet``.

    ``grid`` maps parameter names (and ``"margin"``) to value lists; missing
    parameters keep their defaults, and a strategy's ``GRID`` is used when
    ``grid`` is None.  Other arguments are those of ``backtest.run``, plus
    ``chunk_size`` (combinations per saved chunk), ``workers`` (threads,
    default every core), ``resume`` (keep finished chunks of the same sweep)
    and ``scheduler`` (``"local"`` or a Dask scheduler address).  ``margin``:
    a profile name or a list of them (default cross-3x, or with
    ``margin_file`` every profile of that file).  ``mark`` (a file path, or
    a DataFrame on local threads) is ``run``'s mark series.

    The folder ``out`` is never destroyed implicitly: one holding a sweep is
    refused unless ``resume`` or ``overwrite`` (``sweep_folder``).  A grid of
    more than ``max_combos`` combinations is refused before anything runs;
    the grid is never held in memory (``grid``).  ``progress``: a tqdm bar
    on stderr (default, on a terminal), False for none, or an object with
    ``advance(n)`` and ``finish()``.

    ``walk_forward`` (``"train=365d,test=90d"`` or ``{"train": "365d",
    "test": "90d"}``): rank the grid by ``rank`` on each training span and
    run the best combination on the span after it (``walkforward``); returns
    a ``walkforward.WalkForwardResult``.  ``rank`` also orders ``top``'s
    default (never-liquidated combinations first, ``ranking``).
    """
    given = dict(locals())
    check_args(given)
    settings_args = {k: v for k, v in given.items() if k in SETTING_NAMES}
    if walk_forward is not None:
        from .walkforward import walk_forward as _walk_forward

        return _walk_forward(bars, strategy, grid, walk_forward, out=out, rank=rank, workers=workers,
                             overwrite=overwrite, resume=resume, scheduler=scheduler, progress=progress,
                             max_combos=max_combos, **settings_args)
    setup = prepare_settings(bars, strategy, grid, scheduler=scheduler, perps=True, moves=True, **settings_args)
    strat, grid, bars, margins, settings = setup.strategy, setup.grid, setup.bars, setup.margins, setup.settings
    check_rank(rank, "funding" in settings)  # (also without a walk-forward: ``top``'s order; a perp sweep's
    # settings name its funding)
    threads = workers or os.cpu_count() or 1
    plan = preflight(strat, grid, margins, len(bars), threads, max_combos)
    n_combos, skipped = plan["combinations"], plan["skipped"]
    if not n_combos:
        raise UserError(f"--grid: no valid combination ({skipped} skipped by the strategy's rule)")
    out = Path(out)
    manifest = {
        "settings": settings, "grid": {k: list(v) for k, v in grid.items()}, "margins": margins,
        "bars": bars_entry(bars, out), "combinations": n_combos, "skipped": skipped,
    }
    manifest["id"] = manifest_id(manifest)
    check_folder(out, manifest["id"], resume, overwrite)  # before any work: nothing in out is lost
    stored = stored_chunk_size(out, manifest["id"]) if resume else None
    chunk_size = stored or chunk_size or default_chunk_size(n_combos, len(bars), threads, shared=not scheduler)
    manifest["chunk_size"] = chunk_size
    n_chunks = -(-n_combos // chunk_size)
    if progress is None or progress is True:  # the default: say what is coming, then a progress bar
        print(describe(plan, len(bars)), flush=True)
    done = prepare_folder(out, manifest, resume, overwrite)
    todo = [k for k in range(n_chunks) if k not in done]
    saved = sum(min(chunk_size, n_combos - k * chunk_size) for k in done if k < n_chunks)
    if progress is None or progress is True:
        report = Progress(n_combos, saved)
    else:
        report = _Silent() if progress is False else progress
    t0 = time.perf_counter()
    kept = {}
    helper, perp = (None, None) if scheduler else warm.start_for(grid_profiles(setup), False, grid_walks(setup))
    if not scheduler and progress is not False:
        warm.announce(helper)
    try:
        if scheduler:
            _run_dask(scheduler, bars, strategy, settings, lambda: grid_chunks(strat, grid, margins, chunk_size,
                                                                               set(todo)), out, report)
        else:
            warm.join(helper, perp)
            ctx = SweepContext(bars, strat, settings, setup.mark, setup.funding)
            ctx.prepare((c for _, block in grid_chunks(strat, grid, margins, chunk_size, set(todo)) for c in block),
                        threads)
            _run_threads(ctx, grid_chunks(strat, grid, margins, chunk_size, set(todo)), out, threads, report, kept)
    except (UserError, KeyboardInterrupt, OSError) as exc:
        exc = _as_user_error(exc)  # (a full disk: one line, and what is saved)
        done = finished_chunks(out)  # this sweep's: another's were moved aside (overwrite) or refused
        if overwrite and not done:
            undo_overwrite(out)
        raise _kept(exc, out, n_combos, chunk_size, done) from None
    finally:
        warm.release(helper)  # (its pipe closed; a wait the cached loop left unrun dropped)
    # the chunks this call ran as they were saved (the same table: tests/test_sweep.py), earlier ones from disk
    if n_chunks == 1 and 0 in kept:  # the table is the chunk, and its file the same bytes: copied (~0.1 ms), not
        table = kept[0]  # written again (~2.5 ms of the README sweep's ~100)
        _atomic_write(out / "sweep.parquet", lambda tmp: shutil.copyfile(_chunk_path(out, 0), tmp))
    else:
        table = pd.concat([kept[k] if k in kept else pd.read_parquet(_chunk_path(out, k)) for k in range(n_chunks)],
                          ignore_index=True)
        _atomic_parquet(table, out / "sweep.parquet")
    finish_folder(out)
    return SweepResult(table, out, skipped, time.perf_counter() - t0, settings)


MAX_CHUNK = 256  # combinations in a chunk of a small sweep (a big one: at most 64, ~16 chunks a thread)


def default_chunk_size(n_combos: int, n_bars: int, threads: int, shared: bool = True) -> int:
    """Combinations per saved chunk: ~16 chunks per thread so the last ones
    finish close together, but each worth at least ~20 M bar-steps so
    writing its file stays a small cost; and 4 per thread, or a sweep runs
    its last chunk alone.  A sweep too small for 4 such chunks a thread is
    one chunk when local threads share its pieces (``shared``, not a Dask
    cluster, whose workers each take whole chunks: there the same number
    for every thread): a chunk's file costs ~4 ms and holds the others'
    pieces back (the README grid, 12.7 M bar-steps on two threads, took 121
    ms in one chunk against 135 ms in two, medians of 12 alternated).  At
    most ``MAX_CHUNK`` a chunk even then, cut evenly: a grid of many
    combinations on few bars still saves as it goes (each combination
    costs ~40 µs of Python besides its bars)."""
    per_thread = min(4, max(1, n_combos * n_bars // (threads * 20_000_000)))
    even = -(-n_combos // (per_thread * threads))
    if per_thread < 4:
        cut = -(-n_combos // MAX_CHUNK)  # chunks of at most MAX_CHUNK, as even as they come
        return -(-n_combos // cut) if shared else min(even, MAX_CHUNK)
    balanced = max(n_combos // (16 * threads), -(-20_000_000 // n_bars))
    return max(1, min(64, balanced, even))


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: what was saved and how to go on (``str``)."""


def _as_user_error(exc):
    """An OSError (a full disk, a file-size limit) as one line naming its file; others as they are."""
    if isinstance(exc, OSError):
        return UserError(f"{exc.filename or 'a file'}: {exc.strerror or exc}")
    return exc


def _kept(exc, out, n_combos, chunk_size, done):
    """The error or interrupt, saying what is saved and how to resume."""
    saved = sum(min(chunk_size, n_combos - k * chunk_size) for k in done)
    where = f"{saved:,} of {n_combos:,} combinations saved in {out}"
    if isinstance(exc, KeyboardInterrupt):
        if not done:
            return SweepInterrupted(f"interrupted before a chunk finished; nothing saved in {out}")
        return SweepInterrupted(f"interrupted: {where}; run the same command with --resume to finish")
    if not done:
        return exc
    return type(exc)(f"{exc} ({where}; fix it and run again with --resume)")


class _Silent:
    """``progress=False``: no output."""

    def advance(self, n):
        pass

    def finish(self):
        pass


_chunk_path = chunk_path


def _atomic_parquet(df: pd.DataFrame, path: Path):
    """Write then rename, so a killed sweep never leaves half a chunk.  By
    pyarrow itself: the bytes of ``df.to_parquet(path, index=False)`` (the
    tables here have no ``attrs``), without pandas' wrapper (~1.5 ms a file
    of the README grid's 4.6 ms; tests/test_sweep.py compares the bytes)."""
    def write(tmp):
        with warnings.catch_warnings():  # (what pandas' wrapper hides: pyarrow < 26 on time-zone-aware columns)
            warnings.filterwarnings("ignore", r"(Series|DatetimeIndex)\.values returning an ndarray that drops "
                                    "timezone information")
            table = pa.Table.from_pandas(df, preserve_index=False)
        pq.write_table(table, tmp)

    _atomic_write(path, write)


def _atomic_write(path: Path, write):
    """``write(tmp)`` beside ``path``, then renamed onto it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:  # (a full disk: no half file left beside the chunks)
        tmp.unlink(missing_ok=True)
        raise


PIECES = 32  # a chunk's pieces (``_run_threads``): threads end within a piece of each other


def _pieces(block, rows_of):
    """``block`` in pieces of a few combinations when ``rows_of`` (the
    context's ``table_rows``) runs them, else whole."""
    if rows_of is None or not block:
        return [block]
    size = max(1, len(block) // PIECES)
    return [block[a:a + size] for a in range(0, len(block), size)]


def _run_threads(ctx, chunks, out, workers, report, kept=None):
    """Run ``chunks`` (``(k, combinations)``, a lazy stream) on ``workers``
    threads, at most two chunks per thread in flight, so memory does not
    grow with the grid (beyond the rows: ``kept``, if given, gets each
    saved chunk's table).  A context with ``table_rows`` has each chunk cut
    into pieces that the threads take in turn from one queue: they finish
    together, and the first chunks are saved while the last run (the README
    grid is two chunks of unequal work: one thread idled ~9 ms of 110)."""
    if workers < 1:
        raise ValueError(f"workers={workers}: at least one thread")
    rows_of = getattr(ctx, "table_rows", None)
    run = rows_of or ctx.run_chunk
    todo, done, stop = queue.SimpleQueue(), queue.SimpleQueue(), threading.Event()

    def work():
        for k, p, piece in iter(todo.get, None):
            if not stop.is_set():  # (after an error or Ctrl-C the queued pieces are dropped)
                try:
                    done.put((k, p, run(piece), None))
                except BaseException as exc:
                    done.put((k, p, None, exc))

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    parts = {}  # chunk → [its pieces' results, pieces left, combinations]
    try:
        for k, block in itertools.chain(chunks, [(None, None)]):
            if k is not None:
                pieces = _pieces(block, rows_of)
                parts[k] = [[None] * len(pieces), len(pieces), len(block)]
                for p, piece in enumerate(pieces):
                    todo.put((k, p, piece))
            _save_finished(done, parts, rows_of, out, report, kept, wait=False)  # (saved before the stream goes on)
            while parts and (k is None or len(parts) >= 2 * workers):
                _save_finished(done, parts, rows_of, out, report, kept)
    except BaseException:  # an error or Ctrl-C: the queued pieces are dropped, the running ones end, and every
        _stop(threads, todo, stop)  # chunk finished meanwhile is saved
        with contextlib.suppress(Exception):  # (the first error is the one to report)
            _save_finished(done, parts, rows_of, out, report, kept, wait=False)
        raise
    _stop(threads, todo, stop)
    report.finish()


def _stop(threads, todo, stop):
    """Drop the queued pieces and wait for the running ones."""
    stop.set()
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join()


def _save_finished(done, parts, rows_of, out, report, kept, wait=True):
    """Wait for a piece (``wait``), take every other one done, and save the
    chunks now complete, in order; then raise the first error a piece met."""
    batch = [done.get()] if wait else []
    while not done.empty():
        batch.append(done.get())
    failed = None
    for k, p, result, exc in batch:
        if exc is not None:
            failed = failed or exc
            continue
        parts[k][0][p] = result
        parts[k][1] -= 1
    for k in sorted(k for k, part in parts.items() if part[1] == 0):  # every good one saved first
        results, _, size = parts.pop(k)
        table = pd.DataFrame([r for rows in results for r in rows]) if rows_of else results[0]
        _atomic_parquet(table, _chunk_path(out, k))
        if kept is not None:
            kept[k] = table
        report.advance(size)
    if failed is not None:
        raise failed


def _dask_chunk(bars, strategy, settings, combos):
    """One chunk on a Dask worker: the same code path as a local thread."""
    ctx = _worker_context(bars, strategy, settings)
    ctx.prepare(combos)  # a worker computes the indicators its chunks need
    return ctx.run_chunk(combos)


_WORKER_CONTEXTS: dict = {}


def _worker_context(bars, strategy, settings):
    key = (id(bars), str(strategy), json.dumps(settings, sort_keys=True, default=str))
    ctx = _WORKER_CONTEXTS.get(key)
    if ctx is None:
        _WORKER_CONTEXTS.clear()
        ctx = _WORKER_CONTEXTS[key] = SweepContext(bars, load_strategy(strategy), settings)
    return ctx


CONNECT_TIMEOUT = "30s"  # how long a --scheduler address is tried (Dask retries a refused connection)


def _run_dask(scheduler, bars, strategy, settings, make_chunks, out, report, task=_dask_chunk):
    """Chunks on a Dask cluster: ``task(bars, strategy, settings, block)``
    on a worker returns the chunk's table (``_dask_chunk``: a sweep's)."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UserError("--scheduler: needs dask[distributed] (pip install 'dask[distributed]')") from None
    if not isinstance(strategy, str):
        raise UserError("--scheduler: give the strategy as a name or a .py path the workers can import")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True) if scheduler == "local" else None
    try:
        client = Client(cluster if cluster is not None else scheduler, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise UserError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    try:
        remote_bars = client.scatter(bars, broadcast=True)
        futures = {client.submit(task, remote_bars, strategy, settings, block, pure=False): (k, len(block))
                   for k, block in make_chunks()}
        for fut in as_completed(futures):
            k, size = futures[fut]
            _atomic_parquet(fut.result(), _chunk_path(out, k))
            report.advance(size)
        report.finish()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class Progress:
    """The sweep's progress bar (tqdm, on stderr): combinations done, rate
    and time left.  tqdm leaves it out when stderr is not a terminal."""

    def __init__(self, total, done=0, stream=None, unit="combo", desc="sweep"):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, unit=unit, desc=desc, file=stream or sys.stderr,
                        dynamic_ncols=True, mininterval=0.5, smoothing=0.1, disable=None)

    def advance(self, n):
        self.bar.update(n)

    def finish(self):
        self.bar.close()


def _metric_names(table):
    return [c for c in table.columns if table[c].dtype.kind in "fi"]


class _CallableModule(types.ModuleType):
    """``backtest.sweep(...)`` calls the function: the package's attribute
    ``sweep`` is this module once it is imported (Python sets a parent's
    attribute to its submodule), so the module answers the call."""

    def __call__(self, *args, **kwargs):
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
