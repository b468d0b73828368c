"""A custom profile's max borrow per asset in a cross account holding
several symbols (docs/model-choices.md "Max borrow in a cross account of
several symbols"): hand-computed numbers on flat prices (fee 0, rates 0).
The quote limit is the account's (every symbol's buys borrow from one
quote loan), each base limit its symbol's.  The reference model's random
comparison is ``test_differential_multi_maxborrow.py``."""
import numpy as np
import pandas as pd
import pytest

import backtest

IDX = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC", name="timestamp")
PRICES = {"BTCUSDT": 40_000.0, "ETHUSDT": 2_000.0}
LIMITS = """[profiles.x-capped]
base = "cross-3x"
[profiles.x-capped.max_borrow]
USDT = 4000
ETH = 3
"""


def run(tmp_path, btc, eth, **kw):
    (tmp_path / "p.toml").write_text(LIMITS)
    data = {s: pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": 1.0}, index=IDX)
            for s, p in PRICES.items()}
    targets = pd.DataFrame({"BTCUSDT": [btc] + [np.nan] * 3, "ETHUSDT": [eth] + [np.nan] * 3}, index=IDX)
    return backtest.run_multi(data, targets, margin="x-capped", margin_file=tmp_path / "p.toml", fee=0.0,
                              rates={"BTC": 0.0, "ETH": 0.0, "USDT": 0.0}, **kw)


def fills(res):
    return {o.symbol: (o.side, o.quantity, bool(o.capped)) for o in res.orders.itertuples()}


@pytest.mark.parametrize("auto_repay", [True, False])
def test_the_quote_limit_is_the_accounts(tmp_path, auto_repay):
    # BTC 2x wants 20,000 of BTC: 10,000 of cash and 10,000 borrowed; the account may owe 4,000 USDT, so it
    # buys (10,000 + 4,000) / 40,000 = 0.35 BTC.  ETH 0.5x then wants 2.5 ETH (5,000): no cash, no quote room
    # left (BTC's buy took it): capped to nothing, no fill
    res = run(tmp_path, 2.0, 0.5, auto_repay=auto_repay)
    assert fills(res) == {"BTCUSDT": ("buy", pytest.approx(0.35, rel=1e-12), True)}
    assert res.summary["n_capped"] == 2
    assert res.equity["debt"].iloc[-1] == pytest.approx(4_000.0, rel=1e-12)


def test_a_base_limit_caps_its_symbol_only(tmp_path):
    # ETH −1x wants to sell 5 borrowed ETH: its limit is 3 ETH (capped); BTC 1x buys 0.25 BTC with the cash,
    # borrowing nothing (the quote limit does not bind)
    res = run(tmp_path, 1.0, -1.0)
    f = fills(res)
    assert f["ETHUSDT"] == ("sell", pytest.approx(3.0, rel=1e-12), True)
    assert f["BTCUSDT"] == ("buy", pytest.approx(0.25, rel=1e-12), False)
    assert res.equity["position_ETHUSDT"].iloc[-1] == pytest.approx(-3.0, rel=1e-12)


def test_the_second_buy_takes_the_room_left(tmp_path):
    # BTC 1x: 0.25 BTC from the cash; ETH 1x wants 5 ETH (10,000): the whole 10,000 would be borrowed, the
    # account may owe 4,000: 2 ETH, capped, and exactly 4,000 owed (no float sliver above the limit)
    res = run(tmp_path, 1.0, 1.0, auto_repay=False)
    assert fills(res)["ETHUSDT"] == ("buy", pytest.approx(2.0, rel=1e-12), True)
    assert res.equity["debt"].iloc[-1] <= 4_000.0
    assert res.equity["debt"].iloc[-1] == pytest.approx(4_000.0, rel=1e-12)
