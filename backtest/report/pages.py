"""Figures: the PNGs and the PDF pages, built from the panels.

Only ``matplotlib.figure.Figure`` objects are used (no pyplot), so drawing
touches no global state and is safe in threads and worker processes.
"""
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from . import panels
from .common import A4, PNG_DPI, PNG_SIZE, date_axis, prepare, run_title, title_size
from .tables import (
    draw_key_values, draw_table_page, font_size, lines_per_page, paginate, sections, settings_rows, summary_rows,
)


def _time_axes(fig, gs_rows, sharex=None):
    """Axes on the given gridspec cells sharing one date x axis; only the
    last one shows the date labels."""
    axes = []
    for cell in gs_rows:
        axes.append(fig.add_subplot(cell, sharex=sharex or (axes[0] if axes else None)))
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    for ax in axes:
        ax.grid(True, linewidth=0.3, alpha=0.5)
        ax.tick_params(axis="y", labelsize=7.5)
    date_axis(axes[-1])
    return axes


# where the axes sit on an A4 page and on a landscape PNG (figure fractions)
LAYOUT = {"page": {"size": A4, "left": 0.1, "right": 0.97, "top": 0.91, "bottom": 0.07},
          "png": {"size": PNG_SIZE, "left": 0.08, "right": 0.97, "top": 0.85, "bottom": 0.07}}


def _header(fig, run, page=None, pages=None):
    fig.text(0.06, 0.985, "marginbt backtest report", fontsize=8, color="#555555", va="top")
    text = run_title(run)
    fig.text(0.06, 0.97, text, fontsize=title_size(text, fig.get_figwidth() * 0.88), fontweight="bold", va="top")
    if page is not None:
        fig.text(0.94, 0.012, f"page {page} of {pages}", fontsize=7, color="#555555", ha="right")


def _png_title(fig, run):
    text = run_title(run)
    fig.text(0.08, 0.975, text, fontsize=title_size(text, fig.get_figwidth() * 0.89), fontweight="bold", va="top")


def _grid(fig, rows, ratios, kind, hspace):
    """A one-column grid laid out for ``kind``; ``hspace`` per kind.  Kept
    on the figure so ``relayout`` can turn a PDF page into a PNG."""
    box = {k: v for k, v in LAYOUT[kind].items() if k != "size"}
    gs = fig.add_gridspec(rows, 1, height_ratios=ratios, hspace=hspace[kind], **box)
    fig.marginbt_grid = (gs, hspace)
    return gs


def relayout(fig, kind):
    """Resize a figure built by ``margin_figure``/``costs_figure`` for
    ``kind`` ("page" or "png") without redrawing its panels: the PNGs reuse
    the PDF pages' figures (fonts are in points, so they stay readable)."""
    gs, hspace = fig.marginbt_grid
    fig.set_size_inches(LAYOUT[kind]["size"])
    gs.update(hspace=hspace[kind], **{k: v for k, v in LAYOUT[kind].items() if k != "size"})
    for text in list(fig.texts):
        text.remove()
    return fig


def equity_figure(run, log=False, size=PNG_SIZE) -> Figure:
    """Equity with liquidation markers over the margin level (the margin
    ratio on perps; equity.png)."""
    fig = Figure(figsize=size)
    gs = fig.add_gridspec(2, 1, height_ratios=[1.6, 1.0], left=0.08, right=0.98, top=0.86, bottom=0.09, hspace=0.28)
    _png_title(fig, run)
    ax_eq, ax_ml = _time_axes(fig, [gs[0], gs[1]])
    panels.equity(ax_eq, run, log=log)
    panels.margin(ax_ml, run)
    return fig


def margin_figure(run, kind="png") -> Figure:
    """Price with events, ML per account with the bands (the margin ratio on
    perps), exposure (margin.png, page 2)."""
    fig = Figure(figsize=LAYOUT[kind]["size"])
    gs = _grid(fig, 3, [1.5, 1.2, 0.8], kind, {"page": 0.32, "png": 0.45})
    ax_p, ax_ml, ax_x = _time_axes(fig, [gs[0], gs[1], gs[2]])
    panels.price(ax_p, run)
    panels.margin(ax_ml, run)
    panels.exposure(ax_x, run)
    return fig


def costs_figure(run, kind="png") -> Figure:
    """Debt per asset, cumulative interest and fees, and the waterfall
    (costs.png, page 3).  Perps: funding per charge (no panel without
    charges), cumulative funding and fees, and the waterfall."""
    fig = Figure(figsize=LAYOUT[kind]["size"])
    top = panels.debt  # a perp has no debt: its funding charges, when it has any
    if run.perp:
        top = panels.funding
        if run.funding is None or len(run.funding) == 0 or "payment" not in run.funding:
            gs = _grid(fig, 2, [1.0, 1.1], kind, {"page": 0.3, "png": 0.4})
            ax_c, = _time_axes(fig, [gs[0]])
            panels.costs(ax_c, run)
            panels.waterfall(fig.add_subplot(gs[1]), run)
            return fig
    gs = _grid(fig, 3, [1.0, 1.0, 1.2], kind, {"page": 0.42, "png": 0.55})
    ax_t, ax_c = _time_axes(fig, [gs[0], gs[1]])
    ax_t.tick_params(labelbottom=True)  # the waterfall below has no dates: label both
    date_axis(ax_t, label=False)
    top(ax_t, run)
    panels.costs(ax_c, run)
    panels.waterfall(fig.add_subplot(gs[2]), run)
    return fig


def first_page(run) -> Figure:
    fig = Figure(figsize=A4)
    gs = fig.add_gridspec(3, 2, height_ratios=[1.05, 1.5, 0.75], left=0.1, right=0.96, top=0.93, bottom=0.05,
                          hspace=0.28, wspace=0.08)
    draw_key_values(fig.add_subplot(gs[0, 0]), "Run settings", settings_rows(run))
    draw_key_values(fig.add_subplot(gs[0, 1]), "Summary", summary_rows(run))
    ax_eq, ax_dd = _time_axes(fig, [gs[1, :], gs[2, :]])
    panels.equity(ax_eq, run, log=_wants_log(run))
    panels.drawdown(ax_dd, run)
    return fig


def _wants_log(run) -> bool:
    """Log equity when it spans more than a factor 10 (and stays positive)."""
    eq = run.equity[run.equity > 0]
    return bool(eq.size) and eq.max() / eq.min() > 10


def write_pdf(run, path: Path) -> dict:
    """Write every page to ``path``; returns the chart pages' figures by
    PNG name (``margin.png``, ``costs.png``) for reuse."""
    secs = sections(run)
    size = font_size(secs, A4[0])
    table_pages = paginate(secs, lines_per_page(A4[1], size))
    total = 3 + len(table_pages)
    charts = {"margin.png": margin_figure(run, "page"), "costs.png": costs_figure(run, "page")}
    meta = {"Title": f"marginbt report: {run_title(run)}", "Creator": "marginbt"}
    with PdfPages(path, metadata=meta) as pdf:
        for k, fig in enumerate([first_page(run), *charts.values()], 1):
            _header(fig, run, k, total)
            pdf.savefig(fig)
        for k, lines in enumerate(table_pages, 4):
            fig = Figure(figsize=A4)
            _header(fig, run, k, total)
            draw_table_page(fig, lines, size)
            pdf.savefig(fig)
    return charts


def save_png(fig: Figure, path) -> None:
    # zlib level 3: a third of the default's encoding time, files ~10 % larger
    fig.savefig(path, dpi=PNG_DPI, format="png", pil_kwargs={"compress_level": 3})


def plot_equity(result, path=None, log=False) -> Figure:
    """Equity (log scale with ``log=True``) with liquidation markers, over the
    margin level with the profile's initial, margin-call and liquidation
    lines.  Saves a PNG to ``path`` when given; returns the figure."""
    fig = equity_figure(prepare(result), log=log)
    if path is not None:
        save_png(fig, path)
    return fig


def write_report(result, out_dir) -> Path:
    """Write ``report.pdf`` and ``equity.png``, ``margin.png``, ``costs.png``
    into ``out_dir``; returns the PDF's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = prepare(result)
    pdf = out / "report.pdf"
    charts = write_pdf(run, pdf)
    save_png(equity_figure(run, log=_wants_log(run)), out / "equity.png")
    for name, fig in charts.items():
        relayout(fig, "png")
        _png_title(fig, run)
        save_png(fig, out / name)
    return pdf
