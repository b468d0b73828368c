"""Whole runs on hand-built bars: the spec's examples through the kernel,
the order of events, no look-ahead, and the real-data liquidation case."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
NAN = np.nan
NO_RATES = {"BTC": 0.0, "USDT": 0.0}


def make_bars(rows, start="2024-01-01 00:00", freq="1h"):
    """rows: (open, high, low, close) tuples, or a single price for a flat bar."""
    rows = [(r, r, r, r) if np.isscalar(r) else r for r in rows]
    idx = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC", name="timestamp")
    df = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float)
    df["volume"] = 1.0
    return df


def run(bars, targets, **kw):
    kw = {"fee": 0.0, "rates": NO_RATES, "symbol": "BTCUSDT", **kw}
    return backtest.run(bars, np.asarray(targets, dtype=float), **kw)


def test_e3_e16_partial_liquidation_in_a_run():
    bars = make_bars([30_000, 30_000, (30_000, 30_100, 21_000, 25_000), 25_000])
    res = run(bars, [3, NAN, NAN, NAN])
    assert res.equity["position"].iloc[1] == pytest.approx(1.0, rel=1e-12)
    assert res.equity["debt"].iloc[1] == pytest.approx(20_000.0, rel=1e-12)
    assert res.equity["margin_level"].iloc[1] == pytest.approx(1.5, rel=1e-12)
    (liq,) = res.liquidations.itertuples()
    assert liq.trigger_price == pytest.approx(22_000.0, rel=1e-12)
    assert liq.fill_price == pytest.approx(22_000.0, rel=1e-12)
    assert liq.margin_level == pytest.approx(1.1, rel=1e-12)
    assert liq.fee == pytest.approx(440.0, rel=1e-12)
    assert liq.quantity == pytest.approx(0.787273, abs=1e-6)
    assert liq.equity_after == pytest.approx(1_560.0, rel=1e-9)
    assert not liq.gap
    assert res.equity["position"].iloc[2] == pytest.approx(0.212727, abs=1e-6)
    assert res.equity["debt"].iloc[2] == pytest.approx(3_120.0, rel=1e-9)
    assert res.summary["liquidation_fees"] == pytest.approx(440.0)


def test_full_liquidation_closes_and_records_the_exit():
    bars = make_bars([30_000, 30_000, (30_000, 30_100, 21_000, 25_000), 25_000])
    res = run(bars, [3, NAN, NAN, NAN], liquidation="full")
    liq = res.liquidations.iloc[0]
    assert liq.quantity == pytest.approx(1.0)
    assert liq.equity_after == pytest.approx(22_000 - 20_000 - 440.0)
    assert res.equity["position"].iloc[2] == 0.0
    assert res.trades["exit_reason"].tolist() == ["liquidation"]


def test_gap_through_the_liquidation_price_fills_at_the_open_and_books_bad_debt():
    # long 3x at 30,000; the next bar opens at 18,000, below 22,000 and below
    # the 20,000 debt: everything is sold at the open and the rest is bad debt
    bars = make_bars([30_000, 30_000, (18_000, 18_500, 17_000, 18_000), 18_000])
    res = run(bars, [3, NAN, NAN, NAN], liquidation="full")
    liq = res.liquidations.iloc[0]
    assert liq.gap
    assert liq.trigger_price == 18_000.0 and liq.fill_price == 18_000.0
    assert liq.fee == pytest.approx(0.02 * 18_000.0)
    assert liq.bad_debt == pytest.approx(20_000.0 + 360.0 - 18_000.0)
    assert liq.equity_after == 0.0
    assert res.summary["bad_debt"] == pytest.approx(2_360.0)
    assert res.equity["equity"].iloc[-1] == 0.0


GAP = make_bars([30_000, 30_000, 30_000, 21_500, 21_500, 21_500])


def test_a_gap_liquidation_comes_before_the_pending_order_which_then_executes():
    # long 3x: 1 BTC at 30,000, 20,000 owed. The target turns to −1 at bar 2's
    # close; bar 3 opens at 21,500 (ML 1.075 ≤ 1.1): the liquidation comes first
    # (fee 2 % × 21,500 = 430; partial to ML 1.5 sells
    # (1.5·20,430 − 21,500) / (21,500·0.5) BTC), leaving equity 1,070; then the
    # short of 1 × 1,070 at 21,500 follows at the same open (issue 11 item 5)
    res = run(GAP, [3, NAN, -1, NAN, NAN, NAN])
    assert res.orders["kind"].tolist() == ["signal", "liquidation", "signal"]
    liq = res.liquidations.iloc[0]
    assert liq.gap and liq.fill_price == 21_500.0 and liq.fee == pytest.approx(430.0, rel=1e-12)
    assert liq.quantity == pytest.approx(9_145.0 / 10_750.0, rel=1e-12)
    assert liq.equity_after == pytest.approx(1_070.0, rel=1e-12)
    assert res.equity["position"].iloc[3] == pytest.approx(-1_070.0 / 21_500.0, rel=1e-12)
    assert res.equity["equity"].iloc[-1] == pytest.approx(1_070.0, rel=1e-12)


def test_after_a_gap_liquidation_a_full_one_leaves_nothing_to_trade():
    bars = make_bars([30_000, 30_000, 30_000, (18_000, 18_500, 17_000, 18_000), 18_000])
    res = run(bars, [3, NAN, -1, NAN, NAN], liquidation="full")
    assert res.orders["kind"].tolist() == ["signal", "liquidation"]  # the −1 of nothing is no order
    assert res.equity["position"].iloc[-1] == 0.0


def test_a_gap_liquidation_drops_a_pending_rebalance_and_stop_drops_the_signal():
    # a repeated 3 with --rebalance: bar 2's drift order is dropped at the gap, and
    # rebalancing stays suspended until the target changes
    drift = make_bars([30_000, 30_000, 33_000, 21_500, 21_500, 21_500])
    res = run(drift, [3, 3, 3, 3, 3, 3], rebalance=0.05)
    assert res.orders["kind"].tolist() == ["signal", "liquidation"]
    stopped = run(GAP, [3, NAN, -1, NAN, NAN, NAN], stop_on_liquidation=True)
    assert stopped.orders["kind"].tolist() == ["signal", "liquidation"]


def test_short_is_liquidated_on_the_high():
    # short 2x (the cross-3x maximum): 30,000 held against 2/3 BTC... at 30,000
    bars = make_bars([30_000, 30_000, (30_000, 45_000, 29_000, 40_000), 40_000])
    res = run(bars, [-2, NAN, NAN, NAN])
    p_liq = 30_000 * 3 / (1.1 * 2)  # E13: 1.3636 · P0
    liq = res.liquidations.iloc[0]
    assert liq.trigger_price == pytest.approx(p_liq, rel=1e-12)
    assert res.orders["side"].tolist() == ["sell", "buy"]


def test_order_beyond_max_leverage_is_capped_and_counted():
    bars = make_bars([30_000] * 4)
    res = run(bars, [5, NAN, -4, NAN])
    assert res.summary["n_capped"] == 2
    assert res.equity["position"].iloc[1] * 30_000 == pytest.approx(30_000.0, rel=1e-9)  # 3x
    assert res.equity["position"].iloc[3] * 30_000 == pytest.approx(-20_000.0, rel=1e-9)  # short 2x


def test_repeated_target_holds_and_rebalance_trades_back():
    bars = make_bars([100, 100, 120, 120, 120])
    held = run(bars, [2, 2, 2, 2, 2])
    assert len(held.orders) == 1  # a repeated target is not traded
    rebal = run(bars, [2, 2, 2, 2, 2], rebalance=0.05)
    assert rebal.orders["kind"].tolist() == ["signal", "rebalance"]
    assert rebal.equity["exposure"].iloc[3] == pytest.approx(2.0, rel=1e-9)


def test_nan_holds_and_a_new_target_trades():
    bars = make_bars([100] * 6)
    res = run(bars, [1, NAN, NAN, 0, NAN, NAN])
    assert res.orders["kind"].tolist() == ["signal", "signal"]
    assert res.equity["position"].tolist() == pytest.approx([0, 100, 100, 100, 0, 0])


def _interest_run(borrow_at, repay_at, end, daily=0.0002):
    """1,000 USDT borrowed (1,000 own, target 2 → 2,000 of BTC) on 5-minute bars."""
    idx = pd.date_range("2024-01-01 09:00", end, freq="5min", tz="UTC")
    bars = make_bars([100.0] * len(idx), start="2024-01-01 09:00", freq="5min")
    tgt = np.full(len(idx), NAN)
    step = pd.Timedelta("5min")
    tgt[idx.get_loc(pd.Timestamp(borrow_at, tz="UTC") - step)] = 2.0
    if repay_at:
        tgt[idx.get_loc(pd.Timestamp(repay_at, tz="UTC") - step)] = 0.0
    return run(bars, tgt, capital=1_000.0, rates={"BTC": 0.0, "USDT": daily})


def test_e5_interest_13_20_to_14_15_two_hours():
    res = _interest_run("2024-01-01 13:20", "2024-01-01 14:15", "2024-01-01 15:00")
    assert res.orders["price"].iloc[0] * res.orders["quantity"].iloc[0] == pytest.approx(2_000.0)
    assert res.summary["interest_paid_USDT"] == pytest.approx(0.01666668, abs=1e-12)
    assert res.equity["debt"].iloc[-1] == 0.0
    assert res.equity["equity"].iloc[-1] == pytest.approx(1_000.0 - 0.01666668, abs=1e-9)


def test_e7_borrow_09_20_repay_09_55_one_hour():
    res = _interest_run("2024-01-01 09:20", "2024-01-01 09:55", "2024-01-01 11:00")
    assert res.summary["interest_paid_USDT"] == pytest.approx(0.00833334, abs=1e-12)


def test_e6_hourly_rule_two_hours_by_14_30():
    res = _interest_run("2024-01-01 13:55", None, "2024-01-01 14:30", daily=0.00001 * 24)
    assert res.summary["interest_paid_USDT"] == pytest.approx(0.02, abs=1e-12)
    assert res.equity["interest_owed"].iloc[-1] == pytest.approx(0.02, abs=1e-12)


def test_loan_taken_and_repaid_on_whole_hours_pays_one_hour():
    bars = make_bars([100.0] * 4)  # hourly bars on HH:00
    res = run(bars, [2, 0, NAN, NAN], capital=1_000.0, rates={"BTC": 0.0, "USDT": 0.0002})
    assert res.summary["interest_paid_USDT"] == pytest.approx(0.00833334, abs=1e-12)


def test_four_hour_bars_pay_the_hours_inside():
    bars = make_bars([100.0] * 3, freq="4h")
    res = run(bars, [2, NAN, NAN], capital=1_000.0, rates={"BTC": 0.0, "USDT": 0.0002})
    # borrowed at 04:00: its charge, then 05, 06, 07 (inside) and 08:00 (open)
    assert res.summary["interest_paid_USDT"] == pytest.approx(5 * 0.00833334, abs=1e-12)


def test_short_pays_interest_in_base():
    bars = make_bars([100.0] * 3)
    res = run(bars, [-1, NAN, NAN], rates={"BTC": 0.0024, "USDT": 0.0})
    # 100 BTC borrowed at 01:00, charged then and at 02:00: 0.0001 · 100 each
    assert res.summary["interest_paid_BTC"] == pytest.approx(0.02, abs=1e-12)


def test_margin_call_recorded_on_entry_into_the_band():
    # long 2.9x at 100: 290 BTC against 19,000 USDT, ML 1.3 at 85.17; staying
    # in the band is one event, leaving it at a close and coming back another
    bars = make_bars([100, 100, (100, 100, 85, 85), (85, 86, 84, 85), (85, 100, 85, 100), (100, 100, 85, 99)])
    res = run(bars, [2.9, NAN, NAN, NAN, NAN, NAN])
    assert [t.hour for t in res.margin_calls["time"]] == [2, 5]
    assert res.margin_calls["margin_level"].iloc[0] == pytest.approx(290 * 85 / 19_000)
    assert res.liquidations.empty


def test_no_look_ahead():
    bars = backtest.load_ohlcv(BTC, start="2021-01-01", end="2021-03-31")
    rng = np.random.default_rng(3)
    for strategy, params in (("sma_cross", {"fast": 5, "slow": 20}), ("rsi_revert", {}), ("hold", {"exposure": 3.0})):
        base = backtest.run(bars, strategy, params)
        for t in (100, 777, len(bars) - 50):
            changed = bars.copy()
            k = rng.uniform(0.5, 1.5, size=(len(bars) - t - 1, 1))
            changed.iloc[t + 1 :, :4] = changed.iloc[t + 1 :, :4].to_numpy() * k
            other = backtest.run(changed, strategy, params)
            pd.testing.assert_frame_equal(base.equity.iloc[: t + 1], other.equity.iloc[: t + 1])
            assert not base.equity.iloc[t + 1 :].equals(other.equity.iloc[t + 1 :])
            early = base.orders["time"] <= bars.index[t]
            pd.testing.assert_frame_equal(base.orders[early], other.orders[other.orders["time"] <= bars.index[t]])


def test_hold_10x_isolated_is_liquidated_in_march_2020():
    res = backtest.run(BTC, "hold", {"exposure": 10.0}, margin="isolated-10x", start="2020-03-01")
    first = res.liquidations.iloc[0]
    assert first.time <= pd.Timestamp("2020-03-12 23:59", tz="UTC")
    assert first.margin_level == pytest.approx(1.05)
    # exactly at the isolated-10x line: 1.05 · debt / base held
    assert first.trigger_price == pytest.approx(8_089.372068594883, rel=1e-9)


def test_dataframe_range_outside_the_data_names_the_flag():
    bars = make_bars([100.0] * 5)
    with pytest.raises(backtest.UserError, match="start=2030-01-01: after the data's last bar"):
        run(bars, [1.0] * 5, start="2030-01-01")
    with pytest.raises(backtest.UserError, match="end=2020-01-01: before the data's first bar"):
        run(bars, [1.0] * 5, end="2020-01-01")
    assert len(run(bars, [1.0] * 5, start="2024-01-01 02:00").equity) == 3


def test_backtest_class_and_summary_contract(tmp_path):
    bt = backtest.Backtest(BTC, "sma_cross", margin="cross-5x", start="2022-01-01", end="2022-06-30")
    res = bt.run(fast=10, slow=40)
    assert res.settings["params"] == {"fast": 10, "slow": 40, "leverage": 1.5}
    need = {"final_equity", "total_return", "max_drawdown", "sharpe", "n_trades", "n_liquidations", "fees_paid",
            "interest_paid", "liquidation_fees", "bad_debt", "n_margin_calls", "bars", "start", "end"}
    assert need <= set(res.summary)
    assert res.summary["bars"] == len(res.equity) == 4_344
    assert res.summary["final_equity"] == res.equity["equity"].iloc[-1]
    assert res.summary["n_trades"] == len(res.trades) > 10
    # a round trip's pnl adds up to the equity change over the run
    pnl = res.trades["pnl"].sum()
    assert pnl == pytest.approx(res.summary["final_equity"] - 10_000.0, rel=1e-9, abs=1e-6)
    out = res.save(tmp_path / "r")
    again = backtest.Result.load(out)
    assert again.summary["final_equity"] == pytest.approx(res.summary["final_equity"])
    assert len(again.trades) == len(res.trades)
    assert list(pd.read_parquet(out / "equity.parquet").columns[:6]) == [
        "timestamp", "equity", "margin_level", "position", "debt", "interest_paid"]


def test_short_pnl_counts_its_base_interest_once():
    res = backtest.run(BTC, "rsi_revert", start="2019-01-01", end="2019-12-31", rates={"BTC": 0.002})
    assert (res.trades["side"] == "short").any() and res.summary["interest_paid_BTC"] > 0
    assert res.trades["pnl"].sum() == pytest.approx(res.summary["final_equity"] - 10_000.0, rel=1e-9)


def test_bad_debt_is_credited_to_the_liquidated_trade():
    bars = make_bars([30_000, 30_000, (12_000, 12_500, 11_000, 12_000), 12_000])
    res = run(bars, [3, NAN, NAN, NAN])
    assert res.summary["bad_debt"] > 0
    assert res.trades["pnl"].sum() == pytest.approx(res.equity["equity"].iloc[-1] - 10_000.0, rel=1e-12)
    assert res.trades["pnl"].iloc[0] == pytest.approx(-10_000.0)


def test_start_end_mean_the_same_for_a_file_and_a_dataframe():
    frame = backtest.load_ohlcv(BTC)
    for end in ("2024-01", "20240105", "2024-01-05"):
        a = backtest.run(BTC, "hold", start="2023-12-20", end=end)
        b = backtest.run(frame, "hold", start="2023-12-20", end=end)
        assert a.equity.index[-1] == b.equity.index[-1], end


def test_bars_without_a_symbol_are_refused_not_guessed():
    bars = make_bars([100.0] * 3)
    with pytest.raises(backtest.UserError, match="symbol"):
        backtest.run(bars, np.ones(3))
    with pytest.raises(backtest.UserError, match="rates ETH: BTCUSDT trades BTC and USDT only"):
        run(bars, np.ones(3), rates={"ETH": 0.001})


def test_sub_second_bars_are_refused():
    bars = make_bars([100.0] * 5, freq="500ms")
    with pytest.raises(backtest.UserError, match="a second"):
        run(bars, np.ones(5))


def test_targets_series_on_other_timestamps_is_an_error():
    bars = make_bars([100.0] * 5)
    other = pd.Series(1.0, index=pd.date_range("2030-01-01", periods=5, freq="1h", tz="UTC"))
    with pytest.raises(backtest.UserError, match="match none of the bars"):
        backtest.run(bars, other, symbol="BTCUSDT")


def test_numba_cache_folder_follows_every_compiled_source():
    import hashlib
    import os

    import numba

    import backtest.kernel  # noqa: F401  (compiled code configures the folder; `import backtest` alone loads none)
    from backtest._numba_cache import _SOURCES

    names = ("kernel.py", "account.py", "intrabar.py", "limits.py", "replay.py", "rules.py", "records.py",
             "indicators.py", "cross.py", "kernel_multi.py", "liqprice.py", "inputs.py", "trades.py", "per_bar.py",
             "bar_rows.py", "medians.py", "data/clean.py", "books.py", "flows.py", "venues/binance_usdm.py",
             "venues/binance_usdm_cross.py", "venues/plug.py")
    compiled = {str(p.relative_to(ROOT / "backtest")) for p in (ROOT / "backtest").rglob("*.py")
                if "@njit" in p.read_text()}
    # a new compiled module keys the cache too (checked with NUMBA_CACHE_DIR set as well: replay.py was missed
    # so, in a run that set it)
    assert compiled <= set(names) and set(_SOURCES) == set(names)
    if os.environ.get("NUMBA_CACHE_DIR"):
        pytest.skip("the user's NUMBA_CACHE_DIR wins: the folder is theirs")
    digest = hashlib.blake2b(digest_size=8)
    for name in _SOURCES:
        digest.update((ROOT / "backtest" / name).read_bytes())
    assert numba.config.CACHE_DIR.endswith(f"numba-{digest.hexdigest()}")


def test_e14_cross_margin_pro_in_a_run():
    bars = make_bars([30_000, 30_000, (30_000, 30_100, 20_000, 25_000), 25_000])
    res = run(bars, [3, NAN, NAN, NAN], margin="cross-pro-10x")
    assert res.equity["margin_level"].iloc[1] == pytest.approx(10.0, rel=1e-12)  # (30,000 − 20,000) / (5 % · 20,000)
    liq = res.liquidations.iloc[0]
    assert liq.trigger_price == pytest.approx(21_000.0, rel=1e-12)
    assert liq.margin_level == pytest.approx(1.0, rel=1e-9)
    assert liq.fee == pytest.approx(0.03 * 21_000.0, rel=1e-12)
    assert res.equity["margin_level"].iloc[2] > 1.0 and res.margin_calls.empty
    # the partial liquidation restores Pro ML 2 at the fill: A/D = 1 + 2 · 5 %
    left = res.orders.iloc[1].position
    debt_after = 20_000.0 + 630.0 - liq.quantity * 21_000.0
    assert (left * 21_000.0 - debt_after) / (0.05 * debt_after) == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_an_infinite_target_is_refused_naming_its_row(bad):
    bars = pd.read_parquet(BTC).iloc[:50]
    targets = np.full(len(bars), np.nan)
    targets[[0, 40]] = 1.0
    targets[17] = bad
    with pytest.raises(backtest.UserError, match=f"target at row 17 .* is {bad}; targets must be finite"):
        backtest.run(bars, targets, symbol="BTCUSDT")
    targets[17] = np.nan  # NaN holds: every other target NaN is fine
    assert backtest.run(bars, targets, symbol="BTCUSDT").summary["n_trades"] == 1
    assert backtest.run(bars, np.full(len(bars), np.nan), symbol="BTCUSDT").summary["n_orders"] == 0
