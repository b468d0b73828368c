"""The trader's own moves on the Python side of a run: scheduled transfers
(``--transfer DATE=AMOUNT``), a reserve (``--reserve``) and its top-up rule
(``--top-up ml=X|amount=A``) checked and turned into the kernel's
``inputs.Flows``, with the manual loans (``--no-auto-borrow``, a strategy's
``borrow`` / ``repay``); the log back into ``transfers.csv`` and
``loans.csv``, per-bar columns and returns that do not count deposits as
profit (docs/model-choices.md "Transfers and a reserve", "Manual loans")."""
import math

import numpy as np
import pandas as pd

from .errors import UserError, UserTypeError
from .grid import MOVE_AXES
from .inputs import Flows
from .records import BORROW, REPAY, TOP_UP, TRANSFER_REASONS, transfer_dt
from .settings import MAX_CAPITAL

INITIAL = -1.0  # ``Flows.top_ml``: lift to the initial level (spot M0; a perp's initial margin)
TRANSFER_COLUMNS = ["time", "account", "asset", "amount", "requested", "reason", "price", "margin_level_before",
                    "margin_level_after", "capped", "reserve_after"]
LOAN_COLUMNS = ["time", "asset", "amount", "requested", "reason", "price", "margin_level_before",
                "margin_level_after", "capped"]
NO_LOANS = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))  # the kernel's events without loans


def _number(text, what):
    if isinstance(text, (bool, np.bool_, bytes, bytearray)):  # (True deposited 1.0)
        raise UserError(f"{what}: {text!r} is not a number")
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise UserError(f"{what}: {text!r} is not a finite number")
    return v


def parse_transfers(given) -> tuple:
    """``((iso time, amount), ...)`` from CLI strings ``DATE=AMOUNT``, a
    pandas Series (index times), a dict ``{date: amount}`` or pairs."""
    if given is None:
        return ()
    if isinstance(given, (str, bytes)):
        given = [given]
    if isinstance(given, pd.Series):
        pairs = list(given.items())
    elif isinstance(given, dict):
        pairs = list(given.items())
    elif not hasattr(given, "__iter__") or getattr(given, "ndim", 1) == 0:  # (a number: a bare TypeError before)
        raise UserTypeError(f"transfers={given!r}: expected {{date: amount}}, a Series of amounts by time, or "
                            "['DATE=AMOUNT', ...]")
    else:
        pairs = []
        for item in given:
            if isinstance(item, str):
                if "=" not in item:
                    raise UserError(f"--transfer {item}: expected DATE=AMOUNT (e.g. 2020-03-12=5000, "
                                    "negative to withdraw)")
                date, _, amount = item.partition("=")
                pairs.append((date.strip(), amount.strip()))
            else:
                try:
                    date, amount = item
                except (TypeError, ValueError):
                    raise UserError(f"--transfer {item!r}: expected (date, amount)") from None
                pairs.append((date, amount))
    out = []
    for date, amount in pairs:
        where = f"--transfer {date}={amount}"
        if isinstance(date, (bool, np.bool_, int, float, np.number)) or date is None or (
                isinstance(date, str) and not date.strip()):
            raise UserError(f"{where}: {date!r} is not a date")  # (None and '' read as NaT, 5 as 1970-01-01)
        try:
            t = pd.Timestamp(date)
        except (TypeError, ValueError):
            raise UserError(f"{where}: {date!r} is not a date") from None
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        v = _number(amount, where)
        if v == 0.0:
            raise UserError(f"{where}: an amount of 0 moves nothing")
        if abs(v) > MAX_CAPITAL:  # (as --capital's bound)
            raise UserError(f"{where}: at most {MAX_CAPITAL:.0e} either way")
        out.append((t.isoformat(), v))
    return tuple(out)


def by_symbol(transfers, reserve, symbols) -> tuple:
    """A several-symbol run's moves per symbol: ``({symbol: transfers},
    {symbol: reserve})`` from ``SYMBOL@DATE=AMOUNT`` strings (or ``{symbol:
    transfers}``) and ``SYMBOL=AMOUNT`` strings (or ``{symbol: amount}``):
    each account of one symbol keeps its own reserve (accounts run apart)."""
    out_t, out_r = {}, {}
    if isinstance(transfers, dict):
        items = [(sym, t) for sym, t in transfers.items()]
    else:
        items = []
        for item in [transfers] if isinstance(transfers, str) else (transfers or []):
            if not isinstance(item, str) or "@" not in item.partition("=")[0]:
                raise UserError(f"--transfer {item}: several symbols: name the account's symbol, "
                                "SYMBOL@DATE=AMOUNT")
            sym, _, rest = item.partition("@")
            items.append((sym.strip(), [rest]))
    for sym, t in items:
        if sym not in symbols:
            raise UserError(f"--transfer {sym}@…: {sym} is not one of the run's symbols ({', '.join(symbols)})")
        out_t[sym] = out_t.get(sym, ()) + parse_transfers(t)
    if reserve is None or (not isinstance(reserve, (str, list, tuple, dict)) and reserve == 0):
        return out_t, out_r
    if isinstance(reserve, dict):
        pairs = list(reserve.items())
    elif isinstance(reserve, (str, list, tuple)):
        pairs = []
        for item in [reserve] if isinstance(reserve, str) else reserve:
            sym, sep, amount = str(item).partition("=")
            if not sep:
                raise UserError(f"--reserve {item}: several symbols: each account keeps its own reserve, "
                                "SYMBOL=AMOUNT")
            pairs.append((sym.strip(), amount))
    else:
        raise UserError(f"--reserve {reserve}: several symbols: each account keeps its own reserve, SYMBOL=AMOUNT "
                        "(a dict {symbol: amount})")
    for sym, amount in pairs:
        if sym not in symbols:
            raise UserError(f"--reserve {sym}=…: {sym} is not one of the run's symbols ({', '.join(symbols)})")
        v = _number(amount, f"--reserve {sym}={amount}")
        if v < 0:
            raise UserError(f"--reserve {sym}={amount}: must be a finite amount ≥ 0")
        if sym in out_r:
            raise UserError(f"--reserve {sym}={amount}: {sym}'s reserve is given twice")
        out_r[sym] = v
    return out_t, out_r


def parse_top_up(spec):
    """``None``, ``("ml", X)`` or ``("amount", A)`` (X may be None: the venue's default)."""
    if spec is None or spec is False:
        return None
    if spec is True or spec == "":
        return ("ml", None)
    if isinstance(spec, tuple):
        return spec
    kind, _, value = str(spec).partition("=")
    if kind not in ("ml", "amount") or not value:
        raise UserError(f"--top-up {spec}: expected ml=X (lift the margin level to X) or amount=A (A per call)")
    v = _number(value, f"--top-up {spec}")
    if v <= 0:
        raise UserError(f"--top-up {spec}: must be > 0")
    return (kind, v)


def manual(rs, given) -> bool:
    """Whether the run has manual loans (auto-borrow off, or a strategy's borrow / repay)."""
    return not rs.auto_borrow or bool(given.loans)


def check_combination(rs, given, detail, reserve, transfers, keep_ml=None):
    """What the moves do not combine with yet: one line each."""
    loans = manual(rs, given)
    if keep_ml and loans:
        raise UserError(f"--keep-ml {keep_ml}: not combined with manual loans yet (--no-auto-borrow, a strategy's "
                        "borrow / repay)")
    if not (reserve or transfers or keep_ml or loans):
        return
    flag = ("--keep-ml" if keep_ml else ("--reserve" if reserve else "--transfer")) if not loans else (
        "--no-auto-borrow" if not rs.auto_borrow else "a strategy's borrow / repay")
    for name, on in (("--stop-loss", rs.stop_loss), ("--take-profit", rs.take_profit),
                     ("--trailing-stop", rs.trailing_stop)):
        if on:
            raise UserError(f"{flag}: not combined with {name} yet (top-ups walk the path without stops)")
    if given.limit.size or given.stop_loss.size or given.take_profit.size:
        raise UserError(f"{flag}: not combined with a strategy's limit orders or stop levels yet")
    if detail is not None:
        raise UserError(f"{flag}: not combined with --detail yet")


def _keep_level(keep_ml, profile, levels, auto_repay):
    """The safety buffer's level, checked (NaN: none)."""
    if keep_ml is None:
        return np.nan
    x = _number(keep_ml, f"--keep-ml {keep_ml}")
    if profile.perp:
        if profile.isolated:
            raise UserError(f"--keep-ml {keep_ml}: not on an isolated perp (reducing it leaves its liquidation "
                            "price where it was)")
        if not x > 1.0:
            raise UserError(f"--keep-ml {keep_ml}: must be above the liquidation health (1)")
        return x
    initial, _, liquidation, _ = levels
    if not auto_repay:
        raise UserError(f"--keep-ml {keep_ml}: not with --no-auto-repay yet")
    if not liquidation < x < initial:
        raise UserError(f"--keep-ml {keep_ml}: must lie between the liquidation level ({liquidation:g}) and the "
                        f"initial level ({initial:g})")
    return x


def loan_events(rs, given, profile, base, quote):
    """The manual loans as the kernel's events (bar done at, kind, amount),
    in the order it does them (``flows.LOAN_KINDS``); None without manual
    loans (with them and nothing to do: ``NO_LOANS``)."""
    from .flows import BORROW_BASE, BORROW_QUOTE, REPAY_BASE, REPAY_QUOTE

    if not manual(rs, given):
        return None
    what = "--no-auto-borrow" if not rs.auto_borrow else "a strategy's borrow / repay"
    if profile.perp:
        raise UserError(f"{what}: spot margin only (a perpetual futures account has no loans)")
    kinds = {("repay", base): REPAY_BASE, ("repay", quote): REPAY_QUOTE, ("borrow", base): BORROW_BASE,
             ("borrow", quote): BORROW_QUOTE}
    bars, codes, amounts = [], [], []
    for (key, asset), arr in given.loans.items():
        if (key, asset) not in kinds:
            raise UserError(f"strategy: {key}[{asset!r}]: the symbol's assets are {base} and {quote}")
        rows = np.flatnonzero(arr[:-1] > 0)  # (NaN compares False; the last bar has no next open)
        bars.append(rows + 1)
        codes.append(np.full(rows.size, kinds[(key, asset)], np.int64))
        amounts.append(arr[rows])
    if not bars:
        return NO_LOANS
    bars, codes, amounts = (np.concatenate(a) for a in (bars, codes, amounts))
    order = np.lexsort((codes, bars))
    return bars[order].astype(np.int64), codes[order], amounts[order].astype(np.float64)


def flows_spec(transfers, reserve, top_up, profile, seconds, call_level, keep_ml=None, auto_repay=True,
               loans=None):
    """The kernel's schedule: (bar of each transfer, amount, reserve, level
    to lift to, fixed amount, buffer level, loans: ``loan_events``); None
    when there are no moves and no manual loans."""
    reserve = float(reserve or 0.0)
    if not (reserve >= 0.0 and math.isfinite(reserve)):
        raise UserError(f"--reserve {reserve}: must be a finite amount ≥ 0")
    rule = parse_top_up(top_up)
    if rule is not None and reserve <= 0.0:
        raise UserError("--top-up: needs --reserve AMOUNT (the money kept aside to top up from)")
    if reserve > 0.0 and rule is None:
        rule = ("ml", None)
    keep = _keep_level(keep_ml, profile, profile.kernel_levels(), auto_repay)
    if not transfers and reserve <= 0.0 and keep != keep and loans is None:
        return None
    top_ml, top_amount = np.nan, np.nan
    if rule is not None:
        kind, v = rule
        if kind == "ml":
            top_ml = v if v is not None else INITIAL
            if top_ml != INITIAL and top_ml <= call_level:
                raise UserError(f"--top-up ml={top_ml:g}: must be above the margin-call level ({call_level:g}) "
                                "it answers")
        else:
            top_amount = v
    times = np.array([pd.Timestamp(t).value // 10**9 for t, _ in transfers], dtype=np.int64)
    for (t, a), s in zip(transfers, times):
        if s < seconds[0] or s > seconds[-1]:
            raise UserError(f"--transfer {t[:19]}={a:g}: outside the data "
                            f"({pd.Timestamp(int(seconds[0]), unit='s')} → {pd.Timestamp(int(seconds[-1]), unit='s')})")
    order = np.argsort(times, kind="stable")
    bars = np.searchsorted(seconds, times[order], side="left").astype(np.int64)
    amounts = np.array([a for _, a in transfers], dtype=np.float64)[order]
    return bars, amounts, reserve, float(top_ml), float(top_amount), float(keep), loans


def make_flows(spec, rows):
    """A fresh ``inputs.Flows`` for one kernel call (its state and log are
    written by the kernel), ``rows`` rows of log."""
    bars, amounts, reserve, top_ml, top_amount, keep, loans = spec
    return Flows(bars, amounts, np.array([reserve, 0.0, 0.0]), top_ml, top_amount, keep, *(loans or NO_LOANS),
                 np.zeros(rows, transfer_dt), np.zeros(3, np.int64))


def log_rows(spec):
    return len(spec[0]) + (0 if spec[6] is None else len(spec[6][0])) + 256


def outputs(flows, spec, index, equity, quote, capital, ppy, level=lambda x: x, base="BASE"):
    """(transfers table, per-bar net transfers, per-bar reserve, summary
    fields with the return metrics of the trader's wealth, loans table or
    None); ``level`` turns the kernel's levels into the profile's terms."""
    log = flows.log[: flows.count[0]]
    is_loan = (log["reason"] == BORROW) | (log["reason"] == REPAY)
    loans = None if spec[6] is None else _loans_table(log[is_loan], index, base, quote, level)
    log = log[~is_loan]
    loan_fields = {} if loans is None else {
        "n_borrows": int(((loans["amount"] > 0) & (loans["reason"] == "borrow")).sum()),
        "n_repays": int(((loans["amount"] > 0) & (loans["reason"] == "repay")).sum())}
    if not len(spec[0]) and spec[2] <= 0.0 and spec[5] != spec[5]:  # manual loans alone: no transfer columns
        return None, None, None, loan_fields, loans
    n = len(index)
    reason = np.asarray(TRANSFER_REASONS)[log["reason"]]
    table = pd.DataFrame({
        "time": index[log["bar"]], "account": "margin", "asset": quote, "amount": log["amount"],
        "requested": log["requested"], "reason": reason, "price": log["price"],
        "margin_level_before": level(log["level_before"]), "margin_level_after": level(log["level_after"]),
        "capped": log["capped"], "reserve_after": log["reserve_after"]}, columns=TRANSFER_COLUMNS)
    top = log["reason"] == TOP_UP
    flow = np.bincount(log["bar"][~top], weights=log["amount"][~top], minlength=n)
    net = np.cumsum(flow)
    reserve0 = spec[2]
    reserve = reserve0 - np.cumsum(np.bincount(log["bar"][top], weights=log["amount"][top], minlength=n))
    fields = wealth_fields(index, equity, reserve, flow, capital, reserve0, ppy)
    final = float(equity[-1])
    left = float(flows.state[0])
    fields.update(reserve=reserve0, reserve_left=left, net_transfers=float(flows.state[1]),
                  n_top_ups=int(top.sum()), topped_up=float(flows.state[2]),
                  profit=final + left - capital - reserve0 - float(flows.state[1]))
    fields.update(loan_fields)
    return table, net, reserve, fields, loans


def _loans_table(log, index, base, quote, level):
    return pd.DataFrame({
        "time": index[log["bar"]], "asset": np.where(log["base"], base, quote), "amount": log["amount"],
        "requested": log["requested"], "reason": np.asarray(TRANSFER_REASONS)[log["reason"]], "price": log["price"],
        "margin_level_before": level(log["level_before"]), "margin_level_after": level(log["level_after"]),
        "capped": log["capped"]}, columns=LOAN_COLUMNS)


def wealth_fields(index, equity, reserve, flow, capital, reserve0, ppy) -> dict:
    """The return metrics of the trader's wealth ``W = equity + reserve``
    per bar, the scheduled transfers ``flow`` (per bar) taken out as flows:
    a bar's return ``(W_i − f_i) / W_{i−1} − 1`` from ``capital +
    reserve0``; total return (time-weighted), drawdown, Sharpe, Sortino,
    CAGR and Calmar as ``metrics.summarize`` takes them."""
    from .metrics import YEAR, relative, return_sums, summarize

    n = len(index)
    wealth = equity + reserve
    r = np.concatenate(([capital + reserve0], wealth[:-1]))  # the wealth before each bar
    relative(wealth - flow, r)
    growth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], growth)))[1:]
    online = dict(return_sums(r), final_equity=float(growth[-1]),
                  max_drawdown=float(min((growth / peak - 1.0).min(), 0.0)), n_exposed=0.0, min_margin_level=np.inf)
    returns = summarize(1.0, online, n, 0, 0, ppy)
    fields = {k: returns[k] for k in ("total_return", "max_drawdown", "sharpe", "sortino")}
    years = ((index[-1] - index[0]).total_seconds() + YEAR / ppy) / YEAR if n else 0.0  # as metrics.summarize
    with np.errstate(over="ignore"):  # a short, lucky run annualises to inf (as metrics.summarize)
        fields["cagr"] = float(np.power(growth[-1], 1.0 / years) - 1.0) if growth[-1] > 0 and years > 0 else -1.0
    fields["calmar"] = fields["cagr"] / abs(fields["max_drawdown"]) if fields["max_drawdown"] < 0 else 0.0
    return fields


def axes_spec(params, settings, given, profile, seconds, call_level):
    """A sweep's or risk grid's combination with move axes (``reserve``,
    ``top_up_ml``, ``keep_ml``; ``keep_ml`` 0: no buffer) as the kernel's
    schedule on ``seconds``; None without moves.  ``settings``: the grid's
    settings dict; ``given``: the combination's ``strategy.Orders`` (its own
    stop fractions count, as in ``run``)."""
    from .settings import RunSettings

    reserve, top, keep = (params.get(k) for k in MOVE_AXES)
    keep = keep or None
    if not reserve and keep is None:
        return None
    rs = RunSettings.from_dict(settings).with_stops(given.fractions)
    check_combination(rs, given, None, reserve, (), keep)
    return flows_spec((), reserve or 0.0, f"ml={top}" if reserve and top is not None else None, profile, seconds,
                      call_level, keep, rs.auto_repay)
