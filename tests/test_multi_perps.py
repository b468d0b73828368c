"""Several symbols on perpetual futures: an isolated perp account (or a
cross perp account holding one symbol) is the one-symbol run of its symbol
with its share of the capital, bar for bar and record for record, funding
and the mark-price liquidation included; spot and perp accounts mix in one
run; a cross account of several perp symbols runs the venue's joint rules
(its differential test is test_differential_perps_cross.py), stops
included."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from backtest.cli import main
from backtest.data import load_ohlcv
from backtest.errors import UserError
from backtest.multi import run_multi
from test_multi import T0, H, random_bars, random_targets

ROOT = Path(__file__).resolve().parents[1]
BTC, ETH = ROOT / "data" / "BTCUSDT_PERP-1h.parquet", ROOT / "data" / "ETHUSDT_PERP-1h.parquet"


def _funding(index, seed):
    rng = np.random.default_rng(seed)
    times = pd.date_range(index[0].floor("8h"), index[-1], freq="8h")
    return pd.DataFrame({"timestamp": times, "funding_rate": rng.normal(0.0002, 0.001, len(times))})


def _mark(bars, seed):
    rng = np.random.default_rng(seed)
    k = np.exp(rng.normal(0, 0.002, (len(bars), 1)))
    m = bars[["open", "high", "low", "close"]] * k
    m["high"] = m[["open", "high", "close"]].max(axis=1) * 1.001
    m["low"] = m[["open", "low", "close"]].min(axis=1) * 0.999
    return m.assign(volume=0.0)


def assert_account_equals_run(multi, sym, one, index, account=None):
    account = account or sym
    mine = multi.equity.loc[index]
    assert (mine[f"equity_{account}"].to_numpy() == one.equity["equity"].to_numpy()).all()
    assert (mine[f"position_{sym}"].to_numpy() == one.equity["position"].to_numpy()).all()
    assert (mine[f"funding_paid_{sym}"].to_numpy() == one.equity["funding_paid"].to_numpy()).all()
    np.testing.assert_array_equal(mine[f"liquidation_price_{sym}"], one.equity["liquidation_price"])
    np.testing.assert_array_equal(mine[f"margin_ratio_{account}"], one.equity["margin_ratio"])
    orders = multi.orders[multi.orders["symbol"] == sym].reset_index(drop=True)
    for col in ("time", "side", "quantity", "price", "fee", "kind", "capped", "position"):
        assert orders[col].tolist() == one.orders[col].tolist(), col
    trades = multi.trades[multi.trades["symbol"] == sym].reset_index(drop=True)
    for col in ("entry_time", "exit_time", "exit_reason", "pnl", "fees", "funding"):
        assert trades[col].tolist() == one.trades[col].tolist(), col
    liqs = multi.liquidations[multi.liquidations["account"] == account].reset_index(drop=True)
    for col in ("time", "trigger_price", "fill_price", "quantity", "bad_debt", "fee"):
        assert liqs[col].tolist() == one.liquidations[col].tolist(), col


@pytest.mark.parametrize("stops", [{}, dict(stop_loss=0.03, take_profit=0.05)])
def test_two_isolated_perp_accounts_equal_one_symbol_runs(stops):
    b1 = random_bars(11, 500, drop=0.1)
    b2 = random_bars(12, 470, start=T0 + 30 * H)  # (both end on the same bar: an open trade ends there)
    t1, t2 = random_targets(13, b1.index) * 3, random_targets(14, b2.index) * 3
    f1, f2 = _funding(b1.index, 1), _funding(b2.index, 2)
    m1, m2 = _mark(b1, 3), _mark(b2, 4)
    settings = dict(slippage=0.0005, rebalance=0.2, **stops)
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, pd.DataFrame({"BTCUSDT": t1, "ETHUSDT": t2}),
                      margin="BTCUSDT=usdm-isolated-20x,ETHUSDT=usdm-isolated-5x", allocation="BTCUSDT=0.6,ETHUSDT=0.4",
                      mark={"BTCUSDT": m1, "ETHUSDT": m2}, funding={"BTCUSDT": f1, "ETHUSDT": f2}, **settings)
    assert multi.summary["n_funding"] > 0
    if stops:  # the stops acted; without them the mark liquidates
        assert set(multi.orders["kind"]) & {"stop_loss", "take_profit"}
    else:
        assert multi.summary["n_liquidations"] > 0
    total_funding = 0.0
    for sym, b, t, prof, cap, m, f in (("BTCUSDT", b1, t1, "usdm-isolated-20x", 6_000.0, m1, f1),
                                       ("ETHUSDT", b2, t2, "usdm-isolated-5x", 4_000.0, m2, f2)):
        one = backtest.run(b, t.to_numpy(), margin=prof, capital=cap, symbol=sym, mark=m, funding=f, **settings)
        assert_account_equals_run(multi, sym, one, b.index)
        assert multi.summary[f"final_equity_{sym}"] == one.summary["final_equity"]
        assert multi.summary[f"funding_paid_{sym}"] == one.summary["funding_paid"]
        total_funding += one.summary["funding_paid"]
    assert multi.summary["funding_paid"] == pytest.approx(total_funding, rel=1e-12)
    # the books: the trades' pnl adds up to the equity change
    assert multi.summary["final_equity"] - 10_000 == pytest.approx(multi.trades["pnl"].sum(), abs=1e-6)


def test_spot_and_perp_accounts_in_one_run():
    b1, b2 = random_bars(21, 300), random_bars(22, 300, drop=0.1)
    t1, t2 = random_targets(23, b1.index) * 2, random_targets(24, b2.index) * 2
    f2 = _funding(b2.index, 5)
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, pd.DataFrame({"BTCUSDT": t1, "ETHUSDT": t2}),
                      margin="BTCUSDT=cross-3x,ETHUSDT=usdm-isolated-10x", funding={"ETHUSDT": f2})
    spot = backtest.run(b1, t1.to_numpy(), margin="cross-3x", capital=5_000.0, symbol="BTCUSDT")
    perp = backtest.run(b2, t2.to_numpy(), margin="usdm-isolated-10x", capital=5_000.0, symbol="ETHUSDT", funding=f2)
    assert multi.summary["final_equity_cross"] == spot.summary["final_equity"]
    assert_account_equals_run(multi, "ETHUSDT", perp, b2.index)
    assert multi.summary["interest_paid"] == pytest.approx(spot.summary["interest_paid"], rel=1e-12)
    assert multi.summary["funding_paid"] == perp.summary["funding_paid"]
    # each venue's fee by default: 0.1 % on spot margin, 0.05 % on the perpetual
    o = multi.orders[multi.orders["kind"] == "signal"]
    rate = o["fee"] / (o["quantity"] * o["price"])
    assert np.allclose(rate[o["symbol"] == "BTCUSDT"], 0.001) and np.allclose(rate[o["symbol"] == "ETHUSDT"], 0.0005)


def test_bundled_perps_both_isolated_lose_only_their_margin():
    multi = run_multi([BTC, ETH], "hold", {"exposure": 3}, margin="usdm-isolated-10x", start="2021-05-01",
                      end="2021-06-30")
    s = multi.summary
    assert s["n_liquidations"] == 2
    for sym in ("BTCUSDT_PERP", "ETHUSDT_PERP"):
        # 5,000 each at 3x on 10x: the isolated margin (1,500) and the opening fee are lost, the rest kept
        entry = multi.orders[(multi.orders["symbol"] == sym) & (multi.orders["kind"] == "signal")].iloc[0]
        assert s[f"final_equity_{sym}"] == pytest.approx(5_000 - 1_500 - entry["fee"], abs=1e-9)


def test_a_cross_account_of_two_perp_symbols_on_bundled_data(tmp_path):
    """BTC and ETH at 3x each in one usdm-cross-10x account through the crash
    of 2021-05-19: one joint liquidation on the marks, where the account's
    margin balance meets the maintenance margin of both positions."""
    out = tmp_path / "cross"
    code = main(["run", "--data", str(BTC), "--data", str(ETH), "--margin", "usdm-cross-10x", "--strategy", "hold",
                 "--param", "exposure=3", "--start", "2021-05-01", "--end", "2021-07-31", "--out", str(out)])
    assert code == 0
    res = backtest.Result.load(out)
    s = res.summary
    assert s["n_liquidations"] == 1 and s["venue"] == "binance-usdm"
    liq = res.liquidations
    assert list(liq["symbol"]) == ["BTCUSDT_PERP", "ETHUSDT_PERP"] and liq["event"].nunique() == 1
    assert str(liq["time"].iloc[0])[:10] == "2021-05-19" and 0 < liq["theta"].iloc[0] < 1
    assert liq["margin_level"].iloc[0] == pytest.approx(1.0, abs=1e-9)  # MB = MM at the trigger marks
    fees = liq["fee"].iloc[0]
    assert fees == pytest.approx(0.0125 * (liq["quantity"] * liq["trigger_price"]).sum(), rel=1e-12) or \
        liq["equity_after"].iloc[0] == 0.0
    funding = pd.read_csv(out / "funding.csv")
    assert set(funding["symbol"]) == {"BTCUSDT_PERP", "ETHUSDT_PERP"}
    assert s["funding_paid"] == pytest.approx(funding["payment"].sum(), rel=1e-12)
    assert s["funding_paid"] == pytest.approx(s["funding_paid_BTCUSDT_PERP"] + s["funding_paid_ETHUSDT_PERP"])
    assert res.trades["pnl"].sum() == pytest.approx(s["final_equity"] - 10_000, abs=1e-6)  # the books
    eq = res.equity
    before = eq.loc[: liq["time"].iloc[0]].iloc[-2]  # the close before: both positions still open
    assert before["liquidation_price_BTCUSDT_PERP"] < before["close_BTCUSDT_PERP"]
    assert 0 < before["margin_ratio_cross"] < 1


def test_a_cross_perp_account_beside_an_isolated_one_is_its_own_run():
    """Accounts never touch each other: a two-symbol cross perp account in a
    run with an isolated third symbol equals the two symbols run alone with
    the cross account's capital."""
    b1, b2, b3 = random_bars(41, 300, drop=0.1), random_bars(42, 280, start=T0 + 20 * H), random_bars(43, 300)
    targets = pd.DataFrame({"BTCUSDT": random_targets(44, b1.index) * 4, "ETHUSDT": random_targets(45, b2.index) * 4,
                            "SOLUSDT": random_targets(46, b3.index) * 2})
    funding = {"BTCUSDT": _funding(b1.index, 1), "ETHUSDT": _funding(b2.index, 2)}
    mixed = run_multi({"BTCUSDT": b1, "ETHUSDT": b2, "SOLUSDT": b3}, targets, capital=30_000,
                      margin="BTCUSDT=usdm-cross-10x,ETHUSDT=usdm-cross-10x,SOLUSDT=isolated-5x",
                      allocation="cross=0.5,SOLUSDT=0.5", funding=funding, mark={"ETHUSDT": _mark(b2, 3)})
    alone = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, targets[["BTCUSDT", "ETHUSDT"]], capital=15_000,
                      margin="usdm-cross-10x", funding=funding, mark={"ETHUSDT": _mark(b2, 3)})
    grid = alone.equity.index
    for col in ("equity_cross", "position_BTCUSDT", "position_ETHUSDT", "funding_paid_BTCUSDT",
                "liquidation_price_ETHUSDT", "margin_ratio_cross"):
        np.testing.assert_array_equal(mixed.equity.loc[grid, col].to_numpy(), alone.equity[col].to_numpy())
    mine = mixed.orders[mixed.orders["symbol"] != "SOLUSDT"].reset_index(drop=True)
    assert mine[["time", "symbol", "quantity", "price", "kind"]].equals(
        alone.orders[["time", "symbol", "quantity", "price", "kind"]])


def test_a_cross_perp_account_of_several_symbols_takes_stops(tmp_path):
    """BTC and ETH at 3x each in one usdm-cross-10x account through the crash
    of 2021-05-19 (without stops: one joint liquidation on the marks). A 5 %
    stop-loss exits each position at its level, entry × 0.95, in the bar whose
    traded low first reaches it (fill = trigger: no slippage; the taker fee),
    before the marks reach the liquidation; the books balance; the CLI's
    --stop-loss is the same run."""
    kw = dict(margin="usdm-cross-10x", params={"exposure": 3}, start="2021-05-01", end="2021-07-31")
    plain = run_multi([BTC, ETH], "hold", **kw)
    assert plain.summary["n_liquidations"] == 1
    res = run_multi([BTC, ETH], "hold", stop_loss=0.05, **kw)
    s = res.summary
    assert s["n_liquidations"] == 0 and s["final_equity"] > 0.5 * 10_000
    o = res.orders
    stops = o[o["kind"] == "stop_loss"]
    assert list(stops["symbol"]) == ["BTCUSDT_PERP", "ETHUSDT_PERP"] or sorted(stops["symbol"]) == [
        "BTCUSDT_PERP", "ETHUSDT_PERP"]
    for _, row in stops.iterrows():
        sym = row["symbol"]
        entry = o[(o["symbol"] == sym) & (o["kind"] == "signal")]["price"].iloc[0]
        assert row["price"] == pytest.approx(entry * 0.95, rel=1e-12)  # the trigger: no slippage
        assert row["fee"] == pytest.approx(row["quantity"] * row["price"] * 0.0005, rel=1e-12)
        bars = load_ohlcv(BTC if sym.startswith("BTC") else ETH).loc["2021-05-01":"2021-07-31"]
        hit = bars.index[(bars["low"] <= row["price"] * (1 + 1e-12)).to_numpy()][0]  # the first bar reaching the level
        assert row["time"] == hit and bars.loc[hit, "open"] > row["price"]
    assert res.trades["pnl"].sum() == pytest.approx(s["final_equity"] - 10_000, abs=1e-6)  # the books
    assert (res.equity["position_BTCUSDT_PERP"].iloc[-1], res.equity["position_ETHUSDT_PERP"].iloc[-1]) == (0, 0)
    out = tmp_path / "cli"
    code = main(["run", "--data", str(BTC), "--data", str(ETH), "--margin", "usdm-cross-10x", "--strategy", "hold",
                 "--param", "exposure=3", "--start", "2021-05-01", "--end", "2021-07-31", "--stop-loss", "0.05",
                 "--out", str(out)])
    assert code == 0
    cli = backtest.Result.load(out)
    assert cli.summary["final_equity"] == s["final_equity"]
    assert cli.orders[["symbol", "kind", "quantity", "price"]].equals(o[["symbol", "kind", "quantity", "price"]])


def test_a_strategys_stop_levels_in_a_cross_perp_account_of_several_symbols():
    """A strategy's own stop-loss fraction is the run's --stop-loss for its
    symbol; a take-profit price per bar replaces the fraction's level."""
    kw = dict(margin="usdm-cross-10x", start="2021-05-01", end="2021-07-31")

    def own(bars):
        return {"target": np.full(len(bars), 3.0), "stop_loss": 0.05}

    flags = run_multi([BTC, ETH], "hold", params={"exposure": 3}, stop_loss=0.05, **kw)
    mine = run_multi([BTC, ETH], own, **kw)
    assert mine.summary["final_equity"] == flags.summary["final_equity"]
    assert mine.orders[["symbol", "kind", "price"]].equals(flags.orders[["symbol", "kind", "price"]])

    def priced(bars):  # take profit at 2 % above the first close, every bar
        return {"target": np.full(len(bars), 3.0), "take_profit": np.full(len(bars), bars["close"].iloc[0] * 1.02)}

    res = run_multi([BTC, ETH], priced, **kw)
    tp = res.orders[res.orders["kind"] == "take_profit"]
    assert len(tp) == 2 and res.summary["n_liquidations"] == 0
    for _, row in tp.iterrows():
        bars = load_ohlcv(BTC if row["symbol"].startswith("BTC") else ETH).loc["2021-05-01":]
        level = bars["close"].iloc[0] * 1.02
        assert row["price"] == pytest.approx(max(level, bars.loc[row["time"], "open"]), rel=1e-12)


def test_funding_for_a_spot_symbol_is_refused():
    b1, b2 = random_bars(31, 50), random_bars(32, 50)
    with pytest.raises(UserError, match="--funding BTCUSDT: BTCUSDT trades on spot margin"):
        run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, "hold", margin="BTCUSDT=cross-3x,ETHUSDT=usdm-isolated-10x",
                  funding={"BTCUSDT": _funding(b1.index, 1)})


def test_perp_limit_orders_in_several_symbols_balance_the_books():
    multi = run_multi([BTC, ETH], "dip_entry", margin="usdm-isolated-10x", allocation="BTCUSDT_PERP=0.6,ETHUSDT_PERP=0.4",
                      start="2023-01-01", end="2023-06-30")
    s = multi.summary
    assert (multi.orders["kind"] == "limit").sum() > 20
    assert s["interest_while_flat"] == 0 and s["fees_while_flat"] == 0  # funding is paid on positions only
    assert s["final_equity"] - 10_000 == pytest.approx(multi.trades["pnl"].sum(), abs=1e-6)
    assert multi.trades["funding"].sum() == pytest.approx(s["funding_paid"], rel=1e-9)
