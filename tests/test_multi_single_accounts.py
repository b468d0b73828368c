"""Several symbols, accounts of one symbol: an isolated account (or a cross
account holding one symbol) runs through the one-symbol kernel, so it takes
the one-symbol settings (stop-loss, take-profit, trailing stop, the path,
``--detail SYMBOL=FILE``, ``--bound``).  Each account must equal the
one-symbol run of its symbol with its share of the capital, bar for bar and
record for record; a cross account holding several symbols refuses finer
bars with one line naming the flag (its stops: tests/test_multi_stops.py)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.data import load_ohlcv
from backtest.multi import run_multi
from test_multi import T0, H, random_bars, random_targets

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
STOPS = {
    "stop_loss": dict(stop_loss=0.02),
    "take_profit": dict(take_profit=0.03),
    "trailing_stop": dict(trailing_stop=0.025),
    "pessimistic": dict(path="pessimistic", stop_loss=0.02, take_profit=0.03),
    "all": dict(stop_loss=0.03, take_profit=0.05, trailing_stop=0.02),
}


def assert_account_equals_run(multi, sym, one, index, account=None):
    """The account of ``sym`` (named ``account``, by default the symbol) in
    ``multi`` against the one-symbol run ``one`` on the symbol's bars
    ``index``: equity, position, debt, every order, trade and liquidation."""
    account = account or sym
    mine = multi.equity.loc[index]
    for col, name in (("equity", account), ("position", sym), ("debt", account)):
        assert (mine[f"{col}_{name}"].to_numpy() == one.equity[col].to_numpy()).all(), col
    orders = multi.orders[multi.orders["symbol"] == sym].reset_index(drop=True)
    for col in ("time", "side", "quantity", "price", "fee", "kind", "position", "interest"):
        assert orders[col].tolist() == one.orders[col].tolist(), col
    trades = multi.trades[multi.trades["symbol"] == sym].reset_index(drop=True)
    for col in ("entry_time", "exit_time", "exit_reason", "pnl", "interest", "fees"):
        assert trades[col].tolist() == one.trades[col].tolist(), col
    liqs = multi.liquidations[multi.liquidations["account"] == account].reset_index(drop=True)
    for col in ("time", "trigger_price", "fill_price", "quantity", "bad_debt"):
        assert liqs[col].tolist() == one.liquidations[col].tolist(), col


@pytest.mark.parametrize("name", list(STOPS))
def test_two_isolated_accounts_with_stops_equal_one_symbol_runs(name):
    b1 = random_bars(1, 400, drop=0.1)
    b2 = random_bars(2, 360, start=T0 + 40 * H, drop=0.2)
    t1, t2 = random_targets(3, b1.index), random_targets(4, b2.index)
    settings = dict(fee=0.001, slippage=0.0005, rebalance=0.2, **STOPS[name])
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, pd.DataFrame({"BTCUSDT": t1, "ETHUSDT": t2}),
                      margin="BTCUSDT=isolated-10x,ETHUSDT=isolated-3x", allocation="BTCUSDT=0.7,ETHUSDT=0.3",
                      capital=10_000.0, **settings)
    kinds = set(multi.orders["kind"])
    assert kinds & {"stop_loss", "take_profit", "trailing_stop"}, kinds  # the setting acted
    for sym, b, t, prof, cap in (("BTCUSDT", b1, t1, "isolated-10x", 7_000.0),
                                 ("ETHUSDT", b2, t2, "isolated-3x", 3_000.0)):
        one = backtest.run(b, t.to_numpy(), margin=prof, capital=cap, symbol=sym, **settings)
        assert_account_equals_run(multi, sym, one, b.index)
    assert multi.summary["ambiguous_bars"] == sum(
        backtest.run(b, t.to_numpy(), margin=p, capital=c, symbol=s, **settings).summary["ambiguous_bars"]
        for s, b, t, p, c in (("BTCUSDT", b1, t1, "isolated-10x", 7_000.0), ("ETHUSDT", b2, t2, "isolated-3x",
                                                                               3_000.0)))


def test_a_cross_account_of_one_symbol_takes_stops_too():
    b1, b2 = random_bars(5, 300), random_bars(6, 300, drop=0.1)
    t1, t2 = random_targets(7, b1.index), random_targets(8, b2.index)
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, pd.DataFrame({"BTCUSDT": t1, "ETHUSDT": t2}),
                      margin="BTCUSDT=isolated-10x,ETHUSDT=cross-5x", stop_loss=0.02, trailing_stop=0.03)
    one = backtest.run(b2, t2.to_numpy(), margin="cross-5x", capital=5_000.0, symbol="ETHUSDT", stop_loss=0.02,
                       trailing_stop=0.03)
    assert_account_equals_run(multi, "ETHUSDT", one, b2.index, account="cross")
    assert multi.summary["final_equity_cross"] == one.summary["final_equity"]


def hourly(symbol, start, end):
    return load_ohlcv(ROOT / "data" / f"{symbol}-1h.parquet", start, end)


def test_detail_per_symbol_for_isolated_accounts():
    start, end = "2025-06-02", "2025-06-05"  # the finer bars cover 06-02 … 06-08
    btc, eth = hourly("BTCUSDT", start, end), hourly("ETHUSDT", start, end)
    k = np.arange(len(btc))
    t = pd.Series(np.where(k % 4 == 0, 5.0 * (-1.0) ** (k // 4), np.nan), index=btc.index)
    fine = FIXTURES / "BTCUSDT-1m-2025-06-02.parquet"
    kw = dict(stop_loss=0.003, take_profit=0.004, fee=0.0005)
    multi = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, pd.DataFrame({"BTCUSDT": t, "ETHUSDT": t}),
                      margin="isolated-10x", detail={"BTCUSDT": fine}, **kw)
    one = backtest.run(btc, t.to_numpy(), margin="isolated-10x", capital=5_000.0, symbol="BTCUSDT", detail=fine, **kw)
    assert one.summary["detail_bars"] == len(btc)
    assert multi.summary["detail_bars_BTCUSDT"] == one.summary["detail_bars"]
    assert_account_equals_run(multi, "BTCUSDT", one, btc.index)
    plain = backtest.run(btc, t.to_numpy(), margin="isolated-10x", capital=5_000.0, symbol="BTCUSDT", **kw)
    # the finer bars settled the bar whose stop and take-profit were both in reach; ETH has none
    assert (plain.summary["ambiguous_bars"], one.summary["ambiguous_bars"]) == (1, 0)
    eth_one = backtest.run(eth, t.to_numpy(), margin="isolated-10x", capital=5_000.0, symbol="ETHUSDT", **kw)
    assert_account_equals_run(multi, "ETHUSDT", eth_one, eth.index)
    assert multi.summary["ambiguous_bars"] == eth_one.summary["ambiguous_bars"]


@pytest.mark.parametrize("setting, flag", [
    (dict(detail={"BTCUSDT": FIXTURES / "BTCUSDT-1m-2025-06-02.parquet"}), "detail"),
])
def test_a_cross_account_of_several_symbols_refuses_them(setting, flag):
    b1, b2 = random_bars(1, 50), random_bars(2, 50)
    setting = {"margin": "cross-3x", **setting}
    with pytest.raises(backtest.UserError, match=f"{flag}.*cross account holding several symbols") as err:
        run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, "hold", **setting)
    assert "\n" not in str(err.value)


def test_python_detail_forms():
    data = {"BTCUSDT": random_bars(1, 50), "ETHUSDT": random_bars(2, 50)}
    with pytest.raises(TypeError, match="detail=.*expected a dict"):
        run_multi(data, "hold", margin="isolated-3x", detail=FIXTURES / "BTCUSDT-1m-2025-06-02.parquet")
    with pytest.raises(backtest.UserError, match="XRPUSDT: not a symbol of this run"):
        run_multi(data, "hold", margin="isolated-3x", detail={"XRPUSDT": FIXTURES / "BTCUSDT-1m-2025-06-02.parquet"})


def test_cli_detail_and_bound_with_two_isolated_accounts(tmp_path, capsys):
    btc, eth = hourly("BTCUSDT", "2025-06-01", "2025-06-04"), hourly("ETHUSDT", "2025-06-01", "2025-06-04")
    paths = []
    for sym, b in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        paths += ["--data", str(tmp_path / f"{sym}-1h.parquet")]
        b.to_parquet(tmp_path / f"{sym}-1h.parquet")
    fine = str(FIXTURES / "BTCUSDT-1m-2025-06-02.parquet")
    args = ["run", *paths, "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8", "--param",
            "leverage=5", "--margin", "isolated-10x", "--stop-loss", "0.004", "--no-report"]
    assert main([*args, "--detail", f"BTCUSDT={fine}", "--bound", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "bound over the path inside a bar" in out and "pessimistic" in out
    assert (tmp_path / "a" / "trades.csv").exists()
    # a bare file names no symbol; a cross account of both refuses --detail for one of them
    assert main([*args, "--detail", fine, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--detail" in err and "SYMBOL=FILE" in err
    cross = [a if a != "isolated-10x" else "cross-3x" for a in args if a not in ("--stop-loss", "0.004")]
    assert main([*cross, "--detail", f"BTCUSDT={fine}", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--detail" in err and "several symbols" in err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_limit_orders_with_finer_bars_in_two_isolated_accounts_equal_one_symbol_runs():
    # refused until 2026-12-06: the standing order is one more level of each minute's walk (tests/test_detail.py)
    data = {s: hourly(s, "2025-06-16", "2025-06-22 23:00") for s in ("BTCUSDT", "ETHUSDT")}
    fine = {s: str(ROOT / "data" / f"{s}-1m-2025-06-16.parquet") for s in data}
    params = dict(window=4, offset=0.002, expiry=2, leverage=3.0)
    kw = dict(margin="isolated-3x", fee=0.001, take_profit=0.003)
    multi = run_multi(data, "dip_entry", params, detail=fine, **kw)
    kinds = set(multi.orders["kind"])
    assert {"limit", "stop_loss", "take_profit"} <= kinds and multi.summary["n_cancelled"] > 0, kinds
    differs = []
    for sym, b in data.items():
        assert multi.summary[f"detail_bars_{sym}"] == 168
        one = backtest.run(b, "dip_entry", params, capital=5_000.0, symbol=sym, detail=fine[sym], **kw)
        assert_account_equals_run(multi, sym, one, b.index)
        plain = backtest.run(b, "dip_entry", params, capital=5_000.0, symbol=sym, **kw)
        differs.append(plain.summary["final_equity"] != one.summary["final_equity"])
    assert any(differs)  # the minutes settled hours the path setting guessed otherwise
    assert multi.summary["detail_missing_bars"] == 0  # (a cross account of both: tests/test_multi_detail.py)


def test_path_changes_nothing_in_a_cross_account_of_several_symbols():
    """Its only event inside a bar is the liquidation at every symbol's
    adverse extreme at once: the path setting has nothing to order, so a
    pessimistic run equals the default one, liquidations included."""
    data = {"BTCUSDT": hourly("BTCUSDT", "2021-05-10", "2021-05-25"),
            "ETHUSDT": hourly("ETHUSDT", "2021-05-10", "2021-05-25")}
    kw = dict(margin="cross-5x", capital=10_000.0)
    heur = run_multi(data, "hold", {"exposure": 4.0}, **kw)
    pess = run_multi(data, "hold", {"exposure": 4.0}, path="pessimistic", **kw)
    assert heur.summary["n_liquidations"] > 0  # a crash inside the window: the joint path liquidated
    pd.testing.assert_frame_equal(pess.equity, heur.equity, check_exact=True)
    pd.testing.assert_frame_equal(pess.liquidations, heur.liquidations, check_exact=True)
    assert pess.summary == heur.summary
    assert pess.settings["path"] == "pessimistic" and heur.summary["ambiguous_bars"] == 0


def test_cli_bound_in_a_cross_account_of_several_symbols(tmp_path, capsys):
    """--bound runs both settings; in a cross account of several symbols its range is one point."""
    paths = []
    for sym in ("BTCUSDT", "ETHUSDT"):
        hourly(sym, "2021-05-10", "2021-05-25").to_parquet(tmp_path / f"{sym}-1h.parquet")
        paths += ["--data", str(tmp_path / f"{sym}-1h.parquet")]
    assert main(["run", *paths, "--strategy", "hold", "--param", "exposure=4", "--margin", "cross-5x", "--bound",
                 "--no-report", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "final equity" in ln and ("ohlc" in ln or "pessim" in ln or "range" in ln)]
    heur, pess, span = lines[-3:]
    assert heur.split("final equity")[1] == pess.split("final equity")[1]
    lo, hi = span.split("final equity")[1].split("liquidations")[0].split("…")
    assert lo.strip() == hi.strip()


@pytest.mark.parametrize("repay_on_flat", [False, True])
def test_auto_repay_off_in_isolated_accounts_equals_one_symbol_runs_and_balances(repay_on_flat):
    b1 = random_bars(11, 300, drop=0.1)
    b2 = random_bars(12, 280, start=T0 + 20 * H)
    t1, t2 = random_targets(13, b1.index), random_targets(14, b2.index)
    settings = dict(fee=0.001, slippage=0.0005, auto_repay=False, repay_on_flat=repay_on_flat, stop_loss=0.05)
    rates = {"BTC": 0.05, "ETH": 0.08, "USDT": 0.06}
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, pd.DataFrame({"BTCUSDT": t1, "ETHUSDT": t2}),
                      margin="BTCUSDT=isolated-10x,ETHUSDT=cross-3x", rates=rates, **settings)
    flat = 0.0
    for sym, b, t, prof, acct in (("BTCUSDT", b1, t1, "isolated-10x", "BTCUSDT"),
                                  ("ETHUSDT", b2, t2, "cross-3x", "cross")):
        mine = {a: r for a, r in rates.items() if a in (sym[:3], "USDT")}
        one = backtest.run(b, t.to_numpy(), margin=prof, capital=5_000.0, symbol=sym, rates=mine, **settings)
        assert_account_equals_run(multi, sym, one, b.index, account=acct)
        assert (multi.equity.loc[b.index, f"debt_base_{sym}"].to_numpy() == one.equity["debt_base"].to_numpy()).all()
        for col in ("interest_base", "interest_quote"):
            assert multi.trades.loc[multi.trades["symbol"] == sym, col].tolist() == one.trades[col].tolist(), col
        flat += one.summary["interest_while_flat"] + one.summary["fees_while_flat"]
    s = multi.summary
    assert s["interest_while_flat"] + s["fees_while_flat"] == pytest.approx(flat, abs=1e-7)
    assert multi.settings["auto_repay"] is False and multi.settings["repay_on_flat"] is repay_on_flat
    from test_books import assert_books_balance
    assert_books_balance(multi, 10_000.0)


def test_a_strategys_limit_orders_and_stops_go_to_accounts_of_one_symbol():
    b1, b2 = random_bars(31, 400, drop=0.1), random_bars(32, 380, start=T0 + 10 * H)
    params = dict(window=20, offset=0.01, expiry=4, leverage=3.0)
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, "dip_entry", params,
                      margin="BTCUSDT=isolated-10x,ETHUSDT=cross-5x", fee=0.001)
    kinds = set(multi.orders["kind"])
    assert {"limit", "stop_loss"} <= kinds, kinds  # the strategy's limit entries and its stop levels acted
    assert multi.summary["n_cancelled"] > 0
    for sym, b, prof, acct in (("BTCUSDT", b1, "isolated-10x", "BTCUSDT"), ("ETHUSDT", b2, "cross-5x", "cross")):
        one = backtest.run(b, "dip_entry", params, margin=prof, capital=5_000.0, symbol=sym, fee=0.001)
        assert_account_equals_run(multi, sym, one, b.index, account=acct)
    from test_books import assert_books_balance
    assert_books_balance(multi, 10_000.0)


def test_a_strategys_limit_orders_in_a_cross_account_of_several_symbols():
    # taken since 2026-12-06 (tests/test_multi_limits.py has their numbers); still refused with auto-repay off
    data = {"BTCUSDT": random_bars(31, 100), "ETHUSDT": random_bars(32, 100)}
    res = run_multi(data, "dip_entry", margin="cross-3x")
    assert (res.orders["kind"] == "limit").any() or res.summary.get("n_cancelled", 0) > 0
    with pytest.raises(backtest.UserError, match="not combined with a strategy's limit orders"):
        run_multi(data, "dip_entry", margin="isolated-3x", auto_repay=False)
    with pytest.raises(backtest.UserError, match="not combined with a strategy's limit orders"):
        run_multi(data, "dip_entry", margin="cross-3x", auto_repay=False)


CAPPED = """[profiles.iso-capped]
base = "isolated-5x"
[profiles.iso-capped.max_borrow]
BTC = 0.05
ETH = 1.0
USDT = 6000
"""


def test_max_borrow_in_accounts_of_one_symbol(tmp_path):
    """A profile's max borrow per asset (docs "Market order", **Max borrow
    per asset**) in two isolated accounts: each account is its one-symbol
    run, capped orders and all; a cross account holding several symbols
    takes it too (tests/test_multi_maxborrow.py has its numbers)."""
    (tmp_path / "p.toml").write_text(CAPPED)
    start, end = "2021-05-10", "2021-05-25"
    btc, eth = hourly("BTCUSDT", start, end), hourly("ETHUSDT", start, end)
    k = np.arange(len(btc))
    t = pd.Series(np.where(k % 24 == 0, 4.0 * (-1.0) ** (k // 24), np.nan), index=btc.index)
    kw = dict(margin_file=tmp_path / "p.toml", fee=0.001)
    multi = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, pd.DataFrame({"BTCUSDT": t, "ETHUSDT": t}),
                      margin="iso-capped", **kw)
    for sym, bars in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        one = backtest.run(bars, t.to_numpy(), margin="iso-capped", capital=5_000.0, symbol=sym, **kw)
        assert_account_equals_run(multi, sym, one, bars.index)
        assert one.orders["capped"].any()  # the limits bind
    free = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, pd.DataFrame({"BTCUSDT": t, "ETHUSDT": t}),
                     margin="isolated-5x", fee=0.001)
    assert free.summary["final_equity"] != multi.summary["final_equity"]
    cross = tmp_path / "c.toml"
    cross.write_text(CAPPED.replace("iso-capped", "x-capped").replace("isolated-5x", "cross-5x"))
    targets = pd.DataFrame({"BTCUSDT": t, "ETHUSDT": t})
    capped = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, targets, margin="x-capped", margin_file=cross, fee=0.001)
    uncapped = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, targets, margin="cross-5x", fee=0.001)
    assert capped.orders["capped"].all() and capped.summary["final_equity"] != uncapped.summary["final_equity"]
    # a short owes its base principal (at most the limit) plus the interest since
    for sym, limit in (("BTCUSDT", 0.05), ("ETHUSDT", 1.0)):
        assert limit <= -capped.equity[f"position_{sym}"].min() <= limit * 1.01
