"""Rate histories (--rates): the forward-fill rule, exact charges across a
rate change, interest per asset in trades and summary, and every bad file."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.engine import _epoch_seconds
from backtest.rates import hourly_for, load_rates
from test_cli import BTC, SHORT, cli, expect_error

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "data" / "rates-example.csv"


def hourly_bars(n, start="2024-01-01 00:00", price=100.0):
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1.0}, index=idx)


def test_forward_fill_to_every_whole_hour():
    rows = pd.DataFrame({"timestamp": ["2024-01-01 00:00", "2024-01-01 02:30", "2024-01-01 04:00"],
                         "asset": "USDT", "hourly_rate": [1e-5, 2e-5, 3e-5]})
    hist = load_rates(rows)["USDT"]
    seconds = _epoch_seconds(hourly_bars(6).index)
    # a row at 02:30 takes effect at 03:00
    assert hourly_for(seconds, "USDT", hist).tolist() == [1e-5, 1e-5, 1e-5, 2e-5, 3e-5, 3e-5]


def test_loan_across_a_rate_change_pays_each_hour_at_its_rate():
    # long 2x at 100 from 01:00: borrows 10,000 USDT; held to 05:00, then flat
    bars = hourly_bars(7)
    target = np.array([2.0, np.nan, np.nan, np.nan, 0.0, np.nan, np.nan])
    rows = pd.DataFrame({"timestamp": ["2024-01-01 00:00", "2024-01-01 03:00"], "asset": "USDT",
                         "hourly_rate": [1e-5, 3e-5]})
    res = backtest.run(bars, target, margin="cross-3x", fee=0.0, symbol="BTCUSDT", rate_history=rows,
                       rates={"BTC": 0.0})
    # borrow charge at 01:00 (1e-5), boundary 02:00 (1e-5), 03:00 and 04:00 (3e-5); repaid at 05:00
    expect = 10_000 * (1e-5 + 1e-5 + 3e-5 + 3e-5)
    assert res.summary["interest_paid_USDT"] == pytest.approx(expect, abs=1e-12)
    assert res.trades["interest_quote"].sum() == pytest.approx(expect, abs=1e-12)
    assert res.trades["interest_base"].sum() == 0.0


def test_trade_interest_per_asset_adds_up_to_the_summary(capsys, tmp_path):
    code, out, err = cli(capsys, "run", "--data", BTC, *SHORT, "--strategy", "sma_cross", "--param", "leverage=-2",
                         "--rates", EXAMPLE, "--out", tmp_path / "r")
    assert code == 0, err
    assert "interest paid" in out and "BTC" in out
    trades = pd.read_csv(tmp_path / "r" / "trades.csv")
    import json
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert trades["interest_base"].sum() == pytest.approx(summary["interest_paid_BTC"], rel=1e-9, abs=1e-12)
    assert trades["interest_quote"].sum() == pytest.approx(summary["interest_paid_USDT"], rel=1e-9, abs=1e-12)
    assert summary["interest_paid_BTC"] > 0.0


def test_the_example_file_covers_the_bundled_data():
    hist = load_rates(EXAMPLE)
    assert set(hist) >= {"BTC", "ETH", "USDT"}
    first = pd.read_parquet(BTC).index[0] if "timestamp" not in pd.read_parquet(BTC).columns else \
        pd.read_parquet(BTC)["timestamp"].iloc[0]
    assert all(pd.Timestamp(int(t[0]), unit="s", tz="UTC") <= pd.Timestamp(first) for t, _ in hist.values())


@pytest.mark.parametrize("body, says", [
    ("timestamp,asset\n2024-01-01,USDT\n", "expected columns"),
    ("timestamp,asset,daily_rate,hourly_rate\n2024-01-01,USDT,1,1\n", "one of daily_rate or hourly_rate"),
    ("timestamp,asset,daily_rate\n", "no rows"),
    ("timestamp,asset,daily_rate\n2018-01-01,USDT,-0.1\n", ["row 1", "daily_rate"]),
    ("timestamp,asset,daily_rate\n2018-01-01,USDT,abc\n", ["row 1", "daily_rate"]),
    ("timestamp,asset,daily_rate\n2018-01-01,USDT,0.1\nyesterday,USDT,0.1\n", ["row 2", "timestamp"]),
    ("timestamp,asset,daily_rate\n2018-01-01,USDT,0.1\n2018-01-01,USDT,0.2\n", ["USDT", "two rates"]),
    ("timestamp,asset,daily_rate\n2023-02-01,USDT,0.1\n", ["USDT", "first rate", "after the run"]),
    # (helper-73) seconds read as milliseconds fell in 1970 and applied from the run's start; a blank asset
    # became "NAN" and a number "5", which no run trades: the default rates were paid silently
    ("timestamp,asset,daily_rate\n1514764800,USDT,0.1\n", ["row 1", "as milliseconds is 1970", "dates"]),
    ("timestamp,asset,daily_rate\n2018-01-01,USDT,0.1\n2018-01-02,,0.2\n", ["row 2", "not an asset's name"]),
    ("timestamp,asset,daily_rate\n2018-01-01,5,0.1\n", ["row 1", "asset 5 ", "not an asset's name"]),
])
def test_bad_rate_files(capsys, tmp_path, body, says):
    f = tmp_path / "rates.csv"
    f.write_text(body)
    expect_error(capsys, "run", "--data", BTC, *SHORT, "--rates", f, "--out", tmp_path / "o", says=says)


def test_missing_and_unreadable_rate_files(capsys, tmp_path):
    expect_error(capsys, "run", "--data", BTC, *SHORT, "--rates", tmp_path / "nope.csv", says="no such file")
    f = tmp_path / "r.parquet"
    f.write_bytes(b"not parquet")
    expect_error(capsys, "run", "--data", BTC, *SHORT, "--rates", f, says="cannot read")


def test_an_asset_with_both_a_rate_and_a_history_is_refused(capsys, tmp_path):
    expect_error(capsys, "run", "--data", BTC, *SHORT, "--rates", EXAMPLE, "--rate", "USDT=0.001",
                 says=["USDT", "also in --rates"])


def test_parquet_rate_file_with_millisecond_timestamps(tmp_path):
    f = tmp_path / "r.parquet"
    pd.DataFrame({"timestamp": [1704067200000], "asset": ["USDT"], "daily_rate": [0.24]}).to_parquet(f)
    assert load_rates(f)["USDT"][0].tolist() == [1704067200]
    assert load_rates(f)["USDT"][1].tolist() == [0.01]
