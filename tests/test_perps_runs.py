"""Perpetual futures end to end: the bundled data's liquidation of a 3x
hold on 2021-05-19 on the mark price, the books, profile files, and every
refusal (one line, exit 2 from the CLI)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from backtest.cli import main
from backtest.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
PERP = ROOT / "data" / "BTCUSDT_PERP-1h.parquet"
MARK = ROOT / "data" / "BTCUSDT_PERP-1h-mark.parquet"


@pytest.fixture(scope="module")
def hold3():
    return backtest.run(PERP, "hold", {"exposure": 3}, margin="usdm-isolated-10x", start="2021-05-18",
                        end="2021-06-30")


def test_bundled_hold_is_liquidated_on_the_mark_on_2021_05_19(hold3):
    liq = hold3.liquidations
    assert len(liq) == 1
    row = liq.iloc[0]
    assert str(row["time"]) == "2021-05-19 03:00:00+00:00"
    mark = pd.read_parquet(MARK).set_index("timestamp")
    lp = row["trigger_price"]
    # the mark's low first reaches the liquidation price in the 03:00 bar (not at 02:00), about 40,140
    assert mark.loc["2021-05-19 03:00", "low"] <= lp < mark.loc["2021-05-19 02:00", "low"]
    assert 40_100 < lp < 40_200
    # the isolated wallet (3,000 of initial margin at 10x) is what is lost, the cross wallet is untouched
    entry = hold3.orders.iloc[0]
    assert str(entry["time"]) == "2021-05-18 01:00:00+00:00" and entry["price"] == 44421.69
    assert hold3.summary["final_equity"] == pytest.approx(10_000 - 3_000 - entry["fee"], abs=1e-9)
    assert hold3.trades["pnl"].iloc[0] == pytest.approx(-3_000 - entry["fee"], abs=1e-9)  # fees count in the pnl
    # spec §4.2 at the state of the 02:00 close: (WI − N·EP + cum)/(N·mmr − N), tier 1 of the 2021 table
    n = entry["quantity"]
    wallet = n * entry["price"] / 10 - hold3.funding["payment"].sum()
    assert lp == pytest.approx((wallet - n * entry["price"]) / (n * 0.004 - n), rel=1e-12)
    assert hold3.equity.loc["2021-05-19 02:00", "liquidation_price"] == pytest.approx(lp, rel=1e-12)


def test_funding_rows_and_columns(hold3):
    f = hold3.funding
    assert list(f.columns) == ["time", "symbol", "rate", "mark_price", "position", "payment"]
    assert [str(t) for t in f["time"]] == ["2021-05-18 08:00:00+00:00", "2021-05-18 16:00:00+00:00",
                                           "2021-05-19 00:00:00+00:00"]
    np.testing.assert_allclose(f["payment"], f["position"] * f["mark_price"] * f["rate"], rtol=1e-15)
    mark = pd.read_parquet(MARK).set_index("timestamp")
    assert f["mark_price"].tolist() == [mark.loc[t, "open"] for t in f["time"]]
    eq = hold3.equity
    assert eq["funding_paid"].iloc[-1] == pytest.approx(f["payment"].sum(), rel=1e-15)
    assert hold3.summary["funding_paid"] == pytest.approx(f["payment"].sum(), rel=1e-15)
    assert hold3.summary["n_funding"] == 3 and hold3.summary["venue"] == "binance-usdm"
    assert "interest_paid" not in hold3.summary and "funding" in hold3.trades.columns
    assert hold3.trades["funding"].iloc[0] == pytest.approx(f["payment"].sum(), rel=1e-12)


def test_books_balance_on_a_busy_perp_run():
    res = backtest.run(PERP, "sma_cross", {"leverage": 3}, margin="usdm-cross-5x", start="2024-01-01",
                       stop_loss=0.03, take_profit=0.05)
    s = res.summary
    assert s["n_trades"] > 50
    assert s["final_equity"] - 10_000 == pytest.approx(res.trades["pnl"].sum(), abs=1e-6)
    assert (res.trades["exit_reason"] == "stop_loss").any() and (res.trades["exit_reason"] == "take_profit").any()


def test_constant_funding_rate_every_8_hours():
    res = backtest.run(PERP, "hold", {"exposure": -2}, margin="usdm-cross-3x", start="2024-03-01",
                       end="2024-03-04", funding_rate=0.0001)
    f = res.funding
    assert all(t.hour in (0, 8, 16) and t.minute == 0 for t in f["time"])
    assert (f["payment"] < 0).all()  # a short receives a positive rate
    assert len(f) == 11  # opened at 01:00 on the 1st: 08:00 and 16:00, then three a day to the 4th (end: the whole day)
    assert res.summary["funding_paid"] == pytest.approx(f["payment"].sum(), rel=1e-15)


def test_profile_file_perp_is_isolated(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('[profiles.iso-8x]\nvenue = "binance-usdm"\nmode = "isolated"\nleverage = 8\n')
    res = backtest.run(PERP, "hold", {"exposure": 3}, margin="iso-8x", margin_file=toml, start="2021-05-18",
                       end="2021-05-25")
    assert res.profile.perp and res.profile.isolated and res.profile.max_leverage == 8
    # isolated: the liquidation takes the initial margin (N·EP/8), not the whole account
    assert res.summary["final_equity"] > 6_000


@pytest.mark.parametrize("body, words", [
    ('venue = "binance-usdm"\nleverage = 8\n', "mode: missing"),
    ('venue = "binance-usdm"\nmode = "cross"\n', "leverage: missing"),
    ('venue = "binance-usdm"\nmode = "cross"\nleverage = 2.5\n', "whole number"),
    ('venue = "binance-usdm"\nmode = "cross"\nleverage = 5\nmax_leverage = 5\n', "not a setting of venue"),
    ('venue = "binance-futures"\nmode = "cross"\nleverage = 5\n', "not a known venue"),
    ('mode = "cross"\nleverage = 5\nliquidation_ml = 1.1\nliquidation_fee = 0.02\n', "perpetual-futures key"),
])
def test_profile_file_refusals(tmp_path, body, words):
    toml = tmp_path / "p.toml"
    toml.write_text("[profiles.x]\n" + body)
    with pytest.raises(UserError, match=words) as exc:
        backtest.run(PERP, "hold", margin="x", margin_file=toml)
    assert "\n" not in str(exc.value) and "margin_file" in str(exc.value)  # (the Python API names its argument)


def _cli_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("extra, words", [
    (["--margin", "usdm-cross-200x"], "200x is above the bracket table's maximum (125x"),
    (["--margin", "usdm-cross-5x", "--funding", str(ROOT / "data" / "ETHUSDT_PERP-funding.parquet")],
     "funding of ETHUSDT"),
    (["--margin", "usdm-cross-5x", "--rate", "USDT=0.001"], "--rate: not on the perpetual-futures venue"),
    (["--margin", "usdm-cross-5x", "--no-auto-repay"], "--no-auto-repay: not on the perpetual-futures venue"),
    (["--margin", "usdm-cross-5x", "--funding-rate", "0.0001", "--funding", str(PERP)], "--funding-rate: not with"),
    (["--margin", "cross-3x", "--funding-rate", "0.0001"], "--funding-rate: only with a perpetual-futures profile"),
    (["--margin", "usdm-cross-5x", "--symbol", "SOLUSDT"], "no maintenance-bracket table for SOLUSDT"),
])
def test_cli_refusals(capsys, tmp_path, extra, words):
    line = _cli_error(capsys, ["run", "--data", str(PERP), "--start", "2024-01-01", "--end", "2024-01-05",
                               "--out", str(tmp_path / "out"), *extra])
    assert words in line
    assert not (tmp_path / "out").exists()


def test_funding_that_does_not_cover_the_bars(capsys, tmp_path):
    f = pd.read_parquet(ROOT / "data" / "BTCUSDT_PERP-funding.parquet")
    part = tmp_path / "BTCUSDT_PERP-funding.parquet"
    f[f["timestamp"] < "2024-01-02"].to_parquet(part)
    line = _cli_error(capsys, ["run", "--data", str(PERP), "--margin", "usdm-cross-5x", "--start", "2023-12-01",
                               "--end", "2024-03-01", "--funding", str(part), "--out", str(tmp_path / "o")])
    assert "--funding" in line and "give funding for the whole span" in line


def test_a_perp_run_without_funding_says_so(capsys, tmp_path):
    spot = ROOT / "data" / "BTCUSDT-1h.parquet"  # no funding file beside it
    args = ["run", "--margin", "usdm-cross-5x", "--start", "2024-01-01", "--end", "2024-02-01", "--no-report"]
    assert main([*args, "--data", str(spot), "--out", str(tmp_path / "a")]) == 0
    assert "no funding file beside the data, no --funding or --funding-rate: none charged" in capsys.readouterr().out
    assert main([*args, "--data", str(PERP), "--out", str(tmp_path / "b")]) == 0
    assert "none charged" not in capsys.readouterr().out
    eth = ROOT / "data" / "ETHUSDT_PERP-1h.parquet"  # several symbols: the files beside the data charged
    assert main([*args, "--data", str(PERP), "--data", str(eth), "--out", str(tmp_path / "c")]) == 0
    assert "none charged" not in capsys.readouterr().out
    recorded = json.loads((tmp_path / "c" / "run.json").read_text())["settings"]["funding"]
    assert sorted(recorded) == ["BTCUSDT_PERP", "ETHUSDT_PERP"] and recorded["ETHUSDT_PERP"].endswith("ETHUSDT_PERP-funding.parquet")
    assert main([*args, "--data", str(spot), "--data", str(ROOT / "data" / "ETHUSDT-1h.parquet"),
                 "--out", str(tmp_path / "d")]) == 0
    assert "none charged" in capsys.readouterr().out


def test_a_bootstrap_funding_file_refuses_perps(capsys, tmp_path):
    line = _cli_error(capsys, ["risk", "--data", str(PERP), "--strategy", "hold", "--grid", "exposure=1,2",
                               "--margin", "usdm-cross-5x", "--method", "bootstrap", "--out", str(tmp_path / "s")])
    assert "not with --method bootstrap" in line



def test_run_json_records_the_venue(tmp_path, hold3):
    hold3.save(tmp_path / "r")
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["settings"]["venue"] == "binance-usdm" and run["profile"]["venue"] == "binance-usdm"
    assert run["settings"]["funding"].endswith("BTCUSDT_PERP-funding.parquet")
    assert (tmp_path / "r" / "funding.csv").exists()
    back = backtest.Result.load(tmp_path / "r")
    assert back.profile.perp and len(back.funding) == 3


def test_sweep_rows_of_perp_profiles_equal_their_runs(tmp_path):
    from backtest.sweep import sweep

    grid = {"fast": [10], "slow": [50], "leverage": [2.0, 8.0],
            "margin": ["usdm-cross-5x", "usdm-isolated-10x", "cross-3x"]}
    res = sweep(PERP, "sma_cross", grid, out=tmp_path / "s", start="2021-05-01", end="2021-07-01", progress=False,
                workers=1)
    table = res.table.set_index(["leverage", "margin"])
    for lev in (2.0, 8.0):
        for margin in ("usdm-cross-5x", "usdm-isolated-10x", "cross-3x"):
            one = backtest.run(PERP, "sma_cross", {"fast": 10, "slow": 50, "leverage": lev}, margin=margin,
                               start="2021-05-01", end="2021-07-01").summary
            row = table.loc[(lev, margin)]
            for key in ("final_equity", "n_liquidations", "n_trades", "fees_paid"):
                assert row[key] == pytest.approx(one[key], rel=1e-12), (lev, margin, key)
            if margin.startswith("usdm"):
                for key in ("funding_paid", "n_funding", "max_margin_ratio", "liquidation_fees"):
                    assert row[key] == pytest.approx(one[key], rel=1e-12), (lev, margin, key)
                assert one["fees_paid"] > 0 and row["venue"] == "binance-usdm"
            else:
                assert row["interest_paid"] == pytest.approx(one["interest_paid"], rel=1e-12)
    assert res.settings["fee"] is None and res.settings["funding"].endswith("BTCUSDT_PERP-funding.parquet")


def test_sweep_refuses_perp_flags_without_a_perp_profile(tmp_path):
    from backtest.sweep import sweep

    with pytest.raises(UserError, match="funding_rate.*only with a perpetual-futures profile|only with a perp"):
        sweep(PERP, "sma_cross", {"fast": [10], "slow": [50]}, out=tmp_path / "s", margin="cross-3x",
              funding_rate=0.0001, progress=False)


def _walk(start, n, seed=0):
    rng = np.random.default_rng(seed)
    c = 10_000 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    o = np.concatenate(([10_000.0], c[:-1]))
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.002, "low": np.minimum(o, c) * 0.998, "close": c,
                         "volume": 1.0}, index=idx)


def test_bars_before_the_first_bracket_table_use_the_first():
    # the shipped BTCUSDT tables start 2019-09-01; a run from 2019-08-30 trades on the first one
    res = backtest.run(_walk("2019-08-30", 200), "hold", {"exposure": 2}, symbol="BTCUSDT", margin="usdm-cross-5x",
                       funding_rate=0.0001)
    assert res.summary["n_trades"] == 1 and res.summary["n_capped"] == 0
    assert res.equity["exposure"].iloc[1] == pytest.approx(2.0, rel=0.01)  # (entered at the open, drifted to the close)


def test_sweep_perp_refusals_and_a_funding_table(tmp_path):
    from backtest.sweep import sweep

    bars = _walk("2024-01-01", 600, 3)
    limits = sweep(bars, "dip_entry", {"window": [20, 50]}, out=tmp_path / "a", margin="usdm-isolated-10x",
                   symbol="BTCUSDT", funding_rate=1e-4, progress=False, workers=1)
    for row in limits.table.to_dict("records"):  # a strategy's limit orders on perps: each row is its run
        one = backtest.run(bars, "dip_entry", {"window": row["window"]}, symbol="BTCUSDT", margin="usdm-isolated-10x",
                           funding_rate=1e-4).summary
        assert row["final_equity"] == pytest.approx(one["final_equity"], rel=1e-12) and one["n_orders"] > 2
    with pytest.raises(UserError, match="auto_repay=False: not on the perpetual-futures venue"):
        sweep(bars, "sma_cross", {"fast": [5]}, out=tmp_path / "b", margin="usdm-isolated-10x", symbol="BTCUSDT",
              funding_rate=1e-4, auto_repay=False, progress=False)
    table = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", "2024-01-26", freq="8h", tz="UTC"),
                          "funding_rate": 0.0004})
    res = sweep(bars, "sma_cross", {"fast": [5], "slow": [30]}, out=tmp_path / "c", margin="usdm-cross-5x",
                symbol="BTCUSDT", funding=table, progress=False, workers=1)
    one = backtest.run(bars, "sma_cross", {"fast": 5, "slow": 30}, symbol="BTCUSDT", margin="usdm-cross-5x",
                       funding=table)
    assert res.table["funding_paid"].iloc[0] == pytest.approx(one.summary["funding_paid"], rel=1e-12)
    assert res.table["final_equity"].iloc[0] == pytest.approx(one.summary["final_equity"], rel=1e-12)
    assert res.settings["funding"] == "table" and "funding_hash" in res.settings


def test_risk_windows_on_perps_equal_backtest_run_over_the_same_span(tmp_path):
    res = backtest.risk(PERP, "hold", {"exposure": [2.0, 5.0]}, margin=["usdm-isolated-10x", "usdm-cross-5x"],
                        horizon="20d", every="10d", start="2021-04-01", end="2021-07-31", out=tmp_path / "r",
                        progress=False)
    table = res.table
    assert table["liquidated"].any() and (table["funding_paid"] != 0).all()
    for row in table.iloc[[0, 3, len(table) // 2, -1]].to_dict("records"):
        one = backtest.run(PERP, "hold", {"exposure": row["exposure"]}, margin=row["margin"], start=row["start"],
                           end=row["end"])
        s = one.summary
        assert pd.Timestamp(s["start"]) == row["start"] and pd.Timestamp(s["end"]) == row["end"]
        for key in ("final_equity", "n_liquidations", "fees_paid", "funding_paid", "liquidation_fees"):
            assert row[key] == s[key], key
    with pytest.raises(UserError, match="not with (--)?method bootstrap"):  # (the bundled funding file's dates)
        backtest.risk(PERP, "hold", {"exposure": [2.0]}, margin="usdm-cross-5x", method="bootstrap", paths=10,
                      start="2021-04-01", end="2021-07-31", out=tmp_path / "b", progress=False)


def test_risk_bootstrap_on_perps_paths_equal_backtest_run(tmp_path):
    from backtest.bootstrap import BlockBootstrap

    res = backtest.risk(PERP, "hold", {"exposure": [3.0]}, margin=["usdm-isolated-10x", "usdm-cross-5x"],
                        method="bootstrap", paths=12, horizon="20d", block="24h", seed=5, funding_rate=0.0002,
                        start="2021-04-01", end="2021-07-31", out=tmp_path / "boot", progress=False)
    table = res.table
    assert table["liquidated"].any() and (table["funding_paid"] != 0).all()
    bars = backtest.load_ohlcv(PERP, "2021-04-01", "2021-07-31")
    boot = BlockBootstrap(bars, 20 * 24, 24.0, seed=5, spacing=3600)
    for row in table.iloc[[0, 5, 13, 23]].to_dict("records"):
        one = backtest.run(boot.frame(row["path"]), "hold", {"exposure": 3.0}, margin=row["margin"],
                           symbol="BTCUSDT", funding_rate=0.0002).summary
        for key in ("final_equity", "n_liquidations", "fees_paid", "funding_paid"):
            assert row[key] == pytest.approx(one[key], rel=1e-12), key


def _bars(rows, start="2024-03-01"):
    idx = pd.date_range(start, periods=len(rows), freq="1h", tz="UTC", name="timestamp")
    o, h, lo, c = (np.array(x, float) for x in zip(*rows))
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1.0}, index=idx)


def test_a_limit_entry_on_an_isolated_perp_by_hand():
    # a 3x long at a limit 2 % under the first close; placed at bar 1's open, filled when bar 2's low touches it
    bars = _bars([(100, 101, 99, 100), (100, 101, 99.5, 100), (100, 100.5, 97, 99), (99, 100, 98, 99.5)])

    def strat(bars):
        n = len(bars)
        return {"target": np.array([3.0] + [np.nan] * (n - 1)), "limit": np.full(n, 98.0), "expiry": 5}

    res = backtest.run(bars, strat, symbol="BTCUSDT", margin="usdm-isolated-10x", funding_rate=0.0, fee=0.0005)
    o = res.orders
    assert len(o) == 1 and o["kind"].iloc[0] == "limit" and str(o["time"].iloc[0]) == "2024-03-01 02:00:00+00:00"
    q = 3 * 10_000 / 98.0  # sized at the limit price, with the equity at the open of placement (10,000)
    assert o["quantity"].iloc[0] == pytest.approx(q, rel=1e-12)
    assert o["price"].iloc[0] == 98.0 and o["fee"].iloc[0] == pytest.approx(q * 98.0 * 0.0005, rel=1e-12)
    # isolated: the initial margin q·98/10 = 3,000 leaves the cross wallet; the fee comes from it too
    eq = res.equity
    assert eq["equity"].iloc[2] == pytest.approx(10_000 - q * 98 * 0.0005 + q * (99 - 98), rel=1e-12)
    lp = (3_000 - q * 98.0) / (q * 0.004 - q)  # spec §4.2, tier 1 (notional under 50,000 at 2024's table)
    assert eq["liquidation_price"].iloc[2] == pytest.approx(lp, rel=1e-12)
    assert res.summary["final_equity"] - 10_000 == pytest.approx(res.trades["pnl"].sum(), abs=1e-9)


def test_dip_entry_on_bundled_perps_balances():
    res = backtest.run(PERP, "dip_entry", margin="usdm-cross-5x", start="2024-01-01", end="2024-06-30")
    s = res.summary
    assert (res.orders["kind"] == "limit").sum() > 5 and s["n_cancelled"] > 0
    assert s["final_equity"] - 10_000 == pytest.approx(res.trades["pnl"].sum(), abs=1e-6)


def test_a_sell_limit_filled_above_its_price_is_cut_to_the_margin_there():
    # a short sized at a sell limit of 95 (10,000 / (95 · 0.1005) units at 10x) fills at the open, 100: more
    # margin a unit, so the opening part is cut at 100 as a market order's would be; the isolated account
    # then loses its margin, never more
    bars = _bars([(100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100), (100, 116, 99, 115),
                  (115, 116, 114, 115)])

    def strat(bars):
        n = len(bars)
        return {"target": np.array([-10.0] + [np.nan] * (n - 1)), "limit": np.full(n, 95.0), "expiry": 5}

    res = backtest.run(bars, strat, symbol="BTCUSDT", margin="usdm-isolated-10x", funding_rate=0.0, fee=0.0005)
    fill = res.orders.iloc[0]
    assert fill["kind"] == "limit" and fill["price"] == 100.0 and bool(fill["capped"])
    assert fill["quantity"] == pytest.approx(10_000 / (100 * (0.1 + 0.0005)), rel=1e-12)
    market = backtest.run(bars, np.array([-10.0] + [np.nan] * 4), symbol="BTCUSDT", margin="usdm-isolated-10x",
                          funding_rate=0.0, fee=0.0005)
    assert fill["quantity"] == pytest.approx(market.orders.iloc[0]["quantity"], rel=1e-12)
    assert res.summary["final_equity"] == pytest.approx(0.0, abs=1e-9) and (res.equity["equity"] >= 0).all()


def test_walk_forward_on_perps_test_spans_equal_backtest_run(tmp_path):
    from backtest.sweep import sweep

    res = sweep(PERP, "sma_cross", {"fast": [10, 20], "slow": [50], "leverage": [1.0, 3.0]},
                margin=["usdm-isolated-10x", "cross-3x"], start="2023-01-01", end="2023-12-31",
                walk_forward="train=120d,test=60d", out=tmp_path / "wf", progress=False)
    table = res.windows
    assert len(table) >= 3 and (table["param_margin"] == "usdm-isolated-10x").any()
    for row in table.to_dict("records"):
        params = {"fast": row["param_fast"], "slow": row["param_slow"], "leverage": row["param_leverage"]}
        one = backtest.run(PERP, "sma_cross", params, margin=row["param_margin"], capital=row["start_equity"],
                           start=row["test_start"], end=row["test_end"])
        assert one.summary["final_equity"] == pytest.approx(row["end_equity"], rel=1e-12)
