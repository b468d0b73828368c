"""`backtest data resample`: 1m → 1h reproduces the bundled 1h file exactly."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.data import load_ohlcv, resample_ohlcv
from backtest.data.cli import main as data_main
from backtest.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
# one week (2025-06-02 00:00 .. 2025-06-08 23:59) of ../shared/data/BTCUSDT-1m.parquet
MINUTES = ROOT / "tests" / "fixtures" / "BTCUSDT-1m-2025-06-02.parquet"
SHARED_1M = ROOT.parent / "shared" / "data" / "BTCUSDT-1m.parquet"


def compare_with_bundled(res):
    hourly = load_ohlcv(BTC)
    common = res.index.intersection(hourly.index)
    assert len(common) == len(res)  # every resampled hour exists in the 1h file
    a, b = res.loc[common], hourly.loc[common]
    for c in ("open", "high", "low", "close"):
        assert np.array_equal(a[c].to_numpy(), b[c].to_numpy()), c  # prices exactly
    np.testing.assert_allclose(a["volume"].to_numpy(), b["volume"].to_numpy(), rtol=1e-12, atol=0)
    return len(common)


def test_fixture_week_1m_to_1h_equals_bundled():
    m = load_ohlcv(MINUTES)
    assert len(m) == 7 * 24 * 60 and m.attrs["timeframe"] == "1m"
    res = resample_ohlcv(m, "1h")
    assert res.attrs["timeframe"] == "1h" and res.attrs["symbol"] == "BTCUSDT"
    assert res.index[0] == pd.Timestamp("2025-06-02 00:00", tz="UTC")
    assert compare_with_bundled(res) == 168


@pytest.mark.skipif(not SHARED_1M.exists(), reason="../shared/data not present")
def test_full_shared_1m_to_1h_equals_bundled():
    res = resample_ohlcv(load_ohlcv(SHARED_1M), "1h")
    assert compare_with_bundled(res) == 2178


def test_cli_resample(tmp_path, capsys):
    out = tmp_path / "BTCUSDT-1h.parquet"
    assert data_main(["data", "resample", str(MINUTES), "--to", "1h", "--out", str(out)]) == 0
    assert "10,080 1m bars → 168 1h bars" in capsys.readouterr().out
    got = load_ohlcv(out)
    assert got.attrs["timeframe"] == "1h"
    compare_with_bundled(got)


def test_rules_and_partial_edges():
    m = load_ohlcv(MINUTES).loc["2025-06-02 00:30":"2025-06-02 05:10"]
    res = resample_ohlcv(m, "1h")
    # first hour starts at 00:30 (incomplete) and last at 05:00 (11 of 60): both dropped
    assert list(res.index.hour) == [1, 2, 3, 4]
    assert [d.split(" (")[0] for d in res.attrs["resample"]["dropped_edges"]] == ["first", "last"]
    h = m.loc["2025-06-02 01:00":"2025-06-02 01:59"]
    assert res.iloc[0].tolist()[:4] == [h.open.iloc[0], h.high.max(), h.low.min(), h.close.iloc[-1]]
    assert res["volume"].iloc[0] == pytest.approx(h.volume.sum(), rel=1e-15)
    kept = resample_ohlcv(m, "1h", keep_partial=True)
    assert list(kept.index.hour) == [0, 1, 2, 3, 4, 5]
    assert kept.open.iloc[0] == m.open.iloc[0]  # labelled 00:00, opened at 00:30


def test_interior_gap_kept_and_counted():
    hourly = load_ohlcv(BTC, start="2018-02-07", end="2018-02-10")  # the 33-hour outage
    res = resample_ohlcv(hourly, "4h")
    assert pd.Timestamp("2018-02-08 04:00", tz="UTC") not in res.index  # empty periods: no bar
    assert pd.Timestamp("2018-02-08 00:00", tz="UTC") in res.index  # 1 of 4 bars
    assert res.attrs["resample"]["incomplete"] == 2


def test_week_and_month_alignment():
    hourly = load_ohlcv(BTC, start="2024-01-01", end="2024-03-31")
    w = resample_ohlcv(hourly, "1w")
    assert (w.index.day_of_week == 0).all() and (w.index.hour == 0).all()
    mo = resample_ohlcv(hourly, "1M")
    assert list(mo.index.month) == [1, 2, 3] and (mo.index.day == 1).all()
    assert mo.high.iloc[1] == hourly.loc["2024-02"].high.max()
    d = resample_ohlcv(hourly, "1d")
    assert len(d) == 91 and d.attrs["timeframe"] == "1d"


def test_bad_targets():
    hourly = load_ohlcv(BTC).iloc[:100]
    with pytest.raises(UserError, match="--to 90m: not a whole multiple of the data's timeframe 1h"):
        resample_ohlcv(hourly, "90m")
    with pytest.raises(UserError, match="--to 30m: not a whole multiple"):
        resample_ohlcv(hourly, "30m")
    with pytest.raises(UserError, match="not a timeframe"):
        resample_ohlcv(hourly, "4 hours")
    with pytest.raises(UserError, match="no complete 1w bar"):
        resample_ohlcv(hourly.iloc[5:20], "1w")
