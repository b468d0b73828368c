"""The report's text: run settings, summary metrics and event tables.

Tables are monospace text, one ``Text`` per line (fast to draw, aligned in
print).  Long tables flow over as many pages as they need, their header
repeated; a section stops after ``MAX_LINES`` lines and says how many more
rows are in the CSV beside the report (the full tables are there; the PDF
shows what a reader scans, and stays quick to draw).
"""
import functools
from pathlib import Path

import numpy as np
import pandas as pd

from .common import MONO, fmt_num, fmt_price, fmt_small, fmt_time

MAX_LINES = 40  # per section; the rest is in the CSV beside the report
SIZE = 7.0  # largest table font (pt); smaller when a table is wide
TOP_TRADES = 10


def settings_rows(run) -> list[tuple[str, str]]:
    if run.perp:
        return perp_settings_rows(run)
    s, p, q = run.settings, run.profile, run.quote
    params = ", ".join(f"{k}={v}" for k, v in (s.get("params") or {}).items()) or "—"
    given = s.get("rates") or {}
    rates = ", ".join(f"{a} {r * 100:.6g}" for a, r in given.items()) + " %/day" if given else "—"
    data = s.get("data", "—")
    if isinstance(data, (list, tuple)):  # several symbols: the file names
        data = ", ".join(Path(str(d)).name for d in data)
    call = "—" if p.call_ml is None else f"{p.call_ml:g}"
    fee = s.get("fee")
    rows = [
        ("data", _clip(str(data), 40)),
        ("symbol", run.symbol),
        ("period (UTC)", f"{str(s.get('start', ''))[:16]} → {str(s.get('end', ''))[:16]}"),
        ("bars", fmt_num(run.summary.get("bars", len(run.x)), 0)),
        ("strategy", str(s.get("strategy", "—"))),
        ("parameters", _clip(params, 40)),
        ("margin profile", f"{p.name} (max {p.max_leverage:g}×)"),
        ("ML init/call/liq", f"{p.initial_ml:.3g} / {call} / {p.liquidation_ml:g}"),
        *_accounts_row(s),
        ("liquidation", f"{s.get('liquidation', '—')}, fee {fmt_num(p.liquidation_fee, 1, pct=True)}"),
        ("capital", f"{fmt_num(s.get('capital'))} {q}"),
        ("trading fee", "—" if fee is None else fmt_num(fee, 3, pct=True)),
        ("slippage", fmt_num(s.get("slippage"), 3, pct=True)),
        ("borrow rates", _clip(rates, 38)),
        ("rebalance", "off" if not s.get("rebalance") else fmt_num(s.get("rebalance"), 1, pct=True)),
    ]
    if s.get("stop_on_liquidation"):
        rows.append(("after liquidation", "stop"))
    rows += _move_rows(s)
    if s.get("auto_repay") is False:
        rows.append(("auto-repay", "off, repay on flat" if s.get("repay_on_flat") else "off: loans run on"))
    stops = [f"{label} {fmt_num(s[k], 1, pct=True)}" for k, label in
             (("stop_loss", "stop-loss"), ("take_profit", "take-profit"), ("trailing_stop", "trailing")) if s.get(k)]
    if stops:
        rows.append(("stops", _clip(", ".join(stops), 40)))
    if getattr(p, "max_borrow", ()):
        rows.append(("max borrow", _clip(", ".join(f"{a} {fmt_num(v)}" for a, v in p.max_borrow), 44)))
    if s.get("detail"):
        rows.append(("finer bars", _clip(str(s["detail"]), 44)))
    return rows


def _move_rows(s) -> list[tuple[str, str]]:
    """The settings of the trader's own moves (reserve, top-up rule, transfers)."""
    if not (s.get("reserve") or s.get("transfers")):
        return []
    reserve = s.get("reserve") or 0.0  # (several symbols: per account, SYMBOL=AMOUNT or {symbol: amount})
    if isinstance(reserve, dict):
        reserve = ", ".join(f"{k} {fmt_num(v)}" for k, v in reserve.items())
    elif isinstance(reserve, (list, tuple)):
        reserve = ", ".join(map(str, reserve))
    else:
        reserve = fmt_num(reserve)
    rows = [("reserve / top-up", _clip(f"{reserve} / {s.get('top_up') or 'initial level'}", 44))]
    given = s.get("transfers")
    if given:
        items = [f"{k}: {v}" for k, v in given.items()] if isinstance(given, dict) else [_move(x) for x in given]
        rows.append(("transfers", _clip(", ".join(items), 37)))
    return rows


def _move(item) -> str:
    """One scheduled transfer as the settings keep it: (time, amount), or the flag's text."""
    if isinstance(item, str):
        return item
    t, a = item
    return f"{str(t)[:10]} {a:+,.0f}"


def _file_name(value) -> str:
    """A setting naming a file: its name; a table given in code: "table"."""
    text = str(value)
    return "table" if "\n" in text else Path(text).name


def perp_settings_rows(run) -> list[tuple[str, str]]:
    """Perpetual futures: the venue, the margin mode and leverage, the
    margin-ratio thresholds, the clearance fee and the funding source; no
    borrow rates or margin levels (docs/model-choices.md "Perpetual futures")."""
    s, p, q = run.settings, run.profile, run.quote
    params = ", ".join(f"{k}={v}" for k, v in (s.get("params") or {}).items()) or "—"
    call = "—" if not p.call_ml else f"{100 / p.call_ml:.3g} %"
    if s.get("funding"):
        funding = _clip(_file_name(s["funding"]), 37)
    elif s.get("funding_rate") is not None:
        funding = f"constant {float(s['funding_rate']) * 100:.6g} % / 8 h"
    else:
        funding = "none"
    fee = s.get("fee")
    # values clipped to 37 characters (the path to 34): the longest key is two wider than spot's
    rows = [
        ("data", _clip(str(s.get("data", "—")), 34)),
        ("symbol", run.symbol),
        ("period (UTC)", f"{str(s.get('start', ''))[:16]} → {str(s.get('end', ''))[:16]}"),
        ("bars", fmt_num(run.summary.get("bars", len(run.x)), 0)),
        ("strategy", str(s.get("strategy", "—"))),
        ("parameters", _clip(params, 37)),
        ("venue", "Binance USDⓈ-M perpetual"),
        ("margin", f"{p.mode}, {p.max_leverage:g}×"),
        ("margin call / liq.", f"margin ratio {call} / {100 / p.liquidation_ml:.3g} %"),
        ("clearance fee", f"{fmt_num(p.liquidation_fee, 2, pct=True)}"),
        ("capital", f"{fmt_num(s.get('capital'))} {q}"),
        ("trading fee", "—" if fee is None else fmt_num(fee, 3, pct=True)),
        ("slippage", fmt_num(s.get("slippage"), 3, pct=True)),
        ("funding", funding),
        ("mark price", _clip(_file_name(s["mark"]), 37) if s.get("mark") else "traded bars"),
        ("brackets", _clip(_file_name(s["brackets"]), 37) if s.get("brackets") else "shipped tables"),
        ("rebalance", "off" if not s.get("rebalance") else fmt_num(s.get("rebalance"), 1, pct=True)),
    ]
    if s.get("stop_on_liquidation"):
        rows.append(("after liquidation", "stop"))
    rows += _move_rows(s)
    stops = [f"{label} {fmt_num(s[k], 1, pct=True)}" for k, label in
             (("stop_loss", "stop-loss"), ("take_profit", "take-profit"), ("trailing_stop", "trailing")) if s.get(k)]
    if stops:
        rows.append(("stops", _clip(", ".join(stops), 37)))
    return rows


def summary_rows(run) -> list[tuple[str, str]]:
    s, q = run.summary, run.quote
    get = s.get
    rows = [
        ("final equity", f"{fmt_num(get('final_equity'))} {q}"),
        ("total return", fmt_num(get("total_return"), pct=True, signed=True)),
        ("CAGR", fmt_num(get("cagr"), pct=True, signed=True)),
        ("max drawdown", fmt_num(get("max_drawdown"), pct=True)),
        ("Sharpe / Sortino", f"{fmt_num(get('sharpe'))} / {fmt_num(get('sortino'))}"),
        ("Calmar", fmt_num(get("calmar"))),
        ("time in market", fmt_num(get("exposure"), 1, pct=True)),
        ("max margin ratio", fmt_num(get("max_margin_ratio"), 2, pct=True)) if run.perp else
        ("lowest margin level", fmt_num(get("min_margin_level"), 3)),
        ("trades / orders", f"{fmt_num(get('n_trades'), 0)} / {fmt_num(get('n_orders'), 0)}"
                            f" ({fmt_num(get('n_capped'), 0)} capped)"),
        ("trading fees", f"{fmt_num(get('fees_paid'))} {q}"),
        ("funding", f"{fmt_num(get('funding_paid'))} {q} ({fmt_num(get('n_funding'), 0)} charges)") if run.perp else
        ("interest", f"{fmt_num(get('interest_paid'))} {q}" + (
            f" ({fmt_num(get('interest_while_flat'))} while flat)" if "interest_while_flat" in s else "")),
        ("liquidations", f"{fmt_num(get('n_liquidations'), 0)} (fees {fmt_num(get('liquidation_fees'))} {q})"),
        ("bad debt", f"{fmt_num(get('bad_debt'))} {q}"),
        ("margin calls", fmt_num(get("n_margin_calls"), 0)),
    ]
    if "profit" in s:  # the trader's own moves (the returns above are time-weighted: deposits are no profit)
        rows.insert(1, ("profit", f"{fmt_num(get('profit'))} {q}"))
        rows.append(("net transfers", f"{fmt_num(get('net_transfers'))} {q}"))
        rows.append(("top-ups", f"{fmt_num(get('n_top_ups'), 0)} ({fmt_num(get('topped_up'))} {q}, "
                                f"{fmt_num(get('reserve_left'))} left)"))
    if run.perp and get("mark_missing_bars"):
        rows.append(("bars without mark", fmt_num(get("mark_missing_bars"), 0)))
    if "ambiguous_bars" in s:
        rows.append(("ambiguous bars", fmt_num(get("ambiguous_bars"), 0)))
    if get("n_cancelled"):
        rows.append(("limit orders cancelled", fmt_num(get("n_cancelled"), 0)))
    if "detail_bars" in s:  # --detail
        rows.append(("finer bars", f"{fmt_num(get('detail_bars'), 0)} covered, "
                                   f"{fmt_num(get('detail_missing_bars'), 0)} missing"))
    return rows


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def draw_key_values(ax, heading: str, rows, fontsize=7.6):
    """A two-column key/value block in an axes (axis off)."""
    ax.axis("off")
    ax.text(0.0, 1.0, heading, transform=ax.transAxes, va="top", fontsize=10, fontweight="bold")
    width = max(len(k) for k, _ in rows)
    step = 1.0 / (len(rows) + 2.2)
    for i, (k, v) in enumerate(rows):
        y = 1.0 - step * (i + 1.6)
        text = f"{k:<{width}}  {v}"
        ax.text(0.0, y, text, transform=ax.transAxes, va="top", fontsize=fontsize, family=_family(text))


def _family(text: str):
    """The monospace font; with a fallback for a character it lacks (the
    Ⓢ of "USDⓈ-M": matplotlib's STIX fonts have it)."""
    chars = _mono_chars()
    return MONO if chars is None or all(ord(c) in chars for c in text) else [MONO, "STIXGeneral"]


@functools.cache
def _mono_chars() -> frozenset | None:
    """The characters the monospace font has (None: unknown, draw as is)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(font_manager.findfont(font_manager.FontProperties(family=MONO))).get_charmap())
    except Exception:
        return None


# ---------------------------------------------------------------- event tables

def _table(df, spec) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of ``df`` for ``spec`` = [(header, column, formatter)]."""
    headers = [h for h, _, _ in spec]
    cells = [[fmt(row[col]) if col in row else "—" for _, col, fmt in spec] for _, row in df.iterrows()]
    return headers, cells


def _lines(headers, cells) -> tuple[str, list[str]]:
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]
    def fmt(vals):  # first column left, the rest right-aligned
        return "  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(vals, widths)))

    return fmt(headers), [fmt(r) for r in cells]


def sections(run) -> list[dict]:
    """The event tables: liquidations, margin calls, best and worst trades."""
    q = run.quote
    money = fmt_small
    yes = lambda v: "yes" if str(v).lower() in ("true", "1", "1.0") else ""  # noqa: E731
    out = []
    # a perp's events carry the health h (margin balance / maintenance margin): shown as the margin ratio 1/h
    level = (("margin ratio", "margin_level", _ratio_cell) if run.perp else
             ("ML", "margin_level", lambda v: fmt_num(v, 3)))
    liq_spec = [("time (UTC)", "time", fmt_time), ("symbol", "symbol", str),
                ("trigger", "trigger_price", fmt_price), ("fill", "fill_price", fmt_price),
                level, (f"fee {q}", "fee", money),
                ("equity before", "equity_before", money), ("equity after", "equity_after", money),
                ("bad debt", "bad_debt", money), ("sold/bought", "quantity", lambda v: fmt_small(v, 6)),
                ("gap", "gap", yes)]
    out.append(_section("Liquidation events", run.liquidations, liq_spec, "liquidations.csv",
                        "No liquidations in this run."))
    call_spec = [("time (UTC)", "time", fmt_time), ("symbol", "symbol", str),
                 ("ratio at extreme", "margin_level", _ratio_cell) if run.perp else
                 ("ML at extreme", "margin_level", lambda v: fmt_num(v, 4))]
    heading = ("Margin calls (margin ratio reaching the call level; ratio at the bar's adverse mark extreme)"
               if run.perp else "Margin calls (entries into the margin-call band; ML at the bar's adverse extreme)")
    out.append(_section(heading, run.margin_calls, call_spec, "margin_calls.csv", "No margin calls in this run.",
                        per_line=3, max_lines=25))
    trade_spec = [("side", "side", str), ("entry (UTC)", "entry_time", fmt_time),
                  ("entry price", "entry_price", fmt_price), ("exit (UTC)", "exit_time", fmt_time),
                  ("exit price", "exit_price", fmt_price),
                  ("quantity", "quantity", lambda v: fmt_num(v, 4)), (f"fees {q}", "fees", money),
                  (f"funding {q}", "funding", money) if run.perp else (f"interest {q}", "interest", money),
                  (f"PnL {q}", "pnl", lambda v: fmt_num(v, 2, signed=True)),
                  ("exit", "exit_reason", str)]
    tr = run.trades
    pnl = pd.to_numeric(tr["pnl"], errors="coerce") if "pnl" in tr else pd.Series(dtype=float)
    best = tr.loc[pnl[pnl > 0].sort_values(ascending=False).index[:TOP_TRADES]]
    worst = tr.loc[pnl[pnl < 0].sort_values().index[:TOP_TRADES]]
    n = len(tr)
    out.append(_section(f"Largest winning trades (of {n})", best, trade_spec, None, "No winning trades."))
    out.append(_section(f"Largest losing trades (of {n})", worst, trade_spec, None, "No losing trades."))
    return out


def _ratio_cell(health) -> str:
    """A perp event's margin ratio (percent) from its health ``h``: ``1/h``."""
    try:
        h = float(health)
    except (TypeError, ValueError):
        return fmt_num(health)
    if np.isnan(h):
        return "—"
    return fmt_num(1.0 / h, 1, pct=True) if h > 0 else "∞"


def _section(heading, df, spec, csv, empty, per_line=1, max_lines=MAX_LINES):
    """A table section; ``per_line`` > 1 sets short rows side by side."""
    df = df if df is not None else pd.DataFrame()
    shown = max_lines * per_line
    more = max(len(df) - shown, 0)
    headers, cells = _table(df.head(shown), spec)
    header, rows = _lines(headers, cells)
    if per_line > 1 and len(rows) > per_line:
        rows = ["   │   ".join(rows[i:i + per_line]) for i in range(0, len(rows), per_line)]
        header = "   │   ".join([header] * per_line)
    note = f"… and {more:,} more rows in {csv}" if more else None
    return {"heading": heading, "header": header, "rows": rows, "empty": empty, "note": note}


UNITS = {"gap": 0.8, "heading": 2.0, "header": 1.2, "row": 1.0, "text": 1.0}


def paginate(secs, lines_per_page: float) -> list[list[tuple[str, str]]]:
    """Flow sections onto pages as (kind, text) lines; a table split over
    pages repeats its heading (continued) and header.  ``lines_per_page``
    counts row heights (a heading is two, a header 1.2)."""
    pages, page, used = [], [], 0.0

    def add(kind, text):
        nonlocal used
        page.append((kind, text))
        used += UNITS[kind]

    for sec in secs:
        need = UNITS["gap"] + UNITS["heading"] + (UNITS["header"] + 2 if sec["rows"] else 1)
        if page and used + need > lines_per_page:
            pages.append(page)
            page, used = [], 0.0
        if page:
            add("gap", "")
        add("heading", sec["heading"])
        if not sec["rows"]:
            add("text", sec["empty"])
            continue
        add("header", sec["header"])
        for row in sec["rows"]:
            if used + 1 > lines_per_page:
                pages.append(page)
                page, used = [], 0.0
                add("heading", sec["heading"] + " (continued)")
                add("header", sec["header"])
            add("row", row)
        if sec["note"]:
            if used + 1 > lines_per_page:
                pages.append(page)
                page, used = [], 0.0
            add("text", sec["note"])
    if page or not pages:
        pages.append(page)
    return pages


LEFT, RIGHT, TOP, BOTTOM = 0.06, 0.94, 0.93, 0.05  # table area, figure fractions


def font_size(secs, fig_width_in) -> float:
    """One monospace size for every table page: the widest line fits."""
    longest = max([len(s["header"]) for s in secs if s["rows"]] + [len(r) for s in secs for r in s["rows"]] + [80])
    return float(np.clip(fig_width_in * (RIGHT - LEFT) * 72 / (0.602 * longest), 5.0, SIZE))


def draw_table_page(fig, lines, size=SIZE, top=TOP, bottom=BOTTOM, left=LEFT, right=RIGHT):
    """Draw one page of ``paginate`` lines into ``fig`` (monospace, striped)."""
    step = (size * 1.45) / (fig.get_figheight() * 72)
    y = top
    stripe = False
    for kind, text in lines:
        if kind == "gap":
            y -= step * 0.8
            continue
        if kind == "heading":
            y -= step * 0.4
            fig.text(left, y, text, fontsize=10, fontweight="bold", va="top")
            y -= step * 1.6
            stripe = False
            continue
        if kind == "header":
            fig.text(left, y, text, fontsize=size, family=MONO, fontweight="bold", va="top")
            y -= step
            fig.add_artist(_rule(fig, left, right, y + step * 0.1))
            y -= step * 0.2
            continue
        if kind == "row":
            if stripe:
                fig.patches.append(_band(fig, left, right, y, step))
            stripe = not stripe
        fig.text(left, y, text, fontsize=size, family=MONO if kind == "row" else None,
                 style="italic" if kind == "text" else "normal", va="top")
        y -= step
        if y < bottom:
            break


def lines_per_page(fig_height_in, size=SIZE, top=TOP, bottom=BOTTOM) -> float:
    """Row heights that fit between ``top`` and ``bottom`` at ``size`` pt."""
    return (top - bottom) * fig_height_in * 72 / (size * 1.45) - 1


def _rule(fig, left, right, y):
    from matplotlib.lines import Line2D

    return Line2D([left, right], [y, y], transform=fig.transFigure, color="black", linewidth=0.5)


def _band(fig, left, right, y, step):
    from matplotlib.patches import Rectangle

    return Rectangle((left - 0.005, y - step * 0.95), right - left + 0.01, step, transform=fig.transFigure,
                     facecolor="#eef2f8", edgecolor="none", zorder=0, figure=fig)


def _accounts_row(s) -> list:
    """Several symbols: every account's profile (the rows above are the
    first account's)."""
    accounts = s.get("accounts") or {}
    if len(accounts) < 2:
        return []
    return [("accounts", _clip("; ".join(f"{n}: {a.get('profile', '?')}" for n, a in accounts.items()), 40))]
