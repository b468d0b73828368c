"""Several symbols: each account to the loop that runs it, the outputs merged.

Accounts never touch each other (no transfers between them), so a run is
the union of its accounts' runs on the union time grid.  An account holding
one symbol (an isolated account, or a cross account with one symbol) is the
one-symbol kernel's case: it runs through ``kernel.simulate`` on that
symbol's own bars, with every setting that kernel has (stops, take-profit,
trailing stops, the path, auto-repay off, a mark series).  A cross account
holding several symbols runs through ``kernel_multi`` (the joint path and
the cross liquidation).  The outputs come back in ``kernel_multi``'s
layout: per-account and per-symbol rows on the union grid (an account's
numbers stand between its bars), and the records in the order the bars and
then the accounts give (events renumbered).
"""
import numpy as np
import pandas as pd

from . import bar_rows, kernel, kernel_multi
from .detail import NO_DETAIL, sub_bars
from .engine import loans_outlive_trades, simulate_arrays
from .inputs import Accounts, Grid, JointDetail, JointStops, MultiConfig, MultiOut, Settings, rates_of
from .perps import cross_columns as cross_venue_columns
from .perps import cross_venue_inputs, perp_columns, venue_inputs
from .venues.plug import USDM
from .records import LIQUIDATION, SCHEDULED, WITHDRAWAL, liquidation_multi_dt, margin_call_multi_dt, order_multi_dt
from .strategy import Orders

# the one-symbol kernel's settings a several-symbol run may give (off by default)
SINGLE_ONLY = {"stop_loss": 0.0, "take_profit": 0.0, "trailing_stop": 0.0, "pessimistic": False,
               "auto_repay": True, "repay_on_flat": False}
# the rows of the one-symbol kernel's ``extra`` (auto-repay off), cumulative except the last
ONE_SYMBOL_EXTRA = ("interest_quote", "after_base", "after_quote", "base_owed")
# the totals of ``stats``: kernel_multi's, and those only the one-symbol kernel counts
EXTRA_STATS = ("ambiguous_bars", "n_cancelled")


def simulate_multi_arrays(seconds, open_, high, low, close, targets, config, mark=None, own_marks=None,
                          own_detail=None, own_orders=None):
    """Run every account of ``config`` (``multi.run_multi``'s: the accounts'
    capital and levels, the run's settings, ``SINGLE_ONLY``'s keys if given);
    ``mark``: the (open, high, low) ``[S, n]`` arrays liquidation is checked
    on (default: the traded ones); ``own_marks``: per symbol with a mark
    series its (open, high, low, close) on the symbol's own bars;
    ``own_detail``: per symbol with finer bars its detail arrays
    (``detail.detail_arrays`` on its own bars); ``own_orders``: per symbol
    whose strategy attached limit orders, stop levels or manual loans its
    ``strategy.Orders`` on its own bars (a cross account of several symbols
    takes its stop levels and limit orders: ``multi`` refuses its manual
    loans there).  Returns
    ``(out_acct, out_sym, interest_base, interest_quote, orders,
    liquidations, margin_calls, stats)`` as ``kernel_multi`` lays them out,
    with ``extra_rows`` last: under ``"write_offs"`` the kernel's records
    of a short written off without a fill (side 0, ``books.write_offs``),
    taken out of the orders;
    and per account of one symbol run with auto-repay off the kernel's
    ``extra`` rows on the grid (``ONE_SYMBOL_EXTRA``: what the books need
    when both loans may run at once), keyed by the account; per symbol of
    a cross account of several the same rows (``kernel_multi.SYMBOL_EXTRA``),
    keyed ``("symbol", s)``."""
    mark = (open_, high, low) if mark is None else mark
    n_sym, n = open_.shape
    acct_of = config["symbol_account"]
    n_acct = config["capital"].shape[0]
    members = [np.flatnonzero(acct_of == a) for a in range(n_acct)]
    out_acct = np.empty((n_acct, len(kernel_multi.ACCOUNT_ROWS), n))
    out_sym = np.empty((n_sym, len(kernel_multi.SYMBOL_ROWS), n))
    int_b, int_q = np.zeros(n_sym), np.zeros(n_acct)
    stats = dict.fromkeys(kernel_multi.STATS + EXTRA_STATS, 0.0)
    parts, extra_rows = [], {}
    joint = [a for a in range(n_acct) if len(members[a]) > 1]
    if joint:
        parts.append(_run_joint(joint, members, seconds, (open_, high, low, close), targets, config, mark, out_acct,
                                out_sym, int_b, int_q, stats, (own_marks or {}, own_detail or {}), extra_rows,
                                own_orders or {}))
    for a in range(n_acct):
        if len(members[a]) == 1:
            s = int(members[a][0])
            parts.append(_run_single(a, s, seconds, (open_[s], high[s], low[s], close[s]), targets[s], config,
                                     (own_marks or {}).get(s), (own_detail or {}).get(s, NO_DETAIL),
                                     (own_orders or {}).get(s), out_acct, out_sym, int_b, int_q, stats, extra_rows))
    orders, liqs, calls = _merge(parts, acct_of)
    ghost = orders["side"] == 0  # (every fill has a side: kernel_multi._cross_liquidation)
    extra_rows["write_offs"] = orders[ghost]
    if len(extra_rows["write_offs"]):
        stats["n_orders"] -= len(extra_rows["write_offs"])
        orders = orders[~ghost]
    return out_acct, out_sym, int_b, int_q, orders, liqs, calls, stats, extra_rows


def _run_joint(joint, members, seconds, ohlc, targets, config, mark, out_acct, out_sym, int_b, int_q, stats,
               own, extra_rows, own_orders):
    """The cross accounts with several symbols, through ``kernel_multi`` on
    their symbols' rows (the run's own arrays and buffers when they hold
    every symbol: no copy of ``[S, n]`` arrays); its records with the run's
    symbol and account numbers.  A cross perp account (the only cross
    account) takes its venue's inputs and gives its columns; ``own``: per
    symbol its mark series and its finer bars (``simulate_multi_arrays``'s
    ``own_marks``, ``own_detail``); ``own_orders``: per symbol whose
    strategy gave stop levels its ``strategy.Orders``."""
    own_marks, own_detail = own
    syms = np.concatenate([members[a] for a in joint])
    n_sym, n = targets.shape
    whole = len(joint) == len(members) and (syms == np.arange(n_sym)).all()
    sub = (lambda arr: arr) if whole else (lambda arr: np.ascontiguousarray(arr[syms]))  # noqa: E731
    per_acct = (lambda key: config[key]) if whole else (lambda key: np.ascontiguousarray(config[key][joint]))  # noqa
    local = {a: k for k, a in enumerate(joint)}
    acct = np.array([local[a] for a in joint for _ in members[a]], dtype=np.int64)
    rates = config["rates"] if whole else np.ascontiguousarray(np.vstack([config["rates"][syms],
                                                                           config["rates"][-1:]]))
    grid = Grid(seconds, *(sub(a) for a in ohlc), sub(targets), *(sub(m) for m in mark))
    accounts = Accounts(acct, *(per_acct(k) for k in Accounts._fields[1:]))
    limits = np.full(len(syms) + 1, np.inf)  # (custom profiles: the cross account's one profile gives the quote's)
    if "borrow_limits" in config:
        limits[:-1] = [config["borrow_limits"][s][0] for s in syms]
        limits[-1] = config["borrow_limits"][syms[0]][1]
    cfg = MultiConfig(*(config[k] if k in config else SINGLE_ONLY[k] for k in MultiConfig._fields[:-3]),
                      config["rate_h0"], rates, limits)
    walk = joint_stops(config, syms, (ohlc[0], ohlc[3]), [own_orders.get(int(s)) for s in syms], own_marks)
    fine = None  # (multi: every symbol of such an account has finer bars, or none has)
    if any(int(s) in own_detail for s in syms):
        fine = joint_detail(ohlc[0][syms], [own_detail[int(s)] for s in syms])
    perp = config.get("perp", {})
    is_perp = bool(perp) and all(int(k) in perp for k in syms)  # (a cross account is perp or spot as a whole)
    # loans outlive trades (auto-repay off, a limit order's borrowing): the books' rows per symbol too
    books = (not cfg.auto_repay or (walk is not None and walk.limit.shape[1] > 0)) and not is_perp
    if whole and not books:
        o_acct, o_sym, i_b, i_q = out_acct, out_sym, int_b, int_q
    else:
        o_acct = np.empty((len(joint), len(kernel_multi.ACCOUNT_ROWS), n))
        o_sym = np.empty((len(syms), len(kernel_multi.SYMBOL_ROWS) + books * len(kernel_multi.SYMBOL_EXTRA), n))
        i_b, i_q = np.zeros(len(syms)), np.zeros(len(joint))
    venue = None
    if is_perp:
        venue, f_times, f_syms = cross_venue_inputs(perp, syms, seconds, ohlc[0], ohlc[3], own_marks,
                                                    config["leverage"][joint[0]])
        cfg = cfg._replace(rates=np.zeros_like(rates))  # no borrowing, no interest
    changes = int(np.count_nonzero(~np.isnan(grid.target)))
    per_step = kernel_multi.ORDERS_PER_STEP
    sizes = [min(changes, n * len(syms)) + 64 * len(syms) * per_step, 64 * len(joint) * per_step, 64 + len(joint)]
    while True:
        orders, liqs, calls = (np.empty(k, dtype=dt) for k, dt in
                               zip(sizes, (order_multi_dt, liquidation_multi_dt, margin_call_multi_dt)))
        complete, tot = kernel_multi.simulate_multi(grid, accounts, cfg, MultiOut(o_acct, o_sym, i_b, i_q), orders,
                                                    liqs, calls, venue, walk, fine, None if is_perp else True)
        st = dict(zip(kernel_multi.STATS, tot.tolist()))
        if complete:
            break
        sizes = [k * 4 for k in sizes]
    if o_acct is not out_acct:
        out_acct[joint], out_sym[syms], int_b[syms], int_q[joint] = o_acct, o_sym[:, :2], i_b, i_q
    if books:  # as an account of one symbol's (keyed by the symbol: a joint account holds several)
        for r, sym in enumerate(syms.tolist()):
            extra_rows[("symbol", sym)] = o_sym[r, 2:]
    if venue is not None:
        last_close = last_closes(ohlc[3][syms])
        ratio, lp, dist = cross_venue_columns(venue, out_sym[syms, 0], out_acct[joint[0], 0], last_close)
        extra_rows[("perp", joint[0])] = dict(venue=venue, times=f_times, symbols=f_syms, ratio=ratio,
                                              liquidation_price=dict(zip(syms.tolist(), lp)),
                                              distance=dict(zip(syms.tolist(), dist)))
    for k, v in st.items():
        stats[k] += v
    orders, liqs = orders[:int(st["n_orders"])], liqs[:int(st["n_liquidations"])]
    calls = calls[:int(st["n_margin_calls"])]
    orders["symbol"] = syms[orders["symbol"]]
    liqs["account"] = np.asarray(joint)[liqs["account"]]
    calls["account"] = np.asarray(joint)[calls["account"]]
    return orders, liqs, calls


def joint_stops(config, syms, grid, given, own_marks):
    """The stop settings of symbols ``syms`` (rows of ``grid``, the grid's
    ``[S, n]`` opens and closes, NaN where a symbol has no bar) for
    ``kernel_multi``: the run's fractions, a strategy's own (``given[r]``,
    its ``strategy.Orders`` on the symbol's own bars, or None) replacing
    them for its symbol, and its stop-loss / take-profit prices, each in
    force during the symbol's next own bar (docs/model-choices.md "Stops on
    a joint path"); with a mark series for one of them (``own_marks``: per
    symbol row its (open, high, low, close) on its own bars) the closes the
    walk's mark paths end at; its limit prices on the grid and expiry
    (docs "Limit orders in a cross account of several symbols").  None when
    no symbol has a stop on or limit orders (the kernel then compiles no
    joint walk)."""
    opens, closes = grid
    keys = ("stop_loss", "take_profit", "trailing_stop")
    fractions = np.array([[float((g.fractions if g is not None else {}).get(k, config.get(k, 0.0))) for k in keys]
                          for g in given]).reshape(len(syms), 3)
    priced = [g is not None and (g.stop_loss.size or g.take_profit.size) for g in given]
    n = opens.shape[1]
    sl = np.full((len(syms), n if any(priced) else 0), np.nan)
    tp = np.full_like(sl, np.nan)
    for r, (s, g) in enumerate(zip(syms, given)):
        if priced[r]:
            own = np.flatnonzero(~np.isnan(opens[s]))  # the symbol's own bars on the grid
            for out, levels in ((sl, g.stop_loss), (tp, g.take_profit)):
                if levels.size:  # given at own bar j, in force during own bar j + 1
                    out[r, own[1:]] = levels[:-1]
    limited = [g is not None and g.limit.size > 0 for g in given]
    limit = np.full((len(syms), n if any(limited) else 0), np.nan)
    expiry = np.array([g.expiry if g is not None else 1 for g in given] if any(limited) else [], dtype=np.int64)
    for r, (s, g) in enumerate(zip(syms, given)):
        if limited[r]:  # given at own bar j, read with the target decided there
            limit[r, np.flatnonzero(~np.isnan(opens[s]))] = g.limit
    if not fractions.any() and not any(priced) and not any(limited):
        return None
    marked = [r for r, s in enumerate(syms) if int(s) in own_marks]
    mark_close = np.empty((len(syms), 0))
    if marked:  # the traded closes, each marked symbol's mark closes on its own bars
        mark_close = np.ascontiguousarray(closes[syms])
        for r in marked:
            mark_close[r, np.flatnonzero(~np.isnan(opens[syms[r]]))] = own_marks[int(syms[r])][3]
    return JointStops(fractions, sl, tp, mark_close, limit, expiry)


def joint_detail(opens, given):
    """The finer bars of a cross account's symbols for ``kernel_multi``
    (``inputs.JointDetail``): ``opens`` their grid opens ``[S, n]`` (NaN where
    a symbol has no bar), ``given[r]`` row r's ``detail.detail_arrays`` on
    its own bars (``multi`` has checked that each symbol has them, each
    bar's sub-bars one count)."""
    n_sym, n = opens.shape
    width = max(len(g[0]) for g in given)
    cols = np.full((4, n_sym, width), np.nan)
    start = np.full((n_sym, n), -1, dtype=np.int64)
    for r, g in enumerate(given):
        for c in range(4):
            cols[c, r, :len(g[c])] = g[c]
        usable = g[5] > g[4]
        start[r, np.flatnonzero(~np.isnan(opens[r]))[usable]] = g[4][usable]
    return JointDetail(cols[0], cols[1], cols[2], cols[3], start, np.int64(max(sub_bars(g) for g in given)))


def last_closes(close):
    """``[S, n]`` closes, a symbol's last close where it has no bar (0 before its first)."""
    if not np.isnan(close).any():  # every symbol has every bar: its closes (pandas' ffill took 23 ms for 2 x 1M)
        return close.copy()
    return np.nan_to_num(pd.DataFrame(close.T).ffill().to_numpy().T, nan=0.0)


def _run_single(a, s, seconds, ohlc, target, config, own_mark, fine, given, out_acct, out_sym, int_b, int_q, stats,
                extra_rows):
    """Account ``a`` holding only symbol ``s``: the one-symbol kernel on the
    symbol's own bars; its rows spread on the union grid (before its first
    bar the capital, untouched), its records in the several-symbol layout."""
    bars = np.flatnonzero(~np.isnan(ohlc[0]))
    extra = {k: config.get(k, v) for k, v in SINGLE_ONLY.items()}
    extra.update(given.fractions if given is not None else {})  # a strategy's own fractions come first
    perp = config.get("perp", {}).get(s)  # (bracket versions, funding times, rates) of a perp symbol
    fee = config["fee_acct"][a] if "fee_acct" in config else config["fee"]
    cfg = Settings(
        float(config["capital"][a]), float(fee), config["slippage"], config["initial_ml"][a], config["call_ml"][a],
        config["liquidation_ml"][a], config["liquidation_fee"][a], config["restore_ml"][a],
        bool(config["full_liquidation"]), config["rebalance"], bool(config["round_interest"]),
        bool(config["stop_on_liquidation"]), float(extra["stop_loss"]), float(extra["take_profit"]),
        float(extra["trailing_stop"]),
        bool(extra["pessimistic"]), bool(extra["auto_repay"]), bool(extra["repay_on_flat"]),
        *(config["borrow_limits"][s] if "borrow_limits" in config else (np.inf, np.inf)),
        *((USDM, float(config["leverage"][a]), bool(config["isolated"][a])) if perp is not None else ()))
    rates = rates_of(config["rate_h0"], config["rates"][s], config["rates"][-1])
    own = tuple(np.ascontiguousarray(x[bars]) for x in ohlc)
    venue = None
    if perp is not None:  # no borrowing; the symbol's bracket tables and funding on its own bars
        rates = rates_of(rates.h0, np.zeros_like(rates.base), np.zeros_like(rates.quote))
        m_open, m_close = (own[0], own[3]) if own_mark is None else (own_mark[0], own_mark[3])
        venue, f_times = venue_inputs(perp[0], seconds[bars], m_open, m_close, perp[1], perp[2])
    moves = config.get("moves", {}).get(a)  # the account's scheduled transfers, reserve, buffer, loans (transfers.py)
    manual = config.get("manual", {}).get(a, False)
    if manual:  # (an asset held beside its loan: liquidations net first; orders borrow only with auto-borrow)
        cfg = cfg._replace(auto_borrow=bool(config.get("auto_borrow", True)), manual_loans=True)
    exact = loans_outlive_trades(given if given is not None else Orders(target),
                                 bool(extra["auto_repay"]) and not manual, True)
    buf, orders, liqs, calls, tot, *flows = simulate_arrays(
        seconds[bars], *own, np.ascontiguousarray(target[bars]),
        (cfg, rates), mark=own_mark, detail=fine, orders=given, quote_row=exact, venue=venue, flows=moves)
    st = dict(zip(kernel.STATS, tot.tolist()))
    last = np.cumsum(~np.isnan(ohlc[0])) - 1  # per bar of the grid, the account's last own bar (−1: none yet)
    before = last < 0
    spread = lambda row, start: np.where(before, start, row[np.maximum(last, 0)])  # noqa: E731
    equity, position, debt, owed, paid = buf[:bar_rows.ROWS]
    if perp is not None:  # row 2 is the cross wallet outside the isolated position: its columns, then no debt
        cols = perp_columns(equity, position, debt, own[3], venue)
        extra_rows[("perp", a)] = dict(venue=venue, times=f_times, symbols=np.full(len(f_times), s),
                                       ratio=spread(cols[0], 0.0), liquidation_price={s: spread(cols[1], np.nan)},
                                       distance={s: spread(cols[2], np.nan)})
        debt = np.zeros_like(debt)
    out_acct[a] = (spread(equity, cfg.capital), spread(debt, 0.0), spread(owed, 0.0), spread(paid, 0.0))
    out_sym[s] = (spread(position, 0.0), out_acct[a, 3])  # (unread: the trades of an account of one symbol take
    # the account's interest, multi._result)
    if buf.shape[0] > bar_rows.ROWS:
        extra_rows[a] = np.vstack([spread(row, 0.0) for row in buf[bar_rows.ROWS:]])
    if moves is not None:  # the moves' log and per-bar reserve and net transfers, on the grid
        extra_rows[("moves", a)] = _moves_on_grid(flows[0], moves, seconds, bars, equity, cfg,
                                                  config["moves_level"][a], spread, *config["assets"][s])
    int_b[s], int_q[a] = st["interest_base"], st["interest_quote"]
    for k in stats:
        stats[k] += st[k]
    return _records(a, s, bars, orders, liqs, calls)


def _moves_on_grid(flows, spec, seconds, bars, equity, cfg, level, spread, base, quote):
    """An account's moves (``transfers.outputs`` on its own bars): its table, and on the grid its reserve, net
    transfers and the scheduled transfers per bar (the flows of the run's returns); its summary fields."""
    from .metrics import periods_per_year
    from .transfers import outputs

    own = seconds[bars]
    own_index = pd.DatetimeIndex(pd.to_datetime(own, unit="s", utc=True), name="timestamp")
    table, net, reserve, fields, loans = outputs(flows, spec, own_index, equity, quote, cfg.capital,
                                                 periods_per_year(own), level, base)
    log = flows.log[: flows.count[0]]
    flow = np.zeros(len(seconds))
    scheduled = (log["reason"] == SCHEDULED) | (log["reason"] == WITHDRAWAL)
    np.add.at(flow, bars[log["bar"][scheduled]], log["amount"][scheduled])
    return dict(table=table, reserve=None if reserve is None else spread(reserve, spec[2]),
                net=None if net is None else spread(net, 0.0), flow=flow, fields=fields, reserve0=spec[2],
                loans=loans)


def _records(a, s, bars, orders, liqs, calls):
    """One-symbol records as several-symbol ones: bars on the union grid,
    the symbol and account; a liquidation fill names its event (one fill per
    event in this kernel, in the same order) and trigger."""
    o = _widened(orders, order_multi_dt, bars, symbol=s, trigger=np.nan, event=-1)
    fills = np.flatnonzero(orders["kind"] == LIQUIDATION)
    o["event"][fills] = np.arange(len(fills))
    o["trigger"][fills] = liqs["trigger_price"]
    return (o, _widened(liqs, liquidation_multi_dt, bars, account=a, theta=np.nan),
            _widened(calls, margin_call_multi_dt, bars, account=a))


def _widened(records, dtype, bars, **fields):
    """``records`` in the wider ``dtype``, their bar on the grid (``bars``:
    the grid row of each own bar), the added ``fields`` set."""
    out = np.zeros(len(records), dtype=dtype)
    for name in records.dtype.names:
        out[name] = records[name]
    out["bar"] = bars[records["bar"]]
    for name, value in fields.items():
        out[name] = value
    return out


def _merge(parts, acct_of):
    """The records of every account in one table each, ordered by bar, then
    account (the order ``kernel_multi`` steps them in); a fill's event
    number follows its liquidation's new row."""
    orders = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, order_multi_dt)
    liqs = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, liquidation_multi_dt)
    calls = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, margin_call_multi_dt)
    # each part numbers its events from 0: first the row in the concatenation, then after the sort
    offsets = np.cumsum([0] + [len(p[1]) for p in parts[:-1]]).astype(np.int64)
    event = orders["event"] + np.repeat(offsets, [len(p[0]) for p in parts])
    l_order = np.lexsort((liqs["account"], liqs["bar"]))  # (stable)
    new_row = np.zeros(max(len(liqs), 1), np.int64)
    new_row[l_order] = np.arange(len(liqs))
    liqs = liqs[l_order]
    orders["event"] = np.where(orders["event"] >= 0, new_row[np.where(orders["event"] >= 0, event, 0)], -1)
    orders = orders[np.lexsort((acct_of[orders["symbol"]], orders["bar"]))]
    calls = calls[np.lexsort((calls["account"], calls["bar"]))]
    return orders, liqs, calls
