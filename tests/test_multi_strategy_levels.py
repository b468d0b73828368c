"""A strategy's own stop levels in a cross account holding several symbols
(docs/model-choices.md "Stops on a joint path", "Levels from a
strategy"): its fractions replace the run's for its symbol, its prices per
bar are in force during the symbol's next own bar.  Real data; the rules
against the independent reference are in
tests/test_differential_multi_stops.py.
"""
import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.multi import run_multi
from test_books import assert_books_balance
from test_multi_single_accounts import hourly

CRASH = ("2021-05-10", "2021-05-25")  # BTC and ETH both fell ~40 % on May 19
KW = dict(margin="cross-5x", capital=10_000.0, slippage=0.001)


def pair(start, end):
    return {s: hourly(s, start, end) for s in ("BTCUSDT", "ETHUSDT")}


def holding(exposure, **per_symbol):
    """A hold strategy whose output for a symbol (told apart by its first
    close) adds ``per_symbol[SYMBOL](bars)``'s keys to the targets."""
    firsts = {}

    def strategy(bars):
        out = {"target": np.full(len(bars), exposure)}
        sym = firsts.get(float(bars["close"].iloc[0]))
        if sym in per_symbol:
            out.update(per_symbol[sym](bars))
        return out

    def bind(data):
        firsts.update({float(b["close"].iloc[0]): s for s, b in data.items()})
        return strategy

    return bind


def assert_same_run(a, b):
    for table in ("equity", "orders", "liquidations", "margin_calls", "trades"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table), check_exact=True)


def test_a_strategys_fractions_equal_the_runs_flags():
    """Every symbol's strategy giving the 5 % stop-loss and 4 % trailing stop
    is the run with --stop-loss 0.05 --trailing-stop 0.04, bit for bit."""
    data = pair(*CRASH)
    levels = lambda bars: {"stop_loss": 0.05, "trailing_stop": 0.04}  # noqa: E731
    own = run_multi(data, holding(2.0, BTCUSDT=levels, ETHUSDT=levels)(data), **KW)
    flags = run_multi(data, "hold", {"exposure": 2.0}, stop_loss=0.05, trailing_stop=0.04, **KW)
    assert set(flags.orders["kind"]) >= {"stop_loss"} or set(flags.orders["kind"]) >= {"trailing_stop"}
    assert_same_run(own, flags)


def test_a_fraction_for_one_symbol_stops_that_symbol_only():
    """A 5 % stop-loss from BTC's strategy alone: BTC is sold at entry·0.95
    (or the open below it), ETH is held through the crash."""
    data = pair(*CRASH)
    res = run_multi(data, holding(2.0, BTCUSDT=lambda bars: {"stop_loss": 0.05})(data), **KW)
    o = res.orders
    stops = o[o["kind"] == "stop_loss"]
    assert list(stops["symbol"]) == ["BTCUSDT"]
    entry = o[(o["kind"] == "signal") & (o["symbol"] == "BTCUSDT")]["price"].iloc[0]
    bar = data["BTCUSDT"].loc[stops["time"].iloc[0]]
    assert stops["price"].iloc[0] == pytest.approx(min(entry * 0.95, bar["open"]) * (1 - 0.001), rel=1e-12)
    assert res.equity["position_ETHUSDT"].iloc[-1] > 0.0 and res.equity["position_BTCUSDT"].iloc[-1] == 0.0
    assert_books_balance(res, 10_000.0)


def test_prices_out_of_reach_change_nothing():
    """Stop-loss and take-profit prices every bar far beyond the range: the
    walk runs and fires nothing, so the run is the run without stops, its
    liquidations (a 4x hold in the crash) included."""
    data = pair(*CRASH)
    far = lambda bars: {"stop_loss": np.full(len(bars), 1.0), "take_profit": np.full(len(bars), 1e9)}  # noqa: E731
    plain = run_multi(data, "hold", {"exposure": 4.0}, **KW)
    priced = run_multi(data, holding(4.0, BTCUSDT=far, ETHUSDT=far)(data), **KW)
    assert plain.summary["n_liquidations"] > 0
    assert_same_run(priced, plain)


def test_a_price_is_in_force_during_the_next_bar_only():
    """ETH's strategy gives, at one bar j, a stop-loss price the low of bar
    j + 1 goes below: it fires there at that price (or the open when the
    bar opens below it); the same price given at bar j − 1 instead is over
    before bar j + 1, and the bar j it covers does not reach it: no stop."""
    data = pair("2021-05-01", "2021-05-08")
    eth = data["ETHUSDT"]
    j = 100
    price = float(eth["low"].iloc[j + 1]) * 1.001  # reached in bar j + 1 (its low is below)
    assert eth["low"].iloc[j] > price and eth["open"].iloc[j + 1] > price  # not before, not at the open

    def at(k):
        def levels(bars):
            arr = np.full(len(bars), np.nan)
            arr[k] = price
            return {"stop_loss": arr}
        return levels

    res = run_multi(data, holding(1.5, ETHUSDT=at(j))(data), **KW)
    stops = res.orders[res.orders["kind"] == "stop_loss"]
    assert list(stops["symbol"]) == ["ETHUSDT"]
    assert stops["time"].iloc[0] == eth.index[j + 1]
    assert stops["price"].iloc[0] == pytest.approx(price * (1 - 0.001), rel=1e-12)
    early = run_multi(data, holding(1.5, ETHUSDT=at(j - 1))(data), **KW)
    assert (early.orders["kind"] != "stop_loss").all()
    assert_same_run(early, run_multi(data, "hold", {"exposure": 1.5}, **KW))


def test_a_price_waits_for_the_symbols_next_own_bar():
    """ETH lacks the grid bars after bar j: the price it gave at bar j is in
    force at its next own bar, whatever BTC's bars in between."""
    data = pair("2021-05-01", "2021-05-08")
    eth = data["ETHUSDT"]
    j = 100
    nxt = j + 6  # ETH's next own bar once bars j+1 .. j+5 are dropped
    price = float(eth["low"].iloc[nxt]) * 1.001
    assert eth["open"].iloc[nxt] > price
    data["ETHUSDT"] = eth.drop(eth.index[j + 1:nxt])

    def levels(bars):
        arr = np.full(len(bars), np.nan)
        arr[j] = price
        return {"stop_loss": arr}

    res = run_multi(data, holding(1.5, ETHUSDT=levels)(data), **KW)
    stops = res.orders[res.orders["kind"] == "stop_loss"]
    assert list(stops["time"]) == [eth.index[nxt]]
    assert stops["price"].iloc[0] == pytest.approx(price * (1 - 0.001), rel=1e-12)


def test_refusals_are_one_line(tmp_path):
    """A strategy's manual loans in a cross account of several symbols are
    refused with one line (its stop levels and limit orders are taken)."""
    data = pair("2021-05-01", "2021-05-03")
    loans = holding(1.0, BTCUSDT=lambda bars: {"borrow": {"USDT": np.full(len(bars), 0.0)}})(data)
    with pytest.raises(backtest.UserError, match="its manual loans .borrow / repay. .BTCUSDT. are not supported yet") \
            as e:
        run_multi(data, loans, **KW)
    assert "\n" not in str(e.value)


def test_cli_takes_a_strategy_file_with_levels(tmp_path, capsys):
    """A strategy file returning a stop-loss price per bar runs on two
    symbols in one cross account from the command line; its stops fire."""
    path = tmp_path / "stop_below.py"
    path.write_text(
        "import numpy as np\n"
        "PARAMS = {}\n"
        "def targets(bars):\n"
        "    close = bars['close'].to_numpy()\n"
        "    return {'target': np.full(len(bars), 2.0), 'stop_loss': close * 0.97}\n")
    d = "data/"
    out = tmp_path / "run"
    code = main(["run", "--data", d + "BTCUSDT-1h.parquet", "--data", d + "ETHUSDT-1h.parquet", "--strategy",
                 str(path), "--margin", "cross-5x", "--start", CRASH[0], "--end", CRASH[1], "--out", str(out),
                 "--no-report"])
    assert code == 0, capsys.readouterr().err
    orders = pd.read_csv(out / "orders.csv")
    assert {"BTCUSDT", "ETHUSDT"} <= set(orders.loc[orders["kind"] == "stop_loss", "symbol"])
