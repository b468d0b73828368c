"""Risk-lab and walk-forward pictures: the liquidation frontier, the equity
fan, the report's "risk" page, and in-sample vs out-of-sample per window.

Only ``matplotlib.figure.Figure`` (no pyplot); imported by the risk lab and
``backtest report`` only when they draw.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from ..atomic import picture
from .common import A4, BLUE, GREY, MONO, RED, fmt_num, legend, money_axis, title

MAX_FANS = 12  # panels of fan.png; the rest are in fan.parquet
NOT_PARAMS = {"combination"}


def param_names(stats: pd.DataFrame) -> list:
    """The grid's columns of risk.json's table (before ``n_paths``)."""
    cols = list(stats.columns)
    return [c for c in cols[: cols.index("n_paths")] if c not in NOT_PARAMS]


def frontier_axis(stats: pd.DataFrame, grid: dict) -> str:
    """The x of the frontier: leverage when the grid varies it, else
    exposure, else the first numeric axis with several values."""
    several = [k for k, v in (grid or {}).items() if isinstance(v, list) and len(v) > 1 and k in stats]
    for name in ("leverage", "exposure"):
        if name in several:
            return name
    numeric = [k for k in several if stats[k].dtype.kind in "fi"]
    if numeric:
        return numeric[0]
    numeric = [k for k in param_names(stats) if stats[k].dtype.kind in "fi"]
    return numeric[0] if numeric else param_names(stats)[0]


def _label(key, names):
    key = key if isinstance(key, tuple) else (key,)
    parts = [str(v) if n == "margin" else f"{n}={v:g}" if isinstance(v, float) else f"{n}={v}"
             for n, v in zip(names, key)]
    return ", ".join(parts) or "all"


def frontier_figure(stats: pd.DataFrame, grid: dict, size=(8.0, 4.8)) -> Figure:
    """P(liquidation) against the frontier's axis, one line per profile (per
    value of the other axes), the 95 % Wilson interval shaded."""
    x = frontier_axis(stats, grid)
    others = [c for c in param_names(stats) if c != x]
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    groups = stats.groupby(others, sort=False) if others else [((), stats)]
    for key, g in groups:
        g = g.sort_values(x)
        line, = ax.plot(g[x], g["p_liquidation"] * 100, marker="o", label=_label(key, others))
        ax.fill_between(g[x], g["p_liquidation_low"] * 100, g["p_liquidation_high"] * 100, alpha=0.2,
                        color=line.get_color(), linewidth=0)
    ax.set_xlabel(x)
    ax.set_ylabel("P(liquidation) %")
    ax.set_ylim(bottom=0)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    title(ax, "liquidation frontier (shaded: 95 % Wilson interval)")
    legend(ax, ncol=min(4, max(1, len(ax.lines))))
    return fig


def fan_figure(stats: pd.DataFrame, fan: pd.DataFrame, capital: float, size=None) -> Figure:
    """Equity quantile bands over the horizon, one panel per combination."""
    names = param_names(stats)
    shown = stats.head(MAX_FANS)
    n = len(shown)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=size or (4.0 * cols, 2.8 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for ax, rec in zip(axes.flat, shown.to_dict("records")):
        f = fan[fan["combination"] == rec["combination"]]
        ax.fill_between(f["day"], f["q05"], f["q95"], color=BLUE, alpha=0.15, linewidth=0, label="5–95 %")
        ax.fill_between(f["day"], f["q25"], f["q75"], color=BLUE, alpha=0.35, linewidth=0, label="25–75 %")
        ax.plot(f["day"], f["q50"], color=BLUE, linewidth=1.2, label="median")
        ax.axhline(capital, color=GREY, linewidth=0.7, linestyle="--")
        ax.set_title(f"{_label(tuple(rec[k] for k in names), names)}\nP(liq) {rec['p_liquidation'] * 100:.1f} %",
                     fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.3, alpha=0.5)
        money_axis(ax)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("days", fontsize=8)
    axes.flat[0].legend(fontsize=6, frameon=False, loc="upper left")
    if len(stats) > MAX_FANS:
        fig.suptitle(f"equity fan: the first {MAX_FANS} of {len(stats)} combinations (all in fan.parquet)", fontsize=9)
    else:
        fig.suptitle("equity over the horizon: quantiles over the paths", fontsize=9)
    return fig


def stats_lines(stats: pd.DataFrame) -> list:
    """The per-combination table as monospace lines."""
    names = param_names(stats)
    head = names + ["paths", "P(liq) % [95 % CI]", "P(loss) %", "eq q05", "q50", "q95", "ES 5 %"]
    body = []
    for r in stats.to_dict("records"):
        body.append([str(r[k]) for k in names] + [
            fmt_num(r["n_paths"], 0),
            f"{r['p_liquidation'] * 100:.2f} [{r['p_liquidation_low'] * 100:.2f}, {r['p_liquidation_high'] * 100:.2f}]",
            f"{r['p_loss'] * 100:.1f}", fmt_num(r["equity_q05"]), fmt_num(r["equity_q50"]), fmt_num(r["equity_q95"]),
            fmt_num(r["expected_shortfall_5"], 2, pct=True)])
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.rjust(w) for c, w in zip(row, widths))  # noqa: E731
    return [fmt(head), "-" * len(fmt(head)), *(fmt(b) for b in body)]


def risk_page(stats, fan, manifest) -> list:
    """The report's pages: "risk" (frontier and table), then the fan chart."""
    s, r = manifest["settings"], manifest["risk"]
    page = Figure(figsize=A4)
    page.text(0.06, 0.975, "marginbt risk report", fontsize=8, color=GREY, va="top")
    what = (f"{s['symbol']} · {s['strategy']} · {r['method']} · horizon {r['horizon']}"
            + (f" every {r['every']}" if r["method"] == "windows" else f", {r['paths']:,} paths, block {r['block']}, "
               f"seed {r['seed']}"))
    page.text(0.06, 0.96, f"risk: {what}", fontsize=10, fontweight="bold", va="top")
    ax = page.add_axes([0.1, 0.55, 0.85, 0.33])
    src = frontier_figure(stats, manifest.get("grid") or {})
    _copy_frontier(src.axes[0], ax)
    lines = stats_lines(stats)[:60]
    size = max(4.5, min(7.5, 0.8 * 72 * 8.27 / (0.6 * max(len(ln) for ln in lines))))
    for i, ln in enumerate(lines):
        page.text(0.05, 0.47 - i * size / 72 / 11.69 * 1.3, ln, family=MONO, fontsize=size, va="top")
    fans = fan_figure(stats, fan, s["capital"], size=A4)
    return [page, fans]


def _copy_frontier(src, ax):
    for line in src.lines:
        ax.plot(line.get_xdata(), line.get_ydata(), marker="o", color=line.get_color(), label=line.get_label())
    for coll in src.collections:
        for path in coll.get_paths():
            v = path.vertices
            ax.fill(v[:, 0], v[:, 1], color=coll.get_facecolor()[0], linewidth=0)
    ax.set_xlabel(src.get_xlabel())
    ax.set_ylabel(src.get_ylabel())
    ax.set_ylim(bottom=0)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    title(ax, src.get_title(loc="left"))
    legend(ax, ncol=min(4, max(1, len(ax.lines))))


def draw_risk(folder: Path, stats, fan, manifest) -> list:
    """frontier.png, fan.png and report.pdf into ``folder``, each written
    aside and renamed."""
    grid, capital = manifest.get("grid") or {}, manifest["settings"]["capital"]
    picture(lambda p: frontier_figure(stats, grid).savefig(p, dpi=110), folder / "frontier.png")
    picture(lambda p: fan_figure(stats, fan, capital).savefig(p, dpi=110), folder / "fan.png")

    def pdf(p):
        with PdfPages(p, metadata={"Title": "marginbt risk report", "Creator": "marginbt"}) as doc:
            for fig in risk_page(stats, fan, manifest):
                doc.savefig(fig)

    picture(pdf, folder / "report.pdf")
    return [folder / n for n in ("frontier.png", "fan.png", "report.pdf")]


def walkforward_figure(windows: pd.DataFrame, metric: str, size=(9.0, 4.8)) -> Figure:
    """The ranking metric in sample (training span) and out of sample (test
    span) per window; liquidated test spans marked."""
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    k = np.arange(len(windows))
    ax.bar(k - 0.2, windows[f"is_{metric}"], width=0.4, color=GREY, label=f"in sample ({metric})")
    ax.bar(k + 0.2, windows[f"oos_{metric}"], width=0.4, color=BLUE, label=f"out of sample ({metric})")
    liq = windows["oos_n_liquidations"].to_numpy() > 0
    if liq.any():
        ax.scatter(k[liq] + 0.2, windows[f"oos_{metric}"].to_numpy()[liq], color=RED, marker="x", zorder=3,
                   label="liquidated out of sample")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(k, [str(t)[:10] for t in windows["test_start"]], rotation=90, fontsize=7)
    ax.set_xlabel("test span start")
    ax.set_ylabel(metric)
    ax.grid(True, axis="y", linewidth=0.3, alpha=0.5)
    title(ax, "walk-forward: the training span's best combination, in and out of sample")
    legend(ax)
    return fig
