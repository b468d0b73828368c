"""``backtest data …``: import, import-binance, import-funding, check, resample, info.

``add_data_parser(subparsers)`` adds the ``data`` command to the main CLI.
Each handler returns an exit code; user mistakes are raised as
``UserError``/``DataError`` (one line) for the main CLI to print.  ``data
check`` prints its findings and returns 0 (clean), 1 (warnings), 2 (errors).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from backtest.errors import UserError

from .check import WICK_K, check_bars
from .formats import FORMATS, ReadOptions, expand_sources
from .tables import parse_columns
from .times import fmt_ts

_FORMAT_HELP = ("input format (default auto: detected from the content): binance (kline CSV/ZIP "
                "from data.binance.vision), freqtrade (feather or JSON), ccxt (OHLCV JSON or CSV), "
                "csv (generic, see --columns), parquet (any table)")


def _add_read_flags(p, fmt=True):
    if fmt:
        p.add_argument("--format", default="auto", choices=FORMATS, help=_FORMAT_HELP)
    p.add_argument("--columns", default=None, metavar="time=COL,open=COL,...",
                   help="column mapping for csv/parquet/feather tables, e.g. "
                        "time=Date,open=Open,high=High,low=Low,close=Close,volume=Volume "
                        "(unmapped fields are found by name, case-insensitively)")
    p.add_argument("--time-unit", default="auto", choices=("auto", "s", "ms", "us", "ns"),
                   help="unit of numeric times (default auto: per value by magnitude, "
                        "s < 1e11 <= ms < 1e14 <= us < 1e17 <= ns)")
    p.add_argument("--time-format", default=None, metavar="FMT",
                   help="strptime format of text times (default: ISO 8601, else inferred)")
    p.add_argument("--tz", default=None, metavar="ZONE",
                   help="time zone of times without one (default UTC), e.g. Europe/Berlin")


def _opts(args) -> ReadOptions:
    return ReadOptions(columns=parse_columns(getattr(args, "columns", None)),
                       time_unit=getattr(args, "time_unit", "auto"),
                       time_format=getattr(args, "time_format", None),
                       tz=getattr(args, "tz", None))


def add_data_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``data`` and its subcommands to an argparse subparsers object."""
    data = subparsers.add_parser(
        "data", help="import, check, resample and describe OHLCV files",
        description="Bring bars in (Binance archive, freqtrade, ccxt, CSV), check them, "
                    "resample them.  Output is Parquet in marginbt's schema.")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    p = sub.add_parser("import", help="convert OHLCV files to marginbt Parquet",
                       description="Read SOURCE files (or directories of them) in one format, "
                                   "validate, merge in time order (bars repeated across files "
                                   "kept once) and write one Parquet file.")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    _add_out(p)
    _add_read_flags(p)
    p.add_argument("--symbol", default=None, help="symbol to store (default: from the file names)")
    p.add_argument("--timeframe", default=None, help="timeframe to store (default: from names or spacing)")
    _defaults(p, cmd_import)

    p = sub.add_parser("import-binance", help="convert data.binance.vision kline CSV/ZIP files",
                       description="Same as `data import --format binance`.")
    p.add_argument("sources", nargs="+", metavar="FILE")
    _add_out(p)
    p.add_argument("--symbol", default=None)
    p.add_argument("--timeframe", default=None)
    _defaults(p, cmd_import_binance)

    p = sub.add_parser("import-funding", help="convert Binance funding-rate files to marginbt Parquet",
                       description="Read funding-rate SOURCE files (data.binance.vision fundingRate "
                                   "CSV/ZIP: calc_time,funding_interval_hours,last_funding_rate; REST "
                                   "/fapi/v1/fundingRate as CSV or JSON; or a timestamp,funding_rate "
                                   "CSV/Parquet), round times to the second, merge them in time "
                                   "order and write one Parquet file (timestamp, funding_rate).")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    _add_out(p)
    p.add_argument("--symbol", default=None, help="symbol to store (default: from the files)")
    _defaults(p, cmd_import_funding)

    p = sub.add_parser("check", help="list every problem in OHLCV files (exit 0 clean, 1 warnings, 2 errors)")
    p.add_argument("files", nargs="+", metavar="FILE", help="files, or folders (every *.parquet in them)")
    _add_read_flags(p)
    p.add_argument("--wick-k", type=float, default=WICK_K, metavar="K",
                   help=f"outlier-wick threshold in robust deviations (default {WICK_K:g})")
    p.add_argument("--max-rows", type=int, default=5, metavar="N",
                   help="offending rows shown per finding (default 5)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    _defaults(p, cmd_check)

    p = sub.add_parser("resample", help="resample bars to a longer timeframe")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--to", required=True, metavar="TIMEFRAME", help="e.g. 4h, 1d, 1w, 1M")
    _add_out(p)
    p.add_argument("--keep-partial", action="store_true",
                   help="keep an incomplete first/last bar (default: dropped)")
    _add_read_flags(p)
    _defaults(p, cmd_resample)

    p = sub.add_parser("info", help="one-screen summary of a data file")
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_read_flags(p)
    _defaults(p, cmd_info)
    return data


def _add_out(p):
    p.add_argument("--out", required=True, metavar="FILE.parquet")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (default: refused)")


NOT_PARQUET = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".zip", ".gz", ".feather", ".arrow", ".xlsx")


def _check_out(args, sources=(), own_input=None) -> list:
    """Before any work: an existing ``--out`` is replaced only with
    ``--overwrite`` (a user's file is never replaced silently, its own input
    least of all), and never when it is one of the inputs and ``own_input``
    says why (resample: the finer bars could not be made again).  Returns
    ``sources`` with a folder's files listed, but ``--out`` if it is one of
    them (the file being replaced is not read as an input; named as a
    source itself, it is: extending a file)."""
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder, not a file")
    if out.suffix.lower() in NOT_PARQUET:  # (Parquet bytes in a file named .csv: read back as CSV, or not at all)
        raise UserError(f"--out {out}: the data commands write Parquet; give it a .parquet name")
    if not out.exists():
        return list(sources)
    # each source as read: a folder's files (expand_sources) but --out, a file itself (as given)
    folders = [Path(str(s)).is_dir() for s in sources]
    read = [expand_sources([Path(str(s))]) if d else [Path(str(s))] for s, d in zip(sources, folders)]
    own = any(p.exists() and out.resolve() == p.resolve() for files in read for p in files)
    if own and own_input:
        raise UserError(f"--out {out}: {own_input} (it is one of the inputs); give another name")
    if not args.overwrite:
        raise UserError(f"--out {out}: exists{' (it is one of the inputs)' if own else ''}; "
                        "give --overwrite to replace it, or another name")
    return [f for s, d, files in zip(sources, folders, read)
            for f in ([f for f in files if f.resolve() != out.resolve()] if d else [s])]


def _defaults(p, fn):
    p.set_defaults(handler=fn, func=fn)


def _summary(df, out: Path, seconds: float) -> str:
    a = df.attrs
    return (f"wrote {out}: {a.get('symbol') or '?'} {a.get('timeframe') or '?'}, {len(df):,} bars, "
            f"{fmt_ts(df.index[0].value)[:-4]} → {fmt_ts(df.index[-1].value)} ({seconds:.2f} s)")


def _write(df, out: str, extra: dict) -> Path:
    from .parquet import write_ohlcv

    return write_ohlcv(df, out, extra_meta=extra)


def cmd_import(args, fmt: str | None = None) -> int:
    from .importer import import_ohlcv

    sources = _check_out(args, args.sources)
    t0 = time.perf_counter()
    df = import_ohlcv(sources, fmt=fmt or getattr(args, "format", "auto"),
                      columns=getattr(args, "columns", None), symbol=args.symbol,
                      timeframe=args.timeframe, time_unit=getattr(args, "time_unit", "auto"),
                      time_format=getattr(args, "time_format", None), tz=getattr(args, "tz", None))
    out = _write(df, args.out, {"source_format": df.attrs["format"],
                                "sources": [Path(s).name for s in df.attrs["sources"]]})
    print(_summary(df, out, time.perf_counter() - t0))
    _print_sources(df)
    return 0


def _print_sources(df):
    """How many files an import read, and its notes."""
    n = len(df.attrs["sources"])
    if n > 1:
        print(f"  from {n:,} files")
    for note in df.attrs.get("notes", []):
        print(f"  note: {note}")


def cmd_import_binance(args) -> int:
    return cmd_import(args, fmt="binance")


def cmd_import_funding(args) -> int:
    from .funding import import_funding, write_funding

    sources = _check_out(args, args.sources)
    t0 = time.perf_counter()
    df = import_funding(sources, symbol=args.symbol)
    out = write_funding(df, args.out,
                        extra_meta={"sources": [Path(s).name for s in df.attrs["sources"]]})
    t = df["timestamp"].array.asi8
    ivs = df.attrs["funding_interval_hours"]
    every = f", every {'/'.join(f'{v:g}' for v in ivs)} h" if ivs else ""
    print(f"wrote {out}: {df.attrs.get('symbol') or '?'} funding, {len(df):,} rates{every}, "
          f"{fmt_ts(t[0])[:-4]} → {fmt_ts(t[-1])} ({time.perf_counter() - t0:.2f} s)")
    _print_sources(df)
    return 0


def cmd_check(args) -> int:
    from .check import _read_for_check

    if args.max_rows < 1:
        raise UserError(f"--max-rows {args.max_rows}: must be >= 1")
    if not args.wick_k > 0:
        raise UserError(f"--wick-k {args.wick_k}: must be > 0")
    reports = []
    for f in _files(args.files):
        _, bars, _ = _read_for_check(f, args.format, _opts(args))
        reports += [check_bars(b, args.wick_k, args.max_rows) for b in bars]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=1))
    else:
        print("\n\n".join(r.format(args.max_rows) for r in reports))
    return max(r.exit_code for r in reports)


def _files(given) -> list:
    """Files as given; a folder stands for every ``*.parquet`` in it (sorted),
    as ``backtest run --data`` takes it."""
    out = []
    for f in given:
        p = Path(f)
        if p.is_dir():
            found = sorted(p.glob("*.parquet"))
            if not found:
                raise UserError(f"{f}: a folder without .parquet files")
            out += found
        else:
            out.append(f)
    return out


def read_validated(path, fmt: str = "auto", opts: ReadOptions | None = None):
    """A validated frame from any supported file (Parquet via ``load_ohlcv``)."""
    from .importer import import_ohlcv
    from .load import load_ohlcv
    from .parquet import REQUIRED, check_file, open_parquet, sniff_kind

    p = check_file(path)
    if fmt in ("auto", "parquet") and sniff_kind(p) == "parquet":
        if all(c in open_parquet(p).schema_arrow.names for c in REQUIRED):
            return load_ohlcv(p)
    opts = opts or ReadOptions()
    return import_ohlcv([p], fmt=fmt, columns=opts.columns, time_unit=opts.time_unit,
                        time_format=opts.time_format, tz=opts.tz)


def cmd_resample(args) -> int:
    from .resample import resample_ohlcv

    _check_out(args, [args.file], own_input="is the file being resampled, whose bars could not be made again from "
                                            "the coarser ones")
    t0 = time.perf_counter()
    df = read_validated(args.file, args.format, _opts(args))
    res = resample_ohlcv(df, args.to, keep_partial=args.keep_partial)
    info = res.attrs["resample"]
    out = _write(res, args.out, {"resampled_from": f"{Path(args.file).name} ({info['from']})"})
    print(_summary(res, out, time.perf_counter() - t0))
    print(f"  {info['source_bars']:,} {info['from']} bars → {info['bars']:,} {info['to']} bars")
    for d in info["dropped_edges"]:
        print(f"  dropped the incomplete {d} (--keep-partial keeps it)")
    if info["incomplete"]:
        print(f"  {info['incomplete']:,} bars built from periods with missing source bars (gaps)")
    return 0


def cmd_info(args) -> int:
    from .info import describe_file

    print("\n\n".join(describe_file(f, args.format, _opts(args)) for f in args.files))
    return 0


def main(argv=None) -> int:
    """``python -m backtest.data …`` (the same commands without ``backtest``)."""
    from backtest.errors import UserError as _UE

    class _P(argparse.ArgumentParser):
        def error(self, message):
            raise _UE(f"{self.prog}: {message}")

    parser = _P(prog="backtest")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_P)
    add_data_parser(sub)
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except _UE as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
