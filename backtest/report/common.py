"""The run as plain arrays for the panels, and the shared look of the report.

``prepare(result)`` reads a ``Result`` (fresh from ``run`` or loaded from a
folder, where ``bars`` is None and values may be None) once; every panel then
draws from the ``Run`` it returns.  A perpetual-futures run (``is_perp``)
carries its margin ratio and funding instead of margin levels, debt and
interest (docs/model-choices.md "Perpetual futures").
"""
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib import ticker

from ..assets import split_symbol
from ..metrics import drawdown
from ..profiles import USDM

A4 = (8.27, 11.69)  # portrait, inches
PNG_SIZE = (11.0, 7.0)
PNG_DPI = 110
LINE_DPI = 150  # decimation resolution: columns per inch of an axes
MONO = "DejaVu Sans Mono"

BLUE, RED, ORANGE, GREEN, GREY = "#1f4e9c", "#d62728", "#ff7f0e", "#2ca02c", "#555555"


@dataclass
class Run:
    """Everything the panels draw, as NumPy arrays over the bars (x in
    matplotlib date numbers) and small event tables with an ``x`` column."""

    x: np.ndarray
    equity: np.ndarray
    close: np.ndarray
    margin_levels: dict  # account label -> ML per bar, +inf as NaN
    exposure: np.ndarray
    position: np.ndarray
    debt: np.ndarray
    interest: np.ndarray
    fees: np.ndarray
    drawdown: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    liquidations: pd.DataFrame
    margin_calls: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    symbol: str
    base: str
    quote: str
    capital: float
    result: object
    base_debt: np.ndarray | None = None  # value of the base owed, when the run kept it (auto-repay off)
    closes: dict | None = None  # several symbols: symbol -> close per bar (its last close between its bars)
    liquidation_prices: dict | None = None  # symbol -> liquidation price per bar (NaN: none), when the run has it
    perp: bool = False  # Binance USDⓈ-M perpetual futures: the fields below, no debt or interest
    margin_ratios: dict | None = None  # perps: account label -> margin ratio per bar (0 flat)
    funding_paid: np.ndarray | None = None  # perps: cumulative funding per bar (positive = paid)
    funding: pd.DataFrame | None = None  # perps: every funding charge (``funding.csv``) with an ``x`` column
    transfers: pd.DataFrame | None = None  # the trader's own moves (``transfers.csv``) with an ``x`` column

    @property
    def profile(self):
        return self.result.profile

    @property
    def settings(self):
        return self.result.settings

    @property
    def summary(self):
        return self.result.summary


def date_numbers(times) -> np.ndarray:
    """UTC times (tz-aware or naive-as-UTC) → matplotlib date numbers."""
    idx = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    if len(idx) == 0:
        return np.empty(0)
    return mdates.date2num(idx.tz_localize(None).to_numpy(dtype="datetime64[ns]"))


def _events(frame: pd.DataFrame, *time_cols) -> pd.DataFrame:
    frame = frame.copy() if frame is not None else pd.DataFrame()
    for col in time_cols:
        if col in frame:
            frame["x" if col == time_cols[0] else f"x_{col}"] = date_numbers(frame[col])
    return frame


def _drawdown(eq, equity, capital, reserve) -> np.ndarray:
    """Drawdown from the peak in percent: of the equity, or with the
    trader's own moves of the wealth index the summary's returns are taken
    on (equity + reserve, the scheduled transfers taken out as flows)."""
    if not len(equity):
        return equity
    if "net_transfers" not in eq.columns:
        return drawdown(np.concatenate(([capital], equity)))[1:] * 100.0
    wealth = equity + eq["reserve"].to_numpy(np.float64)
    flow = np.diff(np.concatenate(([0.0], eq["net_transfers"].to_numpy(np.float64))))
    prev = np.concatenate(([capital + reserve], wealth[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.cumprod(np.where(prev > 0, (wealth - flow) / np.where(prev > 0, prev, 1.0), 1.0))
    return drawdown(np.concatenate(([1.0], growth)))[1:] * 100.0


def _assets(symbol: str) -> tuple[str, str]:
    try:
        return split_symbol(symbol)
    except Exception:  # an unknown quote asset must not stop the report
        return symbol, "quote"


def is_perp(result) -> bool:
    """A perpetual-futures result (venue ``binance-usdm``)."""
    return getattr(result.profile, "venue", None) == USDM or (result.summary or {}).get("venue") == USDM


def _margin_ratios(eq, symbol, profile) -> dict:
    """Perps: the margin ratio per bar (maintenance margin / margin balance)."""
    out = {}
    for name in [c for c in eq.columns if str(c).startswith("margin_ratio")]:
        suffix = str(name)[len("margin_ratio"):].strip("_")
        out[f"{suffix or symbol} ({getattr(profile, 'mode', '') or 'margin'})"] = eq[name].to_numpy(np.float64)
    return out


def prepare(result) -> Run:
    eq = result.equity
    x = date_numbers(eq.index)
    col = lambda name: eq[name].to_numpy(np.float64) if name in eq else np.zeros(len(eq))  # noqa: E731
    equity = col("equity")
    symbol = str(result.settings.get("symbol") or "?")
    base, quote = _assets(symbol)
    accounts = result.settings.get("accounts") or {}  # several symbols: each account's own profile
    levels = {}
    for name in [c for c in eq.columns if str(c).startswith("margin_level")]:
        ml = eq[name].to_numpy(np.float64).copy()
        ml[~np.isfinite(ml)] = np.nan  # +inf: no debt, nothing to plot
        suffix = str(name)[len("margin_level"):].strip("_")
        profile = (accounts.get(suffix) or {}).get("profile") or str(getattr(result.profile, "name", ""))
        levels[f"{suffix or symbol} ({profile.split('-')[0] or 'margin'})"] = ml
    capital = float(result.settings.get("capital") or (equity[0] if len(equity) else 0.0))
    bars = result.bars
    low = high = None
    if bars is not None and len(bars) == len(eq) and {"low", "high"} <= set(bars.columns):
        low, high = bars["low"].to_numpy(np.float64), bars["high"].to_numpy(np.float64)
    perp = is_perp(result)
    return Run(
        x=x, equity=equity, close=col("close"), margin_levels=levels, exposure=col("exposure"),
        position=col("position"), debt=col("debt"), interest=col("interest_paid"), fees=col("fees_paid"),
        drawdown=_drawdown(eq, equity, capital, result.summary.get("reserve") or 0.0),
        low=low, high=high,
        liquidations=_events(result.liquidations, "time"), margin_calls=_events(result.margin_calls, "time"),
        trades=_events(result.trades, "entry_time", "exit_time"), orders=_events(result.orders, "time"),
        symbol=symbol, base=base, quote=quote, capital=capital, result=result,
        base_debt=col("debt_base") * col("close") if "debt_base" in eq.columns else None,
        closes={str(c)[len("close_"):]: eq[c].to_numpy(np.float64) for c in eq.columns if str(c).startswith("close_")}
        or None,
        liquidation_prices={str(c)[len("liquidation_price"):].strip("_") or symbol: eq[c].to_numpy(np.float64)
                            for c in eq.columns if str(c).startswith("liquidation_price")} or None,
        perp=perp,
        margin_ratios=_margin_ratios(eq, symbol, result.profile) if perp else None,
        funding_paid=col("funding_paid") if perp else None,
        funding=_events(getattr(result, "funding", None), "time") if perp else None,
        transfers=_events(getattr(result, "transfers", None), "time"),
    )


def columns(ax, dpi: float = LINE_DPI) -> int:
    """How many pixel columns the axes spans at ``dpi``."""
    return max(int(ax.get_figure().get_figwidth() * ax.get_position().width * dpi), 50)


def date_axis(ax, label=True):
    """Concise UTC dates on the x axis."""
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    ax.tick_params(axis="x", labelsize=8)
    if label:
        ax.set_xlabel("date (UTC)", fontsize=8)


def set_xlim(ax, x):
    if len(x) == 0:
        return
    lo, hi = float(x[0]), float(x[-1])
    pad = (hi - lo) * 0.01 or 1.0 / 24
    ax.set_xlim(lo - pad, hi + pad)


def money_axis(ax, values=None):
    """Readable amounts: 2,500 / 12.5k / 1.25M on a linear axis (one unit
    for the whole axis); on a log axis each decade, and 2 and 5 between
    when ``values`` span less than three decades."""
    ax.yaxis.set_major_formatter(MoneyFormatter())
    if ax.get_yscale() == "log":
        v = np.asarray(values if values is not None else [], dtype=np.float64)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size and v.max() / v.min() < 1e3:
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_locator(ticker.NullLocator())  # minor log ticks cost time, add nothing here


class MoneyFormatter(ticker.Formatter):
    def __call__(self, v, pos=None):
        if self.axis is None or self.axis.get_scale() == "log":
            return _short(v)
        lo, hi = self.axis.get_view_interval()
        top = max(abs(lo), abs(hi))
        scale, unit = (1e9, "B") if top >= 1e9 else (1e6, "M") if top >= 1e6 else (1e3, "k") if top >= 2e4 else (1, "")
        locs = self.axis.get_majorticklocs()
        step = float(np.min(np.diff(locs))) / scale if len(locs) > 1 else abs(v) / scale or 1.0
        decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
        return f"{v / scale:,.{decimals}f}{unit}" if v else "0"


def _short(v: float) -> str:
    a = abs(v)
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{v / scale:,.4g}{unit}"
    return f"{v:,.4g}"


def legend(ax, ncol=None, **kw):
    """Legend in a row above the axes, right-aligned: never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(
        handles, labels, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=ncol or len(handles),
        frameon=False, fontsize=7, borderaxespad=0.1, handlelength=1.6, columnspacing=1.0, **kw,
    )


def title(ax, text):
    # a fixed y: automatic title placement measures every shared axis (slow)
    ax.set_title(text, loc="left", fontsize=9.5, fontweight="bold", pad=4, y=1.0)


def fmt_num(v, digits=2, pct=False, signed=False) -> str:
    """A table cell: None/NaN → '—', thousands separators, optional %."""
    if v is None:
        return "—"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "—"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if round(f * (100 if pct else 1), digits) == 0:
        f = 0.0  # no "-0.00"
    sign = "+" if signed and f != 0 else ""
    if pct:
        return f"{f * 100:{sign},.{digits}f} %"
    return f"{f:{sign},.{digits}f}"


def fmt_small(v, digits=2) -> str:
    """Like ``fmt_num``, but amounts below 1 keep four significant digits
    (a wiped-out account's 0.000123 is not 0.00)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return fmt_num(v, digits)
    if f != 0 and abs(f) < 1 and math.isfinite(f):
        return f"{f:.4g}"
    return fmt_num(v, digits)


def fmt_price(v) -> str:
    """Prices keep about six significant digits, whatever their size."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    f = float(v)
    digits = 2 if abs(f) >= 100 else (4 if abs(f) >= 1 else 8)
    return f"{f:,.{digits}f}"


def fmt_time(t) -> str:
    try:
        return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(t)


def run_title(run: Run) -> str:
    s = run.settings
    params = ", ".join(f"{k}={v}" for k, v in (s.get("params") or {}).items())
    strategy = f"{s.get('strategy', '?')}({params})" if params else str(s.get("strategy", "?"))
    start = str(s.get("start") or run.summary.get("start") or "")[:10]
    end = str(s.get("end") or run.summary.get("end") or "")[:10]
    accounts = s.get("accounts") or {}  # several symbols: every account's profile, once each
    profiles = ", ".join(dict.fromkeys(a.get("profile", "?") for a in accounts.values())) or run.profile.name
    return f"{run.symbol} · {strategy} · {profiles} · {start} → {end}"


def title_size(text: str, width_in: float) -> float:
    """Bold title size (≤ 11 pt) at which ``text`` fits ``width_in`` inches."""
    return float(min(11.0, max(6.5, width_in * 72 / (0.62 * max(len(text), 1)))))
