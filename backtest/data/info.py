"""``backtest data info``: a one-screen summary of a data file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .bars import Bars
from .check import check_bars
from .times import NAT, fmt_ts


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} B"


def _num(x: float) -> str:
    if not np.isfinite(x):
        return str(x)
    return f"{x:,.8g}" if abs(x) < 1e15 else f"{x:.6g}"


def _parquet_line(p: Path) -> str | None:
    try:
        import pyarrow.parquet as pq

        md = pq.ParquetFile(p).metadata
    except Exception:  # noqa: BLE001 - not parquet
        return None
    comp = {md.row_group(0).column(i).compression for i in range(md.num_columns)} if md.num_row_groups else set()
    return (f"Parquet, {md.num_row_groups} row group(s), {md.num_columns} columns, "
            f"{'/'.join(sorted(comp)) or 'no'} compression")


def describe_bars(b: Bars, path: Path | None = None, fmt: str | None = None) -> str:
    rep = check_bars(b, max_rows=1)
    lines = []
    if path is not None:
        kind = _parquet_line(path) or (fmt or "?")
        lines.append(f"file        {path} ({_size(path.stat().st_size)}; {kind})")
    tf_src = "metadata" if b.meta.get("timeframe") else ("file name" if b.timeframe else "bar spacing")
    lines.append(f"symbol      {b.symbol or '?'}")
    lines.append(f"timeframe   {rep.timeframe or '?'} (from {tf_src})")
    ts = b.ts[b.ts != NAT]
    if ts.size:
        years = (ts.max() - ts.min()) / (365.25 * 86_400e9)
        span = f"{years:.2f} years" if years >= 1 else f"{(ts.max() - ts.min()) / 86_400e9:.1f} days"
        lines.append(f"bars        {len(b):,}: {fmt_ts(ts.min())[:-4]} → {fmt_ts(ts.max())} ({span})")
    else:
        lines.append(f"bars        {len(b):,}")
    miss = sum(int(g[2]) for g in rep.gaps)
    if rep.gaps:
        longest = max(rep.gaps, key=lambda g: g[2])
        cov = len(b) / (len(b) + miss) * 100 if len(b) else 0.0
        lines.append(f"gaps        {len(rep.gaps):,} ({miss:,} bars missing, longest {longest[2]:,} "
                     f"after {fmt_ts(longest[0])}); coverage {cov:.2f} %")
    else:
        lines.append("gaps        none")
    with np.errstate(all="ignore"):
        if len(b):
            lo_i = int(np.nanargmin(b.low)) if np.isfinite(b.low).any() else None
            hi_i = int(np.nanargmax(b.high)) if np.isfinite(b.high).any() else None
            if lo_i is not None and hi_i is not None:
                lines.append(f"price       first open {_num(b.open[0])}, last close {_num(b.close[-1])}; "
                             f"low {_num(b.low[lo_i])} ({fmt_ts(b.ts[lo_i])[:-4]}), "
                             f"high {_num(b.high[hi_i])} ({fmt_ts(b.ts[hi_i])[:-4]})")
            if np.isfinite(b.close[[0, -1]]).all() and b.close[0] > 0:
                lines.append(f"change      {(b.close[-1] / b.close[0] - 1) * 100:+,.2f} % close to close")
            v = b.volume
            lines.append(f"volume      total {_num(np.nansum(v))}, median per bar {_num(np.nanmedian(v))}, "
                         f"{int(np.sum(v == 0)):,} bars with volume 0")
    meta = {k: v for k, v in b.meta.items() if isinstance(v, str)}
    if meta:
        shown = ", ".join(f"{k}={v[:60]}" for k, v in sorted(meta.items()))
        lines.append(f"metadata    {shown}")
    ne, nw = len(rep.errors), len(rep.warnings)
    kinds = ", ".join(f.kind for f in rep.findings)
    lines.append(f"check       {ne} error(s), {nw} warning(s){': ' + kinds if kinds else ''}"
                 + (" — details: backtest data check FILE" if kinds else ""))
    return "\n".join(lines)


def describe_file(path, fmt: str = "auto", opts=None) -> str:
    """The text ``backtest data info`` prints, for a file of any format."""
    from .check import _read_for_check

    p, bars, fmt_used = _read_for_check(path, fmt, opts)
    return "\n\n".join(describe_bars(b, p, fmt_used) for b in bars)
