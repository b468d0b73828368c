"""Borrow-rate histories: a rate file → one hourly rate per asset per whole hour.

The kernel never looks a date up: it gets, per asset, an array of hourly
rates for the whole hours ``h0, h0 + 1, …`` spanned by the run (``h0`` =
the first bar's hour, in hours since the epoch).  A constant rate is the
same array, constant.  The forward-fill rule (docs/model-choices.md "Rate
histories"): the rate in force at whole hour ``h`` is the last row with
``timestamp ≤ h``.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .rules import HOUR, hourly_rate


def hour_span(seconds: np.ndarray) -> tuple[int, int]:
    """(first whole hour, count of whole hours) the run's bars touch."""
    h0 = int(seconds[0]) // HOUR
    return h0, int(seconds[-1]) // HOUR - h0 + 1


def constant_hourly(seconds: np.ndarray, daily_rate: float) -> np.ndarray:
    return np.full(hour_span(seconds)[1], hourly_rate(daily_rate))


def load_rates(path) -> dict:
    """Read a rate file (CSV or Parquet; columns ``timestamp, asset`` and
    ``daily_rate`` or ``hourly_rate``) as ``{asset: (epoch seconds, hourly
    rates)}``, sorted by time.  Every problem is one UserError line."""
    if isinstance(path, pd.DataFrame):
        return rates_from_frame(path, "--rates (table)")
    path = Path(path)
    flag = f"--rates {path}"
    if not path.is_file():
        raise UserError(f"{flag}: no such file")
    try:
        df = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
    except Exception as exc:  # any parser's complaint, on one line
        raise UserError(f"{flag}: cannot read it ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return rates_from_frame(df, flag)


def rates_from_frame(df: pd.DataFrame, flag: str) -> dict:
    """``load_rates`` for a table already in memory."""
    df = df.copy()
    df.columns = [str(c).strip().lower() for c in df.columns]
    kinds = [c for c in ("daily_rate", "hourly_rate") if c in df.columns]
    missing = [c for c in ("timestamp", "asset") if c not in df.columns]
    if missing or len(kinds) != 1:
        raise UserError(f"{flag}: expected columns timestamp, asset and one of daily_rate or hourly_rate "
                        f"(found {', '.join(df.columns)})")
    if len(df) == 0:
        raise UserError(f"{flag}: no rows")
    seconds = _seconds(df["timestamp"], flag)
    rate = pd.to_numeric(df[kinds[0]], errors="coerce").to_numpy(np.float64)
    bad = ~(np.isfinite(rate) & (rate >= 0.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{flag}: row {i + 1}: {kinds[0]} {df[kinds[0]].iloc[i]!r} is not a finite number ≥ 0")
    hourly = hourly_rate(rate) if kinds[0] == "daily_rate" else rate
    names = df["asset"].to_numpy(object)
    blank = [i for i, a in enumerate(names) if not isinstance(a, str) or not a.strip()]
    if blank:  # (it became the asset "NAN" or "5", which no run trades: the default rate paid silently)
        raise UserError(f"{flag}: row {blank[0] + 1}: asset {names[blank[0]]!r} is not an asset's name")
    assets = np.array([a.strip().upper() for a in names], dtype=object)
    out = {}
    for asset in dict.fromkeys(assets):
        rows = np.flatnonzero(assets == asset)
        t = seconds[rows]
        order = np.argsort(t, kind="stable")
        t = t[order]
        dup = np.flatnonzero(np.diff(t) == 0)
        if dup.size:
            at = pd.Timestamp(int(t[dup[0]]), unit="s", tz="UTC")
            raise UserError(f"{flag}: {asset} has two rates at {at}")
        out[asset] = (t, hourly[rows][order])
    return out


def _seconds(col: pd.Series, flag: str) -> np.ndarray:
    """Timestamps as epoch seconds: numbers are milliseconds (Binance's
    API), anything else a date/time string read as UTC."""
    if pd.api.types.is_numeric_dtype(col):
        v = col.to_numpy(np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            raise UserError(f"{flag}: row {int(np.flatnonzero(bad)[0]) + 1}: timestamp is empty")
        early = np.flatnonzero(v < 1e11)  # before 1973 as milliseconds: seconds (or a count), not Binance's
        if early.size:
            i = int(early[0])
            raise UserError(f"{flag}: row {i + 1}: timestamp {v[i]:.0f} as milliseconds is "
                            f"{pd.Timestamp(int(v[i] // 1000), unit='s', tz='UTC')}; numbers are epoch milliseconds "
                            "(Binance's), else give dates")
        return (v // 1000).astype(np.int64)
    parsed = pd.to_datetime(col, utc=True, errors="coerce", format="mixed")
    if parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise UserError(f"{flag}: row {i + 1}: timestamp {col.iloc[i]!r} is not a date/time")
    return (parsed.dt.tz_convert("UTC").dt.as_unit("s").astype("int64")).to_numpy(np.int64)  # any resolution


def hourly_for(seconds: np.ndarray, asset: str, history, flag="--rates") -> np.ndarray:
    """The asset's hourly rate at every whole hour of the run (forward-filled)."""
    h0, count = hour_span(seconds)
    hours = (h0 + np.arange(count, dtype=np.int64)) * HOUR
    t, r = history
    k = np.searchsorted(t, hours, side="right") - 1  # last row with timestamp ≤ h
    if k[0] < 0:
        first = pd.Timestamp(int(t[0]), unit="s", tz="UTC")
        start = pd.Timestamp(int(hours[0]), unit="s", tz="UTC")
        raise UserError(f"{flag}: {asset}'s first rate is at {first}, after the run's first hour {start} "
                        "(add earlier rows or use --start)")
    return r[k]


def rate_table(seconds: np.ndarray, assets, daily: dict, history: dict | None):
    """``(h0, [hourly array per asset])`` for the kernel: each asset's
    history when the rate file names it, else its constant daily rate."""
    history = history or {}
    h0, _ = hour_span(seconds)
    arrays = []
    for asset in assets:
        if asset in history:
            arrays.append(np.ascontiguousarray(hourly_for(seconds, asset, history[asset]), dtype=np.float64))
        else:
            arrays.append(constant_hourly(seconds, daily[asset]))
    return h0, arrays
