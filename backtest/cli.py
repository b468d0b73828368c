"""``backtest``: the command line.

Each command turns flags into the same calls the Python API makes.  Every
user mistake is one line on stderr and exit code 2; no traceback.
"""
import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .atomic import RUN_OUTPUTS, check_target, recover, replacing
from .errors import UserError

DEFAULT_DATA = "data/BTCUSDT-1h.parquet"


class _Once(argparse._StoreAction):
    """A flag of one value given twice (``--capital 5000 --capital 6000``) took its last value unsaid: one line."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string is not None:
            seen = namespace.__dict__.setdefault("_flags_given", set())
            if self.dest in seen:
                raise UserError(f"{option_string}: given twice; give it once")
            seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is a UserError (one line, exit 2), and a flag of one value is given once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _Once)
        self.register("action", "store", _Once)

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")

    def parse_args(self, args=None, namespace=None):
        ns, extra = self.parse_known_args(args, namespace)
        vars(ns).pop("_flags_given", None)
        if extra:  # (argparse's own message names the top command only: "backtest: unrecognized arguments")
            where = " ".join([self.prog, *(v for v in (getattr(ns, "command", None), getattr(ns, "data_command", None))
                                           if v)])
            raise UserError(f"{where}: unrecognized arguments: {' '.join(extra)} ({where} --help lists its flags)")
        return ns


class _Defaults(argparse.HelpFormatter):
    """Every option's help ends with its default (unless it says it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "default" in text:
            return text
        d = action.default
        shown = ("off" if isinstance(action, argparse._StoreTrueAction) else "none" if d in (None, []) else
                 f"{d:,g}" if isinstance(d, float) else "%(default)s")
        return f"{text} (default: {shown})".strip()


def bundled_data(name: str = DEFAULT_DATA) -> Path:
    """The bundled file: ``./data/...`` if present, else beside the package."""
    here = Path(name)
    if here.exists():
        return here
    beside = Path(__file__).resolve().parent.parent / name
    return beside if beside.exists() else here


def _add_run_flags(p):
    p.add_argument("--data", action="append", default=None, metavar="PATH",
                   help=f"OHLCV Parquet file (default: bundled {DEFAULT_DATA}); `run` takes it repeated, or a "
                        "folder, for several symbols")
    p.add_argument("--strategy", default="sma_cross", metavar="NAME|FILE",
                   help=f"a bundled strategy ({', '.join(_strategy_names())}) or a .py file (default sma_cross)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="strategy parameter (repeatable)")
    p.add_argument("--margin", default=None, metavar="PROFILE",
                   help=f"margin profile: {', '.join(_profile_names())}, usdm-cross-<L>x or usdm-isolated-<L>x "
                        "(perpetual futures), or one of --margin-file's "
                        "(default cross-3x, or --margin-file's only one)")
    p.add_argument("--margin-file", default=None, metavar="FILE",
                   help="TOML file of custom margin profiles ([profiles.NAME] tables)")
    p.add_argument("--capital", type=float, default=10_000.0, help="starting equity in the quote asset")
    p.add_argument("--fee", type=float, default=None,
                   help="trading fee rate (default 0.001; 0.0005 on perpetual futures)")
    p.add_argument("--slippage", type=float, default=0.0, help="slippage as a fraction of price")
    p.add_argument("--rate", action="append", default=[], metavar="ASSET=DAILY_RATE",
                   help="daily borrow rate per asset (repeatable; default 0.0002 for every asset)")
    p.add_argument("--rates", default=None, metavar="FILE",
                   help="rate history (CSV/Parquet: timestamp, asset, daily_rate|hourly_rate), forward-filled hourly")
    p.add_argument("--liquidation", choices=("partial", "full"), default="partial",
                   help="partial: sell just enough to restore the initial margin level (Binance); full: close all")
    p.add_argument("--rebalance", type=float, default=0.0, metavar="F",
                   help="trade back to the target when exposure drifts by more than F of it")
    p.add_argument("--start", default=None, help="first date/time to use (UTC)")
    p.add_argument("--end", default=None, help="last date/time to use (UTC; a date includes the whole day)")
    p.add_argument("--symbol", default=None, help="the pair, e.g. ETHUSDT (default: from the file name or metadata)")
    p.add_argument("--stop-on-liquidation", action="store_true", help="stop trading after the first liquidation")
    p.add_argument("--no-interest-rounding", action="store_true", help="do not round hourly charges up to 1e-8")
    p.add_argument("--stop-loss", type=float, default=0.0, metavar="F",
                   help="exit when the price moves F against the average entry price (0 = off)")
    p.add_argument("--take-profit", type=float, default=0.0, metavar="F",
                   help="exit when the price moves F in favour of the average entry price (0 = off)")
    p.add_argument("--trailing-stop", type=float, default=0.0, metavar="F",
                   help="exit when the price falls back F from the best price since entry (0 = off)")
    p.add_argument("--path", default="ohlc-heuristic", metavar="ohlc-heuristic|pessimistic",
                   help="order of the extremes inside a bar (default ohlc-heuristic)")
    p.add_argument("--no-auto-repay", action="store_true",
                   help="keep sale proceeds as balance: loans and their interest run on")
    p.add_argument("--repay-on-flat", action="store_true",
                   help="with --no-auto-repay: repay every loan at a fill that leaves no position")


def _add_perp_flags(p):
    """The flags of the perpetual-futures venue (run, sweep)."""
    p.add_argument("--funding", action="append", default=None, metavar="FILE|SYMBOL=FILE",
                   help="perpetual futures: funding rates (Parquet/CSV timestamp,funding_rate; default the bundled "
                        "<SYM>_PERP-funding.parquet beside bundled perp data; several symbols: SYMBOL=FILE, "
                        "repeatable)")
    p.add_argument("--funding-rate", type=float, default=None, metavar="R",
                   help="perpetual futures: a constant funding rate at 00, 08 and 16 UTC instead (what-ifs)")
    p.add_argument("--brackets", default=None, metavar="FILE",
                   help="perpetual futures: maintenance brackets (Binance leverageBracket, ccxt or freqtrade JSON; "
                        "default the shipped BTCUSDT and ETHUSDT tables)")


def _add_move_flags(p):
    """The trader's own moves (run, one symbol)."""
    p.add_argument("--transfer", action="append", default=None, metavar="DATE=AMOUNT|SYMBOL@DATE=AMOUNT",
                   help="a scheduled transfer into the margin account (negative: out, capped to keep the initial "
                        "margin level), in the quote asset; several symbols: SYMBOL@DATE=AMOUNT (the symbol's "
                        "account); repeatable")
    p.add_argument("--reserve", action="append", default=None, metavar="AMOUNT|SYMBOL=AMOUNT",
                   help="quote kept outside the account to answer margin calls (with --top-up); several symbols: "
                        "SYMBOL=AMOUNT per account of one symbol, repeatable")
    p.add_argument("--top-up", default=None, metavar="ml=X|amount=A",
                   help="at the margin-call line inside the bar, move from --reserve what lifts the margin level to "
                        "X (default the initial level), or A per call")
    p.add_argument("--keep-ml", type=float, default=None, metavar="X",
                   help="a safety buffer: where the margin level falls to X inside a bar, reduce the position there "
                        "back to the initial level (deleverage orders: trading fee, no liquidation fee)")
    p.add_argument("--no-auto-borrow", action="store_true",
                   help="orders never borrow: loans only by hand, a strategy's borrow / repay (spot margin)")


def _add_grid_flags(p, what, unit):
    """The flags a grid over chunks takes (sweep, risk)."""
    p.add_argument("--grid", action="append", default=[], metavar="KEY=START:STOP:STEP|KEY=v1,v2",
                   help="a grid axis (repeatable; STOP included; margin=cross-3x,cross-5x works too)")
    p.add_argument("--resume", action="store_true", help=f"finish an interrupted {what} in --out (only missing "
                                                         "chunks run)")
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace the {what} in --out (the old one is kept until the new one has finished)")
    p.add_argument("--max-combos", type=int, default=1_000_000, metavar="N",
                   help="refuse a grid of more combinations (default 1,000,000)")
    p.add_argument("--chunk-size", type=int, default=None, help=f"{unit} per saved chunk")
    p.add_argument("--workers", "--threads", dest="workers", type=int, default=None,
                   help="threads (default: every core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local", help="run chunks on a Dask cluster")
    p.add_argument("--mark", default=None, metavar="FILE",
                   help="mark-price bars (Parquet) to check liquidation against; fills stay on --data")


def _grid_args(args, what="a sweep"):
    """Check the grid flags; return (strategy, grid, data path, settings):
    the settings are ``sweep``'s and ``risk``'s keyword arguments."""
    from .assets import parse_rates
    from .strategy import load_strategy
    from .sweep import parse_grid

    if args.param:
        raise UserError(f"--param: {what} takes --grid KEY=VALUES (a single value fixes a parameter)")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise UserError(f"--chunk-size {args.chunk_size}: must be ≥ 1")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be ≥ 1")
    if args.max_combos < 1:
        raise UserError(f"--max-combos {args.max_combos}: must be ≥ 1")
    if args.data and len(args.data) > 1:
        raise UserError(f"--data: {what} takes one file (several symbols are not supported; backtest run takes them)")
    strat = load_strategy(args.strategy)
    custom = {}
    if args.margin_file:
        from .profile_file import load_profiles

        custom = load_profiles(args.margin_file)
    grid = parse_grid(args.grid, strat.params, custom, args.max_combos) if args.grid else None
    data = Path(args.data[0]) if args.data else bundled_data()
    if data.is_dir():
        raise UserError(f"--data {data}: {what} takes one file (a folder stands for several symbols)")
    settings = dict(
        symbol=args.symbol, margin=[m.strip() for m in args.margin.split(",") if m.strip()] if args.margin else None,
        capital=args.capital, fee=_spot_fee(args.fee), slippage=args.slippage, rates=parse_rates(args.rate),
        liquidation=args.liquidation, rebalance=args.rebalance, start=args.start, end=args.end,
        stop_on_liquidation=args.stop_on_liquidation, round_interest=not args.no_interest_rounding,
        **_stop_flags(args), rate_history=args.rates, margin_file=args.margin_file, mark=args.mark,
        chunk_size=args.chunk_size, workers=args.workers, resume=args.resume, scheduler=args.scheduler,
        overwrite=args.overwrite, max_combos=args.max_combos,
    )
    return strat, grid, data, settings


def _strategy_names() -> list:
    try:
        from .strategy_names import known_strategies

        return known_strategies()
    except Exception:  # noqa: BLE001 - help text only
        return ["hold", "sma_cross", "rsi_revert", "dip_entry", "pair_trade"]


def _profile_names() -> list:
    from .profiles import PROFILES

    return list(PROFILES)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="backtest", description="Leveraged crypto backtests on Binance-style margin.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run one backtest and write its report", formatter_class=_Defaults)
    _add_run_flags(p)
    p.add_argument("--out", default=None, help="output folder (default reports/<strategy>-<symbol>-<profile>)")
    p.add_argument("--no-report", action="store_true", help="no PDF report: the tables and equity.png only")
    p.add_argument("--mark", action="append", default=None, metavar="FILE|SYMBOL=FILE",
                   help="mark-price bars (Parquet) to check liquidation against; fills stay on --data "
                        "(several symbols: SYMBOL=FILE, repeatable)")
    p.add_argument("--detail", action="append", default=None, metavar="FILE|SYMBOL=FILE",
                   help="finer bars (Parquet, e.g. 1m under 1h) that settle the path inside bars where a stop, "
                        "take-profit, limit order or liquidation is in reach (several symbols: SYMBOL=FILE, repeatable)")
    p.add_argument("--bound", action="store_true",
                   help="run both path settings and print the range of final equity and liquidations")
    _add_perp_flags(p)
    _add_move_flags(p)
    p.add_argument("--allocation", default=None, metavar="ACCOUNT=FRACTION,...",
                   help="several symbols: capital per account (isolated: the symbol; the cross account: cross); "
                        "default equal shares")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("sweep", help="run a grid of parameters × margin profiles in parallel", formatter_class=_Defaults)
    _add_run_flags(p)
    _add_grid_flags(p, "sweep", "combinations")
    _add_perp_flags(p)
    p.add_argument("--out", default=None, help="output folder (default reports/sweep-<strategy>-<symbol>)")
    p.add_argument("--rank", default="sharpe", metavar="METRIC",
                   help="metric to rank by, never-liquidated combinations first (default sharpe)")
    p.add_argument("--top", type=int, default=10, help="rows of the ranking to print")
    p.add_argument("--keep-equity", type=int, default=0, metavar="N", help="rerun the N best and keep their equity")
    p.add_argument("--heatmap", default=None, metavar="X,Y", help="two grid axes for heatmap.png")
    p.add_argument("--walk-forward", default=None, metavar="train=365d,test=90d",
                   help="rank the grid on each training span, run the best on the test span after it, stitch them")
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("risk", help="P(liquidation) and outcome spread of a grid over many paths",
                       formatter_class=_Defaults)
    _add_run_flags(p)
    _add_grid_flags(p, "risk run", "paths")
    _add_perp_flags(p)
    p.add_argument("--method", default="windows", metavar="windows|bootstrap",
                   help="windows: every start on --every across the data; bootstrap: --paths synthetic paths")
    p.add_argument("--horizon", default="30d", metavar="DURATION", help="length of each path (30d, 720h, ...)")
    # (default None: a flag of the other method is refused, not ignored; risklab.risk's defaults fill the rest)
    p.add_argument("--every", default=None, metavar="DURATION", help="windows: the stride between starts (default 1d)")
    p.add_argument("--paths", type=int, default=None, metavar="N", help="bootstrap: how many paths (default 1000)")
    p.add_argument("--block", default=None, metavar="DURATION", help="bootstrap: mean block length (default 24h)")
    p.add_argument("--seed", type=int, default=None, help="bootstrap: path k draws from the seed and k (default 0)")
    p.add_argument("--out", default=None, help="output folder (default reports/risk-<strategy>-<symbol>-<profile>)")
    p.set_defaults(handler=cmd_risk)

    p = sub.add_parser("report", help="redraw report.pdf and the PNGs from a result folder (or a sweep's plots)")
    p.add_argument("result_dir", metavar="DIR",
                   help="a folder `backtest run`, `sweep` (a walk-forward too) or `risk` wrote")
    p.add_argument("--rank", default=None, metavar="METRIC", help="a sweep or walk-forward folder: the metric to "
                                                                   "plot (default sharpe; a walk-forward's own)")
    p.add_argument("--heatmap", default=None, metavar="X,Y",
                   help="a sweep folder: two grid axes for heatmap.png (default: the first two with several values)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("bench", help="time the kernel on synthetic 1-minute bars")
    p.add_argument("--bars", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=7, help="timed runs; the median is reported (≥ 5)")
    p.add_argument("--sweep", action="store_true", help="time a parallel sweep instead of one run")
    p.add_argument("--stops", action="store_true", help="a 2 %% stop-loss and a 3 %% take-profit on every trade")
    p.add_argument("--real", action="store_true",
                   help="with --sweep: the README's grid (fast 5:50:5 × slow 20:200:10, leverage 1) on the bundled "
                        "BTCUSDT-1h, indicators included; the median of --repeat sweeps")
    p.add_argument("--combos", type=int, default=1_000, help="combinations for --sweep (≥ 1000 recommended)")
    p.add_argument("--workers", type=int, default=None, help="threads for --sweep (default: every core)")
    p.add_argument("--venue", choices=("margin", "usdm"), default="margin",
                   help="margin: spot margin (cross-3x); usdm: perpetual futures (usdm-cross-5x, funding 8-hourly)")
    p.add_argument("--symbols", type=int, default=1, help="symbols in one cross account (default 1: the one-symbol kernel)")
    p.add_argument("--first-run", action="store_true",
                   help="time a fresh environment's first `backtest run` (empty numba cache) against a second one; "
                        "3 fresh caches (--symbols 2: BTCUSDT and ETHUSDT in one cross account; --venue usdm: their "
                        "perpetuals on usdm-cross-5x; --stops: a 3 %% stop-loss)")
    p.set_defaults(handler=cmd_bench)

    try:
        from .data.cli import add_data_parser
    except ImportError:  # the data tools are optional for a stripped-down install
        pass
    else:
        add_data_parser(sub)
    return parser


def cmd_run(args) -> int:
    from .assets import parse_rates
    from .engine import run
    from .strategy import parse_params

    paths = data_paths(args.data)
    if len(paths) > 1:
        return cmd_run_multi(args, paths)
    if args.allocation:
        raise UserError("--allocation: only with several symbols (repeat --data)")
    data = paths[0]
    if args.out:
        check_target(Path(args.out))
    params = parse_params(args.param)
    rates = parse_rates(args.rate)
    for flag, given in (("--mark", args.mark), ("--detail", args.detail)):
        if given and len(given) > 1:
            raise UserError(f"{flag}: given {len(given)} times; a run of one symbol takes one file")
    settings = dict(
        margin=args.margin, capital=args.capital, fee=args.fee, slippage=args.slippage, rates=rates,
        liquidation=args.liquidation, rebalance=args.rebalance, start=args.start, end=args.end,
        stop_on_liquidation=args.stop_on_liquidation, round_interest=not args.no_interest_rounding,
        **_stop_flags(args), mark=args.mark[0] if args.mark else None, symbol=args.symbol, rate_history=args.rates,
        detail=args.detail[0] if args.detail else None,
        margin_file=args.margin_file, funding=_one_file("--funding", args.funding), funding_rate=args.funding_rate,
        brackets=args.brackets, transfers=args.transfer, reserve=_one_reserve(args.reserve), top_up=args.top_up,
        keep_ml=args.keep_ml, auto_borrow=not args.no_auto_borrow,
    )
    result = run(data, args.strategy, params, **settings)
    _print_data_warnings(result.bars, data)
    out = Path(args.out) if args.out else Path("reports") / (
        f"{result.settings['strategy']}-{result.settings['symbol']}-{result.profile.name}"
    )
    save_result(result, out, pdf=not args.no_report)
    print(summary_table(result))
    if args.bound:
        from .settings import PATHS

        other = run(data, args.strategy, params, **dict(settings, path=[p for p in PATHS if p != args.path][0]))
        print(bound_table({args.path: result, other.settings["path"]: other}))
    print(f"wrote {out}/")
    return 0


def _one_file(flag, given):
    """A repeatable file flag given once (one symbol), or None."""
    if given and len(given) > 1:
        raise UserError(f"{flag}: given {len(given)} times; a run of one symbol takes one file")
    return given[0] if given else None


def _spot_fee(fee):
    """The fee of the commands that take spot-margin profiles only: SPOT_FEE unless given."""
    from .settings import SPOT_FEE

    return SPOT_FEE if fee is None else fee


def data_paths(given) -> list:
    """``--data`` as files: the bundled file by default; a folder stands for
    every ``*.parquet`` in it (sorted); a path given twice is an error."""
    if not given:
        return [bundled_data()]
    out = []
    for g in given:
        path = Path(g)
        if path.is_dir():
            found = sorted(path.glob("*.parquet"))
            if not found:
                raise UserError(f"--data {g}: a folder without .parquet files")
            out += found
        else:
            out.append(path)
    seen = set()
    for path in out:
        key = path.resolve()
        if key in seen:
            raise UserError(f"--data {path}: given twice")
        seen.add(key)
    return out


def _one_reserve(given) -> float:
    """One symbol's ``--reserve AMOUNT`` (a number; given once)."""
    if not given:
        return 0.0
    if len(given) > 1 or "=" in given[0]:
        raise UserError(f"--reserve {given[-1]}: one symbol takes one --reserve AMOUNT (SYMBOL=AMOUNT is for "
                        "several symbols)")
    try:
        return float(given[0])
    except ValueError:
        raise UserError(f"--reserve {given[0]}: not a number") from None


def cmd_run_multi(args, paths) -> int:
    """``backtest run`` with several ``--data``: one cross account, isolated
    accounts, or a mix (docs/model-choices.md "Several symbols")."""
    from .assets import parse_rates
    from .multi import parse_marks, run_multi
    from .strategy import parse_params

    if args.symbol:
        raise UserError("--symbol: not with several symbols (each file's name or metadata names its symbol)")
    marks = parse_marks(args.mark) or None  # SYMBOL=FILE forms, checked before any file is read
    details = parse_marks(args.detail, flag="--detail") or None
    if args.out:
        check_target(Path(args.out))
    margin = args.margin or "cross-3x"
    if args.margin is None and args.margin_file:  # as with one symbol: the file's only profile
        from .profiles import resolve_profile

        margin = resolve_profile(None, args.margin_file).name
    settings = dict(margin=margin, allocation=args.allocation, capital=args.capital, fee=args.fee,
                    slippage=args.slippage, rates=parse_rates(args.rate), liquidation=args.liquidation,
                    rebalance=args.rebalance, start=args.start, end=args.end,
                    stop_on_liquidation=args.stop_on_liquidation, round_interest=not args.no_interest_rounding,
                    margin_file=args.margin_file, rate_history=args.rates, mark=marks, detail=details,
                    funding=parse_marks(args.funding, flag="--funding") or None, funding_rate=args.funding_rate,
                    brackets=args.brackets, **_stop_flags(args), transfers=args.transfer, reserve=args.reserve,
                    top_up=args.top_up, keep_ml=args.keep_ml, auto_borrow=not args.no_auto_borrow)
    other = None
    if args.bound:  # the other path setting first: a refusal names --bound, and nothing is half written
        from .settings import PATHS

        try:
            other = run_multi(paths, args.strategy, parse_params(args.param),
                              **dict(settings, path=[p for p in PATHS if p != args.path][0]))
        except UserError as exc:
            raise UserError(f"--bound{str(exc)[6:]}" if str(exc).startswith("--path") else str(exc)) from None
    result = run_multi(paths, args.strategy, parse_params(args.param), **settings)
    for path in paths:
        from .data import load_ohlcv

        _print_data_warnings(load_ohlcv(path, args.start, args.end), path)
    for key, value in result.summary.items():
        if key.startswith("missing_bars_") and value:
            print(f"warning: {key[13:]}: {value:,} bars missing on the run's time grid (it does not trade there)",
                  file=sys.stderr)
    margin = margin.replace("=", "_").replace(",", "+")
    out = Path(args.out) if args.out else Path("reports") / (
        f"{result.settings['strategy']}-{'+'.join(result.settings['symbol'].split(','))}-{margin}")
    save_result(result, out, pdf=not args.no_report)
    print(summary_table(result))
    if other is not None:
        print(bound_table({args.path: result, other.settings.get("path", "ohlc-heuristic"): other}))
    print(f"wrote {out}/")
    return 0


def _stop_flags(args) -> dict:
    """The settings run and sweep pass through alike: stops, the path, repayment."""
    return dict(stop_loss=args.stop_loss, take_profit=args.take_profit, trailing_stop=args.trailing_stop,
                path=args.path, auto_repay=not args.no_auto_repay, repay_on_flat=args.repay_on_flat)


def bound_table(results: dict) -> str:
    """``--bound``: final equity and liquidations under each path setting, and their range."""
    eq = {k: r.summary["final_equity"] for k, r in results.items()}
    liq = {k: r.summary["n_liquidations"] for k, r in results.items()}
    lines = ["bound over the path inside a bar:"]
    for k, r in results.items():
        lines.append(f"  {k:<15} final equity {eq[k]:,.2f}  liquidations {liq[k]}  "
                     f"ambiguous bars {r.summary['ambiguous_bars']}"
                     + (f"  detail missing {r.summary['detail_missing_bars']}"
                        if any(k.startswith("detail_bars") for k in r.summary) else ""))
    lines.append(f"  range           final equity {min(eq.values()):,.2f} … {max(eq.values()):,.2f}  "
                 f"liquidations {min(liq.values())} … {max(liq.values())}")
    return "\n".join(lines)


def _print_data_warnings(bars, source):
    """The data check's warnings (gaps, outlier wicks...), one line each on
    stderr; errors never get this far (loading refuses them)."""
    from .data import check_ohlcv

    for finding in check_ohlcv(bars, source=str(source)).warnings:
        print(f"warning: {source}: {finding.summary}", file=sys.stderr)


def save_result(result, out: Path, pdf=True):
    """The tables and pictures of a run, all or nothing (``backtest.atomic``):
    a failure leaves a previous result in ``out`` byte for byte as it was."""
    check_target(out)
    with replacing(out, drop=RUN_OUTPUTS) as tmp:
        result.write(tmp)
        _write_pictures(result, tmp, pdf)


def _write_pictures(result, out, pdf=True):
    from .report import plot_equity, write_report

    if pdf:
        write_report(result, out)
    else:
        plot_equity(result, out / "equity.png")


def cmd_sweep(args) -> int:
    from .sweep import check_rank, sweep

    for flag, value in (("--top", args.top), ("--keep-equity", args.keep_equity)):
        if value < 0:
            raise UserError(f"{flag} {value}: must be ≥ 0")
    strat, grid, data, settings = _grid_args(args)
    if args.heatmap:
        from .sweep_folder import heatmap_pair

        heatmap_pair(args.heatmap, set(grid or getattr(strat.module, "GRID", {}) or {}) | {"margin"},
                     ", e.g. fast,slow")
    check_rank(args.rank)  # (the name, before the data and --out are looked at; sweep() then its profiles)
    symbol_hint = args.symbol or data.stem.split("-")[0]
    out = Path(args.out) if args.out else Path("reports") / f"sweep-{strat.name}-{symbol_hint}"
    perp_flags = dict(funding=_one_file("--funding", args.funding), funding_rate=args.funding_rate,
                      brackets=args.brackets)
    settings.update(perp_flags, fee=args.fee)  # (None: each profile's venue default)
    if args.walk_forward is not None:
        return _walk_forward(args, strat, grid, data, settings, out)
    # the strategy as given: Dask workers load it by name or path themselves
    res = sweep(data, args.strategy, grid, out=out, **settings)
    top = res.top(args.rank, args.top)
    n = len(res.table)
    print(f"{n:,} combinations ({res.skipped} skipped by the strategy's rule) in {res.seconds:.1f} s, "
          f"{n / max(res.seconds, 1e-9):,.1f}/s; liquidated in {int((res.table['n_liquidations'] > 0).sum()):,}")
    print(rank_table(top, res, args.rank))
    axes = [k for k in (grid or {}) if len(grid[k]) > 1] if grid else []
    _sweep_pictures(res, args, axes)
    if args.keep_equity:
        _keep_equity(res, top.head(args.keep_equity), data, args)
    print(f"wrote {out}/sweep.parquet")
    return 0


def _walk_forward(args, strat, grid, data, settings, out) -> int:
    from .sweep import sweep

    for flag in ("--keep-equity", "--heatmap"):
        if getattr(args, flag[2:].replace("-", "_")):
            raise UserError(f"{flag}: not with --walk-forward (it writes walkforward.csv, .parquet and .png)")
    res = sweep(data, args.strategy, grid, out=out, walk_forward=args.walk_forward, rank=args.rank, **settings)
    print(res.describe())
    print(f"wrote {out}/walkforward.csv, walkforward.parquet, walkforward.png")
    return 0


def cmd_risk(args) -> int:
    from .risklab import risk

    strat, grid, data, settings = _grid_args(args, "the risk lab")
    settings.update(funding=_one_file("--funding", args.funding), funding_rate=args.funding_rate,
                    brackets=args.brackets, fee=args.fee)  # (fee None: each profile's venue's)
    symbol_hint = args.symbol or data.stem.split("-")[0]
    margins = settings["margin"] or ["cross-3x"]
    out = Path(args.out) if args.out else Path("reports") / f"risk-{strat.name}-{symbol_hint}-{'+'.join(margins)}"
    spec = {k: getattr(args, k) for k in ("every", "paths", "block", "seed")}  # (None: the default; risk checks)
    res = risk(data, args.strategy, grid, method=args.method, horizon=args.horizon, out=out, **spec, **settings)
    print(risk_table(res))
    print(f"{len(res.table) - res.resumed:,} path runs in {res.seconds:.1f} s"
          + (f" ({res.resumed:,} finished before: --resume)" if res.resumed else ""))
    print(f"wrote {out}/risk.parquet, risk.json, frontier.png, fan.png, report.pdf")
    return 0


def risk_table(res) -> str:
    from .report.risk import stats_lines

    return "\n".join(stats_lines(res.stats))


def rank_table(top, res, metric) -> str:
    params = list(res.table.columns[: list(res.table.columns).index("final_equity")])
    cols = params + [c for c in dict.fromkeys([metric, "total_return", "max_drawdown", "n_liquidations",
                                               "interest_paid", "n_trades"]) if c in top.columns]
    # (4 significant digits, but whole thousands as such: a reserve of 20,000 printed as 2e+04)
    return top[cols].to_string(index=False, float_format=lambda v: f"{v:,.0f}" if 1e4 <= abs(v) < 1e15 else f"{v:,.4g}")


def _sweep_pictures(res, args, axes):
    from .report.sweep import plot_heatmap, plot_leverage

    pair = [a.strip() for a in args.heatmap.split(",")] if args.heatmap else axes[:2]
    if len(pair) == 2:
        plot_heatmap(res.table, pair[0], pair[1], args.rank, res.out / "heatmap.png")
    if "leverage" in res.table.columns and res.table["leverage"].nunique() > 1:
        plot_leverage(res.table, "leverage", args.rank, res.out / "leverage.png")


def _keep_equity(res, best, data, args):
    from .engine import run
    from .profiles import resolve_profile

    folder = res.out / "equity"
    folder.mkdir(exist_ok=True)
    from .grid import MOVE_AXES

    params_cols = [c for c in res.table.columns[: list(res.table.columns).index("final_equity")]
                   if c != "margin" and c not in MOVE_AXES]
    for rank, row in enumerate(best.itertuples(index=False), 1):
        row = row._asdict()
        reserve, top, keep = (row.get(k) for k in MOVE_AXES)  # (a move sweep's axes: run's flags)
        moves = dict(reserve=reserve or 0.0, top_up=f"ml={top}" if reserve and top == top and top is not None
                     else None, keep_ml=keep if keep and keep == keep else None)
        perp = resolve_profile(row["margin"], args.margin_file).perp  # (its venue's fee, funding and brackets)
        venue = dict(funding=_one_file("--funding", args.funding), funding_rate=args.funding_rate,
                     brackets=args.brackets) if perp else {}
        one = run(data, res.settings["strategy"] if not args.strategy.endswith(".py") else args.strategy,
                  {k: row[k] for k in params_cols}, margin=row["margin"], capital=args.capital, fee=args.fee, **venue,
                  slippage=args.slippage, rates=res.settings["rates"], liquidation=args.liquidation,
                  rebalance=args.rebalance, start=args.start, end=args.end,
                  stop_on_liquidation=args.stop_on_liquidation, round_interest=not args.no_interest_rounding,
                  **_stop_flags(args), rate_history=args.rates, margin_file=args.margin_file, mark=args.mark, **moves)
        one.equity.reset_index().to_parquet(folder / f"rank-{rank:03d}.parquet", index=False)


def cmd_report(args) -> int:
    from .result import Result

    folder = Path(args.result_dir)
    recover(folder)

    def takes(kind, *flags):  # (a flag another kind of folder takes was ignored unsaid, helper-75)
        for flag, value in (("--rank", args.rank), ("--heatmap", args.heatmap)):
            if value is not None and flag not in flags:
                raise UserError(f"{flag} {value}: not for {kind} {folder} (a sweep's folder takes --rank and "
                                "--heatmap, a walk-forward's --rank)")

    if (folder / "risk.json").exists() and not (folder / "summary.json").exists():
        from .report.risk import draw_risk
        from .risklab import load_stats

        takes("the risk run")
        manifest, stats, fan = load_stats(folder)
        for path in draw_risk(folder, stats, fan, manifest):
            print(f"wrote {path}")
        return 0
    if (folder / "walkforward.json").exists() and not (folder / "summary.json").exists():
        from .walkforward import redraw

        takes("the walk-forward", "--rank")
        print(f"wrote {redraw(folder, args.rank)}")  # (None: the walk-forward's own rank)
        return 0
    if (folder / "sweep.json").exists() and not (folder / "summary.json").exists():
        from .sweep_folder import redraw_sweep

        for line in redraw_sweep(folder, args.rank or "sharpe", args.heatmap):
            print(line)
        return 0
    takes("the run")
    result = Result.load(folder)
    with replacing(folder, what="report", keep=True) as tmp:
        _write_pictures(result, tmp)
    print(f"wrote {folder}/report.pdf")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench, bench_sweep, first_run

    if args.first_run:
        if args.sweep or args.real or args.symbols not in (1, 2):
            raise UserError("--first-run: alone, or with --symbols 2 (BTCUSDT and ETHUSDT in one cross account), "
                            "--venue usdm and --stops")
        perp = args.venue == "usdm"  # (the bundled perpetual's bars in one usdm-cross-5x account)
        name = DEFAULT_DATA.replace("-1h", "_PERP-1h") if perp else DEFAULT_DATA
        data = (bundled_data(name), bundled_data(name.replace("BTC", "ETH"))) if args.symbols == 2 else (
            (bundled_data(name),) if perp else ())
        print(first_run(data=data, stops=args.stops, margin="usdm-cross-5x" if perp else "cross-3x"))
        return 0
    if args.venue != "margin" and args.sweep:
        raise UserError(f"--venue {args.venue}: not with --sweep (the one-symbol and --symbols benches)")
    if args.symbols != 1 and not 2 <= args.symbols <= 50:
        raise UserError(f"--symbols {args.symbols}: between 2 and 50 (1: the one-symbol bench)")
    if args.symbols != 1 and args.sweep:
        raise UserError("--symbols: not combined with --sweep")
    if args.real and not args.sweep:
        raise UserError("--real: only with --sweep (it times the README's sweep grid on the bundled data)")
    if args.real:
        from .bench import bench_sweep_real

        if args.repeat < 5:
            raise UserError(f"--repeat {args.repeat}: at least 5 runs make a median")
        print(bench_sweep_real(bundled_data(), args.repeat, args.workers))
        return 0
    if args.sweep:
        if args.combos < 10:
            raise UserError(f"--combos {args.combos}: at least 10")
        print(bench_sweep(args.bars, args.combos, args.workers))
        return 0
    if args.repeat < 5:
        raise UserError(f"--repeat {args.repeat}: at least 5 runs make a median")
    if args.bars < 1000:
        raise UserError(f"--bars {args.bars}: at least 1000")
    if args.symbols != 1:
        from .bench import bench_multi

        print(bench_multi(args.bars, args.repeat, args.symbols, venue=args.venue, stops=args.stops))
        return 0
    print(bench(args.bars, args.repeat, stops=args.stops, venue=args.venue))
    return 0


def _no_funding(settings) -> bool:
    """A perp run that had no funding to charge (run.json records the
    funding files given or found beside the data)."""
    return not settings.get("funding") and settings.get("funding_rate") is None


def _perps_on_spot(result) -> list:
    """The symbols of a run whose perpetual's bars traded on a spot-margin profile (``perps.on_spot_margin``)."""
    from .perps import on_spot_margin

    s = result.settings
    if "accounts" not in s:
        return [s["symbol"]] if on_spot_margin(s["symbol"], result.profile) else []
    from .profile_file import load_profiles
    from .profiles import get_profile

    custom = load_profiles(s["margin_file"]) if s.get("margin_file") else {}
    return [sym for a in s["accounts"].values() for sym in a["symbols"]
            if on_spot_margin(sym, get_profile(a["profile"], custom))]


def summary_table(result) -> str:
    s = result.summary
    spot_perps = _perps_on_spot(result)
    rows = [
        ("symbol / profile", f"{result.settings['symbol']} / "
                             f"{result.settings['margin'] if 'accounts' in result.settings else result.profile.name}"
                             + (f"  ({', '.join(spot_perps)}: a perpetual's prices on spot margin, its mark and "
                                "funding files not used)" if spot_perps else "")),
        ("bars", f"{s['bars']:,}  ({s['start'][:16]} → {s['end'][:16]})"),
        ("final equity", f"{s['final_equity']:,.2f}"),
        ("total return", f"{s['total_return']:+.2%}"),
        ("max drawdown", f"{s['max_drawdown']:.2%}"),
        ("sharpe", f"{s['sharpe']:.2f}"),
        ("trades", f"{s['n_trades']:,}" + ("  (no fill on these bars: check the strategy's parameters, e.g. a "
                                           "window longer than the data)" if not s["n_orders"] else "")),
        ("fees paid", f"{s['fees_paid']:,.2f}"),
        *([("interest paid", f"{s['interest_paid']:,.2f}  ("
                          + ", ".join(f"{k[14:]} {v:,.8g}" for k, v in s.items() if k.startswith("interest_paid_"))
                          + ")")] if "interest_paid" in s and (s["interest_paid"] or "funding_paid" not in s)
          else []),
        *([("funding paid", f"{s['funding_paid']:,.2f}  ({s['n_funding']} charges; positive = paid)"
                         + ("; no funding file beside the data, no --funding or --funding-rate: none charged"
                            if _no_funding(result.settings) else "")),
           ("max margin ratio", f"{s['max_margin_ratio']:.2%}  (at the closes; liquidation at 100 %)")]
          if "funding_paid" in s else []),
        *([("  while flat", f"{s['interest_while_flat']:,.2f}  (loans left running with no position)")]
          if s.get("interest_while_flat") or not result.settings.get("auto_repay", True) else []),
        *([("  fees while flat", f"{s['fees_while_flat']:,.2f}  (liquidations of an account with no position)")]
          if s.get("fees_while_flat") else []),
        ("liquidations", f"{s['n_liquidations']}  (fees {s['liquidation_fees']:,.2f}, bad debt {s['bad_debt']:,.2f})"),
        *([("  write-offs", f"{s['n_write_offs']}  (an account with nothing to sell, its debt written off)")]
          if s.get("n_write_offs") else []),
        ("margin calls", f"{s['n_margin_calls']}"),
        ("capped orders", f"{s['n_capped']}"),
        ("ambiguous bars", f"{s['ambiguous_bars']}"),
    ]
    if "profit" in s:  # the trader's own moves: the return above is time-weighted, deposits are no profit
        rows.insert(4, ("profit", f"{s['profit']:,.2f}  (final equity + reserve left − capital − reserve − net "
                                  "transfers; total return time-weighted)"))
        rows.append(("transfers", f"net {s['net_transfers']:,.2f};  top-ups {s['n_top_ups']} ({s['topped_up']:,.2f}"
                                  f" of the reserve {s['reserve']:,.2f}, {s['reserve_left']:,.2f} left)"))
    if "n_borrows" in s:  # manual loans (loans.csv)
        rows.append(("manual loans", f"{s['n_borrows']} borrows, {s['n_repays']} repays (loans.csv)"))
    if s.get("n_cancelled"):
        rows.append(("limit orders cancelled", f"{s['n_cancelled']}"))
    per_symbol = [f"{k[len('detail_bars_'):]} {v:,}" for k, v in s.items() if k.startswith("detail_bars_")]
    if "detail_bars" in s or per_symbol:  # --detail: how much of the path was observed (several symbols: each's)
        covered = f"{s['detail_bars']:,}" if "detail_bars" in s else ", ".join(per_symbol)
        rows.append(("finer bars", f"{covered} bars covered; {s['detail_missing_bars']:,} with a level "
                                   "in reach and no finer bars (path assumed)"))
    for key in [k for k in s if k.startswith("final_equity_")]:  # several symbols: per account
        name = key[len("final_equity_"):]
        rows.append((f"account {name}", f"final equity {s[key]:,.2f}, liquidations {s[f'n_liquidations_{name}']}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv=None) -> int:
    _file_size_limit_is_an_error()
    try:
        args = build_parser().parse_args(argv)  # (--help ends here, before pandas and numba load)
        if getattr(args, "out", None) == "":  # (an empty variable in a script: not the default folder, unseen)
            raise UserError("--out: empty; give a path, or leave --out out for the default")
        from .checks import cli_names

        with cli_names():
            return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a sweep's says what it saved and how to resume
        print(str(exc) or "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `backtest ... | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _file_size_limit_is_an_error():
    """A write beyond ``ulimit -f`` sends SIGXFSZ, which kills the process by
    default; ignored, the write fails with EFBIG instead, an OSError the
    result writers report (and undo: the previous folder stays)."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
