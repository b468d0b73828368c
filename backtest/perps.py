"""The perpetual-futures venue on the Python side of a run: the files that
come with bundled perp data, the kernel's venue inputs (bracket tables by
bar, funding charges by bar) and the per-bar columns and funding table of
the result (docs/model-choices.md "Perpetual futures")."""
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .inputs import CrossVenue, Venue

BUNDLED = re.compile(r"(?P<sym>[A-Z0-9]+)_PERP-(?P<tf>[0-9a-z]+)\.parquet")
SPAN_SLACK = 3 * 86400  # a funding file may start or end this far inside the bars' span (a new listing's first settlement)


def companions(bars_path) -> tuple:
    """(mark file, funding file) beside bundled-style perp data
    (``BTCUSDT_PERP-1h.parquet`` → ``BTCUSDT_PERP-1h-mark.parquet``,
    ``BTCUSDT_PERP-funding.parquet``); None where there is none."""
    if bars_path is None:
        return None, None
    p = Path(str(bars_path))
    m = BUNDLED.fullmatch(p.name)
    if m is None:
        return None, None
    mark = p.with_name(f"{m['sym']}_PERP-{m['tf']}-mark.parquet")
    funding = p.with_name(f"{m['sym']}_PERP-funding.parquet")
    return (mark if mark.exists() else None), (funding if funding.exists() else None)


def on_spot_margin(symbol: str, profile) -> bool:
    """A perpetual's bars (``BTCUSDT_PERP``) on a spot-margin profile: its last prices traded as spot margin,
    its mark and funding files unused (a sweep comparing the venues on one market does it on purpose; the
    CLI's summary says so)."""
    from .assets import is_perp_symbol

    return not profile.perp and is_perp_symbol(symbol)


def check_settings(profile, symbol, rates, rate_history, auto_repay, detail, brackets, funding, funding_rate):
    """What a perp run refuses, one line each; the bracket versions."""
    from .venues.brackets import table_for

    if not profile.perp:
        for flag, v in (("--brackets", brackets), ("--funding", funding), ("--funding-rate", funding_rate)):
            if v is not None:
                raise UserError(f"{flag}: only with a perpetual-futures profile (usdm-cross-<L>x, usdm-isolated-<L>x)")
        return None
    if funding is not None and funding_rate is not None:
        raise UserError("--funding-rate: not with --funding (one funding source)")
    for flag, bad in (("--rate", rates), ("--rates", rate_history), ("--no-auto-repay", not auto_repay),
                      ("--detail", detail is not None)):
        if bad:
            raise UserError(f"{flag}: not on the perpetual-futures venue ({profile.name}: no borrowing"
                            + (", no interest)" if flag.startswith("--rate") else "; not yet supported there)"))
    return table_for("".join(_pair(symbol)), brackets)  # (BTCUSDT_PERP's table is BTCUSDT's)


def check_leverage(profile, versions, first_second):
    """A leverage above what the table in force at the first bar allows is refused."""
    from .venues.brackets import max_leverage

    top = max_leverage(versions, int(first_second))
    if profile.max_leverage > top:
        raise UserError(f"--margin {profile.name}: {profile.max_leverage:g}x is above the bracket table's maximum "
                        f"({top:g}x at {_iso(first_second)})")


def venue_inputs(versions, seconds, mark_open, mark_close, funding_times, funding_rates) -> Venue:
    """The kernel's ``inputs.Venue`` and the funding times it charges: each
    bracket version from the first bar at or after its date (the one in
    force at the first bar from bar 0); each funding time in the bar it
    falls in (``t_i ≤ T < t_{i+1}``; the last bar as long as the one
    before), at the mark open of a bar opening at ``T``, else the last
    mark close before ``T``."""
    from .venues.brackets import bracket_arrays

    valid_from, start, rows = bracket_arrays(versions)
    n = len(seconds)
    bar = np.searchsorted(seconds, valid_from, side="left")
    bar[0] = 0  # before the first version, the first (docs/model-choices.md)
    keep = np.ones(len(bar), bool)
    keep[:-1] = bar[:-1] != bar[1:]  # versions sharing a first bar: the latest wins
    keep &= bar < n
    idx = np.flatnonzero(keep)
    table_rows = np.concatenate([rows[start[v]:start[v + 1]] for v in idx]) if len(idx) else np.zeros((0, 5))
    table_start = np.concatenate([[0], np.cumsum([start[v + 1] - start[v] for v in idx])]).astype(np.int64)
    t = np.asarray(funding_times, np.int64)
    fb = np.searchsorted(seconds, t, side="right") - 1
    last = seconds[-1] + ((seconds[-1] - seconds[-2]) if n > 1 else 0)
    ok = (fb >= 0) & (t < last)
    fb, t, r = fb[ok], t[ok], np.asarray(funding_rates, np.float64)[ok]
    on_open = t == seconds[fb]
    mark_t = np.where(on_open | (fb == 0), mark_open[fb], mark_close[np.maximum(fb - 1, 0)])
    return Venue(bar[idx].astype(np.int64), table_start, np.ascontiguousarray(table_rows, np.float64),
                 fb.astype(np.int64), np.ascontiguousarray(mark_t, np.float64), np.ascontiguousarray(r),
                 np.zeros((2, len(fb)))), t


def cross_venue_inputs(perp, syms, seconds, open_, close, own_marks, leverage):
    """A cross perp account of several symbols (rows ``syms`` of the run):
    the kernel's ``inputs.CrossVenue`` (per symbol, in the order of
    ``syms``, the bracket version in force at each grid time; every
    symbol's funding charges on its own bars as ``venue_inputs`` places
    them, in the order they are paid: bar, then symbol, then time), the
    charges' times and their symbols (rows of the run)."""
    n = len(seconds)
    ver = np.empty((len(syms), n), np.int64)
    rows, starts = [], [np.zeros(1, np.int64)]
    n_ver = n_rows = 0  # the versions and tiers of the symbols before
    charges = []
    for k, s in enumerate(syms):
        versions, times, rates = perp[s]
        grid, _ = venue_inputs(versions, seconds, open_[s], close[s], times[:0], rates[:0])
        ver[k] = n_ver + np.searchsorted(grid.table_from, np.arange(n), side="right") - 1
        starts.append(grid.table_start[1:] + n_rows)
        rows.append(grid.table_rows)
        n_ver += len(grid.table_from)
        n_rows += len(grid.table_rows)
        bars = np.flatnonzero(~np.isnan(open_[s]))
        m_open, m_close = (open_[s][bars], close[s][bars]) if s not in own_marks else (own_marks[s][0], own_marks[s][3])
        own, t = venue_inputs(versions, seconds[bars], m_open, m_close, times, rates)
        charges.append((bars[own.funding_bar], np.full(len(t), k), own.funding_mark, own.funding_rate, t))
    fb, fk, fm, fr, ft = (np.concatenate([c[j] for c in charges]) for j in range(5))
    order = np.lexsort((fk, fb))  # (stable: each symbol's in time order)
    venue = CrossVenue(float(leverage), ver, np.concatenate(starts).astype(np.int64),
                       np.ascontiguousarray(np.concatenate(rows), np.float64), fb[order].astype(np.int64),
                       fk[order].astype(np.int64), np.ascontiguousarray(fm[order], np.float64),
                       np.ascontiguousarray(fr[order], np.float64), np.zeros((2, len(order))))
    return venue, ft[order], np.asarray(syms)[fk[order].astype(np.int64)]


def cross_columns(venue, position, equity, close) -> tuple:
    """A cross perp account's margin ratio, and per symbol (rows of
    ``position`` and ``close``, the last closes) its liquidation price and
    distance, by the venue's rules (``binance_usdm_cross.close_columns``)."""
    from .venues.binance_usdm_cross import close_columns

    ratio, lp = np.zeros(len(equity)), np.full(position.shape, np.nan)
    close_columns(np.ascontiguousarray(position), np.ascontiguousarray(equity), np.ascontiguousarray(close),
                  venue.ver, venue.table_start, venue.table_rows, ratio, lp)
    return ratio, lp, _distance(position, close, lp)


def _distance(position, close, lp):
    """``close / LP − 1`` for a long, ``1 − close / LP`` for a short."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(position > 0, close / lp - 1.0, 1.0 - close / lp)


def funding_rows(funding, funding_rate, symbol, seconds) -> tuple:
    """(times in seconds, rates) of the run's funding: a file (its symbol
    checked, its span against the bars'), a constant rate at 00, 08 and 16
    UTC, or none."""
    if funding_rate is not None:
        r = float(funding_rate)
        if not np.isfinite(r) or abs(r) >= 1:
            raise UserError(f"--funding-rate {funding_rate}: must be a finite fraction in (-1, 1)")
        step = 8 * 3600
        t = np.arange(-(-int(seconds[0]) // step) * step, int(seconds[-1]) + step, step, dtype=np.int64)
        return t, np.full(len(t), r)
    if funding is None:
        return np.zeros(0, np.int64), np.zeros(0)
    from .data.funding import load_funding, validate_funding

    f = validate_funding(funding, "funding") if isinstance(funding, pd.DataFrame) else load_funding(funding)
    name = "" if isinstance(funding, pd.DataFrame) else Path(str(funding)).name
    own = f.attrs.get("symbol") or (BUNDLED.match(name + ".parquet") or re.match(r"([A-Z0-9]+?)(_PERP)?-", name))
    file_symbol = own if isinstance(own, str) else (own.group(1) if own else None)
    if file_symbol and _pair(file_symbol) != _pair(symbol):
        raise UserError(f"--funding {funding}: funding of {file_symbol}, the data is {symbol}")
    t = (f["timestamp"].astype("int64") // 10**9).to_numpy(np.int64)
    if len(t) == 0:
        raise UserError(f"--funding {funding}: no funding rows")
    if t[0] > seconds[0] + SPAN_SLACK or t[-1] < seconds[-1] - SPAN_SLACK:
        raise UserError(f"--funding {funding}: covers {_iso(t[0])} → {_iso(t[-1])}, the bars "
                        f"{_iso(seconds[0])} → {_iso(seconds[-1])}; give funding for the whole span")
    return t, f["funding_rate"].to_numpy(np.float64)


def _pair(symbol):
    from .assets import split_symbol

    return split_symbol(symbol)


def _iso(s):
    return pd.Timestamp(int(s), unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M")


def funding_table(times, venue, symbol) -> pd.DataFrame:
    """``funding.csv``: every charge, with the position it was paid on
    (positive payment = paid); charges on no position are left out.
    ``symbol``: one name, or one per charge."""
    pos, pay = venue.funding_out
    held = pos != 0.0
    return pd.DataFrame({
        "time": pd.to_datetime(np.asarray(times)[held], unit="s", utc=True),
        "symbol": symbol if np.ndim(symbol) == 0 else np.asarray(symbol)[held],
        "rate": venue.funding_rate[held], "mark_price": venue.funding_mark[held], "position": pos[held],
        "payment": pay[held]})


def perp_columns(equity, position, free, close, venue) -> tuple:
    """(margin ratio, liquidation price, distance) per bar at the close:
    MM / MB with the table in force, 0 flat; the mark price at which the
    position's margin balance meets its maintenance margin (NaN flat or
    unreachable), both by the venue's rules (``binance_usdm.close_columns``);
    ``close / LP − 1`` for a long, ``1 − close / LP`` for a short."""
    from .venues.binance_usdm import close_columns

    n = len(equity)
    ratio, lp = np.zeros(n), np.full(n, np.nan)
    mb = equity - free
    close_columns(np.ascontiguousarray(position), mb, mb - position * close, np.ascontiguousarray(close),
                  venue.table_from, venue.table_start, venue.table_rows, ratio, lp)
    return ratio, lp, _distance(position, close, lp)


def perp_summary(summary, venue, base, quote):
    """A perp run's summary (``engine.summary_of``'s, changed in place):
    funding where spot margin has interest, the worst margin ratio at a
    close where it has the lowest margin level, the charges on a position."""
    summary["venue"] = "binance-usdm"
    summary["funding_paid"] = summary.pop("interest_paid")
    summary.pop(f"interest_paid_{base}", None)
    summary.pop(f"interest_paid_{quote}", None)
    health = summary.pop("min_margin_level")
    summary["max_margin_ratio"] = 0.0 if health is None or health == np.inf else 1.0 / health
    summary["n_funding"] = int(np.count_nonzero(venue.funding_out[0]))
