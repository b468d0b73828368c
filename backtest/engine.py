"""The pipeline for one run: bars → strategy targets → kernel → Result.

``run`` is the whole Python API in one call; ``Backtest`` keeps data and
settings together for repeated runs, as backtesting.py users expect::

    bt = Backtest("data/BTCUSDT-1h.parquet", "sma_cross", margin="cross-3x")
    result = bt.run(fast=10, slow=50)
    result.plot("equity.png")
"""
import inspect
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd

from . import kernel
from .assets import daily_rates, split_symbol
from .checks import api, bars_arg, check_args
from .companion import check_companion
from .data import load_ohlcv, validate_ohlcv
from .data.bars import PRICES
from .data.names import mark_series_name
from .data.validate import checked
from .data.times import range_bounds
from .derived import derived
from .detail import NO_DETAIL, detail_arrays, for_kernel
from .errors import UserError
from .liqprice import liquidation_columns
from .metrics import periods_per_year, summarize
from .profiles import Profile, resolve_profile
from . import bar_rows, perps, warm, writeoffs
from . import transfers as transfers_mod
from .per_bar import bar_columns
from .records import liquidation_dt, margin_call_dt, order_dt
from .rates import load_rates, rate_table
from .rules import pro_margin_level
from .result import LIQUIDATION_COLUMNS, MARGIN_CALL_COLUMNS, ORDER_COLUMNS, Result
from .inputs import Bars, Given, frozen, marks_of
from .settings import RunSettings
from .strategy import Orders, load_strategy
from .trades import change_at, fill_bars, flat_costs, interest_by_asset, trip_walk
from .words import repeat, sides


@api()
def run(
    bars,
    strategy="sma_cross",
    params: dict | None = None,
    *,
    margin: str | Profile | None = None,
    capital: float = 10_000.0,
    fee: float | None = None,
    slippage: float = 0.0,
    rates: dict | None = None,
    liquidation: str = "partial",
    rebalance: float = 0.0,
    symbol: str | None = None,
    round_interest: bool = True,
    start=None,
    end=None,
    stop_on_liquidation: bool = False,
    stop_loss: float = 0.0,
    take_profit: float = 0.0,
    trailing_stop: float = 0.0,
    path: str = "ohlc-heuristic",
    mark=None,
    rate_history=None,
    detail=None,
    auto_repay: bool = True,
    repay_on_flat: bool = False,
    margin_file=None,
    funding=None,
    funding_rate: float | None = None,
    brackets=None,
    transfers=None,
    reserve: float = 0.0,
    top_up=None,
    keep_ml: float | None = None,
    auto_borrow: bool = True,
) -> Result:
    """Backtest one symbol on one margin account.

    Args:
        bars: a Parquet path, or a DataFrame with a UTC ``timestamp`` index
            (or column) and open, high, low, close, volume.
        strategy: a name in ``strategies/``, a ``.py`` path, a module, a
            function ``f(bars, **params)`` or an array of targets. A target is
            signed position value / equity (+3 long 3x, −2 short 2x, NaN hold),
            decided at a bar's close and executed at the next open.
        params: strategy parameters overriding its ``PARAMS`` defaults.
        margin: a profile name (``cross-3x``, the default, ``cross-5x``,
            ``isolated-3x``, ``isolated-5x``, ``isolated-10x``,
            ``cross-pro-10x``, ``cross-pro-20x``, or one of ``margin_file``)
            or a ``Profile``.
        capital: starting equity, in the quote asset.
        fee: trading fee as a fraction of notional (default 0.001 = 0.1 %
            on spot margin, 0.0005 on perpetual futures).
        slippage: fraction of price against the trader on every fill.
        rates: daily borrow rate per asset, e.g. ``{"USDT": 0.0003}``; any
            asset not named pays 0.0002 per day.
        liquidation: ``"partial"`` (sell just enough to restore the initial
            margin level, as Binance does) or ``"full"``.
        rebalance: trade back to an unchanged target when exposure drifted
            by more than this fraction of it (0 = never).
        symbol: overrides the symbol read from the file name (``BTCUSDT``).
        round_interest: round each hourly charge up to 1e-8 (Binance).
        start, end: keep only bars in this range (inclusive dates or times).
        stop_on_liquidation: stop trading after the first liquidation.
        stop_loss, take_profit, trailing_stop: exit the whole position when
            the price moves this fraction against / for it from the average
            entry price (trailing: from the best price since entry); 0 = off.
            A forced exit stays closed until the target changes.
        path: the order of the extremes inside a bar, ``"ohlc-heuristic"``
            (low first on a bar closing up, high first on one closing down)
            or ``"pessimistic"`` (the position's adverse extreme first).
        mark: mark-price bars (a Parquet path or a DataFrame like ``bars``)
            that liquidation is checked against; orders still fill on
            ``bars``.  Bars it lacks use ``bars`` and are counted in
            ``summary["mark_missing_bars"]``.  With stops or limit orders the
            path inside a bar follows both (docs/model-choices.md).
        rate_history: a rate file (CSV/Parquet: ``timestamp, asset,
            daily_rate|hourly_rate``), such a DataFrame, or
            ``rates.load_rates``' dict; the
            assets it names follow it (forward-filled to every whole hour),
            the others pay ``rates``.
        detail: finer bars of the same symbol (a Parquet path or a DataFrame
            like ``bars``; e.g. 1-minute bars under 1-hour bars) that settle
            the path inside each bar where a stop, take-profit, a standing
            limit order or the liquidation price is in reach.  Bars without complete matching
            finer bars follow ``path`` and are counted in
            ``summary["detail_missing_bars"]``.  Not combined with ``mark``.
        auto_repay: False keeps what a fill receives as balance: loans and
            their interest run on (``--no-auto-repay``).
        repay_on_flat: with ``auto_repay=False``, repay every loan from the
            balances at a fill that leaves no position (``--repay-on-flat``).
        margin_file: a TOML file of custom profiles (``--margin-file``, see
            ``profile_file``); without ``margin``, its only profile is used.
        funding: perpetual futures: a funding-rate file (Parquet/CSV
            ``timestamp, funding_rate``); default the file bundled beside
            bundled perp data (``BTCUSDT_PERP-funding.parquet``).
        funding_rate: perpetual futures: a constant rate every 8 hours
            instead (what-ifs, tests).
        brackets: perpetual futures: a maintenance-bracket JSON (Binance
            ``leverageBracket``, ccxt, freqtrade); default the shipped
            tables of BTCUSDT and ETHUSDT.
        transfers: scheduled transfers into (+) or out of (−) the margin
            account, in the quote asset: a Series (index times), a dict
            ``{date: amount}`` or ``["2020-03-12=5000", ...]``; a
            withdrawal is capped to keep the initial margin level.
        reserve: quote kept outside the account; with ``top_up`` (``"ml=X"``:
            lift the margin level back to X, default the initial level;
            ``"amount=A"``: A per call) it answers margin calls inside the
            bar, where the path meets the call level (docs/model-choices.md
            "Transfers and a reserve").
        keep_ml: a safety buffer: where the margin level would fall to this
            level inside a bar, the position is reduced there (trading fee,
            no liquidation fee) back to the initial level (``deleverage``
            orders).
        auto_borrow: False: orders never borrow (``--no-auto-borrow``); loans
            are taken and repaid by hand, the strategy's ``borrow`` /
            ``repay`` (docs/model-choices.md "Manual loans"; spot margin).

    Returns:
        A ``Result`` with ``.equity``, ``.trades``, ``.liquidations``,
        ``.margin_calls``, ``.orders`` and ``.summary``.
    """
    check_args(locals())
    profile = resolve_profile(margin, margin_file)
    if profile.perp:
        own_mark, own_funding = perps.companions(bars if not isinstance(bars, pd.DataFrame) else None)
        mark = own_mark if mark is None else mark
        funding = own_funding if funding is None and funding_rate is None else funding
    rs = RunSettings(capital, fee, slippage, rates, liquidation, rebalance, round_interest, stop_on_liquidation,
                     stop_loss, take_profit, trailing_stop, path, auto_repay, repay_on_flat, transfers,
                     float(reserve or 0.0), top_up, keep_ml, auto_borrow)
    rs = replace(rs, fee=rs.venue_fee(profile))  # (run.json records the fee charged)
    # a cold cache: a second process compiles part of the kernel meanwhile (a strategy's own stops or limit
    # orders, known later, walk too: the kernel then compiles the walk itself)
    helper = warm.start(profile.perp, walk=rs.stops_on or detail is not None)
    source = str(bars) if not isinstance(bars, pd.DataFrame) else "bars"
    if isinstance(bars, pd.DataFrame) and isinstance(strategy, (np.ndarray, list)) and len(strategy) == len(bars):
        strategy = np.asarray(strategy, dtype=float)
        if start is not None or end is not None or strategy.ndim != 1:  # aligned before slicing
            strategy = pd.Series(strategy, index=_index_of(bars))
        # (else row for row: validation keeps every row in its place; reindexing 1M would cost 4 ms)
    bars, prices = _prepared(bars, start, end)
    symbol = symbol_of(bars, symbol)
    rate_b, rate_q = daily_rates(symbol, rates)
    history = _rate_history(rate_history, rates)
    strat = load_strategy(strategy)
    resolved = strat.resolve(params)
    given = strat.orders(bars, resolved)
    targets = given.target
    rs = rs.with_stops(given.fractions)  # a strategy's own fractions take precedence over the settings
    seconds = _epoch_seconds(bars.index)
    o, h, lo, c = prices
    base, quote = split_symbol(symbol)
    profile = profile.for_pair(base, quote)
    versions = perps.check_settings(profile, symbol, rates, rate_history, auto_repay, detail, brackets, funding,
                                    funding_rate)
    if profile.perp:
        perps.check_leverage(profile, versions, seconds[0])
        rate_b = rate_q = 0.0  # no borrowing: no interest
    table = rate_table(seconds, (base, quote), {base: rate_b, quote: rate_q}, history)
    config = rs.kernel_config(profile, table, profile.borrow_limits(base, quote))
    marks, missing = (None, 0) if mark is None else mark_arrays(mark, bars, symbol)
    if detail is not None and mark is not None:
        raise UserError("--detail: not combined with --mark (the mark series has no finer bars)")
    transfers_mod.check_combination(rs, given, detail, rs.reserve, rs.transfers, rs.keep_ml)
    loans = transfers_mod.loan_events(rs, given, profile, base, quote)
    moves = transfers_mod.flows_spec(rs.transfers, rs.reserve, rs.top_up, profile, seconds, config[0].call_ml,
                                     rs.keep_ml, auto_repay, loans)
    if transfers_mod.manual(rs, given):
        config = (config[0]._replace(manual_loans=True), config[1])
    exact = loans_outlive_trades(given, auto_repay and not transfers_mod.manual(rs, given), True)
    fine, n_fine = (NO_DETAIL, 0) if detail is None else detail_arrays(detail, bars, symbol)
    venue = None
    if profile.perp:
        f_times, f_rates = perps.funding_rows(funding, funding_rate, symbol, seconds)
        m_open, m_close = (o, c) if marks is None else (marks[0], marks[3])
        venue, f_times = perps.venue_inputs(versions, seconds, m_open, m_close, f_times, f_rates)
    warm.announce(helper)
    with warm.running(helper):
        warm.join(helper, profile.perp)
        rows, orders, liqs, calls, stats, *flows = simulate_arrays(seconds, o, h, lo, c, targets, config, marks,
                                                                   fine, given, quote_row=exact, venue=venue,
                                                                   flows=moves, per_bar=False)
    flows = flows[0] if flows else None
    ppy = derived(bars.index, "ppy", lambda _: periods_per_year(seconds))  # (kept with the bars' times)
    moved = None if flows is None else transfers_mod.outputs(
        flows, moves, bars.index, rows.full()[0], quote, float(capital), ppy, level_terms(profile), base)
    index = bars.index

    def equity_table():  # built when first read (Result.equity): a loop reading summaries never pays for it
        out = rows.full()
        equity, position, debt, owed, paid = out[:5]
        if profile.perp:
            return _with_moves(_perp_equity(equity, position, debt, paid, c, orders, venue, index), moved)
        exposure, assets_ml, fees, ambiguous = bar_columns(equity, position, debt, c, orders)
        paid_base, paid_quote = interest_by_asset(paid, orders, position, o, out[5] if exact else None)
        liq_price, liq_distance = liquidation_columns(position, equity, debt, c, profile.kernel_levels()[2],
                                                      out[8] if exact else None)
        table = pd.DataFrame(
            {"equity": equity, "margin_level": profile_ml(assets_ml, profile), "position": position, "debt": debt,
             "interest_paid": paid, "interest_owed": owed, "interest_paid_base": paid_base,
             "interest_paid_quote": paid_quote, "fees_paid": fees, "exposure": exposure, "close": c.copy(),
             "liquidation_price": liq_price, "liquidation_distance": liq_distance, "ambiguous": ambiguous},
            index=index, copy=False,  # the kernel's own rows, kept as they are: no 20 ms block consolidation
        )
        if not auto_repay:  # both loans may run at once: the debt per asset as the kernel kept it
            table["debt_base"] = out[8]
        return _with_moves(table, moved)
    summary = summary_of(stats, float(capital), seconds, base, quote, profile=profile, ppy=ppy)
    if profile.perp:
        perps.perp_summary(summary, venue, base, quote)
    if moved is not None:  # returns of the trader's wealth, deposits not counted as profit
        summary.update(moved[3])
    if mark is not None:
        summary["mark_missing_bars"] = missing
    if detail is not None:
        summary["detail_bars"] = n_fine  # bars with usable finer bars
    trips, quote_paid = _trades(rows, orders, index, c, o, symbol, liqs["bad_debt"], profile.perp, exact)
    # what belongs to no trade (loans running with no position): trades' pnl less these = the equity change
    flat = flat_costs(trips, quote_paid)
    if exact or any(flat):  # (a sweep's rows, which have no trades, keep the default run's keys)
        summary["interest_while_flat"], summary["fees_while_flat"] = flat
    settings = {
        "data": source, "symbol": symbol, "strategy": strat.name, "params": resolved,
        "margin": profile.name, "margin_file": None if margin_file is None else str(margin_file),
        **replace(rs, rates={base: rate_b, quote: rate_q}).as_dict(rate_history=None if rate_history is None else (
            str(rate_history) if not isinstance(rate_history, (dict, pd.DataFrame)) else "table")),
        "limit_orders": bool(given.limit.size), "expiry": given.expiry,
        "strategy_stop_levels": bool(given.stop_loss.size or given.take_profit.size),
        "mark": None if mark is None else (str(mark) if not isinstance(mark, pd.DataFrame) else "bars"),
        "detail": None if detail is None else (str(detail) if not isinstance(detail, pd.DataFrame) else "bars"),
        "start": str(index[0]), "end": str(index[-1]),
    }
    if profile.perp:
        settings.update(venue=profile.venue, brackets=None if brackets is None else str(brackets),
                        funding=None if funding is None else str(funding), funding_rate=funding_rate)
    # an account with nothing to sell whose debt is written off is no liquidation (docs/model-choices.md
    # "No empty liquidations"): a write-off, counted apart
    write_off = liqs["quantity"] == 0.0

    def trades_table():  # built when first read (Result.trades), as the equity table
        if profile.perp:  # funding takes interest's place in the trades (paid while open); no loans, no borrow charge
            return trips.frame().drop(columns=["interest_base", "interest_quote"]).rename(
                columns={"interest": "funding"})
        return trips.frame()
    # (write-offs are counted apart in the summary: summary_of); the record tables are built when first read
    order_columns = [c for c in ORDER_COLUMNS if not (profile.perp and c == "interest")]
    return Result(
        equity=equity_table,
        trades=trades_table,
        orders=lambda: _records_frame(orders, index, symbol, order_columns),
        liquidations=lambda: _records_frame(_in_profile_terms(liqs[~write_off], profile), index, symbol,
                                            LIQUIDATION_COLUMNS),
        margin_calls=lambda: _records_frame(calls, index, symbol, MARGIN_CALL_COLUMNS),
        summary=summary,
        settings=settings,
        profile=profile,
        bars=bars,
        funding=perps.funding_table(f_times, venue, symbol) if profile.perp else None,
        transfers=None if moved is None else moved[0],
        loans=None if moved is None else moved[4],
    )


def _trades(rows, orders, index, c, o, symbol, bad_debts, perp, exact):
    """The round trips (``trades.Trips``: arrays; the table is made when
    read) from the per-bar rows at the fills' bars (``rows``: a
    ``bar_rows.Rows``; no other bar's rows are made), and the cumulative
    quote interest at those bars (loans that outlive trades; else None): the
    kernel's own, or a perp's funding paid."""
    at = fill_bars(orders, len(c))
    full = rows.full() if exact else None  # (every bar's rows are needed then: the rows at ``at`` are its columns)
    now = rows.at(at)
    position, paid = now[1], now[4]
    if perp or exact:  # the step-4 charges of a bar: the change from the bar before
        before = rows.at(np.maximum(at - 1, 0))
    if perp:  # every charge is funding, in quote, paid after the bar's order (step 3)
        by_asset = np.zeros(len(at)), paid
        after = (by_asset[0], change_at(paid, at, before[4]), o[at])
    elif exact:  # both loans may run at once: the kernel's own quote interest and step-4 charges
        by_asset = interest_by_asset(full[4], orders, full[1], o, full[5], at=at)
        after = (change_at(now[6], at, before[6]), change_at(now[7], at, before[7]), o[at])
    else:
        bars, paid_rows, position_rows = rows.changes()
        by_asset = interest_by_asset(paid_rows, orders, position_rows, o, at=at, bars=bars)
        after = None
    trades = trip_walk(orders, index, c[at], position, paid, symbol, bad_debts, by_asset, at=at,
                       after_fill=after, quote_fees=perp)
    return trades, ((paid if perp else now[5]) if exact else None)  # (a perp's quote interest is its funding)


def _with_moves(table, moved):
    """The per-bar table with the net scheduled transfers and the reserve."""
    if moved is not None and moved[1] is not None:
        table["net_transfers"] = moved[1]
        table["reserve"] = moved[2]
    return table


def _perp_equity(equity, position, free, funding_paid, c, orders, venue, index):
    """The per-bar table of a perp run: no loans, so no debt or interest;
    funding paid, the margin ratio and the mark-price liquidation price
    instead (docs/model-choices.md "Perpetual futures")."""
    exposure, _, fees, ambiguous = bar_columns(equity, position, np.zeros_like(equity), c, orders)
    ratio, liq_price, liq_distance = perps.perp_columns(equity, position, free, c, venue)
    with np.errstate(divide="ignore"):
        health = np.where(ratio > 0, 1.0 / ratio, np.inf)
    return pd.DataFrame(
        {"equity": equity, "margin_ratio": ratio, "margin_level": health, "position": position,
         "funding_paid": funding_paid, "fees_paid": fees, "exposure": exposure, "close": c.copy(),
         "liquidation_price": liq_price, "liquidation_distance": liq_distance, "ambiguous": ambiguous},
        index=index, copy=False)


def _rate_history(history, rates):
    """The rate file's histories (``None`` without one); an asset may not
    have both a constant ``--rate`` and a history."""
    if history is None:
        return None
    loaded = history if isinstance(history, dict) else load_rates(history)
    both = sorted(set(loaded) & {str(k).upper() for k in (rates or {})})
    if both:
        raise UserError(f"--rate {both[0]}: also in --rates; give each asset one rate source")
    return loaded


def symbol_of(bars, symbol=None) -> str:
    """The pair: given, or read from the file name/metadata; never guessed."""
    if symbol:
        try:
            split_symbol(symbol)
        except UserError as exc:
            raise UserError(f"--symbol {symbol}: {str(exc).split(': ', 1)[1]}") from None
        return symbol
    symbol = bars.attrs.get("symbol")
    source = bars.attrs.get("path")
    if not symbol:
        raise UserError("--symbol: the bars do not say which pair they are; pass --symbol, e.g. BTCUSDT")
    try:
        split_symbol(symbol)
    except UserError:
        if source is None:
            raise
        raise UserError(f"--data {source}: its name and metadata give no pair (read {symbol!r}, which ends in no "
                        "known quote asset); pass --symbol, e.g. BTCUSDT") from None
    return symbol


def loans_outlive_trades(given: Orders, auto_repay: bool, loans_ok: bool = False) -> bool:
    """Whether loans may outlive trades (auto-repay off, a limit order's
    borrowing): then the books need the kernel's per-asset interest per bar
    (``simulate_arrays(quote_row=True)``, docs/model-choices.md "Books").
    Refuses limit orders with auto-repay off, and a strategy's manual loans
    where they are not done (``loans_ok`` False: sweeps, the risk lab)."""
    if given.loans and not loans_ok:
        key, asset = next(iter(given.loans))
        raise UserError(f"strategy: {key}[{asset!r}]: manual loans are done in one symbol's run only "
                        "(not in sweeps or the risk lab yet)")
    if not auto_repay and given.limit.size:
        raise UserError("--no-auto-repay: not combined with a strategy's limit orders (a limit order's "
                        "borrowing and fill assume auto-repay)")
    return not auto_repay or bool(given.limit.size)


def mark_arrays(mark, bars, symbol=None, name=None):
    """The mark series' (open, high, low, close) on ``bars``' timestamps, the
    traded bar's where the mark lacks one; and how many it lacked.  Another
    market's series is refused (``companion``); ``name``: what messages call
    it (default the path)."""
    name = name or (str(mark) if not isinstance(mark, pd.DataFrame) else "mark")
    m = validate_ohlcv(mark, name) if isinstance(mark, pd.DataFrame) else load_ohlcv(mark)
    check_companion("--mark", m, name, bars, symbol)
    aligned = m.reindex(bars.index)
    have = aligned["open"].notna().to_numpy()
    if not have.any():
        raise UserError(f"--mark {name}: no bar overlaps the data (mark {m.index[0]} → {m.index[-1]}, "
                        f"data {bars.index[0]} → {bars.index[-1]})")
    cols = []
    for k in ("open", "high", "low", "close"):
        cols.append(np.where(have, aligned[k].to_numpy(np.float64), bars[k].to_numpy(np.float64)))
    return tuple(cols), int((~have).sum())


def simulate_arrays(seconds, open_, high, low, close, targets, config, mark=None, detail=NO_DETAIL,
                    orders: Orders | None = None, quote_row=False, venue=None, flows=None, per_bar=True):
    """Call the kernel with its log and record buffers from NumPy, growing
    the buffers if a run needs more.

    ``config`` is the kernel's ``(Settings, Rates)``
    (``RunSettings.kernel_config``); ``mark`` the (open, high, low, close)
    arrays liquidation is checked against (default: none, the traded ones);
    ``detail`` the finer bars' arrays (``detail.detail_arrays``); ``orders``
    a strategy's limit orders and stop levels (default none); ``quote_row``:
    also keep the cumulative quote interest, step-4 charges and base owed
    per bar (rows 5–8 of ``out``; needed with auto-repay off); ``venue`` the
    venue's tables and funding (``inputs.Venue``; None on spot margin).  Returns
    ``(out, orders, liquidations, margin_calls, stats)``; with ``flows``
    (``transfers.flows_spec``: scheduled transfers and a reserve) also the
    kernel's ``inputs.Flows`` after the run (its state and log).  ``out``:
    the per-bar rows (``bar_rows.ROWS``, with ``quote_row`` also
    ``EXACT_ROWS``); with ``per_bar`` False a ``bar_rows.Rows`` that makes
    them when asked (the kernel writes a log of its account, not rows).
    """
    n = seconds.shape[0]
    bars = Bars(seconds, open_, high, low, close)
    given = Given(targets, *(orders or Orders(targets)).kernel_args())
    cfg, rates = config
    walk = for_kernel(detail, cfg, given)  # (None: no walk inside a bar to compile)
    changes = int(np.count_nonzero(~np.isnan(targets)))
    sizes = [min(changes, n) + 64, 64, 64, 0 if flows is None else transfers_mod.log_rows(flows),
             bar_rows.room(n)]
    while True:
        orders, liqs, calls = (np.empty(k, dtype=dt) for k, dt in zip(sizes, (order_dt, liquidation_dt, margin_call_dt)))
        moves = None if flows is None else transfers_mod.make_flows(flows, sizes[3])
        log = np.empty((min(n, sizes[4]), bar_rows.LOG))
        n_orders, n_liqs, n_calls, complete, stats, n_log = kernel.simulate(
            bars, marks_of(bars, mark), cfg, rates, walk, given, log, orders, liqs, calls, venue, moves)
        if complete:
            break
        sizes = [k * 4 for k in sizes]
    rows = bar_rows.Rows(log, n_log, close, venue is not None, quote_row)
    out = rows.full() if per_bar else rows
    if flows is None:
        return out, orders[:n_orders], liqs[:n_liqs], calls[:n_calls], stats
    return out, orders[:n_orders], liqs[:n_liqs], calls[:n_calls], stats, moves


def summary_of(stats: np.ndarray, capital: float, seconds: np.ndarray, base: str, quote: str, ppy=None,
               profile=None) -> dict:
    """``summary.json``: metrics and cost totals from the kernel's ``stats``
    (``ppy``: periods per year, if already known — a sweep computes it once;
    ``profile``: margin levels are reported in its terms)."""
    st = dict(zip(kernel.STATS, stats.tolist()))
    if profile is not None:
        st["min_margin_level"] = float(profile_ml(st["min_margin_level"], profile))
    ppy = periods_per_year(seconds) if ppy is None else ppy
    out = summarize(capital, st, len(seconds), int(seconds[0]), int(seconds[-1]), ppy)
    out.update(
        n_trades=int(st["n_trades"]), n_orders=int(st["n_orders"]), n_capped=int(st["n_capped"]),
        # a write-off (nothing to sell, debt written off) is no liquidation: counted apart, as run() shows it
        n_liquidations=int(st["n_liquidations"] - st["n_write_offs"]), n_margin_calls=int(st["n_margin_calls"]),
        ambiguous_bars=int(st["ambiguous_bars"]), detail_missing_bars=int(st["detail_missing_bars"]),
        n_cancelled=int(st["n_cancelled"]),
        fees_paid=st["fees_paid"], interest_paid=st["interest_paid"],
        **{f"interest_paid_{base}": st["interest_base"], f"interest_paid_{quote}": st["interest_quote"]},
        liquidation_fees=st["liquidation_fees"], bad_debt=st["bad_debt"],
        bars=len(seconds), start=_iso(int(seconds[0])), end=_iso(int(seconds[-1])),
    )
    if st["n_write_offs"]:  # (only then: every other run's summary keeps its keys)
        out["n_write_offs"] = int(st["n_write_offs"])
    return out


def numeric_summary_keys(base="BASE", quote="QUOTE") -> list[str]:
    """The numeric keys of ``summary.json`` (what a sweep can rank by)."""
    stats = np.ones(len(kernel.STATS))
    summary = summary_of(stats, 1.0, np.array([0, 3600], dtype=np.int64), base, quote)
    return [k for k, v in summary.items() if not isinstance(v, str)]


def _in_profile_terms(records, profile):
    if not profile.pro or len(records) == 0:
        return records
    out = records.copy()
    out["margin_level"] = profile_ml(out["margin_level"], profile)
    return out


def profile_ml(assets_ml, profile):
    """A margin level (assets / debt, as the kernel keeps it) in the
    profile's own terms: Cross Margin Pro reports net equity over
    maintenance margin."""
    return pro_margin_level(assets_ml, profile.mmr) if profile.pro else assets_ml


def level_terms(profile):
    """The venue's level as the profile reports it: a perp's health as it is,
    a spot margin level in the profile's terms (``profile_ml``)."""
    return (lambda x: x) if profile.perp else (lambda x: profile_ml(x, profile))


@lru_cache(maxsize=64)  # a sweep asks for the same two times once per combination
def _iso(second: int) -> str:
    return str(pd.Timestamp(second, unit="s", tz="UTC"))


class Backtest:
    """Data, strategy and settings kept together; ``run(**params)`` runs it.

    ``Backtest(bars, strategy, **settings)`` takes the same arguments as
    ``backtest.run``; keyword arguments to ``run`` are strategy parameters.
    """

    def __init__(self, bars, strategy="sma_cross", **settings):
        known = inspect.signature(run).parameters
        unknown = sorted(k for k in settings if k not in known or k in ("bars", "strategy", "params"))
        if unknown:  # (here, not at .run(): the mistake is in this call)
            raise TypeError(f"Backtest() got an unexpected keyword argument {unknown[0]!r}; it takes run()'s "
                            "settings (margin, capital, fee, ...)")
        bars_arg("bars", bars)  # (None was read as a file name: "None: file not found")
        self.bars = bars if isinstance(bars, pd.DataFrame) else load_ohlcv(bars)
        self.strategy = load_strategy(strategy)
        self.settings = settings
        self.result: Result | None = None

    def run(self, **params) -> Result:
        self.result = run(self.bars, self.strategy, params, **self.settings)
        return self.result

    def plot(self, path=None, log=False):
        if self.result is None:
            self.run()
        return self.result.plot(path, log=log)


def _prepare_bars(bars, start, end) -> pd.DataFrame:
    return _prepared_frame(bars, start, end)[0]


def _prepared(bars, start, end) -> tuple:
    """The bars checked and cut to ``start``/``end``, and their open, high,
    low and close arrays as checked, read-only: the kernel runs on these
    whatever a strategy later does to the frame it is handed (every path
    alike; docs/model-choices.md "Bars as checked")."""
    out, prices = _prepared_frame(bars, start, end)
    if prices is None:
        prices = tuple(out[k].to_numpy(np.float64) for k in PRICES)
    return out, tuple(frozen(a) for a in prices)


def _prepared_frame(bars, start, end) -> tuple:
    """``_prepared``'s frame, and the price arrays where the check had
    them at hand (a column read from a new frame costs ~50 µs)."""
    lo, hi = _range(start, end)
    if not isinstance(bars, pd.DataFrame):
        if mark_series_name(bars):  # (its volume is 0: it traded as a symbol of its own, helper-73)
            raise UserError(f"{bars}: a mark-price series (its name says mark), not bars to trade; give it as "
                            "--mark (--mark SYMBOL=FILE with several symbols; Python mark=) beside the traded bars")
        return load_ohlcv(bars, start, end), None  # reads only that range from disk
    bars, prices = checked(bars, "bars")
    first, last = bars.index[0], bars.index[-1]
    if lo is not None and lo > last:
        raise UserError(f"--start {start}: after the data's last bar ({last})")
    if hi is not None and hi < first:
        raise UserError(f"--end {end}: before the data's first bar ({first})")
    if lo is None and hi is None:
        return bars, prices  # validate_ohlcv's own frame: no copy to make
    keep = np.ones(len(bars), dtype=bool)
    if lo is not None:
        keep &= bars.index >= lo
    if hi is not None:
        keep &= bars.index <= hi
    out = bars.loc[keep]
    if len(out) == 0:
        raise UserError(f"--start {start} --end {end}: no bars in that range")
    return out, None


def _index_of(bars):
    return bars.index if isinstance(bars.index, pd.DatetimeIndex) else pd.DatetimeIndex(bars["timestamp"])


def _range(start, end):
    """--start/--end as UTC timestamps, with the data layer's meaning (a
    date-only end includes that day), so a file and a DataFrame agree."""
    try:
        lo, hi = range_bounds(start, end)
    except UserError as exc:
        raise UserError(f"--{exc}") from None
    return (None if lo is None else pd.Timestamp(lo, tz="UTC"), None if hi is None else pd.Timestamp(hi, tz="UTC"))


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _epoch_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """The kernel's bar times (int64 epoch seconds; kept with ``index``:
    ``derived``; callers do not write into them)."""
    return derived(index, "seconds", _seconds)


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    if index.tz is None:  # a naive index: pandas' TypeError, as the subtraction of the epoch always raised
        index - pd.Timestamp(0, tz="UTC")
    from .data.clean import epoch_seconds  # (its module loads numba: not with `backtest --help`)

    # floor division of the epoch integers (what subtracting the epoch and dividing by a second does, 3 ms faster)
    seconds = np.empty(len(index), dtype=np.int64)
    i = epoch_seconds(np.ascontiguousarray(index.asi8), _PER_SECOND[index.unit], seconds)
    if i >= 0:
        raise UserError(f"bars: row {i} ({index[i]}) is less than a second after the bar before; "
                        "bars must be at least a second apart")
    return seconds


def _records_frame(records, index, symbol, columns) -> pd.DataFrame:
    """A kernel record array as a table: bar → time, codes → words; built
    column by column (a frame of the record array, reordered, cost ~1 ms more)."""
    if len(records) == 0:
        return pd.DataFrame(columns=columns)
    derived = {"time": lambda: index[records["bar"]], "symbol": lambda: repeat(symbol, len(records)),
               "side": lambda: sides(records["side"]), "kind": lambda: writeoffs.kinds(records)}
    return pd.DataFrame({c: derived[c]() if c in derived else records[c] for c in columns}, columns=columns)
