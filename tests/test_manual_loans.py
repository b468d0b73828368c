"""Manual loans through ``backtest.run`` (docs/model-choices.md "Manual
loans"): ``--no-auto-borrow`` and a strategy's ``borrow`` / ``repay``,
checked against closed forms on crafted bars; the books identity; bad input
as one line (``UserError``; exit 2 from the CLI).

Crafted account: cross-3x (initial ML 1.5), flat price 100 on hourly bars
on the hour, no fee or slippage, quote rate 0.0001 and base rate 0.0002 an
hour (daily 0.0024, 0.0048), each charge rounded up to 1e-8.
"""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest  # no importorskip: an engine that does not import fails this module, it does not skip
from backtest.cli import main
from backtest.errors import UserError
from backtest.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
T0 = pd.Timestamp("2024-01-01", tz="UTC")
RQ, RB = 0.0001, 0.0002  # hourly
SET = dict(margin="cross-3x", capital=10_000.0, fee=0.0, slippage=0.0, rates={"BTC": RB * 24, "USDT": RQ * 24},
           symbol="BTCUSDT")


def flat_bars(n=10, price=100.0):
    idx = pd.date_range(T0, periods=n, freq="1h", name="timestamp")
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1.0}, index=idx)


def per_bar(n, **at):
    a = np.full(n, np.nan)
    for i, v in at.items():
        a[int(i[1:])] = v
    return a


def strategy(target, borrow=None, repay=None):
    out = {"target": target}
    if borrow:
        out["borrow"] = borrow
    if repay:
        out["repay"] = repay
    return lambda _bars: out


def up(x):
    """A charge rounded up to 1e-8 (spec §4)."""
    return math.ceil(x * 1e8 - 1e-6) / 1e8


def test_a_quote_loan_taken_at_hh00_pays_its_borrow_charge_and_then_each_hour():
    n = 10
    b = flat_bars(n)
    s = strategy(np.full(n, np.nan), borrow={"USDT": per_bar(n, b0=5_000.0)}, repay={"USDT": per_bar(n, b4=np.inf)})
    r = backtest.run(b, s, **SET)
    c = up(5_000 * RQ)  # 0.5
    eq = r.equity["equity"].to_numpy()
    assert eq[0] == 10_000.0
    # bar 1 (01:00): the borrow charge only (the loan taken at HH:00 pays no boundary charge there);
    # one more hour at each later open
    assert eq[1:5].tolist() == pytest.approx([10_000.0 - c * k for k in range(1, 5)], abs=1e-9)
    # bar 5 (05:00): all that is owed (5,000 + 4 charges) repaid from the quote held; no charge at 05:00
    assert eq[5:].tolist() == pytest.approx([10_000.0 - 4 * c] * (n - 5), abs=1e-9)
    assert r.equity["debt"].iloc[5:].tolist() == [0.0] * (n - 5)
    t = r.loans
    assert list(t["reason"]) == ["borrow", "repay"] and list(t["asset"]) == ["USDT", "USDT"]
    assert list(t["time"]) == [T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=5)]
    assert t["amount"].tolist() == pytest.approx([5_000.0, 5_000.0 + 4 * c], abs=1e-9)
    assert t["requested"].tolist() == pytest.approx([5_000.0, 5_000.0 + 4 * c], abs=1e-9)  # +inf: what was owed
    assert not t["capped"].any()
    assert t["margin_level_after"].iloc[0] == pytest.approx(15_000.0 / (5_000.0 + c), rel=1e-12)
    assert math.isinf(t["margin_level_after"].iloc[1])
    s_ = r.summary
    assert s_["n_borrows"] == 1 and s_["n_repays"] == 1
    assert s_["interest_paid"] == pytest.approx(4 * c, abs=1e-9)
    assert "net_transfers" not in r.equity  # a loan is no transfer


def test_a_borrow_is_capped_where_the_margin_level_reaches_the_initial_level():
    n = 4
    r = backtest.run(flat_bars(n), strategy(np.full(n, np.nan), borrow={"USDT": per_bar(n, b0=1e9)}), **SET)
    row = r.loans.iloc[0]
    cap = 10_000.0 / (1.5 * (1 + RQ) - 1.0)  # (A − M0·D) / (M0·(1 + r) − 1), D = 0
    assert row["amount"] == pytest.approx(cap, rel=1e-12) and bool(row["capped"])
    assert row["margin_level_after"] == pytest.approx(1.5, rel=1e-8)  # (the charge's rounding up: below 1e-8)


def test_a_borrow_is_capped_by_the_profiles_max_borrow(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[profiles.capped]\nbase = "cross-3x"\n\n[profiles.capped.max_borrow]\nUSDT = 1234.5\n')
    n = 4
    r = backtest.run(flat_bars(n), strategy(np.full(n, np.nan), borrow={"USDT": per_bar(n, b0=5_000.0, b1=100.0)}),
                     **{**SET, "margin": "capped"}, margin_file=f)
    assert r.loans["amount"].tolist() == pytest.approx([1_234.5, 0.0], abs=1e-12)
    assert r.loans["capped"].tolist() == [True, True]
    assert r.summary["n_borrows"] == 1


def test_a_base_loan_is_valued_at_the_open_and_its_interest_is_a_small_short():
    n = 4
    r = backtest.run(flat_bars(n), strategy(np.full(n, np.nan), borrow={"BTC": per_bar(n, b0=10.0)}), **SET)
    cb = up(10 * RB)  # 0.002 BTC
    row = r.loans.iloc[0]
    assert row["asset"] == "BTC" and row["amount"] == 10.0 and row["price"] == 100.0
    assert row["margin_level_before"] == math.inf
    assert row["margin_level_after"] == pytest.approx(11_000.0 / ((10 + cb) * 100.0), rel=1e-12)
    assert r.equity["position"].iloc[1] == pytest.approx(-cb, abs=1e-15)
    assert r.equity["equity"].iloc[1] == pytest.approx(10_000.0 - cb * 100.0, abs=1e-9)


def test_without_auto_borrow_an_order_uses_only_what_is_held():
    n = 4
    tg = per_bar(n, b0=3.0)
    plain = backtest.run(flat_bars(n), tg, **SET)
    assert plain.orders["quantity"].iloc[0] == pytest.approx(300.0, rel=1e-3)  # ~3x (the cap counts an hour)
    held = backtest.run(flat_bars(n), tg, auto_borrow=False, **SET)
    o = held.orders.iloc[0]
    assert o["quantity"] == pytest.approx(100.0, rel=1e-12) and bool(o["capped"])  # hq / P
    assert held.equity["debt"].iloc[-1] == 0.0 and held.summary["n_capped"] == 1
    # a manual loan at the same open comes first (step 0c) and pays for it
    lent = backtest.run(flat_bars(n), strategy(per_bar(n, b0=2.5), borrow={"USDT": per_bar(n, b0=19_000.0)}),
                        auto_borrow=False, **SET)
    o = lent.orders.iloc[0]
    eq = 10_000.0 - up(19_000 * RQ)
    assert o["quantity"] == pytest.approx(2.5 * eq / 100.0, rel=1e-12) and not bool(o["capped"])


def test_a_short_on_a_manual_base_loan():
    n = 5
    s = strategy(per_bar(n, b0=-1.0), borrow={"BTC": per_bar(n, b0=150.0)})
    r = backtest.run(flat_bars(n), s, auto_borrow=False, **SET)
    o = r.orders.iloc[0]
    cb = up(150 * RB)
    eq = 10_000.0 - cb * 100.0
    assert o["side"] == "sell" and o["quantity"] == pytest.approx(eq / 100.0 - cb, rel=1e-12)  # (−cb held short)
    assert not bool(o["capped"])
    # a −2x target on the same loan: the sale is cut to the 150 BTC held (no auto-borrow)
    r2 = backtest.run(flat_bars(n), strategy(per_bar(n, b0=-2.0), borrow={"BTC": per_bar(n, b0=150.0)}),
                      auto_borrow=False, **SET)
    assert r2.orders["quantity"].iloc[0] == pytest.approx(150.0, rel=1e-12) and bool(r2.orders["capped"].iloc[0])


def test_nothing_is_done_for_nan_zero_or_the_last_bar():
    n = 4
    s = strategy(np.full(n, np.nan), borrow={"USDT": np.array([np.nan, 0.0, np.nan, 5_000.0])})
    r = backtest.run(flat_bars(n), s, **SET)
    assert len(r.loans) == 0 and r.summary["n_borrows"] == 0
    assert r.equity["equity"].tolist() == [10_000.0] * n


def test_a_repay_beyond_what_is_held_is_capped():
    n = 6
    # borrow 100 BTC, sell 50 of them (target −0.5: 50 BTC), then ask to repay all 100 BTC
    s = strategy(per_bar(n, b1=-0.5), borrow={"BTC": per_bar(n, b0=100.0)}, repay={"BTC": per_bar(n, b3=100.0)})
    r = backtest.run(flat_bars(n), s, auto_borrow=False, auto_repay=False, **SET)
    row = r.loans.iloc[1]
    held = r.orders  # one sale
    assert len(held) == 1
    sold = held["quantity"].iloc[0]
    assert row["reason"] == "repay" and bool(row["capped"])
    assert row["amount"] == pytest.approx(100.0 - sold, rel=1e-12)  # what was held of it


def test_books_add_up_with_manual_loans():
    """final equity − capital = Σ trades.pnl − what no trade carries (loans running while flat)."""
    b = pd.read_parquet(BTC).iloc[:600]
    n = len(b)
    rng = np.random.default_rng(7)
    tg = np.where(rng.random(n) < 0.05, rng.choice([-1.0, 0.0, 1.0, 2.0], n), np.nan)
    borrow = {"USDT": np.where(rng.random(n) < 0.03, 3_000.0, np.nan),
              "BTC": np.where(rng.random(n) < 0.03, 0.2, np.nan)}
    repay = {"USDT": np.where(rng.random(n) < 0.03, np.inf, np.nan), "BTC": np.where(rng.random(n) < 0.03, 0.1, np.nan)}
    for auto_repay in (True, False):
        r = backtest.run(b, strategy(tg, borrow, repay), margin="cross-3x", auto_borrow=False, auto_repay=auto_repay,
                         symbol="BTCUSDT")
        s = r.summary
        assert s["n_borrows"] > 5 and s["n_repays"] > 2 and s["n_trades"] > 5
        flat = (s.get("interest_while_flat") or 0.0) + (s.get("fees_while_flat") or 0.0)
        assert r.trades["pnl"].sum() - flat == pytest.approx(s["final_equity"] - 10_000.0, abs=1e-6)


def test_loans_csv_is_written_and_read_back(tmp_path):
    n = 6
    s = strategy(np.full(n, np.nan), borrow={"USDT": per_bar(n, b0=1_000.0)})
    r = backtest.run(flat_bars(n), s, **SET)
    r.save(tmp_path / "r")
    back = backtest.Result.load(tmp_path / "r")
    assert list(back.loans.columns) == ["time", "asset", "amount", "requested", "reason", "price",
                                        "margin_level_before", "margin_level_after", "capped"]
    assert back.loans["amount"].tolist() == [1_000.0]
    assert json.loads((tmp_path / "r" / "run.json").read_text())["settings"]["auto_borrow"] is True


@pytest.mark.parametrize("loans, message", [
    ({"borrow": {"ETH": [1.0] * 4}}, "the symbol's assets are BTC and USDT"),
    ({"borrow": {"USDT": [-1.0] * 4}}, "amounts must be finite and ≥ 0"),
    ({"borrow": {"USDT": [np.inf] * 4}}, "amounts must be finite and ≥ 0"),
    ({"repay": {"USDT": [-np.inf] * 4}}, r"amounts must be ≥ 0 or \+inf"),
    ({"borrow": {"USDT": [1.0] * 3}}, "one amount per bar"),
    ({"borrow": [1.0] * 4}, "must be a dict"),
    ({"repay": {"USDT": ["a"] * 4}}, "not numbers"),
])
def test_bad_loans_are_one_line(loans, message):
    n = 4
    with pytest.raises(UserError, match=message) as e:
        backtest.run(flat_bars(n), lambda _b: {"target": np.full(n, np.nan), **loans}, **SET)
    assert "\n" not in str(e.value)


def test_where_manual_loans_are_not_done_yet(tmp_path):
    n = 4
    lend = lambda _b: {"target": np.full(n, np.nan), "borrow": {"USDT": [1.0] * n}}  # noqa: E731
    with pytest.raises(UserError, match="perpetual futures account has no loans"):
        backtest.run(flat_bars(n), np.zeros(n), margin="usdm-cross-5x", auto_borrow=False, symbol="BTCUSDT",
                     funding_rate=0.0)
    with pytest.raises(UserError, match="--keep-ml 1.3: not combined with manual loans"):
        backtest.run(flat_bars(n), np.zeros(n), keep_ml=1.3, auto_borrow=False, **{k: v for k, v in SET.items()})
    with pytest.raises(UserError, match="not combined with stop_loss"):
        backtest.run(flat_bars(n), lend, stop_loss=0.1, **SET)
    with pytest.raises(UserError, match="manual loans are done in one symbol's run only"):
        sweep(flat_bars(n), lend, grid={}, margin="cross-3x", symbol="BTCUSDT", out=tmp_path / "s")


def test_the_cli_takes_no_auto_borrow_and_refuses_it_for_a_cross_account_of_several_symbols(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--data", str(BTC), "--strategy", "hold", "--param", "exposure=3", "--margin", "cross-3x",
                 "--start", "2020-03-01", "--end", "2020-03-05", "--no-auto-borrow", "--out", str(out)])
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["n_capped"] == 1 and s["n_liquidations"] == 0  # 1x of what is held: nothing to liquidate
    assert "manual loans      0 borrows, 0 repays (loans.csv)" in capsys.readouterr().out
    capsys.readouterr()
    code = main(["run", "--data", str(BTC), "--data", str(ROOT / "data" / "ETHUSDT-1h.parquet"),
                 "--no-auto-borrow"])  # (one cross account of both: isolated accounts take it, test_multi_moves)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--no-auto-borrow: the cross account holds" in err
