"""Sweep pictures: a metric over two parameters, and the leverage cliff."""
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..ranking import ranked


def _best(table, keys, metric):
    """For each value of ``keys``, the best row by ``metric`` (a
    never-liquidated one when there is one: ``ranking``)."""
    return ranked(table, metric).drop_duplicates(subset=keys, keep="first")


def plot_heatmap(table, x, y, metric, path=None) -> Figure:
    """``metric`` (best over the other axes) on an x × y grid; cells whose
    best combination was liquidated at least once are hatched."""
    best = _best(table, [x, y], metric)
    xs, ys = sorted(best[x].unique()), sorted(best[y].unique())
    grid = np.full((len(ys), len(xs)), np.nan)
    liq = np.zeros_like(grid, dtype=bool)
    for row in best.itertuples(index=False):
        r = row._asdict()
        i, j = ys.index(r[y]), xs.index(r[x])
        grid[i, j] = r[metric]
        liq[i, j] = r["n_liquidations"] > 0
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=metric)
    for i, j in zip(*np.nonzero(liq)):
        ax.add_patch(_hatch(j, i))
    ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xs], rotation=90)
    ax.set_yticks(range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{metric}: best over the other axes (hatched: liquidated)")
    if path:
        fig.savefig(Path(path), dpi=110)
    return fig


def _hatch(j, i):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="red", linewidth=0, gid="liquidated")


def plot_leverage(table, axis, metric, path=None) -> Figure:
    """The cliff: ``metric`` and liquidation count against leverage, for the
    parameter set that is best on average over the leverage values."""
    params = [c for c in table.columns[: list(table.columns).index("final_equity")] if c != axis]
    mean = table.groupby(params, dropna=False)[metric].mean()
    best_key = mean.idxmax()
    key = best_key if isinstance(best_key, tuple) else (best_key,)
    rows = table
    for name, value in zip(params, key):
        rows = rows[rows[name] == value]
    rows = rows.sort_values(axis)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(rows[axis], rows[metric], marker="o", color="tab:blue", label=metric)
    ax.set_xlabel(axis)
    ax.set_ylabel(metric, color="tab:blue")
    ax2 = ax.twinx()
    ax2.bar(rows[axis], rows["n_liquidations"], width=0.3, alpha=0.4, color="tab:red", label="liquidations")
    ax2.set_ylabel("liquidations", color="tab:red")
    ax.set_title("best parameters: " + ", ".join(f"{n}={v}" for n, v in zip(params, key)))
    if path:
        fig.savefig(Path(path), dpi=110)
    return fig
