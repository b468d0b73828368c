"""Auto-repay off in a cross account holding several symbols
(docs/model-choices.md "Auto-repay off in a cross account of several
symbols"): hand-computed numbers on flat prices, the books' split of the
shared quote interest when it is charged, the outputs and the CLI.

The reference model's random comparison is ``test_differential_multi_norepay.py``;
the books identity on random scenarios is ``test_books.py``."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from test_books import assert_books_balance

H = 3600
IDX = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC", name="timestamp")
PRICES = {"BTCUSDT": 40_000.0, "ETHUSDT": 2_000.0}


def flat_bars(prices=PRICES, idx=IDX):
    return {s: pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": 1.0}, index=idx)
            for s, p in prices.items()}


def two_longs_then_one_exit(**kw):
    """BTC 1x (paid from the cash) and ETH 1x (a 10,000 USDT loan at 1 % an
    hour) from bar 1; BTC sells at bar 3's open, its 10,000 USDT kept."""
    targets = pd.DataFrame({"BTCUSDT": [1.0, np.nan, 0.0, np.nan, np.nan, np.nan],
                            "ETHUSDT": [1.0] + [np.nan] * 5}, index=IDX)
    return backtest.run_multi(flat_bars(), targets, margin="cross-3x", fee=0.0,
                              rates={"BTC": 0.0, "ETH": 0.0, "USDT": 0.24}, auto_repay=False, **kw)


def test_the_hour_after_an_exit_goes_to_the_longs_of_that_moment():
    res = two_longs_then_one_exit()
    # ETH's borrow hour (100) is its own; bar 2's hour (100) goes 50/50 to the two longs (10,000 each);
    # BTC's sale at bar 3 keeps its quote (auto-repay off), so the loan runs: bars 3, 4, 5 charge 100 each,
    # after bar 3's order, when only ETH is long: all ETH's (the previous-close split would give BTC 50 more)
    t = res.trades.set_index("symbol")
    assert t.loc["BTCUSDT", "interest"] == pytest.approx(50.0, rel=1e-12)
    assert t.loc["ETHUSDT", "interest"] == pytest.approx(100.0 + 50.0 + 3 * 100.0, rel=1e-12)
    assert t.loc["ETHUSDT", "interest_quote"] == pytest.approx(450.0, rel=1e-12)
    assert res.summary["interest_paid"] == pytest.approx(500.0, rel=1e-12)
    assert res.summary["final_equity"] == pytest.approx(9_500.0, rel=1e-12)
    assert res.summary["interest_while_flat"] == 0.0
    # the loan was not repaid: 10,000 borrowed, the interest owed on top; 10,000 USDT held beside it
    assert res.equity["debt"].iloc[-1] == pytest.approx(10_000.0 + 500.0, rel=1e-12)
    assert_books_balance(res, 10_000.0)


def test_repay_on_flat_repays_the_accounts_quote_loan():
    res = two_longs_then_one_exit(repay_on_flat=True)
    # BTC's sale leaves it flat: the 10,000 USDT it raised repays the account's interest owed (100 + 100),
    # then 9,800 of the principal; 200 stays borrowed, so bar 3's hour (on min(10,000, 200)) and the next
    # two charge 2 each, all ETH's
    t = res.trades.set_index("symbol")
    assert t.loc["BTCUSDT", "interest"] == pytest.approx(50.0, rel=1e-12)
    assert t.loc["ETHUSDT", "interest"] == pytest.approx(100.0 + 50.0 + 3 * 2.0, rel=1e-12)
    assert res.summary["final_equity"] == pytest.approx(10_000.0 - 206.0, rel=1e-12)
    assert res.equity["debt"].iloc[-1] == pytest.approx(200.0 + 6.0, rel=1e-12)
    assert_books_balance(res, 10_000.0)


def test_a_short_closed_without_repaying_keeps_its_base_loan():
    idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC", name="timestamp")
    targets = pd.DataFrame({"BTCUSDT": [1.0] + [np.nan] * 4, "ETHUSDT": [-1.0, np.nan, 0.0, np.nan, np.nan]},
                           index=idx)
    res = backtest.run_multi(flat_bars(idx=idx), targets, margin="cross-3x", fee=0.0,
                             rates={"BTC": 0.0, "ETH": 0.24, "USDT": 0.0}, auto_repay=False)
    # ETH −1x sells 5 borrowed ETH (its first hour: 0.05 ETH); bar 2's hour charges 0.05 more; the buy-back
    # at bar 3 buys the position (5.1 ETH) into what is held, the loan stays: 5 + 0.1 ETH owed, then
    # 0.05 a bar (bars 3, 4) on the 5 of principal
    e = res.equity
    assert e["debt_base_ETHUSDT"].iloc[1] == pytest.approx(5.05, rel=1e-12)
    assert e["debt_base_ETHUSDT"].iloc[-1] == pytest.approx(5.2, rel=1e-12)
    assert e["debt_base_BTCUSDT"].eq(0.0).all()
    # flat but for the interest charged since (a short of 0.1 ETH that no fill opened: interest while flat)
    assert e["position_ETHUSDT"].iloc[-1] == pytest.approx(-0.1, rel=1e-9)
    assert res.summary["interest_while_flat"] == pytest.approx(0.1 * 2_000.0, rel=1e-9)
    assert res.summary["interest_paid_ETH"] == pytest.approx(0.2, rel=1e-12)
    assert_books_balance(res, 10_000.0)


def test_the_cap_without_repayment_counts_the_other_symbols():
    # BTC 1x paid from the cash, then ETH asks for 5x: cross-3x (initial ML 1.5? the profile's M0) caps it
    # where the whole account's ML reaches M0; nothing is repaid, so the gate is the one-symbol one plus BTC
    targets = pd.DataFrame({"BTCUSDT": [1.0] + [np.nan] * 5, "ETHUSDT": [np.nan, 5.0] + [np.nan] * 4}, index=IDX)
    res = backtest.run_multi(flat_bars(), targets, margin="cross-3x", fee=0.0,
                             rates={"BTC": 0.0, "ETH": 0.0, "USDT": 0.0}, auto_repay=False)
    m0 = res.profile.initial_ml
    eth = res.orders[res.orders["symbol"] == "ETHUSDT"].iloc[0]
    assert bool(eth["capped"])
    # after the buy: assets = 10,000 (BTC) + q·2,000, debt = q·2,000 (all borrowed): ML = m0 exactly
    q = 10_000.0 / (2_000.0 * (m0 - 1.0))
    assert eth["quantity"] == pytest.approx(q, rel=1e-12)
    e = res.equity.iloc[2]
    assert (e["equity"] + e["debt"]) / e["debt"] == pytest.approx(m0, rel=1e-12)


def test_cli_takes_no_auto_repay_for_a_cross_account_of_several_symbols(tmp_path, capsys):
    from test_multi import random_bars

    paths = []
    for sym, seed in (("BTCUSDT", 1), ("ETHUSDT", 2)):
        paths.append(str(tmp_path / f"{sym}-1h.parquet"))
        random_bars(seed, 300).reset_index().to_parquet(paths[-1], index=False)
    out = tmp_path / "o"
    code = main(["run", "--data", paths[0], "--data", paths[1], "--margin", "cross-5x", "--strategy", "sma_cross",
                 "--param", "fast=5", "--param", "slow=20", "--param", "leverage=3", "--no-auto-repay",
                 "--repay-on-flat", "--out", str(out), "--no-report"])
    assert code == 0, capsys.readouterr().err
    eq = pd.read_parquet(out / "equity.parquet")
    assert {"debt_base_BTCUSDT", "debt_base_ETHUSDT"} <= set(eq.columns)
    assert eq[["debt_base_BTCUSDT", "debt_base_ETHUSDT"]].to_numpy().max() > 0.0  # a short's loan ran on
    import json
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["auto_repay"] is False and settings["repay_on_flat"] is True


def test_the_kernel_counts_the_trades_the_table_lists():
    """rsi_revert on BTC and ETH from 2024 in one cross account, auto-repay off: base interest left running while
    flat moves a position with no trade, and the fill that grows it opens one. The summary is the kernel's count
    (295 before it counted so, for the table's 609)."""
    from backtest.data import load_ohlcv
    from strategies import rsi_revert

    root = Path(__file__).resolve().parents[1] / "data"
    data = {s: load_ohlcv(root / f"{s}-1h.parquet").loc["2024-01-01":] for s in ("BTCUSDT", "ETHUSDT")}
    targets = pd.DataFrame({s: pd.Series(rsi_revert.targets(df, **dict(rsi_revert.PARAMS, leverage=1.0)),
                                         index=df.index) for s, df in data.items()})
    res = backtest.run_multi(data, targets, margin="cross-3x", auto_repay=False)
    assert res.summary["n_trades"] == len(res.trades) == 609
