"""One function per chart panel; each draws into a given axes.

Lines are min/max decimated to the axes' width; event markers (entries,
exits, liquidations, margin calls) are drawn in full.  Artists a reader or a
test looks for carry a ``gid``: ``liquidations`` (equity), ``liquidations-ml``,
``liquidations-price``, ``margin-calls``, ``ml-initial``, ``ml-call``,
``ml-liquidation``, ``liquidation-price`` (``liquidation-price-SYMBOL`` with
several symbols); on perpetual futures the margin-ratio panel's
``mr-call`` and ``mr-liquidation`` lines (with ``margin-calls`` and
``liquidations-ml``) and ``funding`` (the charges' bars).
"""
import math

import numpy as np
import pandas as pd
from matplotlib import ticker

from .common import BLUE, GREEN, GREY, ORANGE, RED, columns, fmt_num, legend, money_axis, set_xlim, title
from .decimate import decimate, envelope

MR_TOP = 300.0  # the margin-ratio axis (%) reaches no higher
ML_TICKS = (0.5, 0.75, 1, 1.05, 1.1, 1.2, 1.3, 1.5, 2, 3, 5, 10, 20, 50, 100)


def line(ax, x, y, **kw):
    """Plot ``y`` over ``x`` decimated to the axes' pixel columns."""
    keep = decimate(x, y, columns(ax))
    return ax.plot(x[keep], y[keep], **kw)[0]


def _at(run, xs, values):
    """Values of a per-bar series at event times (the bar's close)."""
    i = np.clip(np.searchsorted(run.x, xs, side="right") - 1, 0, max(len(run.x) - 1, 0))
    return values[i] if len(values) else np.zeros(len(xs))


def _one_per_event(liq):
    """Liquidation events: with several symbols the table has a row per
    symbol an event filled (``event`` numbers them)."""
    return liq.drop_duplicates("event") if len(liq) and "event" in liq else liq


def _liq_vlines(ax, run):
    """Liquidation times as faint vertical lines across a panel."""
    liq = _one_per_event(run.liquidations)
    if len(liq):
        ax.vlines(liq["x"].to_numpy(), 0, 1, transform=ax.get_xaxis_transform(), colors=RED,
                  alpha=0.35, linewidth=0.8, zorder=0, label=f"liquidation ({len(liq)})")


def _moves(ax, run, y_of):
    """The trader's own moves: scheduled transfers (▲ in, ▼ out) and top-ups
    (◆), at ``y_of(rows)`` on the panel."""
    moves = run.transfers
    if moves is None or not len(moves):
        return
    for reason, marker, color, label in (("scheduled", "^", GREEN, "deposit"), ("withdrawal", "v", GREEN, "withdrawal"),
                                         ("top-up", "D", "#6a3d9a", "top-up")):
        rows = moves[moves["reason"] == reason]
        if len(rows):
            ax.plot(rows["x"].to_numpy(), y_of(rows), linestyle="none", marker=marker, markersize=4.5, color=color,
                    markeredgecolor="black", markeredgewidth=0.3, zorder=4, gid=f"moves-{reason}",
                    label=f"{label} ({len(rows)})")


def _after(rows):
    """The level a move left (+inf: no debt, drawn at the panel's edge)."""
    return rows["margin_level_after"].to_numpy(np.float64)


def equity(ax, run, log=False):
    line(ax, run.x, run.equity, color=BLUE, linewidth=1.0, label="equity")
    _moves(ax, run, lambda rows: _at(run, rows["x"].to_numpy(), run.equity))
    ax.axhline(run.capital, color=GREY, linewidth=0.8, linestyle=":", label="starting capital")
    liq = _one_per_event(run.liquidations)
    if len(liq):
        xs = liq["x"].to_numpy()
        ys = _at(run, xs, run.equity)
        if log:  # a wiped-out account has nothing to show on a log axis: mark it at the level it fell from
            ys = np.where(ys > 0, ys, liq["equity_before"].to_numpy(np.float64))
        ax.plot(xs, ys, linestyle="none", marker="X", markersize=7, color=RED, markeredgecolor="white",
                markeredgewidth=0.6, zorder=5, gid="liquidations", label=f"liquidation ({len(liq)})")
    if log:
        ax.set_yscale("log", nonpositive="mask")
    money_axis(ax, run.equity)
    ax.set_ylabel(f"equity ({run.quote}{', log' if log else ''})", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, "Equity")
    legend(ax)


def drawdown(ax, run):
    keep = decimate(run.x, run.drawdown, columns(ax))
    ax.fill_between(run.x[keep], run.drawdown[keep], 0.0, color=RED, alpha=0.35, linewidth=0)
    ax.plot(run.x[keep], run.drawdown[keep], color=RED, linewidth=0.6)
    _liq_vlines(ax, run)
    ax.set_ylim(min(float(np.nanmin(run.drawdown)) * 1.05, -1.0) if len(keep) else -1.0, 0.5)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.0f} %"))
    ax.set_ylabel("drawdown (%)", fontsize=8)
    set_xlim(ax, run.x)
    moves = "net_transfers" in getattr(run.result, "equity", {})  # (with the trader's moves: of the wealth)
    title(ax, "Drawdown of equity + reserve, transfers taken out" if moves else "Drawdown from peak equity")
    legend(ax)


def _ml_range(run):
    prof = run.profile
    finite = [v[np.isfinite(v)] for v in run.margin_levels.values()]
    finite = np.concatenate(finite) if finite else np.empty(0)
    events = [run.liquidations.get("margin_level"), run.margin_calls.get("margin_level")]
    lows = [float(np.nanmin(e)) for e in events if e is not None and len(e) and np.isfinite(e).any()]
    if finite.size:
        lows.append(float(finite.min()))
    bottom = max(0.5, min([1.0] + [v * 0.97 for v in lows]))
    top_data = float(finite.max()) * 1.3 if finite.size else 0.0
    top = min(100.0, max(top_data, prof.initial_ml * 1.6, 2.0))
    return bottom, top


def ml_ticks(bottom, top, thresholds=(), most=9):
    """ML ticks in [bottom, top], at least 1/most of the log range apart:
    the profile's thresholds first (in the order given), then round values."""
    gap = math.log10(top / bottom) / most
    out = []
    for t in [*thresholds, *ML_TICKS]:
        if t is not None and bottom <= t <= top and all(abs(math.log10(t / u)) >= gap for u in out):
            out.append(t)
    return sorted(out)


def margin_level(ax, run):
    """ML per account on a log axis, with the profile's bands and lines."""
    prof = run.profile
    bottom, top = _ml_range(run)
    call = prof.call_ml if prof.call_ml is not None and math.isfinite(prof.call_ml) else None
    liq_ml, init = prof.liquidation_ml, prof.initial_ml
    ax.axhspan(bottom, liq_ml, color=RED, alpha=0.13, linewidth=0, zorder=0)
    if call is not None:
        ax.axhspan(liq_ml, call, color=ORANGE, alpha=0.13, linewidth=0, zorder=0)
    ax.axhspan(call if call is not None else liq_ml, init, color="#f2d600", alpha=0.10, linewidth=0, zorder=0)
    ax.axhline(init, color=GREEN, linewidth=0.9, linestyle="--", gid="ml-initial",
               label=f"initial {init:.3g} (borrow limit)")
    if call is not None:
        ax.axhline(call, color=ORANGE, linewidth=0.9, linestyle="--", gid="ml-call", label=f"margin call {call:.3g}")
    ax.axhline(liq_ml, color=RED, linewidth=1.0, linestyle="-", gid="ml-liquidation", label=f"liquidation {liq_ml:.3g}")
    palette = [BLUE, "#6a3d9a", "#17becf", "#8c564b"]
    any_debt = False
    for k, (name, ml) in enumerate(run.margin_levels.items()):
        if np.isfinite(ml).any():
            any_debt = True
            line(ax, run.x, ml, color=palette[k % len(palette)], linewidth=0.9, label=f"ML {name}")
    calls = run.margin_calls
    if len(calls):
        ax.plot(calls["x"].to_numpy(), np.clip(calls["margin_level"].to_numpy(np.float64), bottom * 1.01, top),
                linestyle="none", marker="v", markersize=4.5, color=ORANGE, markeredgecolor="black",
                markeredgewidth=0.3, zorder=4, gid="margin-calls", label=f"margin call ({len(calls)})")
    liq = _one_per_event(run.liquidations)
    if len(liq):
        ax.plot(liq["x"].to_numpy(), np.clip(liq["margin_level"].to_numpy(np.float64), bottom * 1.01, top),
                linestyle="none", marker="X", markersize=7, color=RED, markeredgecolor="white",
                markeredgewidth=0.6, zorder=5, gid="liquidations-ml", label=f"liquidation ({len(liq)})")
    _moves(ax, run, lambda rows: np.clip(np.nan_to_num(_after(rows), posinf=top), bottom * 1.01, top))
    if not any_debt:
        ax.text(0.5, 0.6, "no debt in this run: margin level is +∞ throughout", transform=ax.transAxes,
                ha="center", fontsize=8, color=GREY)
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    ax.yaxis.set_major_locator(ticker.FixedLocator(ml_ticks(bottom, top, (liq_ml, call, init))))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.set_ylabel("margin level (log)", fontsize=8)
    set_xlim(ax, run.x)
    pro = getattr(prof, "mmr", 0.0) > 0.0  # Cross Margin Pro shows its own ML
    title(ax, "Margin level (net equity / maintenance margin)" if pro else "Margin level (assets / debt)")
    legend(ax, ncol=3)


def margin(ax, run):
    """The margin panel: the margin ratio on perpetual futures, else the margin level."""
    return margin_ratio(ax, run) if run.perp else margin_level(ax, run)


def ratio_of(health) -> np.ndarray:
    """A perp's margin ratio (maintenance margin / margin balance) from its
    health ``h`` (margin balance / maintenance margin): ``1/h``; a margin
    balance at or below 0 is +inf."""
    h = np.asarray(health, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isnan(h), np.nan, np.where(h > 0, 1.0 / h, np.inf))


def margin_ratio(ax, run):
    """Perps: the margin ratio per bar in percent on a linear axis, with the
    margin-call (80 %) and liquidation (100 %) lines and the events (their
    ``margin_level`` is the health at the trigger: ratio ``1/h``)."""
    prof = run.profile
    call = 100.0 / prof.call_ml if prof.call_ml else None
    liq_at = 100.0 / prof.liquidation_ml
    ratios = {name: r * 100.0 for name, r in (run.margin_ratios or {}).items()}
    calls = run.margin_calls
    liq = _one_per_event(run.liquidations)
    call_r = ratio_of(calls["margin_level"]) * 100.0 if len(calls) else np.empty(0)
    liq_r = ratio_of(liq["margin_level"]) * 100.0 if len(liq) else np.empty(0)
    data = np.concatenate([*ratios.values(), call_r, liq_r]) if ratios or call_r.size or liq_r.size else np.empty(0)
    data = data[np.isfinite(data)]
    # room above the highest value for its marker; a gap far through the liquidation level (up to +inf: a
    # margin balance at or below 0) is drawn at the top edge, not let squash the panel
    top = min(max(110.0, float(data.max()) * 1.08 if data.size else 0.0), MR_TOP)
    ax.axhspan(liq_at, top, color=RED, alpha=0.13, linewidth=0, zorder=0)
    # the thresholds are named on their lines (right end): in the legend they would run it into the title
    label = dict(transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=7, zorder=6)
    if call is not None:
        ax.axhspan(call, liq_at, color=ORANGE, alpha=0.13, linewidth=0, zorder=0)
        ax.axhline(call, color=ORANGE, linewidth=0.9, linestyle="--", gid="mr-call")
        ax.text(0.995, call, f"margin call {call:.3g} %", color="#b35900", **label)
    ax.axhline(liq_at, color=RED, linewidth=1.0, linestyle="--", gid="mr-liquidation")
    ax.text(0.995, liq_at, f"liquidation {liq_at:.3g} %", color=RED, **label)
    palette = [BLUE, "#6a3d9a", "#17becf", "#8c564b"]
    any_position = False
    for k, (name, r) in enumerate(ratios.items()):
        if (r > 0).any():
            any_position = True
            line(ax, run.x, np.minimum(r, top), color=palette[k % len(palette)], linewidth=0.9,
                 label="margin ratio" if len(ratios) == 1 else f"margin ratio {name}")
    if call_r.size:
        ax.plot(calls["x"].to_numpy(), np.clip(call_r, 0.0, top * 0.97), linestyle="none", marker="v",
                markersize=4.5, color=ORANGE, markeredgecolor="black", markeredgewidth=0.3, zorder=4,
                gid="margin-calls", label=f"margin call ({len(calls)})")
    if liq_r.size:
        ax.plot(liq["x"].to_numpy(), np.clip(liq_r, 0.0, top * 0.97), linestyle="none", marker="X", markersize=7,
                color=RED, markeredgecolor="white", markeredgewidth=0.6, zorder=5, gid="liquidations-ml",
                label=f"liquidation ({len(liq)})")
    _moves(ax, run, lambda rows: np.clip(ratio_of(_after(rows)) * 100.0, 0.0, top * 0.97))
    if not any_position:
        ax.text(0.5, 0.4, "no position in this run: margin ratio is 0 throughout", transform=ax.transAxes,
                ha="center", fontsize=8, color=GREY)
    ax.set_ylim(0.0, top)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.0f} %"))
    ax.set_ylabel("margin ratio (%)", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, "Margin ratio (maintenance margin / margin balance)")
    legend(ax)


def _liquidation_line(ax, run, levels, close, color, label, gid):
    """A liquidation price line that leaves the axes' limits to the prices
    (``_fit_levels`` lets them take in the levels near the prices).  Levels
    below the close (a long's) and above it (a short's) are drawn apart, so a
    flip from long to short draws no vertical stroke across the price."""
    if levels is None or not np.isfinite(levels).any():
        return None
    below = levels < close
    for part in (np.where(below, levels, np.nan), np.where(below, np.nan, levels)):
        if np.isfinite(part).any():
            line(ax, run.x, part, color=color, linewidth=0.8, linestyle="--", label=label, gid=gid, zorder=4,
                 scalex=False, scaley=False)
            label = None  # one legend entry
    return levels


def _fit_levels(ax, levels, prices):
    """Y limits over the prices and the liquidation levels within a factor 2
    of them, with matplotlib's 5 % margins: a level far off (a dust
    position's) would flatten the prices, so it runs off the panel instead.
    Without levels the limits stay matplotlib's."""
    levels = [v[np.isfinite(v)] for v in levels if v is not None]
    v = np.concatenate(levels) if levels else np.empty(0)
    p = prices[np.isfinite(prices) & (prices > 0)]
    if not v.size or not p.size:
        return
    near = v[(v >= p.min() / 2) & (v <= p.max() * 2)]
    lo, hi = min(p.min(), near.min(initial=np.inf)), max(p.max(), near.max(initial=-np.inf))
    if ax.get_yscale() == "log":
        m = (hi / lo) ** 0.05
        ax.set_ylim(lo / m, hi * m)
    else:
        m = 0.05 * (hi - lo) or 0.05 * hi
        ax.set_ylim(lo - m, hi + m)


def prices(ax, run):
    """Several symbols: each close as a multiple of its first, with every
    symbol's liquidation fills marked on its own line and its liquidation
    price (dashed, same colour)."""
    palette = [BLUE, ORANGE, GREEN, "#9467bd", "#8c564b", GREY]
    liq = run.liquidations
    top = []
    rels, levels = [], []
    for k, (sym, close) in enumerate(run.closes.items()):
        first = close[np.flatnonzero(close > 0)[0]] if (close > 0).any() else 1.0
        rel = np.where(close > 0, close / first, np.nan)
        top.append(np.nanmax(rel) if np.isfinite(rel).any() else 1.0)
        line(ax, run.x, rel, color=palette[k % len(palette)], linewidth=0.8, label=sym)
        rels.append(rel)
        p_liq = (run.liquidation_prices or {}).get(sym)
        levels.append(_liquidation_line(ax, run, None if p_liq is None else p_liq / first, rel,
                                        palette[k % len(palette)], f"{sym} liquidation price",
                                        f"liquidation-price-{sym}"))
        mine = liq[liq["symbol"] == sym] if len(liq) and "symbol" in liq else liq.iloc[:0]
        if len(mine):
            ax.plot(mine["x"], mine["fill_price"] / first, linestyle="none", marker="X", markersize=7, color=RED,
                    markeredgecolor="white", markeredgewidth=0.6, zorder=5, gid="liquidations-price",
                    label=f"{sym} liquidated ({len(mine)})")
    if max(top, default=1.0) > 4:
        ax.set_yscale("log")
    _fit_levels(ax, levels, np.concatenate(rels) if rels else np.empty(0))
    ax.set_ylabel("close / first close", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, "Prices relative to the first close")
    legend(ax, ncol=2)  # two rows: four entries in one would run into the title


def price(ax, run):
    """Close (and the bars' low–high range when known) with the run's events."""
    if run.closes:
        return prices(ax, run)
    cols = columns(ax)
    if run.low is not None:
        ex, lo, hi = envelope(run.x, run.low, run.high, cols)
        ax.fill_between(ex, lo, hi, step="post", color=GREY, alpha=0.25, linewidth=0, label="low–high")
    line(ax, run.x, run.close, color="#222222", linewidth=0.7, label="close", zorder=3)
    levels = _liquidation_line(ax, run, (run.liquidation_prices or {}).get(run.symbol), run.close, RED,
                               "liquidation price", "liquidation-price")
    tr = run.trades
    # every trade is marked; many trades get small marks so the price stays visible
    size = 6.0 if len(tr) <= 60 else 4.0 if len(tr) <= 250 else 2.5
    edge = 0.4 if len(tr) <= 250 else 0.0
    marks = {"long": ("^", GREEN), "short": ("v", "#9467bd")}
    for side, (marker, color) in marks.items():
        sel = tr[tr["side"] == side] if len(tr) else tr
        if len(sel):
            ax.plot(sel["x"], sel["entry_price"], linestyle="none", marker=marker, markersize=size, color=color,
                    markeredgecolor="black", markeredgewidth=edge, zorder=2, gid=f"entries-{side}",
                    label=f"{side} entry ({len(sel)})")
    exit_style = {"signal": ("o", "black"), "rebalance": (".", "#1f77b4"), "end": ("s", "white")}
    if len(tr):
        for reason, sel in tr[tr["exit_reason"] != "liquidation"].groupby("exit_reason"):
            marker, color = exit_style.get(reason, ("D", "#8c564b"))
            label = "still open at end" if reason == "end" else f"exit: {reason} ({len(sel)})"
            ax.plot(sel["x_exit_time"], _exit_marks(run, sel, reason), linestyle="none", marker=marker,
                    markersize=5 if reason == "end" else size * 0.8, color=color, markeredgecolor="black",
                    markeredgewidth=0.5 if reason == "end" else edge, zorder=2, gid=f"exits-{reason}", label=label)
    orders = run.orders
    if len(orders) and "kind" in orders:
        reb = orders[orders["kind"] == "rebalance"]
        if len(reb):
            ax.plot(reb["x"], reb["price"], linestyle="none", marker=".", markersize=3, color="#1f77b4",
                    zorder=3, gid="rebalances", label=f"rebalance ({len(reb)})")
    liq = run.liquidations
    if len(liq):
        ax.plot(liq["x"], liq["fill_price"], linestyle="none", marker="X", markersize=7, color=RED,
                markeredgecolor="white", markeredgewidth=0.6, zorder=5, gid="liquidations-price",
                label=f"liquidation ({len(liq)})")
    finite = run.close[np.isfinite(run.close) & (run.close > 0)]
    if finite.size and finite.max() / finite.min() > 4:
        ax.set_yscale("log")
    _fit_levels(ax, [levels], finite if run.low is None else np.concatenate((finite, run.low, run.high)))
    money_axis(ax, finite)
    ax.set_ylabel(f"price ({run.quote}{', log' if ax.get_yscale() == 'log' else ''})", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, f"{run.symbol} price, trades and liquidations")
    legend(ax, ncol=4)


def _exit_marks(run, trades, reason):
    """Where to mark an exit: the price of the trade's last fill (a trade's
    exit_price averages partial liquidations in), the last close for a trade
    still open at the end."""
    xs = trades["x_exit_time"].to_numpy(np.float64)
    if reason == "end" or not len(run.orders):
        return _at(run, xs, run.close)
    last = run.orders.drop_duplicates("x", keep="last").set_index("x")["price"]
    return last.reindex(xs).fillna(trades["exit_price"].set_axis(xs)).to_numpy(np.float64)


def exposure(ax, run):
    keep = decimate(run.x, run.exposure, columns(ax))
    ax.fill_between(run.x[keep], run.exposure[keep], 0.0, color=BLUE, alpha=0.25, linewidth=0)
    ax.plot(run.x[keep], run.exposure[keep], color=BLUE, linewidth=0.7, label="exposure")
    ax.axhline(0.0, color=GREY, linewidth=0.6)
    lev = run.profile.max_leverage
    ax.axhline(lev, color=GREY, linewidth=0.7, linestyle=":", label=f"max long {lev:g}×")
    _liq_vlines(ax, run)
    ax.set_ylabel("exposure (× equity)", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, "Position exposure (position value / equity)")
    legend(ax)


def debt(ax, run):
    """Debt (principal + interest owed) per asset, valued in the quote asset."""
    # with auto-repay on only one asset is owed at a time: base when short
    base = np.where(run.position < 0, run.debt, 0.0) if run.base_debt is None else run.base_debt
    series = [(f"{run.quote} debt", np.maximum(run.debt - base, 0.0), BLUE),
              (f"{run.base} debt (value)", base, "#9467bd")]
    drawn = False
    for label, values, color in series:
        if np.any(values > 0):
            line(ax, run.x, values, color=color, linewidth=0.9, label=label)
            drawn = True
    if not drawn:
        ax.plot(run.x[[0, -1]] if len(run.x) else [], [0, 0], color=BLUE, linewidth=0.9, label="no debt")
    _liq_vlines(ax, run)
    ax.set_ylim(bottom=0)
    money_axis(ax)
    ax.set_ylabel(f"debt incl. interest ({run.quote})", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, "Debt per asset")
    legend(ax)


def funding(ax, run):
    """Perps: every funding charge, paid (up) and received (down)."""
    f = run.funding
    xs, pay = f["x"].to_numpy(np.float64), pd.to_numeric(f["payment"], errors="coerce").to_numpy(np.float64)
    width_pt = ax.get_figure().get_figwidth() * ax.get_position().width * 72
    lw = float(np.clip(0.6 * width_pt / max(len(pay), 1), 0.4, 4.0))
    for sel, color, label in ((pay > 0, ORANGE, "paid"), (pay < 0, GREEN, "received")):
        if sel.any():
            ax.vlines(xs[sel], 0.0, pay[sel], colors=color, linewidth=lw, gid="funding",
                      label=f"{label} ({int(sel.sum()):,})")
    ax.axhline(0.0, color=GREY, linewidth=0.6)
    _liq_vlines(ax, run)
    money_axis(ax)
    ax.set_ylabel(f"funding ({run.quote})", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, "Funding per charge (positive = paid)")
    legend(ax)


def costs(ax, run):
    """Cumulative interest (funding on perps), trading fees, liquidation fees (and bad debt)."""
    if run.perp:
        line(ax, run.x, run.funding_paid, color=ORANGE, linewidth=1.0, label="funding")
    else:
        line(ax, run.x, run.interest, color=ORANGE, linewidth=1.0, label="interest")
    line(ax, run.x, run.fees, color=BLUE, linewidth=1.0, label="trading fees")
    liq = _one_per_event(run.liquidations)  # (each fill row carries its event's fee and bad debt)
    if len(liq) and len(run.x):
        xs = np.r_[run.x[0], liq["x"].to_numpy(), run.x[-1]]
        fee = np.cumsum(liq["fee"].to_numpy(np.float64))
        ax.plot(xs, np.r_[0.0, fee, fee[-1]], drawstyle="steps-post", color=RED, linewidth=1.0,
                label="liquidation fees")
        bad = np.cumsum(liq["bad_debt"].to_numpy(np.float64))
        if bad[-1] > 0:
            ax.plot(xs, np.r_[0.0, bad, bad[-1]], drawstyle="steps-post", color="black", linewidth=0.9,
                    linestyle="--", label="bad debt")
    low = float(np.nanmin(run.funding_paid, initial=0.0)) if run.perp else 0.0  # funding received: below 0
    if low < 0:
        ax.axhline(0.0, color=GREY, linewidth=0.6)
    ax.set_ylim(bottom=low * 1.05)
    money_axis(ax)
    ax.set_ylabel(f"cumulative ({run.quote})", fontsize=8)
    set_xlim(ax, run.x)
    title(ax, "Cumulative funding and fees" if run.perp else "Cumulative interest and fees")
    legend(ax)


def waterfall_steps(run) -> list[tuple[str, float]]:
    """Starting capital → final equity; trading PnL is the residual, so the
    steps add up to the final equity exactly."""
    s = run.summary
    final = float(run.equity[-1]) if len(run.equity) else run.capital
    fees = float(s.get("fees_paid") or 0.0)
    interest = float(s.get("funding_paid" if run.perp else "interest_paid") or 0.0)
    liq_fees = float(s.get("liquidation_fees") or 0.0)
    bad = float(s.get("bad_debt") or 0.0)
    pnl = final - run.capital + fees + interest + liq_fees - bad
    return [("trading PnL", pnl), ("trading fees", -fees), ("funding" if run.perp else "interest", -interest),
            ("liquidation fees", -liq_fees), ("bad debt\n(insurance fund)", bad)]


def waterfall(ax, run):
    steps = waterfall_steps(run)
    final = run.capital + sum(v for _, v in steps)
    labels = ["starting\ncapital"] + [k for k, _ in steps] + ["final\nequity"]
    level = run.capital
    bars = [(0.0, run.capital, BLUE)]
    for _, v in steps:
        bars.append((level, v, GREEN if v >= 0 else RED))
        level += v
    bars.append((0.0, final, BLUE))
    pos = np.arange(len(bars))
    ax.bar(pos, [h for _, h, _ in bars], bottom=[b for b, _, _ in bars], color=[c for _, _, c in bars],
           width=0.6, edgecolor="black", linewidth=0.4, gid="waterfall")
    span = max(abs(b + h) for b, h, _ in bars) or 1.0
    for p, (b, h, _) in zip(pos, bars):
        top = max(b, b + h)
        sign = "" if p in (0, len(bars) - 1) else "+"
        ax.text(p, top + span * 0.02, fmt_num(h, 2, signed=bool(sign)), ha="center", va="bottom", fontsize=7.5)
    for p in pos[:-1]:
        level = bars[p][0] + bars[p][1]
        ax.plot([p + 0.3, p + 0.7], [level, level], color=GREY, linewidth=0.6)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xticks(pos, labels, fontsize=7.5)
    ax.tick_params(axis="y", labelsize=7.5)
    lo = min(0.0, min(min(b, b + h) for b, h, _ in bars))
    hi = max(max(b, b + h) for b, h, _ in bars)
    ax.set_ylim(lo - 0.05 * (hi - lo or 1), hi + 0.15 * (hi - lo or 1))
    money_axis(ax)
    ax.set_ylabel(run.quote, fontsize=8)
    title(ax, f"From starting capital to final equity ({run.quote})")
