"""``backtest data check``: every problem in a file, not only the first.

Errors (the bars break spec §6; ``load_ohlcv`` would refuse them): missing
timestamps, NaN/inf, prices <= 0, volume < 0, high < low,
low > min(open, close), high < max(open, close), duplicate timestamps,
out-of-order timestamps.

Warnings (legal, but worth a look before trusting a leveraged backtest):
gaps, bars off the timeframe's grid, a timeframe in the name/metadata that
disagrees with the bar spacing, runs of zero-volume bars, outlier wicks.

Outlier wick rule: for bar ``i`` let ``top`` be the highest open/close of
bars ``i-1, i, i+1`` and ``bottom`` the lowest.  The excess of the high is
``log(high / top)``, of the low ``log(bottom / low)``: how far the wick
reaches beyond every price the neighbouring bars opened or closed at.  The
scale is the robust deviation of close-to-close log returns around the bar:
``1.4826 × median(|r|)`` over the 61 bars centred on it (floored at a quarter
of the whole file's value).  A wick whose excess exceeds ``K`` scales
(``--wick-k``, default 20) is reported.  On the bundled 1h files K = 20
flags only famous flash moves (BTC 2025-10-10 21:00, 2023-10-16 13:00,
2021-12-04 05:00); a bad tick that halves the low scores in the hundreds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .bars import Bars, from_frame
from .gaps import gap_arrays
from .times import NAT, fmt_ts
from .timeframes import infer_timeframe, median_step, parse_timeframe, timeframe_from_ns
from .validate import rule_masks

WICK_K = 20.0
WICK_WINDOW = 61


@dataclass
class Finding:
    level: str  # "error" | "warning"
    kind: str
    summary: str
    count: int
    examples: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # positions of the first offending rows


@dataclass
class CheckReport:
    source: str
    symbol: str | None
    timeframe: str | None
    bars: int
    first: int | None
    last: int | None
    findings: list[Finding] = field(default_factory=list)
    gaps: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else 1 if self.warnings else 0

    def headline(self) -> str:
        span = (f"{fmt_ts(self.first)[:-4]} → {fmt_ts(self.last)}"
                if self.first is not None else "no timestamps")
        return (f"{self.symbol or '?'} {self.timeframe or '?'} · {self.bars:,} bars · {span}")

    def format(self, max_rows: int = 5) -> str:
        lines = [f"{self.source}", f"  {self.headline()}"]
        for f in self.findings:
            lines.append(f"  {f.level.upper():7s} {f.kind}: {f.summary}")
            for ex in f.examples[:max_rows]:
                lines.append(f"      {ex}")
            if len(f.examples) > max_rows:
                lines.append(f"      ... {len(f.examples) - max_rows:,} more shown with --max-rows")
            elif f.count > len(f.examples) and f.examples:
                lines.append(f"      ... {f.count - len(f.examples):,} more")
        ne, nw = len(self.errors), len(self.warnings)
        verdict = ("errors: load_ohlcv and `backtest run` refuse this data" if ne
                   else "usable, with warnings" if nw else "clean")
        lines.append(f"  {ne} error(s), {nw} warning(s): {verdict}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "source": self.source, "symbol": self.symbol, "timeframe": self.timeframe,
            "bars": self.bars,
            "first": None if self.first is None else fmt_ts(self.first),
            "last": None if self.last is None else fmt_ts(self.last),
            "exit_code": self.exit_code,
            "findings": [f.__dict__ for f in self.findings],
            "gaps": [[fmt_ts(a), fmt_ts(b), int(n)] for a, b, n in self.gaps],
        }


def _rows_desc(b: Bars, i: int) -> str:
    t = "" if b.ts[i] == NAT else f" ({fmt_ts(b.ts[i])})"
    return f"{b.label(i)}{t}"


def _examples(b: Bars, idx: np.ndarray, describe, limit: int) -> list[str]:
    return [f"{_rows_desc(b, int(i))}: {describe(int(i))}" for i in idx[:limit]]


_RULE_TEXT = {
    "timestamp": "rows without a timestamp",
    "nan": "non-finite values in '{col}'",
    "price": "'{col}' <= 0",
    "volume": "negative volume",
    "high<low": "high below low",
    "low>body": "low above min(open, close)",
    "high<body": "high below max(open, close)",
}


def check_bars(b: Bars, wick_k: float = WICK_K, max_rows: int = 5) -> CheckReport:
    """All findings for raw (unvalidated) bars."""
    keep = max(int(max_rows), 1) if max_rows is not None else 5
    limit = max(keep, 50)
    n = len(b)
    ts = b.ts
    valid_ts = ts[ts != NAT]
    rep = CheckReport(b.source, b.symbol, b.timeframe, n,
                      int(valid_ts.min()) if valid_ts.size else None,
                      int(valid_ts.max()) if valid_ts.size else None)
    if n == 0:
        rep.findings.append(Finding("error", "empty", "no bars", 0))
        return rep
    F = rep.findings

    for kind, col, mask, describe in rule_masks(b):
        if kind == "order":
            continue
        idx = np.flatnonzero(mask)
        if idx.size:
            F.append(Finding("error", kind if kind != "nan" else f"nan:{col}",
                             f"{idx.size:,} rows: {_RULE_TEXT[kind].format(col=col)}",
                             int(idx.size), _examples(b, idx, describe, limit), idx[:limit].tolist()))

    # duplicates (anywhere) and out-of-order (vs the previous row)
    ok = ts != NAT
    pos = np.flatnonzero(ok)
    order = pos[np.argsort(ts[pos], kind="stable")]
    st = ts[order]
    d = np.flatnonzero(st[1:] == st[:-1]) + 1
    if d.size:
        later, earlier = order[d], order[d - 1]
        srt = np.argsort(later, kind="stable")
        later, earlier = later[srt], earlier[srt]
        ex = [f"{_rows_desc(b, int(i))}: same timestamp as {b.label(int(j))}"
              for i, j in zip(later[:limit], earlier[:limit])]
        F.append(Finding("error", "duplicate", f"{d.size:,} rows repeat an earlier timestamp",
                         int(d.size), ex, later[:limit].tolist()))
    back = np.zeros(n, dtype=bool)
    back[1:] = (ts[1:] < ts[:-1]) & ok[1:] & ok[:-1]
    idx = np.flatnonzero(back)
    if idx.size:
        ex = [f"{_rows_desc(b, int(i))}: before {b.label(int(i) - 1)} ({fmt_ts(ts[i - 1])})"
              for i in idx[:limit]]
        F.append(Finding("error", "out-of-order",
                         f"{idx.size:,} rows earlier than the row before them",
                         int(idx.size), ex, idx[:limit].tolist()))

    # timeframe (from the sorted unique timestamps)
    in_order = valid_ts.size < 2 or bool(np.all(valid_ts[1:] > valid_ts[:-1]))
    uts = valid_ts if in_order else np.unique(valid_ts)
    step = median_step(uts) if uts.size > 1 else None
    spacing = timeframe_from_ns(step) if step else None
    tf = None
    if b.timeframe:
        try:
            tf = parse_timeframe(b.timeframe)
        except Exception:  # noqa: BLE001 - a bad name is just unknown
            tf = None
    if spacing is not None and tf is not None and str(spacing) != str(tf):
        F.append(Finding("warning", "timeframe",
                         f"name/metadata says {tf} but the median bar spacing is {spacing}; "
                         f"gaps and grid below use {spacing}", 1))
        tf = None
    if tf is None:
        tf = spacing
        rep.timeframe = rep.timeframe or (str(spacing) if spacing else None)

    # gaps
    if tf is not None:
        a, z, miss = gap_arrays(uts, timeframe=tf)
    else:
        a, z, miss = gap_arrays(uts, step=step)
    rep.gaps = list(zip(a.tolist(), z.tolist(), miss.tolist()))
    if miss.size:
        k = int(np.argmax(miss))
        positions = np.flatnonzero(ok)
        ex = []
        for j in range(min(miss.size, limit)):
            if in_order:
                row = int(positions[np.searchsorted(valid_ts, z[j])])
            else:
                row = int(np.flatnonzero(ts == z[j])[0])
            ex.append(f"{fmt_ts(a[j])[:-4]} → {fmt_ts(z[j])}: {int(miss[j]):,} bar(s) missing "
                      f"before {b.label(row)}")
        F.append(Finding("warning", "gaps",
                         f"{miss.size:,} gaps, {int(miss.sum()):,} bars missing; longest "
                         f"{int(miss[k]):,} bars ({fmt_ts(a[k])[:-4]} → {fmt_ts(z[k])})",
                         int(miss.size), ex))

    # off-grid timestamps
    if tf is not None:
        off = ok & ~tf.on_grid(np.where(ok, ts, 0))
        idx = np.flatnonzero(off)
        if idx.size:
            F.append(Finding("warning", "off-grid",
                             f"{idx.size:,} bars not on the {tf} grid", int(idx.size),
                             [f"{_rows_desc(b, int(i))}" for i in idx[:limit]], idx[:limit].tolist()))

    # zero-volume runs
    zv = b.volume == 0
    if zv.any():
        edges = np.diff(np.concatenate(([0], zv.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)  # exclusive
        lens = ends - starts
        k = int(np.argmax(lens))
        ex = []
        for s0, e0 in zip(starts[:limit].tolist(), ends[:limit].tolist()):
            if e0 - s0 > 1:
                where = (f"{b.label(s0)} to {b.label(e0 - 1)} "
                         f"({fmt_ts(ts[s0])[:-4]} → {fmt_ts(ts[e0 - 1])})")
            else:
                where = _rows_desc(b, s0)
            ex.append(f"{where}: {e0 - s0:,} bar(s) with volume 0")
        F.append(Finding("warning", "zero-volume",
                         f"{starts.size:,} runs, {int(lens.sum()):,} bars with volume 0; longest "
                         f"{int(lens[k]):,} bars from {b.label(int(starts[k]))}",
                         int(starts.size), ex, starts[:limit].tolist()))

    # outlier wicks
    wk = outlier_wicks(b, wick_k)
    if wk is not None:
        idx, score, side = wk
        if idx.size:
            ex = [f"{_rows_desc(b, int(i))}: {side[j]} {float(b.col(side[j])[i])!r} is "
                  f"{score[j]:.0f} robust deviations beyond its neighbours' open/close"
                  for j, i in enumerate(idx[:limit])]
            F.append(Finding("warning", "outlier-wick",
                             f"{idx.size:,} wicks more than {wick_k:g} robust deviations "
                             "beyond the neighbouring bars (bad tick or flash move? compare "
                             "with another source)", int(idx.size), ex, idx[:limit].tolist()))
    return rep


def outlier_wicks(b: Bars, k: float = WICK_K):
    """``(rows, scores, sides)`` of wicks beyond ``k`` robust deviations."""
    n = len(b)
    if n < 3:
        return None
    o, h, l, c = b.open, b.high, b.low, b.close
    with np.errstate(all="ignore"):
        good = np.isfinite(o) & np.isfinite(h) & np.isfinite(l) & np.isfinite(c)
        good &= (o > 0) & (h > 0) & (l > 0) & (c > 0)
        lc = np.log(np.where(good, c, np.nan))
        r = np.abs(np.diff(lc, prepend=np.nan))
        glob = np.nanmedian(r) * 1.4826 if np.isfinite(r).any() else np.nan
        if not np.isfinite(glob) or glob <= 0:
            glob = np.nanmean(r) if np.isfinite(r).any() else np.nan
        if not np.isfinite(glob) or glob <= 0:
            return None
        s = pd.Series(r).rolling(WICK_WINDOW, center=True, min_periods=10).median().to_numpy() * 1.4826
        s = np.where(np.isfinite(s), s, glob)
        s = np.maximum(s, 0.25 * glob)
        top = np.fmax(o, c)
        bot = np.fmin(o, c)
        top3 = np.fmax(top, np.fmax(np.r_[top[0], top[:-1]], np.r_[top[1:], top[-1]]))
        bot3 = np.fmin(bot, np.fmin(np.r_[bot[0], bot[:-1]], np.r_[bot[1:], bot[-1]]))
        zh = np.log(h / top3) / s
        zl = np.log(bot3 / l) / s
    zh = np.where(good & np.isfinite(zh), zh, 0.0)
    zl = np.where(good & np.isfinite(zl), zl, 0.0)
    z = np.maximum(zh, zl)
    idx = np.flatnonzero(z > k)
    side = np.where(zl[idx] >= zh[idx], "low", "high")
    return idx, z[idx], side


def check_ohlcv(data, wick_k: float = WICK_K, max_rows: int = 5, source: str | None = None):
    """Check a DataFrame (or ``Bars``) and return a ``CheckReport``.

    For files use ``check_file``.  ``report.exit_code`` is 0 (clean),
    1 (warnings only) or 2 (errors); ``report.errors`` / ``report.warnings``
    list the findings, each with the first offending rows named.
    """
    if isinstance(data, Bars):
        return check_bars(data, wick_k, max_rows)
    if isinstance(data, pd.DataFrame):
        b = from_frame(data, source or data.attrs.get("path") or "DataFrame")
        if b.timeframe is None:
            b.timeframe = infer_timeframe(b.ts)
        return check_bars(b, wick_k, max_rows)
    return check_file(data, wick_k=wick_k, max_rows=max_rows)[0]


def check_file(path, fmt: str = "auto", wick_k: float = WICK_K, max_rows: int = 5,
               opts=None) -> list[CheckReport]:
    """Check a file of any supported format; one report per table in it."""
    _, bars, _ = _read_for_check(path, fmt, opts)
    return [check_bars(b, wick_k, max_rows) for b in bars]


def _read_for_check(path, fmt: str = "auto", opts=None):
    """``(path, [Bars], format)`` without validating rows.

    A Parquet file with the canonical column names is read as ``load_ohlcv``
    reads it (so wrong column types are errors, not guesses); other files go
    through the import readers.
    """
    from pathlib import Path

    from .formats import read_source
    from .parquet import REQUIRED, open_parquet, read_parquet_bars, sniff_kind
    from .parquet import check_file as _exists

    p = Path(_exists(path))
    if fmt in ("auto", "parquet") and sniff_kind(p) == "parquet":
        names = open_parquet(p).schema_arrow.names
        if all(c in names for c in REQUIRED):
            return p, [read_parquet_bars(p)], "parquet"
    res = read_source(p, fmt, opts)
    return p, res.bars, res.format
