"""Walk-forward: choose on the past, trade the future, stitch the futures.

``sweep(..., walk_forward="train=365d,test=90d")`` cuts the bars into
windows rolling by the test length: window ``k`` trains on ``[t0 + k·test,
t0 + k·test + train)`` and tests on the ``test`` after it (the last test
span may end early, at the data's end; windows whose test span has fewer
than two bars are left out).  On each training span every combination of
the grid runs from a fresh account (the sweep's ``SweepContext`` on those
bars only) and they are ranked by ``rank`` (``ranking``: never-liquidated
combinations first).  The best one then runs on the test span with
``backtest.run`` over that span (its targets computed on the test span's
bars only), starting flat with the equity the previous test span ended
with (the first with ``capital``).  An account wiped out (equity ≤ 0) ends
the walk: later windows are not run.

Writes into ``out``: ``walkforward.csv`` (per window: spans, the chosen
parameters, in-sample ``is_*`` and out-of-sample ``oos_*`` metrics),
``walkforward.parquet`` (the stitched out-of-sample equity per bar),
``walkforward.png`` and ``walkforward.json`` (settings), written aside and
swapped in whole (``atomic.replacing``); a folder holding a walk-forward is
refused without ``overwrite``, one holding another result always.
"""
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import recover, replacing
from .engine import _epoch_seconds, run
from .errors import UserError
from .grid import MARGIN_AXIS, iter_combinations, preflight
from .profiles import get_profile
from .settings import MAX_CAPITAL
from .sweep_folder import check_other
from .ranking import ranked
from .spans import bar_spacing, parse_duration
from .sweep import Progress, SweepContext, _Silent, check_rank, prepare_settings, run_settings

METRICS = ("total_return", "max_drawdown", "sharpe", "n_liquidations", "final_equity")
_PART = re.compile(r"^\s*(train|test)\s*=\s*([^,=]+?)\s*$")


def parse_spec(spec) -> tuple:
    """``"train=365d,test=90d"`` or ``{"train": "365d", "test": "90d"}`` →
    (train seconds, test seconds, the spec as text)."""
    if isinstance(spec, dict):
        parts = {str(k): v for k, v in spec.items()}
        text = ",".join(f"{k}={v}" for k, v in parts.items())
    elif isinstance(spec, str):
        text, parts = spec, {}
        for piece in spec.split(","):
            m = _PART.match(piece)
            if not m or m.group(1) in parts:
                raise UserError(f"--walk-forward {spec}: expected train=DURATION,test=DURATION (e.g. "
                                "train=365d,test=90d)")
            parts[m.group(1)] = m.group(2)
    else:
        from .checks import _type_error

        raise _type_error("walk_forward", spec, "'train=365d,test=90d' or {'train': '365d', 'test': '90d'}")
    extra = sorted(set(parts) - {"train", "test"})
    missing = [k for k in ("train", "test") if k not in parts]
    if extra or missing:
        what = f"unknown {extra[0]}" if extra else f"missing {missing[0]}"
        raise UserError(f"--walk-forward {text}: {what}; expected train=DURATION,test=DURATION")
    return (parse_duration(parts["train"], "--walk-forward train="),
            parse_duration(parts["test"], "--walk-forward test="), text)


def spans(seconds: np.ndarray, train: int, test: int) -> list:
    """[(train_start, train_end, test_start, test_end)] as bar indices (ends
    exclusive), rolling by ``test``."""
    spacing = bar_spacing(seconds)
    t0, t_end = int(seconds[0]), int(seconds[-1]) + spacing
    out, k = [], 0
    while t0 + k * test + train < t_end:
        start = t0 + k * test
        a, b, c = np.searchsorted(seconds, [start, start + train, start + train + test], side="left")
        if b - a >= 2 and c - b >= 2:
            out.append((int(a), int(b), int(b), int(c)))
        k += 1
    return out


@dataclass
class WalkForwardResult:
    windows: pd.DataFrame  # walkforward.csv
    equity: pd.DataFrame  # the stitched out-of-sample equity
    out: Path
    settings: dict
    rank: str

    def describe(self) -> str:
        w = self.windows
        if len(w) == 0:
            return "walk-forward: no window ran"
        first, last = w["start_equity"].iloc[0], w["end_equity"].iloc[-1]
        params = [c for c in w.columns if c.startswith("param_")]
        lines = [f"walk-forward: {len(w)} windows, out of sample {first:,.2f} → {last:,.2f} "
                 f"({last / first - 1:+.2%}), liquidated in {int((w['oos_n_liquidations'] > 0).sum())} test spans"]
        cols = ["test_start", *params, f"is_{self.rank}", f"oos_{self.rank}", "oos_total_return",
                "oos_n_liquidations"]
        table = w[list(dict.fromkeys(cols))].copy()
        table["test_start"] = table["test_start"].astype(str).str[:10]
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
        return "\n".join(lines)


def walk_forward(bars, strategy, grid, spec, *, out="reports/sweep", rank="sharpe", workers=None, overwrite=False,
                 resume=False, scheduler=None, progress=None, max_combos=None, **settings) -> WalkForwardResult:
    """See the module docstring; ``sweep`` calls this with ``walk_forward``."""
    train, test, text = parse_spec(spec)
    if scheduler:
        raise UserError("--scheduler: not with --walk-forward (its windows run on local threads)")
    if resume:
        raise UserError("--resume: not with --walk-forward (it runs whole; --overwrite replaces one)")
    setup = prepare_settings(bars, strategy, grid, perps=True, **settings)
    strat, grid, bars, margins, s = setup.strategy, setup.grid, setup.bars, setup.margins, setup.settings
    check_rank(rank, "funding" in s)  # (a perp grid's settings name its funding)
    seconds = _epoch_seconds(bars.index)
    windows = spans(seconds, train, test)
    if not windows:
        raise UserError(f"--walk-forward {text}: no window fits the data (train + test longer than "
                        f"{(seconds[-1] - seconds[0]) / 86400:,.0f} days, or fewer than two bars in each)")
    plan = preflight(strat, grid, margins, 1, 1, max_combos or 1_000_000)
    if not plan["combinations"]:
        raise UserError(f"--grid: no valid combination ({plan['skipped']} skipped by the strategy's rule)")
    combos = list(iter_combinations(strat, grid, margins))
    out = Path(out)
    recover(out)  # (a walk-forward killed between its swap's renames: its folder back before the check)
    _check_out(out, overwrite)
    report = (Progress(len(windows), unit="window", desc="walk-forward") if progress in (None, True)
              else _Silent() if progress is False else progress)

    def train_on(span):  # every combination on the training span only
        a, b = span[0], span[1]
        ctx = SweepContext(bars.iloc[a:b], strat, s, None if setup.mark is None else setup.mark.iloc[a:b],
                           setup.funding)
        ctx.prepare(combos)
        table = ctx.run_chunk(combos)
        report.advance(1)
        return table

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        trained = list(pool.map(train_on, windows))
    report.finish()
    names = [k for k in combos[0]]
    kwargs = run_settings(s)
    rows, curves, equity = [], [], s["capital"]
    for k, (span, table) in enumerate(zip(windows, trained)):
        if equity <= 0:
            break
        if equity > MAX_CAPITAL:  # (the next span would start with it: say so here, not as a --capital error)
            raise UserError(f"--walk-forward: the equity after window {k - 1} ({equity:,.0f}) passes "
                            f"{MAX_CAPITAL:.0e}, the largest capital a run takes")
        best = ranked(table, rank).iloc[0].to_dict()
        params = {n: best[n] for n in names if n != MARGIN_AXIS}
        params = {n: _plain(v) for n, v in params.items()}
        a, b = span[2], span[3]
        venue = {}  # a perp profile's funding and brackets (the span has no file name to find them beside)
        if "funding" in s and get_profile(best[MARGIN_AXIS], setup.custom).perp:
            venue = dict(funding=setup.funding if setup.funding is not None else s["funding"],
                         funding_rate=s.get("funding_rate"), brackets=s.get("brackets"))
        res = run(bars.iloc[a:b], strat, params, margin=best[MARGIN_AXIS],
                  **dict(kwargs, capital=float(equity), **venue))
        row = {"window": k, "train_start": bars.index[span[0]], "train_end": bars.index[span[1] - 1],
               "test_start": bars.index[a], "test_end": bars.index[b - 1],
               **{f"param_{n}": _plain(best[n]) for n in names}, "start_equity": float(equity),
               "end_equity": res.summary["final_equity"]}
        for m in dict.fromkeys((rank, *METRICS)):
            row[f"is_{m}"] = best[f"metric_{m}" if f"metric_{m}" in best else m]
            row[f"oos_{m}"] = res.summary[m]
        rows.append(row)
        curve = res.equity.reindex(columns=["equity", "position", "exposure", "debt"])  # (a perp has no debt: NaN)
        curve.insert(0, "window", k)
        curves.append(curve)
        equity = res.summary["final_equity"]
    table = pd.DataFrame(rows)
    stitched = pd.concat(curves).rename_axis("timestamp").reset_index()
    manifest = {"kind": "walkforward", "settings": s, "walk_forward": text, "train_seconds": train,
                "test_seconds": test, "rank": rank, "grid": {k: list(v) for k, v in grid.items()},
                "margins": margins, "windows": len(table), "stopped_wiped_out": len(table) < len(windows)}
    write_folder(out, table, stitched, manifest)
    return WalkForwardResult(table, stitched, out, s, rank)


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def _check_out(out: Path, overwrite: bool):
    check_other(out, "walk-forward", "walkforward.json", (out / "walkforward.json").exists())
    if (out / "walkforward.json").exists() and not overwrite:
        raise UserError(f"--out {out}: holds a walk-forward; --overwrite replaces it")


def write_folder(out: Path, table, stitched, manifest):
    """The four files, written aside and swapped in whole (``atomic``)."""
    with replacing(out) as tmp:
        table.to_csv(tmp / "walkforward.csv", index=False)
        stitched.to_parquet(tmp / "walkforward.parquet", index=False)
        _draw(tmp, table, manifest["rank"])
        (tmp / "walkforward.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def _draw(out: Path, table, rank):
    from .report.risk import picture, walkforward_figure

    picture(lambda p: walkforward_figure(table, rank).savefig(p, dpi=110), out / "walkforward.png")


def redraw(folder: Path, rank=None) -> Path:
    """``backtest report`` on a walk-forward folder: walkforward.png again."""
    try:
        manifest = json.loads((folder / "walkforward.json").read_text())
        table = pd.read_csv(folder / "walkforward.csv")
    except (OSError, ValueError):
        raise UserError(f"{folder}: cannot read walkforward.json / walkforward.csv; damaged") from None
    rank = rank or manifest.get("rank", "sharpe")
    if f"oos_{rank}" not in table.columns:  # (a damaged table lacks even its own rank's column)
        has = sorted(c[4:] for c in table.columns if str(c).startswith("oos_"))
        raise UserError(f"--rank {rank}: no column oos_{rank} in {folder / 'walkforward.csv'} "
                        + (f"(it has {', '.join(has)})" if has else "(no oos_ column: not a table marginbt wrote, "
                                                                   "or damaged)"))
    _draw(folder, table, rank)
    return folder / "walkforward.png"
