"""Several symbols in one run: bars → targets → ``kernel_multi`` → Result.

``run_multi`` is ``run`` for S ≥ 2 symbols: the bars are aligned on the
union of their timestamps (a symbol trades only on its own bars; between
them its last close values the account), each symbol goes into the cross
account or its own isolated account (``margin``), capital is split between
the accounts (``allocation``).  The rules are docs/model-choices.md
"Several symbols".
"""
import math
from dataclasses import replace

import numpy as np
import pandas as pd

from . import warm
from .assets import DEFAULT_DAILY_RATE, split_symbol
from . import perps, writeoffs
from .books import cross_liquidation_shares, shared_quote_interest, write_offs
from .checks import _type_error, api, bars_arg, check_args
from .errors import UserError
from .liqprice import liquidation_columns
from .multi_accounts import last_closes, simulate_multi_arrays
from .metrics import periods_per_year, relative, return_sums, summarize
from .profiles import Profile, get_profile
from .rates import rate_table
from .records import LIMIT, LIQUIDATION
from .result import Result
from .strategy import Orders, call_user, check_targets, load_strategy
from .trades import TRADE_COLUMNS, flat_costs, interest_by_asset, round_trips
from .words import sides, words

CROSS = "cross"  # the cross account's name (in --allocation, tables and columns)


def parse_margin(spec, symbols, custom=None) -> dict:
    """``"cross-3x"`` (every symbol), or ``"BTCUSDT=isolated-10x,ETHUSDT=cross-3x"``
    (per symbol; a bare profile in the list is the default of the others)
    → ``{symbol: Profile}``.  Every cross symbol must share one profile: they
    share one account.  ``custom``: a ``--margin-file``'s profiles."""
    if isinstance(spec, dict):
        items = [(str(k).upper(), v) for k, v in spec.items()]
    else:
        items = []
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, prof = part.partition("=")
            items.append((name.strip().upper(), prof.strip()) if sep else (None, part))
    default = None
    given = {}
    for name, prof in items:
        profile = prof if isinstance(prof, Profile) else get_profile(prof, custom)
        if name is None:
            if default is not None:
                raise UserError(f"--margin {spec}: two default profiles; name the symbols (SYMBOL=PROFILE)")
            default = profile
        elif name not in symbols:
            raise UserError(f"--margin {name}: not a symbol of this run ({', '.join(symbols)})")
        elif name in given:
            raise UserError(f"--margin {name}: given twice")
        else:
            given[name] = profile
    out = {}
    for sym in symbols:
        prof = given.get(sym, default)
        if prof is None:
            raise UserError(f"--margin {spec}: no profile for {sym} (add {sym}=PROFILE or a default profile)")
        out[sym] = prof
    cross = {p.name for p in out.values() if not p.isolated}
    if len(cross) > 1:
        raise UserError(f"--margin {spec}: cross symbols share one account, so one cross profile "
                        f"(got {', '.join(sorted(cross))})")
    _one_mmr(out)  # (after the check: it gives every cross symbol the one profile's MMR)
    return out


def _one_mmr(profiles: dict):
    """A Pro profile's per-asset MMRs (Pro is cross only), as in a
    one-symbol run: the cross account's assets (every base and the quote)
    must share one MMR, which the account takes; different ones are refused
    (Pro's ML is then no function of A / D alone, docs/model-choices.md)."""
    cross = [s for s, p in profiles.items() if not p.isolated]
    if not any(profiles[s].asset_mmr for s in cross):
        return
    prof = profiles[cross[0]]
    mmrs = {a: prof.mmr_of(a) for a in [split_symbol(s)[0] for s in cross] + [split_symbol(cross[0])[1]]}
    if len(set(mmrs.values())) > 1:
        listed = ", ".join(f"{a} ({r:g})" for a, r in mmrs.items())
        raise UserError(f"--margin {prof.name}: different MMRs in one cross account ({listed}) are not supported "
                        "yet; give its assets the same MMR")
    for s in cross:
        profiles[s] = replace(prof, mmr=next(iter(mmrs.values())))


def accounts_of(profiles: dict) -> list:
    """``[(name, profile, [symbols])]``: the cross account (if any symbol is
    cross) first, then one isolated account per isolated symbol."""
    cross = [s for s, p in profiles.items() if not p.isolated]
    out = [(CROSS, profiles[cross[0]], cross)] if cross else []
    out += [(s, p, [s]) for s, p in profiles.items() if p.isolated]
    return out


def parse_allocation(spec, names, cross_symbols=()) -> dict:
    """``"BTCUSDT=0.6,ETHUSDT=0.4"`` (or a dict) → fraction of the capital per
    account (``cross`` names the cross account); default equal shares."""
    if isinstance(spec, str) and not spec.strip():  # (taken as not given before: the default shares, unsaid)
        raise UserError("--allocation: empty; give ACCOUNT=FRACTION,... or leave it out (equal shares)")
    if spec is None or spec == {}:
        return {n: 1.0 / len(names) for n in names}
    if isinstance(spec, dict):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for part in str(spec).split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or not name:
                raise UserError(f"--allocation {part.strip()}: expected ACCOUNT=FRACTION, e.g. BTCUSDT=0.5")
            items.append((name.strip(), value.strip()))
    out = {}
    for name, value in items:
        key = CROSS if name.lower() == CROSS else name.upper()
        if key not in names:
            hint = " (it trades in the cross account: name that one 'cross')" if key in cross_symbols else ""
            raise UserError(f"--allocation {name}: not an account of this run ({', '.join(names)}){hint}")
        if key in out:
            raise UserError(f"--allocation {name}: given twice")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise UserError(f"--allocation {name}={value}: expected a fraction") from None
        if not (math.isfinite(f) and 0.0 < f <= 1.0):
            raise UserError(f"--allocation {name}={value}: a fraction must be in (0, 1]")
        out[key] = f
    missing = [n for n in names if n not in out]
    if missing:
        raise UserError(f"--allocation: no fraction for {', '.join(missing)} (every account needs one)")
    total = sum(out.values())
    if abs(total - 1.0) > 1e-9:
        raise UserError(f"--allocation: fractions sum to {total:g}, not 1")
    return out


def load_panel(data, start=None, end=None) -> dict:
    """``{symbol: bars}`` from paths or DataFrames (``attrs['symbol']`` or a
    dict key naming the pair); one quote asset for all; no symbol twice."""
    from .engine import _prepare_bars, symbol_of

    items = list(data.items()) if isinstance(data, dict) else [(None, d) for d in data]
    panel = {}
    quote = None
    for key, d in items:
        bars = _prepare_bars(d, start, end)
        sym = str(key or symbol_of(bars)).upper()
        if sym in panel:
            raise UserError(f"--data {d if not isinstance(d, pd.DataFrame) else sym}: {sym} given twice")
        base, q = split_symbol(sym)
        if quote is not None and q != quote:
            raise UserError(f"--data {sym}: quoted in {q}, the others in {quote}; "
                            "one account needs one quote asset")
        quote = q
        bars.attrs["symbol"] = sym
        panel[sym] = bars
    if len(panel) < 2:
        raise UserError("--data: several symbols need at least two files")
    return panel


def parse_marks(spec, symbols=None, flag="--mark") -> dict:
    """``--mark SYMBOL=FILE`` (repeatable: a list of such strings) or a dict
    ``{symbol: path or DataFrame}`` → ``{SYMBOL: path or DataFrame}``, each
    symbol once and (given ``symbols``) a symbol of the run.  A bare file is
    refused: with several symbols a file names its symbol.  ``flag``: the
    option it is (``--mark``, ``--detail``)."""
    if spec is None:
        return {}
    example = "BTCUSDT-mark-1h" if flag == "--mark" else "BTCUSDT-1m"
    if isinstance(spec, dict):
        items = [(str(k).strip().upper(), v) for k, v in spec.items()]
    else:
        items = []
        for part in spec:
            name, sep, path = str(part).partition("=")
            if not sep:
                raise UserError(f"{flag} {part}: with several symbols name the symbol, {flag} SYMBOL=FILE "
                                "(repeat it per symbol)")
            if not name.strip() or not path.strip():
                raise UserError(f"{flag} {part}: expected SYMBOL=FILE, e.g. BTCUSDT={example}.parquet")
            items.append((name.strip().upper(), path.strip()))
    out = {}
    for name, value in items:
        if symbols is not None and name not in symbols:
            raise UserError(f"{flag} {name}: not a symbol of this run ({', '.join(symbols)})")
        if name in out:
            raise UserError(f"{flag} {name}: given twice")
        out[name] = value
    return out


def _mark_grid(marks, panel, index, cols):
    """The bars liquidation is checked on, ``[S, n]`` on the union grid: each
    symbol's mark series (``engine.mark_arrays``: the traded bar where the
    mark lacks one; another market's series refused), the traded bars for
    symbols without one, NaN where a symbol has no bar.  Returns (open, high,
    low), the bars each mark series lacked per symbol, and per symbol
    (row) with a series its (open, high, low, close) on the symbol's bars."""
    from .engine import mark_arrays

    if not marks:
        return (cols["open"], cols["high"], cols["low"]), {}, {}
    grid = [cols[k].copy() for k in ("open", "high", "low")]
    missing, by_row = {}, {}
    for k, sym in enumerate(panel):
        if sym not in marks:
            continue
        mark = marks[sym]
        name = f"{sym}={mark if not isinstance(mark, pd.DataFrame) else '(table)'}"
        own, missing[sym] = mark_arrays(mark, panel[sym], sym, name=name)
        by_row[k] = own
        at = index.get_indexer(panel[sym].index)
        for g, values in zip(grid, own):
            g[k, at] = values
    return tuple(np.ascontiguousarray(g) for g in grid), missing, by_row


def _daily_rates(symbols, rates):
    assets = {split_symbol(s)[0] for s in symbols} | {split_symbol(symbols[0])[1]}
    rates = {str(k).upper(): v for k, v in (rates or {}).items()}
    out = {}
    for asset in rates:
        if asset not in assets:
            raise UserError(f"--rate {asset}: this run trades {', '.join(sorted(assets))} only")
    for asset in assets:
        r = float(rates.get(asset, DEFAULT_DAILY_RATE))
        if not (r >= 0.0 and math.isfinite(r)):
            raise UserError(f"--rate {asset}={r}: a daily rate must be a finite number ≥ 0")
        out[asset] = r
    return out


def _targets(strat, panel, params, index) -> np.ndarray:
    """``[S, n]`` targets on the union grid.  A strategy with ``MULTI = True``
    gets ``{symbol: bars}`` and returns a DataFrame (columns symbols, index
    times) or ``{symbol: Series}``; any other strategy runs on each symbol's
    bars alone.  Also returns, per symbol row whose strategy output carries
    more than targets (limit orders, stop levels or fractions, manual loans), that
    ``strategy.Orders`` on the symbol's own bars."""
    symbols = list(panel)
    attached = {}
    out = np.full((len(symbols), len(index)), np.nan)
    multi = bool(getattr(strat.module, "MULTI", False)) or strat.name == "targets"
    if multi:
        raw = call_user(strat.targets, f"strategy {strat.name}", panel, **params)
        if isinstance(raw, dict):
            raw = pd.DataFrame({str(k).upper(): pd.Series(v) for k, v in raw.items()})
        if not isinstance(raw, pd.DataFrame):
            raise UserError(f"strategy {strat.name} returned {type(raw).__name__}; several symbols need a "
                            "DataFrame (columns: symbols, index: times)")
        raw = raw.rename(columns=lambda c: str(c).upper())
        unknown = [c for c in raw.columns if c not in symbols]
        if unknown:
            raise UserError(f"strategy {strat.name}: target column {unknown[0]} is not a symbol of the run")
        idx = pd.DatetimeIndex(raw.index)
        raw.index = idx.tz_localize("UTC") if idx.tz is None else idx
        for k, sym in enumerate(symbols):
            if sym in raw:
                out[k] = check_targets(raw[sym].reindex(index), len(index), strat.name, index)  # (numbers only)
        return out, attached
    for k, sym in enumerate(symbols):
        bars = panel[sym]
        given = strat.orders(bars, params)
        out[k] = pd.Series(given.target, index=bars.index).reindex(index).to_numpy(np.float64)
        if given.limit.size or given.stop_loss.size or given.take_profit.size or given.fractions or given.loans:
            attached[k] = given
    return out, attached


@api(**{"--data": "data"})
def run_multi(data, strategy="sma_cross", params=None, *, margin="cross-3x", allocation=None,
              capital: float = 10_000.0, fee: float | None = None, slippage: float = 0.0, rates=None,
              liquidation: str = "partial", rebalance: float = 0.0, round_interest: bool = True, start=None,
              end=None, stop_on_liquidation: bool = False, margin_file=None, rate_history=None, mark=None,
              stop_loss: float = 0.0, take_profit: float = 0.0, trailing_stop: float = 0.0,
              path: str = "ohlc-heuristic", detail=None, auto_repay: bool = True,
              repay_on_flat: bool = False, funding=None, funding_rate=None, brackets=None, transfers=None,
              reserve=0.0, top_up=None, keep_ml=None, auto_borrow: bool = True) -> Result:
    """Backtest several symbols (``data``: paths, DataFrames or ``{symbol:
    bars}``) in a cross account, isolated accounts, or a mix.

    ``margin``: one profile for every symbol, or ``"SYM=PROFILE,..."`` / a
    dict (isolated symbols get their own account; the others share the cross
    account; a profile's ``mode`` decides, also for ``margin_file``'s
    profiles).  ``allocation``: fraction of ``capital`` per account
    (``{"BTCUSDT": 0.5, "cross": 0.5}``), equal shares by default; transfers
    between accounts never happen.  ``rate_history``: as ``backtest.run``'s
    (every asset it names follows it, the others pay ``rates``).  ``mark``:
    ``{symbol: mark bars (a path or a DataFrame)}``, per symbol as
    ``backtest.run``'s ``mark`` (a symbol not named is checked on its traded
    bars; ``summary["mark_missing_bars_<SYMBOL>"]`` counts the bars its
    series lacked); a cross account's joint path runs on the marks
    (docs/model-choices.md "Several symbols").  ``stop_loss``,
    ``take_profit``, ``trailing_stop`` and a strategy's own stop levels work
    for every account (a cross account of several symbols: on one joint
    path, its liquidation on the marks' paired path, on perps too);
    ``path``, ``detail`` (``{symbol: finer bars}``), ``auto_repay`` and ``repay_on_flat`` for
    every account (a cross account of several symbols takes ``detail`` for
    all its symbols or none, one timeframe, and auto-repay off by the rules
    of docs/model-choices.md "Auto-repay off in a cross account of several
    symbols"; ``path`` changes nothing there).
    Perpetual-futures profiles (``usdm-*``) run
    in isolated accounts or one cross account (of one symbol, or several:
    the venue's joint rules, docs/model-choices.md); ``funding``: ``{symbol: file}``
    (default the bundled file beside bundled perp data), ``funding_rate``
    and ``brackets`` as ``backtest.run``'s; ``fee`` defaults to each
    account's venue's.  ``transfers`` (``["BTCUSDT@2020-03-12=5000", ...]``
    or ``{symbol: transfers}``), ``reserve`` (``{symbol: amount}``: each
    account keeps its own), ``top_up`` and ``keep_ml`` (every account
    holding one symbol) as ``backtest.run``'s, for accounts of one symbol
    (docs/model-choices.md "Transfers and a reserve"); ``auto_borrow`` and
    a strategy's ``borrow`` / ``repay`` too ("Manual loans").  Other
    arguments as ``backtest.run``.
    """
    from .engine import _epoch_seconds, _rate_history
    from .settings import SPOT_FEE, RunSettings

    for name, given in (("mark", mark), ("detail", detail), ("funding", funding)):  # one series: which symbol's?
        if given is not None and not isinstance(given, dict):
            raise _type_error(name, given, "a dict {symbol: Parquet path or DataFrame}, one per symbol")
    check_args({k: v for k, v in locals().items() if k not in ("mark", "detail", "funding")})
    for name, given in (("mark", mark), ("detail", detail)):
        for key, value in (given or {}).items():
            bars_arg(f"{name}[{key!r}]", value)
    rs = RunSettings(capital, fee, slippage, rates, liquidation, rebalance, round_interest, stop_on_liquidation,
                     stop_loss, take_profit, trailing_stop, path, auto_repay, repay_on_flat, auto_borrow=auto_borrow)
    panel = load_panel(data, start, end)
    symbols = list(panel)
    custom = {}
    if margin_file is not None:
        from .profile_file import load_profiles

        custom = load_profiles(margin_file)
    profiles = parse_margin(margin, symbols, custom)
    accounts = accounts_of(profiles)
    names = [a[0] for a in accounts]
    shares = parse_allocation(allocation, names, [s for s in symbols if not profiles[s].isolated])
    daily = _daily_rates(symbols, rates)
    history = _rate_history(rate_history, rates)
    marks = parse_marks(mark, symbols)
    details = parse_marks(detail, symbols, "--detail")
    _single_only(rs, details, accounts)
    quote = split_symbol(symbols[0])[1]
    index = panel[symbols[0]].index
    for sym in symbols[1:]:
        index = index.union(panel[sym].index)
    index = index.rename("timestamp")
    if isinstance(strategy, (pd.DataFrame, dict)):  # ready targets: columns symbols, index times
        from .strategy import Strategy

        ready = strategy
        strat = Strategy("targets", {}, lambda panel: ready)
    else:
        strat = load_strategy(strategy)
    resolved = strat.resolve(params)
    targets, attached = _targets(strat, panel, resolved, index)
    _attached_orders(strat.name, attached, symbols, accounts, details, rs)
    funding_used = {}  # per perp symbol, the funding file or table its run charges (given, or beside the data)
    perp_inputs = _perp_inputs(panel, symbols, profiles, marks, details, rs, rates, rate_history, funding,
                               funding_rate, brackets, funding_used)

    seconds = _epoch_seconds(index)
    cols = {k: np.vstack([panel[s][k].reindex(index).to_numpy(np.float64) for s in symbols])
            for k in ("open", "high", "low", "close")}
    mark_cols, mark_missing, own_marks = _mark_grid(marks, panel, index, cols)
    acct_of = np.array([next(j for j, a in enumerate(accounts) if s in a[2]) for s in symbols], dtype=np.int64)
    levels = np.array([a[1].kernel_levels() for a in accounts], dtype=np.float64)  # initial, call, liq, restore
    h0, table = rate_table(seconds, [split_symbol(s)[0] for s in symbols] + [quote], daily, history)
    config = dict(
        symbol_account=acct_of, capital=np.array([capital * shares[n] for n in names]), fee=float(rs.venue_fee(accounts[0][1])),
        slippage=float(slippage), rate_h0=np.int64(h0), rates=np.ascontiguousarray(np.vstack(table)),
        initial_ml=levels[:, 0].copy(), call_ml=levels[:, 1].copy(),
        liquidation_ml=levels[:, 2].copy(), liquidation_fee=np.array([a[1].liquidation_fee for a in accounts]),
        restore_ml=levels[:, 3].copy(), full_liquidation=liquidation == "full", rebalance=float(rebalance),
        round_interest=bool(round_interest), stop_on_liquidation=bool(stop_on_liquidation),
        stop_loss=rs.stop_loss, take_profit=rs.take_profit, trailing_stop=rs.trailing_stop,
        pessimistic=rs.path == "pessimistic", auto_repay=rs.auto_repay, repay_on_flat=rs.repay_on_flat,
        fee_acct=np.array([rs.venue_fee(a[1]) for a in accounts]),
        leverage=np.array([a[1].max_leverage for a in accounts]), isolated=np.array([a[1].isolated for a in accounts]),
        perp=perp_inputs, assets=[split_symbol(s) for s in symbols], auto_borrow=rs.auto_borrow,
        borrow_limits=[profiles[s].borrow_limits(*split_symbol(s)) for s in symbols],
    )
    moves = _moves(transfers, reserve, top_up, keep_ml, symbols, accounts, cols, seconds, rs, attached, details)
    if moves:
        config["moves"], config["moves_level"], config["manual"] = moves
    fine, n_fine = _details(details, marks, panel, symbols, accounts)
    # a compile helper on a cold cache (warm.py): for the one-symbol kernel when every account holds one
    # symbol, else for the kernel of a cross account of several symbols (on spot margin; on perps without
    # stops or limit orders)
    joint = [a for a in accounts if len(a[2]) > 1]
    if not joint:
        walk = rs.stops_on or bool(details or attached)  # (else no walk compiled)
        helper, perp = warm.start_for([a[1] for a in accounts], walk=walk)
        warm.announce(helper)
    else:
        shared = {s for a in joint for s in a[2]}
        joint_walk = rs.stops_on or any(symbols[k] in shared for k in attached)  # (multi_accounts.joint_stops)
        all_perp = all(a[1].perp for a in joint)  # (a cross perp account: a helper without a walk, nothing to join)
        if all_perp:
            helper = None if joint_walk or shared & set(details) else warm.start_multi_perp()
        else:
            helper = None if any(a[1].perp for a in joint) else warm.start_multi(joint_walk,
                                                                                bool(shared & set(details)))
        warm.announce(helper, multi=True, singles=len(joint) < len(accounts))
    with warm.running(helper):  # (after the kernel: its passes, which _result runs)
        if not joint:
            warm.join(helper, perp)
        elif not all_perp:
            warm.join_multi(helper)
        out_acct, out_sym, int_b, int_q, orders, liqs, calls, stats, exact = simulate_multi_arrays(
            seconds, cols["open"], cols["high"], cols["low"], cols["close"], targets, config, mark_cols, own_marks,
            fine, attached)
    given = {s: str(m) if not isinstance(m, pd.DataFrame) else "bars" for s, m in marks.items()}
    result = _result(panel, symbols, accounts, index, seconds, cols, out_acct, out_sym, int_b, int_q, orders, liqs,
                     calls, stats, dict(
                       data=[str(d) if not isinstance(d, pd.DataFrame) else "bars"
                             for d in (data.values() if isinstance(data, dict) else data)],
                       symbol=",".join(symbols), strategy=strat.name, params=resolved,
                       margin=",".join(f"{s}={profiles[s].name}" for s in symbols),
                       margin_file=None if margin_file is None else str(margin_file),
                       accounts={n: {"profile": p.name, "symbols": syms, "capital": capital * shares[n]}
                                 for n, p, syms in accounts},
                       capital=float(capital), fee=float(fee) if fee is not None else (
                           {n: float(f) for n, f in zip(names, config["fee_acct"])} if perp_inputs else SPOT_FEE),
                       slippage=float(slippage), rates=daily,
                       rate_history=None if rate_history is None else (
                           str(rate_history) if not isinstance(rate_history, (dict, pd.DataFrame)) else "table"),
                       mark=given or None,
                       liquidation=liquidation, rebalance=float(rebalance), round_interest=bool(round_interest),
                       stop_on_liquidation=bool(stop_on_liquidation), **_single_settings(rs, details),
                       **({} if not perp_inputs else dict(
                           funding={k: "table" if isinstance(v, pd.DataFrame) else str(v)
                                    for k, v in funding_used.items()} or None,
                           funding_rate=funding_rate, brackets=None if brackets is None else str(brackets))),
                       **({} if not moves else dict(transfers=transfers, reserve=reserve, top_up=top_up,
                                                    keep_ml=keep_ml)),
                       start=str(index[0]), end=str(index[-1])),
                     quote, capital, exact)
    if moves:
        _with_moves(result, exact, accounts, index, capital, periods_per_year(seconds), quote)
    for sym, n_missing in mark_missing.items():
        result.summary[f"mark_missing_bars_{sym}"] = n_missing
    for sym, n in n_fine.items():
        result.summary[f"detail_bars_{sym}"] = n
    if n_fine:  # bars whose stop or liquidation was in reach without finer bars, every account's
        result.summary["detail_missing_bars"] = int(stats["detail_missing_bars"])
    return result


def _perp_inputs(panel, symbols, profiles, marks, details, rs, rates, rate_history, funding, funding_rate,
                 brackets, used) -> dict:
    """Per perp symbol (row): its bracket versions, funding times and rates,
    every perp setting checked (``perps.check_settings``); the mark file
    bundled beside bundled perp data goes into ``marks`` unless one is given,
    the funding each symbol's run charges into ``used`` (run.json records it).
    Without a perp symbol, the perp flags are refused (one line)."""
    from .engine import _epoch_seconds

    perp_syms = [s for s in symbols if profiles[s].perp]
    funding = parse_marks(funding, symbols, "--funding") if funding is not None else {}
    if not perp_syms:
        perps.check_settings(profiles[symbols[0]], symbols[0], None, None, True, None, brackets,
                             funding or None, funding_rate)
        return {}
    spot = [s for s in symbols if not profiles[s].perp]
    for sym in funding:
        if sym not in perp_syms:
            raise UserError(f"--funding {sym}: {sym} trades on spot margin ({profiles[sym].name}); funding is a "
                            "perpetual's")
    out = {}
    for sym in perp_syms:
        k = symbols.index(sym)
        own_mark, own_funding = perps.companions(panel[sym].attrs.get("path"))
        if sym not in marks and own_mark is not None:
            marks[sym] = own_mark
        f = funding.get(sym, own_funding if funding_rate is None else None)
        if f is not None:
            used[sym] = f
        versions = perps.check_settings(profiles[sym], sym, None if spot else rates, None if spot else rate_history,
                                        rs.auto_repay, details.get(sym),
                                        brackets, f, funding_rate)
        seconds = _epoch_seconds(panel[sym].index)
        perps.check_leverage(profiles[sym], versions, seconds[0])
        out[k] = (versions, *perps.funding_rows(f, funding_rate, sym, seconds))
    return out


def _single_only(rs, details, accounts):
    """The settings only the one-symbol kernel has are refused, one line
    naming the flag, when a cross account holds several symbols.  ``--path``
    is not among them: such an account's events inside a bar follow one
    joint path whose order is fixed, so the path setting has nothing to
    order there.  Its stops follow that path (docs/model-choices.md "Stops
    on a joint path"), with or without mark series, on perpetual futures
    too; finer bars settle that path when each of its symbols has them
    ("Finer bars on a joint path")."""
    joint = [(p, syms) for _, p, syms in accounts if len(syms) > 1]
    for _, profile, syms in accounts:  # (first: a file for the missing symbol would be refused there too)
        given = [s for s in syms if s in details]
        if profile.perp and given:
            raise UserError(f"--detail {given[0]}: not on the perpetual-futures venue ({profile.name}); finer bars "
                            "are taken on spot margin")
    for _, syms in joint:
        given = [s for s in syms if s in details]
        if given and len(given) < len(syms):
            lacking = next(s for s in syms if s not in details)
            raise UserError(f"--detail {lacking}: missing; a cross account holding several symbols "
                            f"({', '.join(syms)}) takes finer bars for each of them or for none (the joint "
                            f"path needs every symbol's path inside the bar)")


def _attached_orders(name, attached, symbols, accounts, details, rs):
    """A strategy's limit orders, manual loans and stop levels go with its
    targets to an account of one symbol (as in a one-symbol run); its stop
    levels and limit orders also to a cross account of several symbols
    (docs/model-choices.md "Stops on a joint path", "Limit orders in a
    cross account of several symbols", on perps "A cross perp account
    holding several symbols"), which refuses its manual loans (one line),
    so nothing is silently dropped."""
    from .engine import loans_outlive_trades

    for k, given in attached.items():
        sym = symbols[k]
        _, profile, syms = next(acct for acct in accounts if sym in acct[2])
        if len(syms) > 1 and given.loans:
            raise UserError(f"strategy {name}: its manual loans (borrow / repay) ({sym}) are not supported yet for "
                            f"a cross {'perp ' if profile.perp else ''}account holding several symbols "
                            f"({', '.join(syms)})")
        loans_outlive_trades(given, rs.auto_repay, True)  # (refuses limit orders with auto-repay off)


def _single_settings(rs, details) -> dict:
    """``run.json``'s record of the one-symbol settings, where set (a run
    without them records what it always has)."""
    out = {k: getattr(rs, k) for k in ("stop_loss", "take_profit", "trailing_stop") if getattr(rs, k)}
    if rs.path != "ohlc-heuristic":
        out["path"] = rs.path
    if not rs.auto_repay:
        out.update(auto_repay=False, repay_on_flat=rs.repay_on_flat)
    if not rs.auto_borrow:
        out["auto_borrow"] = False
    if details:
        out["detail"] = {s: str(d) if not isinstance(d, pd.DataFrame) else "bars" for s, d in details.items()}
    return out


def _details(details, marks, panel, symbols, accounts):
    """Per symbol row with finer bars, the kernel's detail arrays on the
    symbol's own bars; and per symbol how many bars have usable ones.  The
    symbols of a cross account holding several must have sub-bars of one
    length (docs/model-choices.md "Finer bars on a joint path")."""
    from .detail import detail_arrays, sub_bars

    fine, n_fine = {}, {}
    for sym, d in details.items():
        if sym in marks:
            raise UserError(f"--detail {sym}: not combined with --mark {sym} (the mark series has no finer bars)")
        fine[symbols.index(sym)], n_fine[sym] = detail_arrays(d, panel[sym], sym)
    for _, _, syms in accounts:
        spans = {}  # per symbol with usable sub-bars: its bars' timeframe, sub-bars a bar
        for sym in syms:
            count = sub_bars(fine[symbols.index(sym)]) if symbols.index(sym) in fine else 0
            if count:
                spans[sym] = (panel[sym].attrs.get("timeframe"), count)
        if len(set(spans.values())) > 1:
            (b, (tf_b, n_b)), *rest = spans.items()
            a, (tf_a, n_a) = next((s, v) for s, v in rest if v != (tf_b, n_b))
            raise UserError(f"--detail {a}: {n_a} sub-bars under its {tf_a} bars, {b}: {n_b} under {tf_b}; the "
                            "finer bars of a cross account's symbols must cover the same spans (the joint path "
                            "pairs them up in time)")
    return fine, n_fine


def _ml(equity, debt, profile):
    from .engine import profile_ml

    with np.errstate(divide="ignore", invalid="ignore"):
        return profile_ml(np.where(debt > 0, (equity + debt) / np.where(debt > 0, debt, 1.0), np.inf), profile)


def _moves(transfers, reserve, top_up, keep_ml, symbols, accounts, cols, seconds, rs, attached, details):
    """The moves of each account of one symbol, as the kernel's schedules
    (``transfers.flows_spec`` on its own bars), and the level each reports
    in; None without moves.  A cross account of several symbols takes none
    (its joint path has no moves yet)."""
    from . import transfers as transfers_mod
    from .engine import level_terms

    given, reserves = transfers_mod.by_symbol(transfers, reserve, symbols)
    lent = {k for k, o in attached.items() if o.loans}
    if not (given or reserves or keep_ml is not None or top_up is not None or lent or not rs.auto_borrow):
        return None
    if top_up is not None and not any(reserves.values()):
        raise UserError("--top-up: needs --reserve SYMBOL=AMOUNT (the money kept aside to top up from)")
    specs, levels, manual = {}, {}, {}
    for j, (name, prof, syms) in enumerate(accounts):
        mine = [s for s in syms if s in given or reserves.get(s)]
        if len(syms) > 1:
            if mine or keep_ml is not None or not rs.auto_borrow:
                what = f"--transfer/--reserve {mine[0]}" if mine else (
                    f"--keep-ml {keep_ml}" if keep_ml is not None else "--no-auto-borrow")
                raise UserError(f"{what}: the cross account holds {', '.join(syms)}; moves in a cross account of "
                                "several symbols are not modelled yet (accounts of one symbol take them)")
            continue
        sym = syms[0]
        k = symbols.index(sym)
        r = reserves.get(sym, 0.0)
        orders = attached.get(k) or Orders(np.zeros(0))
        if not (sym in given or r or keep_ml is not None or k in lent or not rs.auto_borrow):
            continue
        transfers_mod.check_combination(rs.with_stops(orders.fractions), orders, details.get(sym), r,
                                        given.get(sym, ()), keep_ml)
        base, quote = split_symbol(sym)
        loans = transfers_mod.loan_events(rs, orders, prof, base, quote)
        own = seconds[~np.isnan(cols["open"][k])]
        spec = transfers_mod.flows_spec(given.get(sym, ()), r, top_up if r else None, prof, own,
                                        prof.kernel_levels()[1], keep_ml, rs.auto_repay, loans)
        if spec is not None:
            specs[j] = spec
            levels[j] = level_terms(prof)
            manual[j] = loans is not None
    return (specs, levels, manual) if specs else None


def _with_moves(result, exact, accounts, index, capital, ppy, quote):
    """The run's moves: ``transfers.csv`` of every account, the reserve and
    net transfers per bar (totals), the summary's sums and the returns of
    the trader's wealth (every account's equity and reserve)."""
    from .transfers import LOAN_COLUMNS, TRANSFER_COLUMNS, wealth_fields

    every = {j: exact[("moves", j)] for j in range(len(accounts)) if ("moves", j) in exact}
    lent = {j: m["loans"] for j, m in every.items() if m["loans"] is not None}
    if lent:  # loans.csv of every account with manual loans (in time order), their counts summed
        loans = pd.concat([t.assign(account=accounts[j][0]) for j, t in lent.items()], ignore_index=True)
        result.loans = loans.sort_values("time", kind="stable").reset_index(drop=True)[["account", *LOAN_COLUMNS]]
        for k in ("n_borrows", "n_repays"):
            result.summary[k] = sum(m["fields"].get(k, 0) for m in every.values())
    parts = {j: m for j, m in every.items() if m["table"] is not None}
    if not parts:
        return
    tables = [m["table"].assign(account=accounts[j][0], asset=quote) for j, m in parts.items()]
    table = pd.concat(tables, ignore_index=True).sort_values("time", kind="stable").reset_index(drop=True)
    result.transfers = table[TRANSFER_COLUMNS]
    eq = result.equity
    reserve = sum(m["reserve"] for m in parts.values())
    eq["net_transfers"] = sum(m["net"] for m in parts.values())
    eq["reserve"] = reserve
    reserve0 = sum(m["reserve0"] for m in parts.values())
    flow = sum(m["flow"] for m in parts.values())
    s = result.summary
    s.update(wealth_fields(index, eq["equity"].to_numpy(), reserve, flow, capital, reserve0, ppy))
    sums = {k: sum(m["fields"][k] for m in parts.values()) for k in ("reserve_left", "net_transfers", "n_top_ups",
                                                                         "topped_up")}
    s.update(reserve=reserve0, **sums, profit=s["final_equity"] + sums["reserve_left"] - capital - reserve0
             - sums["net_transfers"])
    for j, m in parts.items():
        s[f"n_top_ups_{accounts[j][0]}"] = m["fields"]["n_top_ups"]
        s[f"reserve_left_{accounts[j][0]}"] = m["fields"]["reserve_left"]


def _result(panel, symbols, accounts, index, seconds, cols, out_acct, out_sym, int_b, int_q, orders, liqs, calls,
            stats, settings, quote, capital, exact):
    n = len(index)
    has = ~np.isnan(cols["open"])
    last_close = last_closes(cols["close"])  # valuation between a symbol's bars
    equity = out_acct[:, 0].sum(axis=0)
    is_perp = np.array([a[1].perp for a in accounts])
    paid = out_acct[~is_perp, 3].sum(axis=0)  # interest; a perp account's row is its funding
    funding = out_acct[is_perp, 3].sum(axis=0)
    mls = {j: _ml(out_acct[j, 0], out_acct[j, 1], a[1]) for j, a in enumerate(accounts) if not a[1].perp}
    acct_of_sym = {s: j for j, a in enumerate(accounts) for s in a[2]}

    def valued_at(k):  # the price symbol k is valued at at each open: its open, or its last close before
        return np.where(has[k], cols["open"][k], np.concatenate(([0.0], last_close[k, :-1])))

    def equity_table():  # built when first read (Result.equity), as run()'s: a caller of the summary never pays
        trading = orders["kind"] != LIQUIDATION
        fees = np.cumsum(np.bincount(orders["bar"][trading], weights=orders["fee"][trading], minlength=n))
        frame = {"equity": equity, "debt": out_acct[:, 1].sum(axis=0), "interest_paid": paid,
                 "interest_owed": out_acct[:, 2].sum(axis=0), "fees_paid": fees}
        if is_perp.any():
            frame["funding_paid"] = funding
        gross = np.zeros(n)
        for j, (name, prof, syms) in enumerate(accounts):
            frame[f"equity_{name}"] = out_acct[j, 0]
            if prof.perp:  # the margin ratio, and its inverse where spot margin has its margin level (the report's)
                ratio = exact[("perp", j)]["ratio"]
                with np.errstate(divide="ignore"):
                    frame[f"margin_level_{name}"] = np.where(ratio > 0, 1.0 / np.where(ratio > 0, ratio, 1.0), np.inf)
                frame[f"margin_ratio_{name}"] = ratio
            else:
                frame[f"margin_level_{name}"] = mls[j]
            frame[f"debt_{name}"] = out_acct[j, 1]
        for k, sym in enumerate(symbols):
            # (copies of what the trades, walked when first read, read: a write into this table changes them not)
            frame[f"position_{sym}"] = out_sym[k, 0].copy()
            frame[f"close_{sym}"] = last_close[k].copy()
            gross += np.abs(out_sym[k, 0] * last_close[k])
            j = acct_of_sym[sym]  # its price alone moves; the account's other symbols stay at their last close
            rows = _loan_rows(exact, j, k)
            base_owed = None if rows is None else rows[3]  # auto-repay off: both loans may run at once
            if accounts[j][1].perp:  # the mark price of the position's liquidation (the venue's rules)
                frame[f"liquidation_price_{sym}"] = exact[("perp", j)]["liquidation_price"][k]
                frame[f"liquidation_distance_{sym}"] = exact[("perp", j)]["distance"][k]
                frame[f"funding_paid_{sym}"] = out_sym[k, 1].copy()
            else:
                frame[f"liquidation_price_{sym}"], frame[f"liquidation_distance_{sym}"] = liquidation_columns(
                    out_sym[k, 0], out_acct[j, 0], out_acct[j, 1], last_close[k], accounts[j][1].kernel_levels()[2],
                    base_owed)
            if base_owed is not None:
                frame[f"debt_base_{sym}"] = base_owed
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["exposure"] = np.where(equity > 0, gross / np.where(equity > 0, equity, 1.0), 0.0)
        return pd.DataFrame(frame, index=index, copy=False)  # arrays of this run's own: not consolidated

    acct_names = [a[0] for a in accounts]
    shared = _shared_costs(accounts, symbols, out_acct, out_sym, last_close, orders, liqs, exact)
    flat = [shared["interest_while_flat"], shared["fees_while_flat"]]

    def trades_of(k, sym):
        """Symbol k's round trips, and what its books add to the flat books' (auto-repay off)."""
        mine = shared["orders"][k]
        j = acct_of_sym[sym]
        single = len(accounts[j][2]) == 1
        rows = _loan_rows(exact, j, k)  # (auto-repay off: the kernel's own rows, as run() takes them)
        sym_paid = out_acct[j, 3] if single else shared["paid"][k]
        bad = liqs["bad_debt"][liqs["account"] == j] if single else shared["bad"][k]
        cur = valued_at(k)
        price = np.where(cur > 0, cur, 1.0)
        perp = accounts[j][1].perp
        if perp:  # funding in quote, charged after the bar's order (engine.run's books)
            zero = np.zeros(n)
            by_asset = (zero, sym_paid)
            after = (zero, sym_paid, price)
        else:
            by_asset = interest_by_asset(sym_paid, mine, out_sym[k, 0], price, None if rows is None else rows[0])
            after = None if rows is None else (rows[1], rows[2], price)
        t = round_trips(mine, index, last_close[k], out_sym[k, 0], sym_paid, sym, bad, by_asset, after_fill=after,
                        liq_fees=None if single else shared["fee"][k], quote_fees=perp)
        # (before a perp's funding leaves the interest columns: flat_costs reads them)
        own_flat = flat_costs(t, by_asset[1]) if rows is not None else None
        if is_perp.any():  # a funding column beside interest (each row one or the other)
            t.insert(t.columns.get_loc("pnl"), "funding", t["interest"] if perp else 0.0)
            if perp:
                t[["interest", "interest_base", "interest_quote"]] = 0.0
        return t, own_flat

    def trades_table(trades):
        trades = pd.concat([t for t in trades if len(t)], ignore_index=True) if any(len(t) for t in trades) else \
            pd.DataFrame(columns=TRADE_COLUMNS)
        if len(trades):
            trades = trades.sort_values(["entry_time", "symbol"], kind="stable").reset_index(drop=True)
        return trades

    if any(_loan_rows(exact, acct_of_sym[sym], k) is not None for k, sym in enumerate(symbols)):
        # loans outliving trades: the flat books (summary) take the trades' own, so they are walked now
        walked = [trades_of(k, sym) for k, sym in enumerate(symbols)]
        for _, own_flat in walked:
            for r, v in enumerate(own_flat or ()):
                flat[r] += v
        trades = trades_table([t for t, _ in walked])
    else:  # walked when first read (Result.trades), as run()'s
        trades = lambda: trades_table([trades_of(k, sym)[0] for k, sym in enumerate(symbols)])  # noqa: E731

    # summary over the total equity
    min_ml = float(min(np.min(m) for m in mls.values())) if n and mls else math.inf
    online = dict(_return_sums(equity, float(capital)), final_equity=float(equity[-1]),
                  n_exposed=float(np.count_nonzero(np.any(out_sym[:, 0] != 0.0, axis=0))), min_margin_level=min_ml)
    summary = summarize(float(capital), online, n, int(seconds[0]), int(seconds[-1]), periods_per_year(seconds))
    per_asset = {}
    for k, sym in enumerate(symbols):
        base = split_symbol(sym)[0]
        per_asset[base] = per_asset.get(base, 0.0) + float(int_b[k])
    per_asset[quote] = float(int_q.sum())
    summary.update(
        n_trades=int(stats["n_trades"]), n_orders=int(stats["n_orders"]), n_capped=int(stats["n_capped"]),
        n_liquidations=int(stats["n_liquidations"]), n_margin_calls=int(stats["n_margin_calls"]),
        ambiguous_bars=int(stats["ambiguous_bars"]),
        fees_paid=float(stats["fees_paid"]), interest_paid=float(paid[-1]),
        **{f"interest_paid_{a}": v for a, v in per_asset.items()},
        liquidation_fees=float(stats["liquidation_fees"]), bad_debt=float(stats["bad_debt"]),
        interest_while_flat=round(flat[0], 8) + 0.0, fees_while_flat=round(flat[1], 8) + 0.0,
        bars=n, start=str(pd.Timestamp(int(seconds[0]), unit="s", tz="UTC")),
        end=str(pd.Timestamp(int(seconds[-1]), unit="s", tz="UTC")),
    )
    if is_perp.any():  # perpetual-futures accounts: their funding and worst margin ratio at a close
        summary["venue"] = "binance-usdm" if is_perp.all() else "binance-margin,binance-usdm"
        summary["funding_paid"] = float(funding[-1])
        summary["n_funding"] = int(sum(np.count_nonzero(exact[("perp", j)]["venue"].funding_out[0])
                                       for j in np.flatnonzero(is_perp)))
        summary["max_margin_ratio"] = float(max(np.max(exact[("perp", j)]["ratio"]) for j in np.flatnonzero(is_perp)))
        for k, sym in enumerate(symbols):
            if accounts[acct_of_sym[sym]][1].perp:
                summary[f"funding_paid_{sym}"] = float(out_sym[k, 1, -1])
    if stats["n_cancelled"]:  # (a strategy's limit orders; other runs keep the keys they always had)
        summary["n_cancelled"] = int(stats["n_cancelled"])
    write_off = writeoffs.of_events(liqs, orders)
    writeoffs.note(summary, write_off)
    for j, name in enumerate(acct_names):
        summary[f"final_equity_{name}"] = float(out_acct[j, 0, -1])
        summary[f"n_liquidations_{name}"] = int(np.count_nonzero((liqs["account"] == j) & ~write_off))
    for k, sym in enumerate(symbols):
        own = has[k]
        first, last = int(np.argmax(own)), n - 1 - int(np.argmax(own[::-1]))
        summary[f"first_bar_{sym}"] = str(index[first])
        summary[f"missing_bars_{sym}"] = int(np.count_nonzero(~own[first:last + 1]))  # gaps on the run's grid
    bars = None
    funding_df = None
    if is_perp.any():  # every perp account's charges, in time order
        parts = [perps.funding_table(e["times"], e["venue"], np.asarray(symbols)[e["symbols"]])
                 for key, e in exact.items() if isinstance(key, tuple) and key[0] == "perp"]
        funding_df = pd.concat(parts, ignore_index=True)
        rank = funding_df["symbol"].map({sym: k for k, sym in enumerate(symbols)}).to_numpy()
        funding_df = funding_df.iloc[np.lexsort((rank, funding_df["time"].to_numpy()))].reset_index(drop=True)
    return Result(equity=equity_table, trades=trades, orders=lambda: _orders_frame(orders, index, symbols),
                  liquidations=lambda: _liquidations_frame(liqs, orders, index, symbols, accounts),
                  margin_calls=lambda: pd.DataFrame(
                      {"time": index[calls["bar"]], "account": [acct_names[a] for a in calls["account"]],
                       "margin_level": [float(_ml_one(m, accounts[a][1])) for m, a in
                                        zip(calls["margin_level"], calls["account"])]},
                      columns=["time", "account", "margin_level"]),
                  summary=summary, settings=settings, profile=accounts[0][1], bars=bars, funding=funding_df)


def _return_sums(equity, capital) -> dict:
    """The per-bar returns' sums (``metrics.return_sums``) and the worst
    drawdown of ``equity`` from ``capital``: a return from equity ≤ 0
    counts 0, a drawdown from a peak ≤ 0 too.  In place in two buffers
    (~10 ms for 1M bars against ~20 ms with a temporary per step); the same
    arrays summed by NumPy as before, so the same sums to the bit
    (tests/test_multi.py)."""
    n = equity.shape[0]
    r, t = np.empty(n), np.empty(n)
    r[0], r[1:] = capital, equity[:-1]  # the equity before each bar
    sums = return_sums(relative(equity, r), t)
    np.maximum.accumulate(equity, out=r)  # the peak before and at each bar: capital or the highest equity
    np.maximum(r, capital, out=r)
    sums["max_drawdown"] = float(min(relative(equity, r).min(), 0.0))
    return sums


def _loan_rows(exact, j, k):
    """The kernel's books rows of symbol ``k`` in account ``j`` when its
    loans may outlive its trades (auto-repay off: ``ONE_SYMBOL_EXTRA``'s,
    ``kernel_multi.SYMBOL_EXTRA``'s), else None."""
    return exact.get(("symbol", k), exact.get(j))


def _quote_charges(orders, n):
    """Cumulative per bar: the first-hour quote charges of ``orders``' buys
    at the open or a stop (a limit order's, charged at its placement, are
    not in the symbol's interest row: ``kernel_multi._place_limit``)."""
    buys = (orders["side"] > 0) & (orders["kind"] != LIMIT)
    return np.cumsum(np.bincount(orders["bar"][buys], weights=orders["charge"][buys], minlength=n))


def _shared_costs(accounts, symbols, out_acct, out_sym, last_close, orders, liqs, exact) -> dict:
    """A cross account's shared quote interest, liquidation fees and bad
    debt, split over its symbols (``books``): per symbol of such an account
    its cumulative interest with its share (``paid``), the records its trades are built from (with ghost
    records of debt written off without a fill) and their liquidation fills'
    fee and bad-debt shares; and what no trade carries
    (``interest_while_flat``, ``fees_while_flat``)."""
    n_sym = len(symbols)
    out = {"paid": [None] * n_sym, "fee": [None] * n_sym, "bad": [()] * n_sym,
           "orders": [orders[orders["symbol"] == k] for k in range(n_sym)],
           "interest_while_flat": 0.0, "fees_while_flat": 0.0}
    for j, (_, _, syms) in enumerate(accounts):
        if len(syms) == 1:
            continue
        ks = [symbols.index(s) for s in syms]
        if ("symbol", ks[0]) in exact:  # auto-repay off: the kernel shared each hourly charge when it was made
            # (its quote interest row less its fills' borrow charges, which out_sym[k, 1] has); what it gave no
            # symbol (no long then) is the account's interest less what its symbols carry
            n = out_acct.shape[2]
            paid = [out_sym[k, 1] + exact[("symbol", k)][0] - _quote_charges(orders[orders["symbol"] == k], n)
                    for k in ks]
            rest = np.atleast_1d(float(out_acct[j, 3][-1]) - sum(float(p[-1]) for p in paid))
        else:
            shares, rest = shared_quote_interest(out_acct[j, 3], out_sym[ks, 1], out_sym[ks, 0], last_close[ks])
            paid = [out_sym[k, 1] + shares[r] for r, k in enumerate(ks)]
        ghosts = write_offs(exact.get("write_offs", orders[:0]), ks)
        order = np.argsort(np.concatenate((orders["bar"], ghosts["bar"])), kind="stable")
        both = np.concatenate((orders, ghosts))[order]
        ghost = np.concatenate((np.zeros(len(orders), bool), np.ones(len(ghosts), bool)))[order]
        fee, bad, unassigned = cross_liquidation_shares(liqs, both, j, ghost)
        fills = both[both["kind"] == LIQUIDATION]
        for r, k in enumerate(ks):
            out["paid"][k] = paid[r]
            out["orders"][k] = both[both["symbol"] == k]
            out["fee"][k] = fee[fills["symbol"] == k]
            out["bad"][k] = bad[fills["symbol"] == k]
        out["interest_while_flat"] += float(rest[-1]) if len(rest) else 0.0
        out["fees_while_flat"] += unassigned
    out["interest_while_flat"] = round(out["interest_while_flat"], 8) + 0.0
    out["fees_while_flat"] = round(out["fees_while_flat"], 8) + 0.0
    return out


def _ml_one(ml, profile):
    from .engine import profile_ml

    return profile_ml(ml, profile)


ORDER_MULTI_COLUMNS = ["time", "symbol", "side", "quantity", "price", "fee", "kind", "capped", "position_before",
                       "position", "interest"]
LIQUIDATION_MULTI_COLUMNS = ["time", "account", "symbol", "trigger_price", "fill_price", "quantity", "side",
                             "margin_level", "fee", "equity_before", "equity_after", "bad_debt", "gap", "theta",
                             "event"]


def _orders_frame(orders, index, symbols):
    if len(orders) == 0:
        return pd.DataFrame(columns=ORDER_MULTI_COLUMNS)
    return pd.DataFrame({
        "time": index[orders["bar"]], "symbol": words(orders["symbol"], tuple(symbols)),
        "side": sides(orders["side"]), "quantity": orders["quantity"],
        "price": orders["price"], "fee": orders["fee"], "kind": writeoffs.kinds(orders),
        "capped": orders["capped"], "position_before": orders["position_before"], "position": orders["position"],
        "interest": orders["interest"]}, columns=ORDER_MULTI_COLUMNS)


def _liquidations_frame(liqs, orders, index, symbols, accounts):
    """One row per symbol a liquidation filled; the event's numbers (margin
    level, fee, equity, bad debt) repeat on its rows, ``event`` numbers it."""
    rows = []
    fills = orders[orders["kind"] == LIQUIDATION]
    write_off = writeoffs.of_events(liqs, orders)
    for e, rec in enumerate(liqs):
        if write_off[e]:
            continue
        a = int(rec["account"])
        prof = accounts[a][1]
        mine = fills[(fills["event"] == e) & (fills["quantity"] > 0.0)]
        for o in (list(mine) or [None]):
            rows.append({
                "time": index[rec["bar"]], "account": accounts[a][0],
                "symbol": symbols[o["symbol"]] if o is not None else "",
                "trigger_price": float(o["trigger"]) if o is not None else math.nan,
                "fill_price": float(o["price"]) if o is not None else math.nan,
                "quantity": float(o["quantity"]) if o is not None else 0.0,
                "side": ("buy" if o["side"] > 0 else "sell") if o is not None else "",
                "margin_level": float(_ml_one(rec["margin_level"], prof)), "fee": float(rec["fee"]),
                "equity_before": float(rec["equity_before"]), "equity_after": float(rec["equity_after"]),
                "bad_debt": float(rec["bad_debt"]), "gap": bool(rec["gap"]), "theta": float(rec["theta"]),
                "event": e})
    return pd.DataFrame(rows, columns=LIQUIDATION_MULTI_COLUMNS)
