"""What a run returns: tables a user reads, and the files it writes.

``Result`` holds pandas frames built from the kernel's arrays and records;
``Result.save`` writes them, ``Result.load`` reads a result folder back (for
``backtest report``) and ``Result.plot`` draws ``equity.png``.
"""
import json
import math
import os
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import RUN_OUTPUTS, check_target, recover, replacing
from .errors import UserError
from .profiles import Profile

LIQUIDATION_COLUMNS = [
    "time", "symbol", "trigger_price", "fill_price", "margin_level", "fee",
    "equity_before", "equity_after", "bad_debt", "quantity", "gap",
]
MARGIN_CALL_COLUMNS = ["time", "symbol", "margin_level"]
ORDER_COLUMNS = ["time", "symbol", "side", "quantity", "price", "fee", "kind", "capped", "position_before", "position",
                 "interest"]


@dataclass
class Result:
    """The outcome of one backtest.

    Attributes:
        equity: per bar (index ``timestamp``): equity, margin_level, position
            (net base), exposure, debt (quote value incl. interest owed),
            interest_owed, interest_paid and fees_paid (cumulative, quote),
            close, liquidation_price and liquidation_distance
            (docs/model-choices.md "Liquidation price").
        trades: round trips (see ``backtest.trades``).
        orders: every fill, including forced (liquidation) fills.
        liquidations: one row per liquidation event.
        margin_calls: one row per entry into the margin-call band.
        summary: metrics (see ``backtest.metrics``) and cost totals.
        funding: perpetual futures only: every funding charge on a position.
        transfers: with scheduled transfers or a reserve: every move
            (``transfers.csv``: scheduled, withdrawal, top-up).
        loans: with manual loans: every borrow and repay (``loans.csv``).
        settings: the run's configuration, as given.
        profile: the margin profile used.
        bars: the OHLCV bars the run used (may be None for a loaded result).

    ``equity``, ``trades``, ``orders``, ``liquidations`` and ``margin_calls`` may be
    given as functions that build the table: each is then built on first
    use, once (a caller reading only the summary, a notebook loop over
    ``backtest.run``, never pays for 14 columns per bar, nor ~0.3 ms of
    pandas per small table).
    """

    equity: InitVar[object]
    trades: InitVar[object]
    orders: InitVar[object]
    liquidations: InitVar[object]
    margin_calls: InitVar[object]
    summary: dict
    settings: dict
    profile: Profile
    bars: pd.DataFrame | None = field(default=None, repr=False)
    funding: pd.DataFrame | None = None  # perpetual futures: every funding charge (``funding.csv``)
    transfers: pd.DataFrame | None = None  # the trader's own moves (``transfers.csv``)
    loans: pd.DataFrame | None = None  # manual borrows and repays (``loans.csv``)

    def __post_init__(self, equity, trades, orders, liquidations, margin_calls):
        self._tables = dict(equity=equity, trades=trades, orders=orders, liquidations=liquidations,
                            margin_calls=margin_calls)

    def __repr__(self):
        s = self.summary
        return (
            f"<Result {self.settings.get('symbol')} {self.profile.name}: final equity "
            f"{s['final_equity']:,.2f}, return {s['total_return']:+.2%}, "
            f"{s['n_liquidations']} liquidations>"
        )

    def save(self, out) -> Path:
        """Write summary.json, run.json, equity.parquet, trades.csv,
        orders.csv, liquidations.csv and margin_calls.csv to ``out``, all or
        nothing: into a folder beside it, swapped in when complete
        (``backtest.atomic``), so a failure leaves a previous result there
        as it was."""
        out = Path(out)
        check_target(out, what=None)
        with replacing(out, what=None, drop=RUN_OUTPUTS) as tmp:
            self.write(tmp)
        return out

    def write(self, folder) -> Path:
        """Write the tables into an existing ``folder`` as they are (no
        swap; ``save`` and the CLI call it on their temporary folder)."""
        out = Path(folder)
        (out / "summary.json").write_text(json.dumps(_jsonable(self.summary), indent=2) + "\n")
        run = {"settings": self.settings, "profile": self.profile.as_dict()}
        (out / "run.json").write_text(json.dumps(_jsonable(run), indent=2) + "\n")
        self.equity.reset_index().to_parquet(out / "equity.parquet", index=False)
        self.trades.to_csv(out / "trades.csv", index=False)
        self.orders.to_csv(out / "orders.csv", index=False)
        self.liquidations.to_csv(out / "liquidations.csv", index=False)
        self.margin_calls.to_csv(out / "margin_calls.csv", index=False)
        for name in ("funding", "transfers", "loans"):
            table = getattr(self, name)
            if table is not None:
                table.to_csv(out / f"{name}.csv", index=False)
        return out

    @classmethod
    def load(cls, folder) -> "Result":
        """Read a folder written by ``save``; a missing or unreadable file is
        one line naming it."""
        folder = Path(folder)
        recover(folder)
        if not folder.is_dir():
            raise UserError(f"{folder}: no such result folder" if not folder.exists() else
                            f"{folder}: is a file; give the folder a run wrote (summary.json, equity.parquet, ...)")
        if not (folder / "summary.json").exists() and (folder / "sweep.json").exists():
            raise UserError(f"{folder}: a sweep folder, not one run's result")
        summary = _read(folder / "summary.json", lambda p: json.loads(p.read_text()), dict)
        run = _read(folder / "run.json", lambda p: json.loads(p.read_text()), dict)
        equity = _read(folder / "equity.parquet", lambda p: pd.read_parquet(p).set_index("timestamp"))
        tables = {name: _read(folder / f"{name}.csv", pd.read_csv)
                  for name in ("trades", "orders", "liquidations", "margin_calls")}
        try:
            profile = Profile.from_dict(run["profile"])
            settings = run["settings"]
            if not isinstance(settings, dict):
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{folder / 'run.json'}: no run settings and margin profile in it; not a complete result folder") from None
        for name, cols in (("trades", ("entry_time", "exit_time")), ("orders", ("time",)),
                           ("liquidations", ("time",)), ("margin_calls", ("time",))):
            for col in cols:
                if col not in tables[name]:
                    raise UserError(f"{folder / (name + '.csv')}: no {col!r} column; not a table marginbt wrote")
                try:
                    tables[name][col] = pd.to_datetime(tables[name][col], utc=True)
                except (TypeError, ValueError):
                    raise UserError(f"{folder / (name + '.csv')}: column {col!r} holds something other than "
                                    "times") from None
        # what every run writes: without it the report drew a flat zero equity or a blank summary (helper-73)
        numeric = pd.api.types.is_numeric_dtype
        if "equity" not in equity or not numeric(equity["equity"]):
            raise UserError(f"{folder / 'equity.parquet'}: no numeric 'equity' column; not a table marginbt wrote, "
                            "or damaged")
        if len(equity) == 0:  # (every run has a bar: the report's charts failed with a traceback, helper-75)
            raise UserError(f"{folder / 'equity.parquet'}: no rows; not a table marginbt wrote, or damaged")
        for key in ("final_equity", "total_return", "max_drawdown", "bars"):
            if not isinstance(summary.get(key), (int, float)) or isinstance(summary.get(key), bool):
                raise UserError(f"{folder / 'summary.json'}: no number {key!r} in it; not a summary marginbt wrote, "
                                "or damaged")
        extra = {name: _read(folder / f"{name}.csv", pd.read_csv) if (folder / f"{name}.csv").exists() else None
                 for name in ("funding", "transfers", "loans")}
        for name, table in extra.items():
            if table is not None and "time" in table:
                try:
                    table["time"] = pd.to_datetime(table["time"], utc=True)
                except (TypeError, ValueError):
                    raise UserError(f"{folder / (name + '.csv')}: column 'time' holds something other than "
                                    "times") from None
        return cls(equity=equity, summary=summary, settings=settings, profile=profile, **extra, **tables)

    def plot(self, path=None, log=False):
        """Draw equity (with liquidation markers) over the margin level; save
        to ``path`` if given, and return the matplotlib figure."""
        from .report import plot_equity

        if isinstance(path, (str, os.PathLike)):  # (one line, not matplotlib's error or a PNG under another
            p = Path(path)  # name; a file object is written as it is)
            if p.suffix.lower() != ".png":
                raise UserError(f"plot: {path}: a .png path (the picture is a PNG)")
            if not p.parent.is_dir():
                raise UserError(f"plot: {path}: no folder {p.parent}")
        elif path is not None and not hasattr(path, "write"):  # (plot(5): matplotlib's AttributeError before)
            from .checks import _type_error

            raise _type_error("path", path, "a .png path or a file opened for writing bytes")
        return plot_equity(self, path, log=log)


def _built(name, doc):
    def table(self) -> pd.DataFrame:
        if callable(self._tables[name]):
            self._tables[name] = self._tables[name]()
        return self._tables[name]

    def replace_table(self, value):
        self._tables[name] = value
    return property(table, replace_table, doc=doc)


def _state(self):
    """What pickling keeps: every table built (a table not read yet is a function of the run's locals)."""
    state = dict(self.__dict__)
    state["_tables"] = {name: getattr(self, name) for name in self._tables}
    return state


# (set after the class: a property in its body would be taken for the field's default)
Result.equity = _built("equity", "per bar: equity, margin level, position, ... (see ``Result``)")
Result.trades = _built("trades", "round trips (see ``backtest.trades``)")
Result.orders = _built("orders", "every fill, including forced (liquidation) fills")
Result.liquidations = _built("liquidations", "one row per liquidation event")
Result.margin_calls = _built("margin_calls", "one row per entry into the margin-call band")
Result.__getstate__ = _state


def _restore(self, state):
    """A Result pickled before its trades table was built on first read kept ``trades`` as a field."""
    if "trades" in state:
        state = dict(state, _tables=dict(state["_tables"], trades=state["trades"]))
        del state["trades"]
    self.__dict__.update(state)


Result.__setstate__ = _restore


def _read(path: Path, reader, kind=None):
    """One file of a result folder, or one line saying what is wrong with it."""
    if not path.exists():
        raise UserError(f"{path}: missing; not a complete result folder (run it again to rewrite it)")
    try:
        value = reader(path)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise UserError(f"{path}: cannot read it{f' ({first})' if first else ''}; not a file marginbt wrote, "
                        "or damaged") from None
    except Exception:  # a reader library's own errors (pyarrow): the file is damaged
        raise UserError(f"{path}: cannot read it; not a file marginbt wrote, or damaged") from None
    if kind is not None and not isinstance(value, kind):
        raise UserError(f"{path}: holds {type(value).__name__}, not the object marginbt writes")
    return value


def _jsonable(obj):
    """JSON has no inf/NaN/Timestamp: write them as null / ISO strings."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (pd.Timestamp, Path)):
        return str(obj)
    return obj
