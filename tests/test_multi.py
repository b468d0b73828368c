"""Several symbols: hand-computed cross vs isolated liquidations, isolated
accounts equal to one-symbol runs, bar alignment, and the CLI's bad inputs."""
import json

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.multi import run_multi

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")
NO_COSTS = dict(fee=0.0, slippage=0.0, rates={"BTC": 0.0, "ETH": 0.0, "USDT": 0.0})


def bars(rows, start=T0):
    idx = pd.DatetimeIndex([start + k * H for k in range(len(rows))], name="timestamp")
    return pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx).assign(volume=1.0)


def flat(p):
    return (p, p, p, p)


# BTC never moves; ETH crashes from 2,000 to a low of 600 in bar 2.
BTC = bars([flat(20_000.0)] * 4)
ETH = bars([flat(2_000.0), flat(2_000.0), (2_000.0, 2_000.0, 600.0, 700.0), flat(700.0)])
# long BTC 1x and ETH 1.5x of equity, decided at bar 0's close, bought at bar 1's open
TARGETS = pd.DataFrame({"BTCUSDT": [1.0] * 4, "ETHUSDT": [1.5] * 4}, index=BTC.index)


def test_eth_crash_in_a_cross_account_liquidates_btc_with_it():
    res = run_multi({"BTCUSDT": BTC, "ETHUSDT": ETH}, TARGETS, margin="cross-3x", capital=10_000.0, **NO_COSTS)
    # bar 1: BTC first: 10,000 buys 0.5 BTC at 20,000 (own quote); then ETH: equity
    # 10,000 × 1.5 = 15,000 buys 7.5 ETH at 2,000, all borrowed. Assets 25,000,
    # debt 15,000: ML 1.667 (≥ 1.5, not capped).
    orders = res.orders
    assert list(orders["kind"][:2]) == ["signal", "signal"] and not orders["capped"][:2].any()
    assert orders["quantity"][:2].tolist() == pytest.approx([0.5, 7.5], rel=1e-12)
    # bar 2, joint path (BTC's range is 0): f0 = 0.5·20,000 + 7.5·2,000 − 1.1·15,000
    # = 8,500, g = 7.5·(600 − 2,000) = −10,500: θ = 8,500 / 10,500, ETH trigger
    # 2,000 − θ·1,400 = 866.67 (= 2,600/3), where A = 10,000 + 6,500 = 16,500
    # = 1.1 × 15,000.  Fee 2 % × 16,500 = 330.  Partial: λ = (1.5·(15,000 + 330)
    # − 16,500) / (16,500 × 0.5) = 6,495 / 8,250 of every position is sold.
    liq = res.liquidations
    assert len(liq) == 2 and liq["event"].nunique() == 1  # one event, two symbols sold
    assert set(liq["symbol"]) == {"BTCUSDT", "ETHUSDT"} and (liq["side"] == "sell").all()
    lam = 6_495.0 / 8_250.0
    btc, eth = liq.set_index("symbol").loc["BTCUSDT"], liq.set_index("symbol").loc["ETHUSDT"]
    assert btc["trigger_price"] == 20_000.0 and btc["quantity"] == pytest.approx(0.5 * lam, rel=1e-12)
    assert eth["trigger_price"] == pytest.approx(2_600.0 / 3.0, rel=1e-12)
    assert eth["quantity"] == pytest.approx(7.5 * lam, rel=1e-12)
    assert btc["fee"] == pytest.approx(330.0, rel=1e-12) and btc["margin_level"] == pytest.approx(1.1, rel=1e-12)
    assert btc["theta"] == pytest.approx(8_500.0 / 10_500.0, rel=1e-12)
    # after: 12,990 raised − 330 fee repays 12,660 of 15,000: debt 2,340 against
    # 0.5(1−λ)·20,000 + 7.5(1−λ)·866.67 = 3,510: ML 1.5, equity 1,170
    assert btc["equity_after"] == pytest.approx(1_170.0, rel=1e-9)
    eq = res.equity.iloc[2]
    assert eq["debt_cross"] == pytest.approx(2_340.0, rel=1e-9)
    assert eq["position_BTCUSDT"] == pytest.approx(0.5 * (1 - lam), rel=1e-9)
    assert res.summary["n_liquidations"] == 1 and res.summary["n_liquidations_cross"] == 1


def test_the_same_bars_in_isolated_accounts_liquidate_only_eth():
    res = run_multi({"BTCUSDT": BTC, "ETHUSDT": ETH}, TARGETS, margin="isolated-3x", capital=10_000.0, **NO_COSTS)
    # 5,000 each: BTC 1x buys 0.25 BTC with its own quote (no debt, never
    # liquidated); ETH 1.5x buys 3.75 ETH with 2,500 borrowed.  ETH's own
    # liquidation price (ML 1.18): 1.18 × 2,500 / 3.75 = 786.67 ≥ the low 600:
    # at 786.67, A = 2,950, fee 59, partial sale to ML 1.5:
    # s = (1.5·(2,500 + 59) − 2,950) / (786.67 × 0.5) = 888.5 / 393.33 ETH.
    # (The low, 600, is below the next liquidation price too: a second partial
    # liquidation follows in the same bar, as with one symbol.)
    liq = res.liquidations
    assert len(liq) == 2 and (liq["account"] == "ETHUSDT").all() and (liq["symbol"] == "ETHUSDT").all()
    p = 1.18 * 2_500.0 / 3.75
    assert liq["trigger_price"].iloc[0] == pytest.approx(p, rel=1e-12)
    assert liq["fee"].iloc[0] == pytest.approx(59.0, rel=1e-12)
    assert liq["quantity"].iloc[0] == pytest.approx((1.5 * 2_559.0 - 2_950.0) / (p * 0.5), rel=1e-12)
    assert (res.equity["position_BTCUSDT"].iloc[1:] == 0.25).all()  # untouched
    assert res.equity["equity_BTCUSDT"].iloc[-1] == pytest.approx(5_000.0, rel=1e-12)
    assert res.summary["n_liquidations_BTCUSDT"] == 0 and res.summary["n_liquidations_ETHUSDT"] == 2


def random_bars(seed, n, start=T0, drop=0.0):
    rng = np.random.default_rng(seed)
    c = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    o = np.concatenate(([100.0], c[:-1])) * np.exp(rng.normal(0, 0.01, n))
    h = np.maximum(o, c) * np.exp(np.abs(rng.normal(0, 0.02, n)))
    lo = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0, 0.02, n)))
    df = bars(list(zip(o, h, lo, c)), start)
    keep = rng.random(n) >= drop
    keep[0] = True
    return df[keep]


def random_targets(seed, index):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(len(index)) < 0.15, rng.choice([4.0, 2.0, -3.0, 0.0, 9.0], len(index)), np.nan)
    return pd.Series(x, index=index)


@pytest.mark.parametrize("liquidation", ["partial", "full"])
def test_isolated_accounts_equal_one_symbol_runs(liquidation):
    # ETH starts 40 hours later and lacks some bars; every account must be
    # exactly the one-symbol kernel's run on its own bars and capital
    b1 = random_bars(1, 400, drop=0.1)
    b2 = random_bars(2, 360, start=T0 + 40 * H, drop=0.2)
    t1, t2 = random_targets(3, b1.index), random_targets(4, b2.index)
    settings = dict(fee=0.001, slippage=0.0005, rates={"BTC": 0.01, "ETH": 0.02, "USDT": 0.03},
                    liquidation=liquidation, rebalance=0.2)
    multi = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, pd.DataFrame({"BTCUSDT": t1, "ETHUSDT": t2}),
                      margin="BTCUSDT=isolated-10x,ETHUSDT=isolated-3x", allocation="BTCUSDT=0.7,ETHUSDT=0.3",
                      capital=10_000.0, **settings)
    assert multi.summary["n_liquidations"] > 0
    for sym, b, t, prof, cap in (("BTCUSDT", b1, t1, "isolated-10x", 7_000.0),
                                 ("ETHUSDT", b2, t2, "isolated-3x", 3_000.0)):
        rates = {k: v for k, v in settings["rates"].items() if k in (sym[:3], "USDT")}
        one = backtest.run(b, t.to_numpy(), margin=prof, capital=cap, symbol=sym,
                           **dict(settings, rates=rates))
        mine = multi.equity.loc[b.index]
        assert (mine[f"equity_{sym}"].to_numpy() == one.equity["equity"].to_numpy()).all()
        assert (mine[f"position_{sym}"].to_numpy() == one.equity["position"].to_numpy()).all()
        assert (mine[f"debt_{sym}"].to_numpy() == one.equity["debt"].to_numpy()).all()
        orders = multi.orders[multi.orders["symbol"] == sym].reset_index(drop=True)
        assert orders["quantity"].tolist() == one.orders["quantity"].tolist()
        assert orders["kind"].tolist() == one.orders["kind"].tolist()
        liqs = multi.liquidations[multi.liquidations["account"] == sym].reset_index(drop=True)
        assert liqs["fill_price"].tolist() == one.liquidations["fill_price"].tolist()
        assert multi.summary[f"final_equity_{sym}"] == one.summary["final_equity"]
        trades = multi.trades[multi.trades["symbol"] == sym].reset_index(drop=True)
        assert trades["pnl"].to_numpy() == pytest.approx(one.trades["pnl"].to_numpy(), rel=1e-12, abs=1e-9)


def test_a_symbol_that_starts_later_waits_and_gaps_are_counted():
    b1 = bars([flat(100.0)] * 6)
    b2 = bars([flat(50.0), flat(50.0), flat(60.0)], start=T0 + 2 * H).drop(T0 + 3 * H)  # bars at 2 and 4 only
    # ETH's target is set at bar 0 (before its first bar): it waits for its first bar (2)
    tg = pd.DataFrame({"BTCUSDT": [np.nan] * 6, "ETHUSDT": [1.0] + [np.nan] * 5}, index=b1.index)
    res = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, tg, margin="cross-3x", capital=1_000.0, **NO_COSTS)
    o = res.orders
    assert len(o) == 1 and o["symbol"][0] == "ETHUSDT" and o["time"][0] == T0 + 2 * H
    assert o["quantity"][0] == pytest.approx(1_000.0 / 50.0)
    # between ETH's bars its last close values the account (no price is made up for trading)
    assert res.equity["equity"].tolist() == pytest.approx([1_000.0, 1_000.0, 1_000.0, 1_000.0, 1_200.0, 1_200.0])
    assert res.summary["missing_bars_ETHUSDT"] == 1 and res.summary["missing_bars_BTCUSDT"] == 0
    assert res.summary["first_bar_ETHUSDT"] == str(T0 + 2 * H)


def test_pair_trade_runs_and_saves(tmp_path):
    b1, b2 = random_bars(5, 600), random_bars(6, 600)
    res = run_multi({"BTCUSDT": b1, "ETHUSDT": b2}, "pair_trade", {"lookback": 24, "band": 0.0, "leverage": 1.5},
                    margin="cross-3x")
    assert res.summary["n_trades"] > 0 and set(res.trades["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    # the long and the short flip together: the targets are ±leverage, never both long
    pos = res.equity[["position_BTCUSDT", "position_ETHUSDT"]].to_numpy()
    assert not ((pos[:, 0] > 0) & (pos[:, 1] > 0)).any()
    res.save(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"interest_paid_BTC", "interest_paid_ETH", "interest_paid_USDT", "fees_paid", "n_liquidations"} <= set(summary)


@pytest.fixture
def two_files(tmp_path):
    paths = []
    for sym, seed in (("BTCUSDT", 1), ("ETHUSDT", 2)):
        df = random_bars(seed, 300).reset_index()
        path = tmp_path / f"{sym}-1h.parquet"
        df.to_parquet(path, index=False)
        paths.append(str(path))
    return paths


def test_cli_runs_two_symbols_and_writes_the_report(two_files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--data", two_files[0], "--data", two_files[1], "--margin", "cross-3x",
                 "--strategy", "pair_trade", "--param", "lookback=24", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "liquidations" in text and "interest paid" in text and "fees paid" in text
    for name in ("summary.json", "equity.parquet", "trades.csv", "orders.csv", "liquidations.csv", "report.pdf",
                 "equity.png"):
        assert (out / name).exists(), name
    (out / "report.pdf").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.pdf").exists()  # a saved multi result redraws


@pytest.mark.parametrize("argv, message", [
    (["bench", "--symbols", "0"], "--symbols 0: between 2 and 50"),
    (["bench", "--symbols", "0", "--sweep"], "--symbols 0: between 2 and 50"),
    (["bench", "--symbols", "2", "--sweep"], "--symbols: not combined with --sweep"),
    (["bench", "--real"], "--real: only with --sweep"),
    (["bench", "--sweep", "--real", "--repeat", "3"], "--repeat 3: at least 5 runs make a median"),
    (["bench", "--first-run", "--symbols", "3"], "--first-run: alone, or with --symbols 2"),
    (["bench", "--first-run", "--sweep"], "--first-run: alone, or with --symbols 2"),
    (["sweep", "--data", "a.parquet", "--data", "b.parquet"], "--data: a sweep takes one file"),
])
def test_cli_bad_bench_and_sweep_flags(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra, message", [
    (["--allocation", "BTCUSDT=0.5,ETHUSDT=0.6"], "--allocation: fractions sum to 1.1, not 1"),
    (["--allocation", "BTCUSDT=0.5,XRPUSDT=0.5"], "--allocation XRPUSDT: not an account"),
    (["--allocation", "BTCUSDT=0.5,BTCUSDT=0.5"], "--allocation BTCUSDT: given twice"),
    (["--allocation", "BTCUSDT=1"], "--allocation: no fraction for ETHUSDT"),
    (["--allocation", "BTCUSDT=x,ETHUSDT=0.5"], "--allocation BTCUSDT=x: expected a fraction"),
    (["--allocation", "BTCUSDT"], "--allocation BTCUSDT: expected ACCOUNT=FRACTION"),
    (["--margin", "XRPUSDT=isolated-3x,cross-3x"], "--margin XRPUSDT: not a symbol of this run"),
    (["--margin", "BTCUSDT=isolated-3x,cross-3x", "--allocation", "BTCUSDT=0.5,ETHUSDT=0.5"],
     "--allocation ETHUSDT: not an account of this run (cross, BTCUSDT) (it trades in the cross account"),
    (["--margin", "BTCUSDT=isolated-3x"], "no profile for ETHUSDT"),
    (["--margin", "BTCUSDT=cross-3x,ETHUSDT=cross-5x"], "cross symbols share one account"),
    (["--margin", "BTCUSDT=isolated-7x,ETHUSDT=cross-3x"], "unknown profile 'isolated-7x'"),
    (["--symbol", "BTCUSDT"], "--symbol: not with several symbols"),
    (["--margin", "cross-3x", "--repay-on-flat"], "--repay-on-flat: only with --no-auto-repay"),
    (["--rate", "SOL=0.001"], "--rate SOL: this run trades"),
])
def test_cli_bad_multi_inputs(two_files, tmp_path, capsys, extra, message):
    margin = [] if "--margin" in extra else ["--margin", "isolated-3x"]
    extra = [a.replace("MARK", str(two_files[0])) for a in extra]
    code = main(["run", "--data", two_files[0], "--data", two_files[1], *margin, *extra, "--out",
                 str(tmp_path / "o"), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_duplicate_symbol_and_mismatched_quote(two_files, tmp_path, capsys):
    copy = tmp_path / "again" / "BTCUSDT-1h.parquet"
    copy.parent.mkdir()
    copy.write_bytes(open(two_files[0], "rb").read())
    assert main(["run", "--data", two_files[0], "--data", str(copy), "--no-report"]) == 2
    assert "BTCUSDT given twice" in capsys.readouterr().err
    assert main(["run", "--data", two_files[0], "--data", two_files[0], "--no-report"]) == 2
    assert "given twice" in capsys.readouterr().err
    other = tmp_path / "ETHBTC-1h.parquet"
    other.write_bytes(open(two_files[1], "rb").read())
    assert main(["run", "--data", two_files[0], "--data", str(other), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "quoted in BTC, the others in USDT" in err and len(err.strip().splitlines()) == 1
    assert main(["run", "--data", two_files[0], "--allocation", "BTCUSDT=1", "--no-report"]) == 2
    assert "--allocation: only with several symbols" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", "--data", str(empty), "--no-report"]) == 2
    assert "a folder without .parquet files" in capsys.readouterr().err


def test_cli_data_folder_is_every_parquet_in_it(two_files, tmp_path, capsys):
    folder = str(two_files[0]).rsplit("/", 1)[0]
    code = main(["run", "--data", folder, "--margin", "isolated-5x", "--strategy", "hold", "--out",
                 str(tmp_path / "o"), "--no-report"])
    assert code == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["settings"]["symbol"] == "BTCUSDT,ETHUSDT"
    assert set(run["settings"]["accounts"]) == {"BTCUSDT", "ETHUSDT"}


def test_rules_joint_theta_and_cut_reduce_to_the_one_symbol_formulas():
    from backtest.rules import cross_cut, joint_theta, partial_buy_short, partial_sell_long

    # spec E3: 1 BTC bought at 30,000 with 20,000 USDT borrowed; low 20,000:
    # f0 = 1·30,000 − 1.1·20,000 = 8,000, g = 1·(20,000 − 30,000): θ = 0.8,
    # the price 30,000 − 0.8·10,000 = 22,000 (spec E3's liquidation price)
    theta = joint_theta(30_000.0 - 1.1 * 20_000.0, -10_000.0)
    assert theta == pytest.approx(0.8, rel=1e-15) and 30_000.0 - theta * 10_000.0 == pytest.approx(22_000.0)
    assert joint_theta(8_000.0, -7_999.0) == -1.0  # the bar stops short of the level
    assert joint_theta(-5.0, -10.0) == 0.0  # already beyond it at the open
    # spec E16: the cut of a lone long is the one-symbol sale, 0.787273 of 1 BTC
    lam = cross_cut(22_000.0, 0.0, 0.0, 0.0, -20_000.0, 440.0, 1.5)
    assert lam == pytest.approx(partial_sell_long(1.0, 0.0, 20_000.0, 440.0, 22_000.0, 1.5), rel=1e-12)
    assert lam == pytest.approx(8_660.0 / 11_000.0, rel=1e-12)
    # a lone short: 2 BTC owed at 10,000, 30,000 USDT held, fee 600
    lam = cross_cut(0.0, 20_000.0, 0.0, 0.0, 30_000.0, 600.0, 1.5)
    assert lam * 2.0 == pytest.approx(partial_buy_short(2.0, 30_000.0, 600.0, 10_000.0, 1.5), rel=1e-12)
    assert cross_cut(10.0, 0.0, 0.0, 0.0, -1e6, 0.0, 1.5) == 1.0  # cannot be restored: everything


def test_report_marks_one_cross_event_once_and_each_symbols_fill():
    from backtest.report import plot_equity
    from backtest.report.common import prepare
    from backtest.report.pages import margin_figure

    res = run_multi({"BTCUSDT": BTC, "ETHUSDT": ETH}, TARGETS, margin="cross-3x", capital=10_000.0, **NO_COSTS)
    fig = plot_equity(res)
    (marks,) = [a for ax in fig.axes for a in ax.get_lines() if a.get_gid() == "liquidations"]
    assert len(marks.get_xdata()) == 1  # one event, though it sold two symbols
    fills = [a for ax in margin_figure(prepare(res)).axes for a in ax.get_lines()
             if a.get_gid() == "liquidations-price"]
    # each symbol's fill on its own line, relative to its first close: BTC 1.0, ETH 866.67 / 2,000
    assert sorted(float(f.get_ydata()[0]) for f in fills) == pytest.approx([2_600.0 / 3.0 / 2_000.0, 1.0])


@pytest.mark.parametrize("margin", ["cross-3x", "isolated-3x"])
def test_a_gap_liquidation_comes_before_the_pending_orders_which_then_execute(margin):
    # ETH gaps from 2,000 to 780 at bar 3's open, after its target turned 0 at
    # bar 2's close: the liquidation comes first, then ETH's order sells what is
    # left at the same open (issue 11 item 5); BTC has no new target and keeps
    # what the liquidation left it
    eth = bars([flat(2_000.0)] * 3 + [flat(780.0)] * 2)
    btc = bars([flat(20_000.0)] * 5)
    targets = pd.DataFrame({"BTCUSDT": [1.0] * 5, "ETHUSDT": [1.5, 1.5, 0.0, 0.0, 0.0]}, index=btc.index)
    res = run_multi({"BTCUSDT": btc, "ETHUSDT": eth}, targets, margin=margin, capital=10_000.0, **NO_COSTS)
    orders = res.orders
    at3 = orders[orders["time"] == btc.index[3]]
    assert (at3["kind"].iloc[:-1] == "liquidation").all() and len(at3) >= 2
    last = at3.iloc[-1]
    assert (last["kind"], last["symbol"], last["side"], last["price"]) == ("signal", "ETHUSDT", "sell", 780.0)
    assert res.equity["position_ETHUSDT"].iloc[3] == 0.0
    assert res.liquidations["gap"].all()
    assert (orders["kind"] == "signal").sum() == 3  # nothing else follows


@pytest.mark.parametrize("venue", ["margin", "usdm"])
def test_bench_compares_the_cross_account_with_each_symbol_alone_on_the_same_work(venue):
    """``bench --symbols N``'s comparison runs the one-symbol kernel on each
    symbol's own bars and targets, with the cross account's settings."""
    from backtest.bench import _alone_args, multi_args

    args = multi_args(500, 2, venue, stops=True)
    alone = _alone_args(args, venue, stops=True)
    assert len(alone) == 2
    for k, (a, extra) in enumerate(alone):
        seconds, o, h, lo, c, target, config = a
        np.testing.assert_array_equal(seconds, args[0])
        for mine, theirs in zip((o, h, lo, c, target), (args[1], args[2], args[3], args[4], args[5])):
            np.testing.assert_array_equal(mine, theirs[k])
        cfg = config[0]
        assert (cfg.fee, cfg.slippage, cfg.stop_loss, cfg.take_profit) == (
            args[6]["fee"], args[6]["slippage"], args[6]["stop_loss"], args[6]["take_profit"])
        assert ("venue" in extra) == (venue == "usdm") and extra["per_bar"] is False


def test_a_short_written_off_without_a_bar_ends_its_trade_in_the_count_too():
    """A cross liquidation with bad debt writes off the base owed by a symbol that has no bar there (no fill: the
    trades table ends its short with a ghost record). The kernel's count ends it too, so the symbol's next short
    is a new trade (found by review: 3 counted for the table's 4)."""
    idx = pd.date_range("2024-01-01", periods=12, freq="1h", tz="UTC", name="timestamp")

    def frame(prices, hole=None):
        df = pd.DataFrame({k: prices for k in ("open", "high", "low", "close")}, index=idx, dtype=float)
        df["volume"] = 1.0
        return df if hole is None else df.drop(df.index[hole])

    data = {"BTCUSDT": frame([100.0] * 6 + [1000.0] * 6),  # a 10x jump at bar 6's open
            "ETHUSDT": frame([100.0] * 12, hole=6), "SOLUSDT": frame([100.0] * 12, hole=6)}
    targets = pd.DataFrame(np.nan, index=idx, columns=list(data))
    targets.iloc[0] = [-1.5, -0.5, 0.6]
    targets.iloc[9, 1] = -0.3  # ETH shorts again after the event
    for repay in (True, False):
        res = run_multi(data, targets, margin="cross-3x", auto_repay=repay, fee=0.001)
        assert res.summary["bad_debt"] > 0 and list(res.trades["exit_reason"][:2]) == ["liquidation"] * 2
        assert res.summary["n_trades"] == len(res.trades) == 4


def test_a_write_into_the_equity_table_leaves_the_trades_walked_later_as_they_were():
    """run_multi's tables are built when first read; the trades, walked
    then, read the positions and closes the equity table shows, so that
    table holds copies: a caller writing into it first (closes zeroed,
    positions flipped) gets the same trades as one who never did."""
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "data"
    files = {s: data / f"{s}-1h.parquet" for s in ("BTCUSDT", "ETHUSDT")}
    kw = dict(margin="cross-3x", start="2024-01-01", end="2024-03-01", params={"leverage": 2.0})
    untouched = run_multi(files, "sma_cross", **kw).trades
    res = run_multi(files, "sma_cross", **kw)
    eq = res.equity
    for sym in files:
        eq.loc[:, f"close_{sym}"] = 0.0
        eq.loc[:, f"position_{sym}"] = -eq[f"position_{sym}"]
    assert len(untouched) > 10 and res.trades.equals(untouched)


def test_the_return_sums_are_the_array_arithmetic_to_the_bit():
    """``multi._return_sums`` (in place, two buffers) against the summary's sums written as array arithmetic,
    as ``run_multi`` made them before: the same bits, on equity that falls to zero, turns negative, has
    signed zeros, a NaN, or whole numbers; from a capital of 0, −0 or its first bar's equity."""
    from backtest.multi import _return_sums

    def arrays(equity, capital):
        prev = np.concatenate(([capital], equity[:-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(prev > 0, equity / np.where(prev > 0, prev, 1.0) - 1.0, 0.0)
            peak = np.maximum.accumulate(np.concatenate(([capital], equity)))[1:]
            dd = np.where(peak > 0, equity / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
        return {"sum_r": r.sum(), "sum_r2": (r * r).sum(), "sum_neg2": (np.minimum(r, 0.0) ** 2).sum(),
                "max_drawdown": min(dd.min(), 0.0)}

    rng = np.random.default_rng(5)
    kinds = set()
    for i in range(400):
        n = int(rng.integers(1, 5000))
        equity = 10_000 * np.exp(np.cumsum(rng.normal(0, rng.choice([1e-4, 1e-2, 0.2]), n)))
        kind = i % 6
        if kind == 1:
            equity[int(rng.integers(0, n)):] = 0.0
        elif kind == 2:
            equity[int(rng.integers(0, n)):] *= -1
        elif kind == 3:
            equity[rng.integers(0, n, 3)] = -0.0
        elif kind == 4:
            equity[int(rng.integers(0, n))] = np.nan
        elif kind == 5:
            equity = np.round(equity, 0)
        capital = float(rng.choice([10_000.0, 0.0, -0.0, equity[0]]))
        got, want = _return_sums(equity, capital), arrays(equity, capital)
        assert set(got) == set(want)
        for key, value in want.items():
            assert np.float64(got[key]).tobytes() == np.float64(value).tobytes(), (i, key, got[key], value)
        kinds.add(kind)
    assert kinds == set(range(6))


def test_several_symbols_targets_that_are_not_numbers_are_refused():
    """(review, helper-74) A strategy's table of targets for several symbols was converted before its check:
    strings parsed, complex numbers lost their imaginary part."""
    from backtest.errors import UserError

    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "data"
    data = {s: backtest.load_ohlcv(root / f"{s}-1h.parquet", start="2021-01-01", end="2021-01-10")
            for s in ("BTCUSDT", "ETHUSDT")}
    index = data["BTCUSDT"].index
    for bad in ("1.0", 1 + 1j):
        targets = pd.DataFrame({"BTCUSDT": [bad] * len(index), "ETHUSDT": 0.5}, index=index)
        with pytest.raises(UserError, match="not numbers"):
            run_multi(data, targets)
    good = pd.DataFrame({"BTCUSDT": 1.0, "ETHUSDT": 0.5}, index=index)
    assert run_multi(data, good).summary["n_orders"] >= 2
