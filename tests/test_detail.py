"""``--detail``: finer bars settle the path inside a bar (issue 4 item 4).

The Done-when: a 1-hour run with the bundled 1-minute week as detail gives
the fills and the final equity of the same strategy run on the 1-minute bars
themselves, each hour's target held over the hour.  Plus hand-built bars
through the reference model, the fallback count and every bad input.
"""
import json
from pathlib import Path

import math

import numpy as np
import pytest

import backtest
from backtest.cli import main
from backtest.data import load_ohlcv, resample_ohlcv, write_ohlcv
from test_differential import BASE, DAY, compare, run_both

ROOT = Path(__file__).resolve().parent.parent
HOURS = ROOT / "data" / "BTCUSDT-1h.parquet"
MINUTES = ROOT / "data" / "BTCUSDT-1m-2025-06-16.parquet"  # 2025-06-16 00:00 .. 2025-06-22 23:59
NAN = math.nan
NO_COSTS = dict(fee=0.0, slippage=0.0, rate_base_daily=0.0, rate_quote_daily=0.0)


@pytest.fixture(scope="module")
def week():
    return load_ohlcv(HOURS, "2025-06-16", "2025-06-22"), load_ohlcv(MINUTES)


def test_the_minute_week_adds_up_to_the_bundled_hours(week):
    hours, minutes = week
    assert len(minutes) == 7 * 24 * 60 and minutes.attrs["timeframe"] == "1m" and minutes.attrs["symbol"] == "BTCUSDT"
    assert np.all(np.diff(minutes.index.asi8) == 60 * 10**9)  # no minute missing
    res = resample_ohlcv(minutes, "1h")
    assert res.index.equals(hours.index)
    for k in ("open", "high", "low", "close"):
        assert np.array_equal(res[k].to_numpy(), hours[k].to_numpy()), k


# ------------------------------------------------ the Done-when: 1h + detail == 1m
def momentum(hours, leverage):
    """Long after an up hour, short after a down hour: a trade most hours, so
    stops and take-profits fire often."""
    x = leverage * np.sign(hours["close"].to_numpy() - hours["open"].to_numpy())
    x[0] = 0.0
    return x


def held_on_minutes(hours, minutes, targets):
    """The hourly targets on the minute bars: the target decided at the
    close of hour H sits on H's last minute (so it runs at the open of H+1,
    as on the hourly bars); NaN (hold) on every other minute."""
    x = np.full(len(minutes), np.nan)
    last_minute = np.searchsorted(minutes.index.asi8, hours.index.asi8 + 3600 * 10**9) - 1
    x[last_minute] = targets
    return x


CASES = {  # name: (leverage, settings, exit kinds that week, the hourly bars alone get it wrong)
    "stops-pessimistic": (3.0, dict(margin="cross-3x", stop_loss=0.003, take_profit=0.004, path="pessimistic"),
                          {"stop_loss", "take_profit"}, True),
    "trailing": (3.0, dict(margin="cross-3x", stop_loss=0.003, take_profit=0.004, trailing_stop=0.002),
                 {"trailing_stop", "take_profit"}, True),
    "take-profit-and-liquidations": (15.0, dict(margin="cross-pro-20x", take_profit=0.004),
                                     {"take_profit", "liquidation"}, False),
    "stop-and-liquidations": (18.0, dict(margin="cross-pro-20x", stop_loss=0.005, take_profit=0.003,
                                         liquidation="full"), {"stop_loss", "take_profit", "liquidation"}, False),
    "liquidations-without-stops": (16.0, dict(margin="cross-pro-20x"), {"liquidation"}, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hours_with_minute_detail_equal_the_minute_run(week, case):
    hours, minutes = week
    leverage, settings, kinds, guessed_wrong = CASES[case]
    targets = momentum(hours, leverage)
    fine = backtest.run(hours, targets, detail=MINUTES, **settings)
    ref = backtest.run(minutes, held_on_minutes(hours, minutes, targets), **settings)
    plain = backtest.run(hours, targets, **settings)
    a, b = fine.summary, ref.summary
    assert a["detail_bars"] == 168 and a["detail_missing_bars"] == 0
    # Tolerance: both runs apply the same functions to the same prices in the same
    # order (a stop fill is trigger ± slippage, fees and interest are per fill and
    # per hour), so they agree to the bit; 1e-9 relative only allows for a
    # different float summation order, far below a fee's rounding (1e-8 USDT).
    assert a["final_equity"] == pytest.approx(b["final_equity"], rel=1e-9, abs=1e-9)
    for key in ("n_liquidations", "n_orders", "n_trades", "n_capped"):
        assert a[key] == b[key], key
    for key in ("fees_paid", "interest_paid", "liquidation_fees", "bad_debt"):
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9), key
    assert list(fine.orders["kind"]) == list(ref.orders["kind"])
    np.testing.assert_allclose(fine.orders["price"], ref.orders["price"], rtol=1e-12)
    np.testing.assert_allclose(fine.orders["quantity"], ref.orders["quantity"], rtol=1e-9)
    np.testing.assert_allclose(fine.trades["exit_price"], ref.trades["exit_price"], rtol=1e-12)
    assert list(fine.trades["exit_reason"]) == list(ref.trades["exit_reason"])
    # each fill in the same hour (the minute run's fill time, floored to its hour)
    assert list(fine.orders["time"]) == list(ref.orders["time"].dt.floor("1h"))
    # the equity at each hour's close is the minute run's at the hour's last minute
    last = ref.equity["equity"].to_numpy()[np.searchsorted(minutes.index.asi8, hours.index.asi8) + 59]
    np.testing.assert_allclose(fine.equity["equity"].to_numpy(), last, rtol=1e-9, atol=1e-9)
    # a bar is ambiguous with detail exactly when one of its minutes is on the minute bars
    amb_minutes = ref.equity.index[ref.equity["ambiguous"].to_numpy()].floor("1h").unique()
    assert list(fine.equity.index[fine.equity["ambiguous"].to_numpy()]) == list(amb_minutes)
    assert set(fine.orders["kind"]) - {"signal"} == kinds  # the levels were touched that week
    if guessed_wrong:  # the hourly bars alone guessed some of these bars wrong
        assert plain.summary["ambiguous_bars"] > 0
        assert plain.summary["final_equity"] != pytest.approx(a["final_equity"], rel=1e-6)


def limit_orders(hours, leverage):
    """``momentum``'s targets entered by limit orders 0.1 % through the
    close (a buy below it, a sell above it)."""
    x = momentum(hours, leverage)
    c = hours["close"].to_numpy()
    return x, np.where(x > 0.0, c * 0.999, np.where(x < 0.0, c * 1.001, np.nan))


@pytest.mark.parametrize("expiry, settings, path_matters", [
    (1, dict(margin="cross-3x"), False),
    (3, dict(margin="cross-3x", stop_loss=0.003, take_profit=0.004, trailing_stop=0.002), True),
    (2, dict(margin="cross-pro-20x", take_profit=0.004), True),
])
def test_limit_orders_with_minute_detail_equal_the_minute_run(week, expiry, settings, path_matters):
    # a limit order placed at an hour's open may fill in any of its minutes, and the walk goes on from there
    # (a stop, a take-profit, a liquidation later in the hour); on the minute bars the same order stands
    # 60·expiry minutes (docs/model-choices.md "Finer bars settle the path")
    hours, minutes = week
    x, lim = limit_orders(hours, 3.0 if settings["margin"] == "cross-3x" else 15.0)
    fine = backtest.run(hours, lambda bars: {"target": x, "limit": lim, "expiry": expiry}, detail=MINUTES,
                        **settings)
    on_min = {"target": held_on_minutes(hours, minutes, x), "limit": held_on_minutes(hours, minutes, lim),
              "expiry": 60 * expiry}
    ref = backtest.run(minutes, lambda bars: on_min, **settings)
    a, b = fine.summary, ref.summary
    assert a["detail_bars"] == 168 and a["detail_missing_bars"] == 0
    for key in ("n_liquidations", "n_orders", "n_trades", "n_capped", "n_cancelled"):
        assert a[key] == b[key], key
    assert (fine.orders["kind"] == "limit").sum() > 20 and a["n_cancelled"] > 20  # both happen often that week
    assert (a["n_liquidations"] > 0) == (settings["margin"] == "cross-pro-20x")  # 15x on pro-20x: 9 that week
    # the same functions on the same prices in the same order: 1e-9 relative allows a summation order only
    for key in ("final_equity", "fees_paid", "interest_paid", "liquidation_fees", "bad_debt"):
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9), key
    assert list(fine.orders["kind"]) == list(ref.orders["kind"])
    np.testing.assert_allclose(fine.orders["price"], ref.orders["price"], rtol=1e-12)
    np.testing.assert_allclose(fine.orders["quantity"], ref.orders["quantity"], rtol=1e-9)
    assert list(fine.orders["time"]) == list(ref.orders["time"].dt.floor("1h"))
    last = ref.equity["equity"].to_numpy()[np.searchsorted(minutes.index.asi8, hours.index.asi8) + 59]
    np.testing.assert_allclose(fine.equity["equity"].to_numpy(), last, rtol=1e-9, atol=1e-9)
    plain = backtest.run(hours, lambda bars: {"target": x, "limit": lim, "expiry": expiry}, **settings)
    # with stops or liquidations the minutes settled what the hour's path guessed; a lone limit fill is at its
    # price or the open whatever the path, so without them the hours alone give the same run
    assert (plain.summary["final_equity"] != pytest.approx(a["final_equity"], rel=1e-9)) == path_matters


def test_detail_through_the_reference_model_on_the_real_week(week):
    hours, minutes = week
    ts = list(hours.index.asi8 // 10**9)
    o, h, lo, c = (list(hours[k]) for k in ("open", "high", "low", "close"))
    fine = (list(minutes.index.asi8 // 10**9), *(list(minutes[k]) for k in ("open", "high", "low", "close")))
    targets = list(momentum(hours, 3.0))
    sc = dict(BASE, spacing="1h", detail_bars=fine, detail_step=60, stop_loss=0.003, take_profit=0.004, trailing_stop=0.002)
    ref, res, bars = run_both(ts, o, h, lo, c, targets, sc)
    compare(ref, res, bars, dict(sc, detail_bars="the week"))
    assert res.summary["detail_bars"] == 168


# -------------------------------------------------------- hand-built bars
def hourly(rows, targets, fine, **kw):
    """Kernel and reference on hourly bars with 15-minute detail ``fine``
    (rows (hour, quarter, o, h, l, c)); they must agree."""
    sc = dict(BASE, **NO_COSTS)
    sc.update(kw, spacing="1h")
    ts = [DAY + 3600 * i for i in range(len(rows))]
    o, h, lo, c = (list(col) for col in zip(*rows))
    if fine:
        sc["detail_bars"] = ([DAY + 3600 * hr + 900 * q for hr, q, *_ in fine],
                             *(list(col) for col in zip(*[r[2:] for r in fine])))
    ref, res, bars = run_both(ts, o, h, lo, c, targets, sc)
    compare(ref, res, bars, dict(sc, rows=rows, targets=targets))
    return res


def flat(p):
    return (p, p, p, p)


# bar 2 (O 100, H 103, L 97, C 101) closes up: the path guesses the low first,
# so the 2 % stop (98) fires before the 2 % take-profit (102).  Its quarters
# say the high came first: 100 → 103 in the first quarter.
BAR = (100.0, 103.0, 97.0, 101.0)
QUARTERS = [(2, 0, 100.0, 103.0, 100.0, 102.0), (2, 1, 102.0, 102.0, 97.0, 98.0),
            (2, 2, 98.0, 100.0, 98.0, 99.0), (2, 3, 99.0, 101.0, 99.0, 101.0)]


def test_quarters_settle_a_bar_the_path_would_guess_wrong():
    rows = [flat(100.0), flat(100.0), BAR, flat(101.0)]
    guessed = hourly(rows, [1.0] * 4, [], stop_loss=0.02, take_profit=0.02)
    assert list(guessed.orders["kind"]) == ["signal", "stop_loss"]
    assert guessed.summary["ambiguous_bars"] == 1
    settled = hourly(rows, [1.0] * 4, QUARTERS, stop_loss=0.02, take_profit=0.02)
    # 10,000 USDT at 1x buys 100 BTC at 100; the take-profit sells them at 102
    assert list(settled.orders["kind"]) == ["signal", "take_profit"]
    assert settled.orders["price"].iloc[1] == 102.0
    assert settled.summary["final_equity"] == pytest.approx(10_200.0, rel=1e-12)
    assert settled.summary["ambiguous_bars"] == 0 and settled.summary["detail_missing_bars"] == 0
    assert settled.summary["detail_bars"] == 1  # the flat bars have no quarters
    # the pessimistic path reads each quarter low-first: still the take-profit
    again = hourly(rows, [1.0] * 4, QUARTERS, stop_loss=0.02, take_profit=0.02, path="pessimistic")
    assert list(again.orders["kind"]) == ["signal", "take_profit"]


def test_an_ambiguous_quarter_keeps_the_bar_ambiguous():
    rows = [flat(100.0), flat(100.0), BAR, flat(101.0)]
    # the first quarter alone reaches both 97 and 103: the path inside it is assumed
    fine = [(2, 0, 100.0, 103.0, 97.0, 101.0), (2, 1, 101.0, 101.0, 101.0, 101.0),
            (2, 2, 101.0, 101.0, 101.0, 101.0), (2, 3, 101.0, 101.0, 101.0, 101.0)]
    res = hourly(rows, [1.0] * 4, fine, stop_loss=0.02, take_profit=0.02)
    assert list(res.orders["kind"]) == ["signal", "stop_loss"]  # closes up: low first
    assert res.summary["ambiguous_bars"] == 1 and bool(res.equity["ambiguous"].iloc[2])


def test_a_take_profit_quarters_before_the_crash_beats_the_liquidation():
    # 2x long: 200 BTC at 100 against 10,000 USDT debt; liquidation at 200·P / 10,000 = 1.1, P = 55
    rows = [flat(100.0), flat(100.0), (100.0, 103.0, 50.0, 52.0), flat(52.0)]
    fine = [(2, 0, 100.0, 103.0, 100.0, 102.5), (2, 1, 102.5, 102.5, 50.0, 52.0),
            (2, 2, 52.0, 52.0, 52.0, 52.0), (2, 3, 52.0, 52.0, 52.0, 52.0)]
    guessed = hourly(rows, [2.0] * 4, [], take_profit=0.02, path="pessimistic", liquidation="full")
    assert list(guessed.orders["kind"]) == ["signal", "liquidation"]  # the low first
    assert guessed.liquidations["trigger_price"].iloc[0] == pytest.approx(55.0, rel=1e-12)
    settled = hourly(rows, [2.0] * 4, fine, take_profit=0.02, path="pessimistic", liquidation="full")
    assert list(settled.orders["kind"]) == ["signal", "take_profit"]
    assert settled.summary["final_equity"] == pytest.approx(200 * 102.0 - 10_000.0, rel=1e-12)
    assert settled.summary["n_liquidations"] == 0
    # without stops the same quarters liquidate in the second quarter, at 55 as the bar would
    crash = hourly(rows, [2.0] * 4, fine, liquidation="full")
    assert crash.liquidations["trigger_price"].iloc[0] == pytest.approx(55.0, rel=1e-12)
    assert crash.summary["detail_missing_bars"] == 0 and crash.summary["detail_bars"] == 1


def test_the_trailing_best_moves_per_quarter():
    rows = [flat(100.0), flat(100.0), (100.0, 110.0, 95.0, 96.0), flat(96.0)]
    # the high (110) comes before the low (95): the 5 % trailing stop from 110 fires at 104.5
    fine = [(2, 0, 100.0, 110.0, 100.0, 108.0), (2, 1, 108.0, 108.0, 95.0, 96.0),
            (2, 2, 96.0, 96.0, 96.0, 96.0), (2, 3, 96.0, 96.0, 96.0, 96.0)]
    guessed = hourly(rows, [1.0] * 4, [], trailing_stop=0.05)  # closes down: high first too, 104.5
    settled = hourly(rows, [1.0] * 4, fine, trailing_stop=0.05)
    assert settled.orders["price"].iloc[1] == pytest.approx(104.5, rel=1e-12)
    assert guessed.orders["price"].iloc[1] == pytest.approx(104.5, rel=1e-12)
    # pessimistic: the bar guesses the low first (exits at 95), the quarters know better
    low_first = hourly(rows, [1.0] * 4, [], trailing_stop=0.05, path="pessimistic")
    assert low_first.orders["price"].iloc[1] == pytest.approx(95.0, rel=1e-12)
    settled = hourly(rows, [1.0] * 4, fine, trailing_stop=0.05, path="pessimistic")
    assert settled.orders["price"].iloc[1] == pytest.approx(104.5, rel=1e-12)


def test_missing_or_mismatched_quarters_fall_back_and_are_counted():
    rows = [flat(100.0), flat(100.0), BAR, flat(101.0)]
    for fine in (QUARTERS[:3],  # a quarter missing
                 [QUARTERS[0][:3] + (103.5,) + QUARTERS[0][4:]] + QUARTERS[1:]):  # a high above the bar's
        res = hourly(rows, [1.0] * 4, fine, stop_loss=0.02, take_profit=0.02)
        assert list(res.orders["kind"]) == ["signal", "stop_loss"]  # the path setting decided
        assert res.summary["detail_bars"] == 0 and res.summary["detail_missing_bars"] == 1
    # a bar where nothing is in reach is not counted
    res = hourly([flat(100.0)] * 4, [1.0] * 4, [(2, 0) + flat(100.0)], stop_loss=0.02, take_profit=0.02)
    assert res.summary["detail_bars"] == 0 and res.summary["detail_missing_bars"] == 0


# bar 1 (O 100, H 102, L 98, C 99) closes down: the path guesses the high first, so a buy limit at 99
# fills on the way down to 98 and the 1 % take-profit (99.99) is never reached after it.  Its quarters say
# the low came first: filled in the first quarter, the take-profit reached in the second.
DIP = (100.0, 102.0, 98.0, 99.0)
DIP_QUARTERS = [(1, 0, 100.0, 100.0, 98.5, 98.8), (1, 1, 98.8, 102.0, 98.8, 101.5),
                (1, 2, 101.5, 101.5, 98.0, 98.5), (1, 3, 98.5, 99.5, 98.5, 99.0)]


def test_quarters_walk_a_standing_limit_order():
    rows = [flat(100.0), DIP, flat(99.0)]
    orders = dict(orders=([99.0, NAN, NAN], None, None), expiry=1, take_profit=0.01)
    guessed = hourly(rows, [1.0] * 3, [], **orders)
    assert list(guessed.orders["kind"]) == ["limit"]
    settled = hourly(rows, [1.0] * 3, DIP_QUARTERS, **orders)
    # 10,000 USDT at 1x: a buy of 10,000 / 99 BTC at 99, sold by the take-profit at 99 · 1.01
    assert list(settled.orders["kind"]) == ["limit", "take_profit"]
    assert list(settled.orders["price"]) == [99.0, pytest.approx(99.99, rel=1e-12)]
    assert settled.summary["final_equity"] == pytest.approx(10_000.0 * 1.01, rel=1e-12)
    assert settled.summary["detail_bars"] == 1 and settled.summary["detail_missing_bars"] == 0
    # a sell limit walks its quarters the same way: 101 is first reached in the second
    short = hourly(rows, [-1.0] * 3, DIP_QUARTERS, orders=([101.0, NAN, NAN], None, None), expiry=1)
    assert list(short.orders["kind"]) == ["limit"] and short.orders["price"].iloc[0] == 101.0


def test_a_limit_bar_without_usable_quarters_is_counted_when_its_price_is_in_reach():
    rows = [flat(100.0), DIP, flat(99.0), flat(99.0)]
    elsewhere = [(3, 0) + flat(99.0)]  # finer bars for another bar only
    for limit, kinds, missing in ((99.0, ["limit"], 1), (97.0, [], 0)):  # 97: below the bar's low, never fills
        res = hourly(rows, [1.0] * 4, elsewhere, orders=([limit, NAN, NAN, NAN], None, None), expiry=1)
        assert list(res.orders["kind"]) == kinds
        assert res.summary["detail_bars"] == 0 and res.summary["detail_missing_bars"] == missing, limit
        assert res.summary["n_cancelled"] == 1 - len(kinds)  # the unfilled order expires at bar 2's open
    # the order's price out of reach, the stop-loss (95 from the entry at 100) in the range: counted all the same;
    # the stop cancels the order
    res = hourly([flat(100.0), flat(100.0), (100.0, 100.0, 94.0, 97.0), flat(97.0)], [1.0, 2.0, 2.0, 2.0],
                 [(3, 0) + flat(97.0)], orders=([NAN, 90.0, NAN, NAN], None, None), expiry=3, stop_loss=0.05)
    assert list(res.orders["kind"]) == ["signal", "stop_loss"] and res.summary["n_cancelled"] == 1
    assert res.summary["detail_bars"] == 0 and res.summary["detail_missing_bars"] == 1


# ----------------------------------------------------------------- the CLI
RUN = ["run", "--data", str(HOURS), "--start", "2025-06-16", "--end", "2025-06-22", "--no-report",
       "--stop-loss", "0.003", "--take-profit", "0.004", "--param", "fast=3", "--param", "slow=8",
       "--param", "leverage=3"]


def test_cli_detail_and_bound(capsys, tmp_path):
    assert main([*RUN, "--detail", str(MINUTES), "--out", str(tmp_path / "d"), "--bound"]) == 0
    out = capsys.readouterr().out
    assert "finer bars" in out and "168 bars covered" in out
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["detail_bars"] == 168 and summary["detail_missing_bars"] == 0 and summary["ambiguous_bars"] == 0
    # with every bar settled, both path settings give the same result
    (heuristic,) = [line for line in out.splitlines() if line.strip().startswith("ohlc-heuristic")]
    (pessimistic,) = [line for line in out.splitlines() if line.strip().startswith("pessimistic")]
    assert heuristic.split()[3] == pessimistic.split()[3] and "detail missing 0" in heuristic
    run_json = json.loads((tmp_path / "d" / "run.json").read_text())
    assert run_json["settings"]["detail"] == str(MINUTES)


def test_cli_detail_outside_the_week_falls_back_everywhere(capsys, tmp_path):
    # the run reaches past the week: the later bars have no minutes and are counted
    flags = [*RUN[:3], "--start", "2025-06-20", "--end", "2025-06-30", *RUN[8:]]
    assert main([*flags, "--detail", str(MINUTES), "--out", str(tmp_path / "d")]) == 0
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["detail_bars"] == 72 and summary["detail_missing_bars"] > 0


def write_minutes(tmp_path, name, symbol="BTCUSDT", timeframe="1m", every=1):
    m = load_ohlcv(MINUTES).iloc[: 60 * 24]
    if every > 1:
        m = resample_ohlcv(m, f"{every}m")
    path = tmp_path / name
    write_ohlcv(m, path, symbol=symbol, timeframe=timeframe)
    return path


@pytest.mark.parametrize("make, extra, says", [
    (lambda p: p / "nope.parquet", [], "nope.parquet"),
    (lambda p: write_minutes(p, "ETHUSDT-1m.parquet", symbol="ETHUSDT"), [], ["--detail", "ETHUSDT"]),
    (lambda p: HOURS, [], ["--detail", "finer"]),
    (lambda p: write_minutes(p, "BTCUSDT-7m.parquet", timeframe="7m", every=7), [], ["--detail", "divide"]),
    (lambda p: MINUTES, ["--start", "2024-01-01", "--end", "2024-01-31"], ["--detail", "no bars"]),
    (lambda p: MINUTES, ["--mark", str(HOURS)], ["--detail", "--mark"]),
])
def test_bad_detail_is_one_line_and_exit_2(capsys, tmp_path, make, extra, says):
    span = [] if "--start" in extra else ["--start", "2025-06-16", "--end", "2025-06-17"]  # (a flag is given once)
    flags = ["run", "--data", str(HOURS), *span, "--no-report", "--out", str(tmp_path / "x")]
    code = main([*flags, *extra, "--detail", str(make(tmp_path))])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in [says] if isinstance(says, str) else says:
        assert word in err, err


def test_a_replay_that_runs_out_of_record_room_asks_for_more():
    """The replay checks the buffers before each finer bar: with little room
    the kernel stops inside the bar (complete False) instead of writing past
    them; the engine then reruns with larger buffers."""
    from backtest import bar_rows, kernel
    from backtest.engine import simulate_arrays
    from backtest.inputs import Bars, Detail, Given, marks_of
    from backtest.settings import RunSettings
    from backtest.profiles import get_profile
    from backtest.records import liquidation_dt, margin_call_dt, order_dt
    from backtest.strategy import Orders

    # a 19x long on cross-pro-20x; bar 2 falls 5 % in each of its twelve 5-minute bars
    p = [100.0 * 0.95 ** j for j in range(13)]
    rows = [(100.0,) * 4, (100.0,) * 4, (100.0, 100.0, p[12], p[12]), (p[12],) * 4]
    fine = (*(np.array(col) for col in zip(*[(p[j], p[j], p[j + 1], p[j + 1]) for j in range(12)])),
            np.array([0, 0, 0, 0]), np.array([0, 0, 12, 0]))
    seconds = np.array([DAY + 3600 * i for i in range(4)], dtype=np.int64)
    ohlc = [np.array(col) for col in zip(*rows)]
    config = RunSettings(10_000.0, 0.0, 0.0).kernel_config(get_profile("cross-pro-20x"),
                                                           (DAY // 3600, (np.zeros(4), np.zeros(4))))
    targets = np.full(4, 19.0)
    _, orders, liqs, _, _ = simulate_arrays(seconds, *ohlc, targets, config, None, fine)
    assert list(np.bincount(orders["bar"])) == [0, 1, 14]  # the signal, then 14 liquidations in bar 2
    size = 20  # room for bar 2 at its start (1 + 11), not for all of it
    small = (np.empty(size, order_dt), np.empty(size, liquidation_dt), np.empty(8, margin_call_dt))
    bars = Bars(seconds, *ohlc)
    n_orders, n_liqs, _, complete, _, _ = kernel.simulate(bars, marks_of(bars), *config, Detail(*fine),
                                                          Given(targets, *Orders(targets).kernel_args()),
                                                          np.empty((4, bar_rows.LOG)), *small, None)
    assert not complete and 1 < n_orders <= size and n_liqs == n_orders - 1  # stopped inside bar 2
    assert list(small[0]["bar"][:n_orders]) == [1] + [2] * (n_orders - 1)
