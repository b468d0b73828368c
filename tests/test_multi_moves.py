"""The trader's moves in several-symbol runs (issue 14 item 1–2;
docs/model-choices.md "Transfers and a reserve"): each account holding one
symbol takes its own scheduled transfers (``SYMBOL@DATE=AMOUNT``), reserve
(``SYMBOL=AMOUNT``), top-up rule and buffer, and runs exactly as the
one-symbol run with the same money; the run's summary adds them up and
takes its returns on every account's equity and reserve; the books
balance; a cross account of several symbols refuses them (one line)."""
import json
from pathlib import Path

import pytest

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from backtest.cli import main
from backtest.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BTC, ETH = ROOT / "data" / "BTCUSDT-1h.parquet", ROOT / "data" / "ETHUSDT-1h.parquet"
MARCH = dict(start="2020-03-01", end="2020-03-20")
MOVES = dict(transfers=["BTCUSDT@2020-03-05=2000", "ETHUSDT@2020-03-10 06:00=-500"],
             reserve={"BTCUSDT": 5_000.0, "ETHUSDT": 3_000.0}, top_up="ml=1.5")
ONE = {"BTCUSDT": (BTC, ["2020-03-05=2000"], 5_000.0), "ETHUSDT": (ETH, ["2020-03-10 06:00=-500"], 3_000.0)}


@pytest.mark.parametrize("margin, keep", [("isolated-3x", None), ("isolated-5x", 1.2), ("usdm-isolated-5x", None)])
def test_each_account_runs_as_its_one_symbol_run(margin, keep):
    data = [BTC, ETH] if not margin.startswith("usdm") else [ROOT / "data" / "BTCUSDT_PERP-1h.parquet",
                                                             ROOT / "data" / "ETHUSDT_PERP-1h.parquet"]
    kw = dict(MARCH) if not margin.startswith("usdm") else dict(start="2021-05-15", end="2021-05-25")
    moves = dict(MOVES, keep_ml=keep)
    names = ("BTCUSDT", "ETHUSDT")
    if margin.startswith("usdm"):  # (the perp files' symbols)
        names = ("BTCUSDT_PERP", "ETHUSDT_PERP")
        moves.update(transfers=["BTCUSDT_PERP@2021-05-17=2000", "ETHUSDT_PERP@2021-05-18 06:00=-500"],
                     reserve={"BTCUSDT_PERP": 5_000.0, "ETHUSDT_PERP": 3_000.0})
    r = backtest.run_multi(data, "hold", {"exposure": 3.0}, margin=margin, capital=20_000.0, **moves, **kw)
    s = r.summary
    profit = 0.0
    for k, sym in enumerate(names):
        _, tr, res = ONE[sym.replace("_PERP", "")]
        if margin.startswith("usdm"):
            tr = [moves["transfers"][k].split("@")[1]]
        one = backtest.run(data[k], "hold", {"exposure": 3.0}, margin=margin, capital=10_000.0, transfers=tr,
                           reserve=res, top_up="ml=1.5", keep_ml=keep, **kw)
        o = one.summary
        assert s[f"final_equity_{sym}"] == pytest.approx(o["final_equity"], rel=1e-12)
        assert s[f"n_top_ups_{sym}"] == o["n_top_ups"] and s[f"reserve_left_{sym}"] == pytest.approx(
            o["reserve_left"], abs=1e-9)
        mine = r.transfers[r.transfers["account"] == sym].drop(columns="account").reset_index(drop=True)
        theirs = one.transfers.drop(columns="account").reset_index(drop=True)
        assert len(mine) == len(theirs)
        for col in ("amount", "requested", "price", "margin_level_before", "margin_level_after", "reserve_after"):
            assert mine[col].tolist() == pytest.approx(theirs[col].tolist(), rel=1e-12), col
        assert list(mine["time"]) == list(theirs["time"]) and list(mine["reason"]) == list(theirs["reason"])
        profit += o["profit"]
    assert s["n_top_ups"] == sum(s[f"n_top_ups_{x}"] for x in names)
    assert s["reserve"] == 8_000.0 and s["profit"] == pytest.approx(profit, abs=1e-6)
    assert s["profit"] == pytest.approx(s["final_equity"] + s["reserve_left"] - 20_000.0 - 8_000.0
                                        - s["net_transfers"], abs=1e-9)
    flat = s["interest_while_flat"] + s["fees_while_flat"]
    assert r.trades["pnl"].sum() - flat == pytest.approx(s["profit"], abs=1e-6)  # the books
    eq = r.equity
    assert eq["reserve"].iloc[-1] == pytest.approx(s["reserve_left"], abs=1e-9)
    assert eq["net_transfers"].iloc[-1] == pytest.approx(s["net_transfers"], abs=1e-9)


def test_the_cli_writes_every_accounts_moves(tmp_path):
    out = tmp_path / "r"
    code = main(["run", "--data", str(BTC), "--data", str(ETH), "--strategy", "hold", "--param", "exposure=3",
                 "--margin", "isolated-3x", "--capital", "20000", "--start", "2020-03-01", "--end", "2020-03-20",
                 "--transfer", "BTCUSDT@2020-03-05=2000", "--reserve", "BTCUSDT=5000", "--reserve", "ETHUSDT=3000",
                 "--top-up", "ml=1.5", "--out", str(out)])
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["n_top_ups"] == 3 and s["net_transfers"] == 2_000.0
    assert (out / "transfers.csv").read_text().count("top-up") == 3
    assert json.loads((out / "run.json").read_text())["settings"]["reserve"] == ["BTCUSDT=5000", "ETHUSDT=3000"]


@pytest.mark.parametrize("argv, words", [
    (["--margin", "cross-3x", "--transfer", "BTCUSDT@2020-03-05=2000"], "the cross account holds BTCUSDT, ETHUSDT"),
    (["--margin", "cross-3x", "--keep-ml", "1.3"], "moves in a cross account of several symbols"),
    (["--margin", "isolated-3x", "--transfer", "2020-03-05=2000"], "name the account's symbol, SYMBOL@DATE=AMOUNT"),
    (["--margin", "isolated-3x", "--reserve", "5000"], "each account keeps its own reserve, SYMBOL=AMOUNT"),
    (["--margin", "isolated-3x", "--reserve", "SOLUSDT=5"], "SOLUSDT is not one of the run's symbols"),
    (["--margin", "isolated-3x", "--top-up", "ml=1.5"], "--top-up: needs --reserve SYMBOL=AMOUNT"),
    (["--margin", "isolated-3x", "--transfer", "BTCUSDT@2030-01-01=5"], "outside the data"),
    (["--margin", "isolated-3x", "--reserve", "BTCUSDT=x"], "--reserve BTCUSDT=x: 'x' is not a number"),
    (["--margin", "cross-3x", "--no-auto-borrow"], "--no-auto-borrow: the cross account holds"),
])
def test_bad_moves_with_several_symbols_are_one_line(argv, words, capsys, tmp_path):
    code = main(["run", "--data", str(BTC), "--data", str(ETH), "--strategy", "hold", "--start", "2020-03-01",
                 "--end", "2020-03-20", "--out", str(tmp_path / "r"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and "\n" not in err, err
    assert not (tmp_path / "r").exists()


def test_python_refuses_a_bare_reserve_with_several_symbols():
    with pytest.raises(UserError, match="each account keeps its own reserve"):
        backtest.run_multi([BTC, ETH], "hold", margin="isolated-3x", reserve=5_000.0, **MARCH)


def _lending(bars):
    """3x long, a manual quote loan at the second bar, all of it repaid 100 bars later (per symbol)."""
    import numpy as np

    n = len(bars)
    t = np.full(n, np.nan)
    t[2], t[150] = 2.0, 0.0
    b, r = np.full(n, np.nan), np.full(n, np.nan)
    b[1], r[151] = 12_000.0, np.inf
    return {"target": t, "borrow": {"USDT": b}, "repay": {"USDT": r}}


@pytest.mark.parametrize("auto_repay", [True, False])
def test_manual_loans_in_accounts_of_one_symbol_run_as_their_one_symbol_runs(auto_repay, tmp_path):
    r = backtest.run_multi([BTC, ETH], _lending, margin="isolated-3x", capital=20_000.0, auto_borrow=False,
                           auto_repay=auto_repay, **MARCH)
    s = r.summary
    for k, (sym, path) in enumerate((("BTCUSDT", BTC), ("ETHUSDT", ETH))):
        one = backtest.run(path, _lending, margin="isolated-3x", capital=10_000.0, auto_borrow=False,
                           auto_repay=auto_repay, **MARCH)
        assert s[f"final_equity_{sym}"] == pytest.approx(one.summary["final_equity"], rel=1e-12)
        mine = r.loans[r.loans["account"] == sym].drop(columns="account").reset_index(drop=True)
        assert mine["amount"].tolist() == pytest.approx(one.loans["amount"].tolist(), rel=1e-12)
        assert list(mine["reason"]) == list(one.loans["reason"]) and list(mine["time"]) == list(one.loans["time"])
    assert s["n_borrows"] == 2 and "net_transfers" not in r.equity
    flat = s["interest_while_flat"] + s["fees_while_flat"]
    assert r.trades["pnl"].sum() - flat == pytest.approx(s["final_equity"] - 20_000.0, abs=1e-6)  # the books
    r.save(tmp_path / "r")
    assert (tmp_path / "r" / "loans.csv").read_text().startswith("account,time,asset")


def test_manual_loans_are_refused_for_a_cross_account_of_several_symbols():
    with pytest.raises(UserError, match="manual loans .* not supported yet for a cross account"):
        backtest.run_multi([BTC, ETH], _lending, margin="cross-3x", **MARCH)
    with pytest.raises(UserError, match="auto_borrow=False: the cross account holds"):
        backtest.run_multi([BTC, ETH], "hold", margin="cross-3x", auto_borrow=False, **MARCH)


def test_a_symbols_reserve_given_twice_is_one_line():
    with pytest.raises(UserError, match="BTCUSDT's reserve is given twice"):
        backtest.run_multi([BTC, ETH], "hold", margin="isolated-3x", reserve=["BTCUSDT=1000", "BTCUSDT=2000"],
                           **MARCH)
