"""Auto-repay off with several symbols: ``backtest.run_multi(...,
auto_repay=False, repay_on_flat=...)`` against the plain-Python
``tests/reference_multi.py`` (MC "Auto-repay off", and "Several symbols",
"Auto-repay off in a cross account of several symbols").

The differential tests reuse ``test_differential_multi``'s scenarios (2–3
symbols on a common grid, random walks with jumps, gaps, holes, late
starts) with auto-repay off and ``repay_on_flat`` on or off:

- ``test_norepay_accounts_of_one_symbol_match_reference``: every account
  holds one symbol (isolated accounts, and beside them at most a cross
  account of one symbol): the one-symbol rules per account; stops on in some
  examples (no mark series then: an account of one symbol with stops and a
  mark is ``reference.simulate``'s), mark series in some others;
- ``test_norepay_cross_accounts_match_reference``: a cross account of 2–3
  symbols (alone, or beside an isolated account), no stops: the fills that
  keep what they receive, the cross borrow cap without repayment, repay on
  flat of one symbol, the netting before a cross liquidation; mark series
  for some symbols in some examples;
- ``test_norepay_cross_accounts_with_stops_match_reference``: the same with
  stop-loss, take-profit and trailing stop (the joint walk; a stop's exit
  is a market fill, so repay on flat applies to it), mark series in some.

Many examples use high leverage profiles and large jumps, so cross
liquidations (with their netting) happen.  Compared as
``test_differential_multi_stops.compare_stops`` does (per bar each account's
equity, debt, margin level, the run's interest paid and owed, each symbol's
position to 1e-9; the liquidations, margin calls and orders, triggers and
summary), and per bar each symbol's ``debt_base_<SYMBOL>`` (its base owed,
principal and interest, at the close) against the reference's
``debt_base``.

The hand-computed tests at the end (fee 0, rates 0 unless said) check the
reference's numbers and the engine's.

``MARGINBT_EXAMPLES`` sets the number of examples (default 300 here);
``MARGINBT_RANDOMIZE=1`` draws new ones.
"""
import math

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference_multi import simulate_multi
from test_differential import close_enough
from test_differential_multi import CROSS_PROFILES, ISOLATED_PROFILES, SETTINGS, SYMBOLS, scenarios
from test_differential_multi import run_both as multi_run_both
from test_differential_multi_stops import FRACTIONS, compare_stops

from backtest.multi import CROSS, run_multi
from hyp_examples import examples

EXAMPLES = examples(300)
# the leverage that makes liquidations likely, drawn more often
HIGH_CROSS = ["cross-5x", "cross-pro-10x", "cross-pro-20x"]
HIGH_ISOLATED = ["isolated-5x", "isolated-10x"]


def _risky(draw, sc):
    """Often a high leverage target and large jumps, so liquidations happen."""
    if draw(st.booleans()):
        sc["jump_p"] = draw(st.sampled_from([0.05, 0.15]))
        sc["jump_size"] = draw(st.sampled_from([0.2, 0.5]))
        sc["flip_p"] = draw(st.sampled_from([0.05, 0.2]))


def _stops(draw, sc, on):
    fr = [draw(st.sampled_from(FRACTIONS)) for _ in range(3)] if on else [0.0, 0.0, 0.0]
    if on and not any(fr):
        fr[draw(st.integers(0, 2))] = draw(st.sampled_from([f for f in FRACTIONS if f]))
    sc["stop_loss"], sc["take_profit"], sc["trailing_stop"] = fr
    sc["path"] = draw(st.sampled_from(["ohlc-heuristic", "pessimistic"]))


def _marks(draw, sc, allowed):
    """Mark series for some of the ``allowed`` symbols, in some examples."""
    if not any(allowed) or draw(st.sampled_from([True, True, False])):
        return
    sc["marked"] = [a and draw(st.sampled_from([False, True, True])) for a in allowed]
    if not any(sc["marked"]):
        sc["marked"][allowed.index(True)] = True
    sc["mark_noise"] = draw(st.sampled_from([0.0, 0.01, 0.03, 0.08]))
    sc["mark_holes"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.4]))


@st.composite
def one_symbol_scenarios(draw):
    """Every account holds one symbol: isolated accounts, and at most one
    symbol in the cross account."""
    sc = draw(scenarios())
    n_sym = sc["n_sym"]
    margins = [draw(st.sampled_from(ISOLATED_PROFILES + HIGH_ISOLATED)) for _ in range(n_sym)]
    if draw(st.booleans()):  # a cross account of one symbol beside them
        margins[draw(st.integers(0, n_sym - 1))] = draw(st.sampled_from(CROSS_PROFILES + HIGH_CROSS))
    sc["margins"] = margins
    sc["repay_on_flat"] = draw(st.booleans())
    _risky(draw, sc)
    stops = draw(st.sampled_from([False, False, True]))
    _stops(draw, sc, stops)
    if not stops:
        _marks(draw, sc, [True] * n_sym)
    return sc


@st.composite
def cross_scenarios(draw, stops=False):
    """A cross account of 2–3 symbols (for 3 symbols, sometimes one of them
    isolated beside a cross account of two)."""
    sc = draw(scenarios())
    n_sym = sc["n_sym"]
    cross_profile = draw(st.sampled_from(CROSS_PROFILES + HIGH_CROSS))
    margins = [cross_profile] * n_sym
    if n_sym == 3 and draw(st.sampled_from([False, False, True])):
        margins[draw(st.integers(0, 2))] = draw(st.sampled_from(ISOLATED_PROFILES + HIGH_ISOLATED))
    sc["margins"] = margins
    sc["repay_on_flat"] = draw(st.booleans())
    _risky(draw, sc)
    _stops(draw, sc, stops)
    cross = [not m.startswith("isolated") for m in margins]
    # an isolated account with stops and a mark is not modelled (reference.simulate's); its mark only without stops
    _marks(draw, sc, cross if stops else [True] * n_sym)
    if draw(st.sampled_from([False, False, True])):
        assets = [s[:-4] for s in SYMBOLS[:n_sym]] + ["USDT"]
        sc["rate_history"] = draw(st.sampled_from([("USDT",), (assets[0],), tuple(assets)]))
    return sc


def run_both(sc):
    """The reference and the engine on the scenario, auto-repay off."""
    stops = dict(stop_loss=sc["stop_loss"], take_profit=sc["take_profit"], trailing_stop=sc["trailing_stop"],
                 path=sc["path"])
    return multi_run_both(sc, auto_repay=False, repay_on_flat=sc["repay_on_flat"], **stops)


def compare_debt_base(ref, res, index, syms, sc):
    eq = res.equity
    for k, s in enumerate(syms):
        col = f"debt_base_{s}"
        assert col in eq.columns, f"no {col} in the engine's equity\nscenario={sc!r}"
        kv = eq[col].to_numpy()
        for i in range(len(index)):
            if not close_enough(ref["debt_base"][k][i], kv[i]):
                raise AssertionError(f"{col}: first difference at {i} ({index[i]}): reference "
                                     f"{ref['debt_base'][k][i]!r} kernel {float(kv[i])!r}\nscenario={sc!r}")


def check(sc, run=None):
    """``run`` (default this module's ``run_both``) on the scenario, compared;
    the base owed too when auto-repay is off (the scenario's, else off)."""
    ref, res, index, accts, syms = (run or run_both)(sc)
    compare_stops(ref, res, index, accts, syms, sc)
    if not sc.get("auto_repay", False):  # (with auto-repay on the engine has no debt_base_<SYMBOL> columns)
        compare_debt_base(ref, res, index, syms, sc)
    return ref, res


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=one_symbol_scenarios())
def test_norepay_accounts_of_one_symbol_match_reference(sc):
    check(sc)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=cross_scenarios())
def test_norepay_cross_accounts_match_reference(sc):
    check(sc)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(sc=cross_scenarios(stops=True))
# SOL short only by its base interest (no entry price) when a cross liquidation on the mark path buys part of it
# back at bar 17: its best starts at the fill before slippage (the mark at θ, inside the traded bar), not at the
# traded path's price at θ, so its trailing stop fires later on leg 1 (the reference used the path's price)
@example(sc={"n": 18, "seed": 0, "spacing": "1h", "start": 0, "missing": 0.0, "vol": 0.01, "jump_p": 0.0,
             "jump_size": 0.05, "gap_p": 0.0, "change_p": 0.3, "flip_p": 0.0, "n_sym": 3,
             "margins": ["cross-pro-20x"] * 3, "holes": [0.0] * 3, "late": [0, 0, 0], "weights": [1, 1, 1],
             "capital": 10000.0, "fee": 0.0, "slippage": 0.0, "rates": [0.0, 0.0, 0.0002, 0.0],
             "liquidation": "partial", "rebalance": 0.0, "round_interest": False, "stop_on_liquidation": False,
             "repay_on_flat": False, "stop_loss": 0.0, "take_profit": 0.0, "trailing_stop": 0.005,
             "path": "ohlc-heuristic", "marked": [False, False, True], "mark_noise": 0.01, "mark_holes": 0.0})
def test_norepay_cross_accounts_with_stops_match_reference(sc):
    check(sc)


# --------------------------------------------------------------- by hand
H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")
SYMS = ["BTCUSDT", "ETHUSDT"]


def flat(p):
    return (p, p, p, p)


def hand(btc, eth, targets, *, margin="cross-3x", auto_repay=False, repay_on_flat=False, quote_rate=0.0,
         stop_loss=0.0, capital=10_000.0, ref_kw=None, engine_margin=None):
    """BTC and ETH hourly from T0, fee 0, slippage 0, base rates 0, the quote
    at ``quote_rate`` a day (interest not rounded); one cross account of
    both, or (an isolated ``margin``) an isolated account each with half the
    capital.  ``ref_kw``: what only the reference takes (its max borrow
    table); ``engine_margin``: what the engine takes for ``margin`` (custom
    profiles).  Returns the reference's result and a function running the
    engine, comparing it with the reference (as the differential tests do)
    and returning its result."""
    n = len(btc)
    index = pd.DatetimeIndex([T0 + k * H for k in range(n)], name="timestamp")
    cols = [[[float(r[j]) for r in rows] for j in range(4)] for rows in (btc, eth)]
    iso = margin.startswith("isolated")
    accts = ([("BTCUSDT", margin, [0]), ("ETHUSDT", margin, [1])] if iso else [(CROSS, margin, [0, 1])])
    ref_accounts = ([(margin, [0], capital / 2), (margin, [1], capital / 2)] if iso else [(margin, [0, 1], capital)])
    ref = simulate_multi([int(t.timestamp()) for t in index], [cols[0][0], cols[1][0]], [cols[0][1], cols[1][1]],
                         [cols[0][2], cols[1][2]], [cols[0][3], cols[1][3]], [list(map(float, t)) for t in targets],
                         accounts=ref_accounts, fee=0.0, slippage=0.0, rates_base_daily=[0.0, 0.0],
                         rate_quote_daily=quote_rate, round_interest=False, stop_loss=stop_loss,
                         auto_repay=auto_repay, repay_on_flat=repay_on_flat, **(ref_kw or {}))

    def engine():
        data = {s: pd.DataFrame({c: cols[k][j] for j, c in enumerate(("open", "high", "low", "close"))},
                                index=index).assign(volume=1.0) for k, s in enumerate(SYMS)}
        tg = pd.DataFrame({s: targets[k] for k, s in enumerate(SYMS)}, index=index)
        res = run_multi(data, tg, margin=margin if engine_margin is None else engine_margin, capital=capital,
                        fee=0.0, slippage=0.0, rates={"BTC": 0.0, "ETH": 0.0, "USDT": quote_rate},
                        round_interest=False, stop_loss=stop_loss, auto_repay=auto_repay, repay_on_flat=repay_on_flat)
        sc = dict(hand=True, btc=btc, eth=eth, targets=targets, margin=margin, auto_repay=auto_repay,
                  repay_on_flat=repay_on_flat, **(ref_kw or {}))
        compare_stops(ref, res, index, accts, SYMS, sc)
        if not auto_repay:  # (with auto-repay on the engine has no debt_base_<SYMBOL> columns)
            compare_debt_base(ref, res, index, SYMS, sc)
        return res

    return ref, engine


def orders_of(ref):
    """(bar, symbol, side, kind, capped, quantity, price) of the reference's orders."""
    return [(o["bar"], SYMS[o["symbol"]], o["side"], o["kind"], o["capped"], o["quantity"], o["price"])
            for o in ref["orders"]]


def engine_orders(res):
    ko = res.orders
    return [(int((t - T0) / H), s, sd, k, bool(c), q, p) for t, s, sd, k, c, q, p in
            zip(ko["time"], ko["symbol"], ko["side"], ko["kind"], ko["capped"], ko["quantity"], ko["price"])]


def assert_orders(rows, expected):
    assert [r[:5] for r in rows] == [e[:5] for e in expected]
    for r, e in zip(rows, expected):
        assert r[5] == pytest.approx(e[5], rel=1e-12) and r[6] == pytest.approx(e[6], rel=1e-12), (r, e)


def engine_column(res, name):
    return res.equity[name].tolist()


def test_sale_proceeds_stay_held_and_the_no_repay_cap_counts_the_other_symbol():
    # cross-3x (M0 = 1.5), fee 0, rates 0.  Bar 1: 100 BTC at 100 with the cash, then ETH to 1x: equity
    # 10,000 buys 1,000 ETH at 10, all 10,000 borrowed (cap: W = 100·100 = 10,000, q* = 10,000 / (1.5·10 −
    # 10) = 2,000: not capped).  Bar 2: BTC at 110, to 0.5x: equity 11,000 + 10,000 − 10,000 = 11,000,
    # target 50 BTC: 50 sold at 110; the 5,500 stay held (auto-repay on would repay the loan: debt 4,500),
    # debt 10,000, ML (5,500 + 5,500 + 10,000) / 10,000 = 2.1.  Bar 3: ETH to 4x: target 4,400, δ = 3,400;
    # the cap without repayment, W = 50·110 = 5,500: q* = (5,500 + 1,000·10 + 1.5·5,500 − 1.5·10,000) /
    # (1.5·10 − 10) = 8,750 / 5 = 1,750 (> hq/P = 550): 1,750 ETH bought, capped; 5,500 paid from what is
    # held, 12,000 borrowed: debt 22,000, assets 5,500 + 27,500 = 33,000, ML 1.5 = M0, equity 11,000.
    btc = [flat(100.0), flat(100.0), flat(110.0), flat(110.0)]
    eth = [flat(10.0)] * 4
    targets = ([1.0, 0.5, 0.5, 0.5], [1.0, 1.0, 4.0, 4.0])
    ref, engine = hand(btc, eth, targets)
    expected = [(1, "BTCUSDT", "buy", "signal", False, 100.0, 100.0),
                (1, "ETHUSDT", "buy", "signal", False, 1_000.0, 10.0),
                (2, "BTCUSDT", "sell", "signal", False, 50.0, 110.0),
                (3, "ETHUSDT", "buy", "signal", True, 1_750.0, 10.0)]
    assert_orders(orders_of(ref), expected)
    assert ref["equity"][0] == pytest.approx([10_000.0, 10_000.0, 11_000.0, 11_000.0], rel=1e-12)
    assert ref["debt"][0] == pytest.approx([0.0, 10_000.0, 10_000.0, 22_000.0], rel=1e-12)
    assert ref["margin_level"][0][1:] == pytest.approx([2.0, 2.1, 1.5], rel=1e-12)
    assert ref["position"] == [pytest.approx([0.0, 100.0, 50.0, 50.0], rel=1e-12),
                               pytest.approx([0.0, 1_000.0, 1_000.0, 2_750.0], rel=1e-12)]
    assert ref["debt_base"] == [[0.0] * 4, [0.0] * 4]
    on, _ = hand(btc, eth, targets, auto_repay=True)  # auto-repay on: the 5,500 repay the quote loan
    assert on["debt"][0][2] == pytest.approx(4_500.0, rel=1e-12)
    res = engine()
    assert_orders(engine_orders(res), expected)
    assert engine_column(res, f"equity_{CROSS}") == pytest.approx(ref["equity"][0], rel=1e-12)
    assert engine_column(res, f"debt_{CROSS}") == pytest.approx(ref["debt"][0], rel=1e-12)


@pytest.mark.parametrize("repay_on_flat", [False, True])
def test_repay_on_flat_of_one_symbol_repays_the_shared_quote_loan(repay_on_flat):
    # cross-3x, the quote at 2.4 % a day (0.1 % an hour, not rounded).  Bar 1 (01:00): 100 BTC at 100 with
    # the cash, 1,000 ETH at 10 with 10,000 borrowed; its first hour 10 owed at once; the hour at this open
    # is on min(0, 10,000) = 0.  Equity 20,000 − 10,010 = 9,990.
    # Bar 2 (02:00): BTC at 110 sold to 0: 11,000 received.  Repay on flat: BTC flat, the account's 11,000
    # repay the interest 10, then the 10,000: 990 held, no debt, and no charge at 02:00 (the loan was
    # repaid at the open): equity 990 + 10,000 = 10,990.  Without: 11,000 held, the 02:00 hour charges
    # 10 more: debt 10,020, equity 21,000 − 10,020 = 10,980.
    # Bar 3: ETH sold to 0 at 10.  Repay on flat: nothing left to repay, 10,990 held.  Without: 21,000 held,
    # 10,000 still owed, 03:00 charges 10: interest 30, equity 10,970.
    btc = [flat(100.0), flat(100.0), flat(110.0), flat(110.0)]
    eth = [flat(10.0)] * 4
    targets = ([1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0])
    ref, engine = hand(btc, eth, targets, quote_rate=0.024, repay_on_flat=repay_on_flat)
    expected = [(1, "BTCUSDT", "buy", "signal", False, 100.0, 100.0),
                (1, "ETHUSDT", "buy", "signal", False, 1_000.0, 10.0),
                (2, "BTCUSDT", "sell", "signal", False, 100.0, 110.0),
                (3, "ETHUSDT", "sell", "signal", False, 1_000.0, 10.0)]
    assert_orders(orders_of(ref), expected)
    if repay_on_flat:
        equity, debt, paid = [10_000.0, 9_990.0, 10_990.0, 10_990.0], [0.0, 10_010.0, 0.0, 0.0], [0, 10, 10, 10]
    else:
        equity, debt, paid = ([10_000.0, 9_990.0, 10_980.0, 10_970.0], [0.0, 10_010.0, 10_020.0, 10_030.0],
                              [0, 10, 20, 30])
    assert ref["equity"][0] == pytest.approx(equity, rel=1e-12)
    assert ref["debt"][0] == pytest.approx(debt, rel=1e-12)
    assert ref["interest_paid"][0] == pytest.approx(paid, rel=1e-12)
    assert ref["margin_level"][0][2] == (math.inf if repay_on_flat else pytest.approx(21_000.0 / 10_020.0, rel=1e-12))
    res = engine()
    assert_orders(engine_orders(res), expected)
    assert engine_column(res, f"equity_{CROSS}") == pytest.approx(equity, rel=1e-12)
    assert engine_column(res, f"debt_{CROSS}") == pytest.approx(debt, rel=1e-12)


@pytest.mark.parametrize("repay", ["off", "off-flat", "auto"])
def test_netting_before_a_cross_liquidation(repay):
    # cross-3x (liquidation at 1.1, restores 1.5, fee 2 %).  Bar 1: 100 BTC at 100 with the cash, ETH to
    # 1.5x: 1,500 ETH at 10, 15,000 borrowed (cap 10,000 / 5 = 2,000).  Bar 2: BTC sold to 0 at 100: the
    # 10,000 stay held, 15,000 owed.  Bar 3: ETH opens at 4: assets 10,000 + 6,000 = 16,000, debt 15,000,
    # ML 1.0667 <= 1.1: a gap liquidation.  Recorded on the books before the netting: ML 16/15, equity
    # 1,000, fee 2 % of 16,000 = 320.  Netting: BTC is flat (its three numbers 0); the 10,000 held repay the
    # quote: 5,000 owed, nothing held.  Then on the netted books, L = 1,500·4 = 6,000, K = −5,000: λ1 =
    # (1.5·(5,000 + 320) − 6,000) / (6,000·0.5) = 0.66 (K + λ1·L − F = −1,360 <= 0): 990 ETH sold at 4,
    # 3,960 − 320 = 3,640 repay the quote: 1,360 owed, 510 ETH held: ML 2,040 / 1,360 = 1.5, equity 680.
    # With repay on flat (BTC's sale went flat) or auto-repay on, the 10,000 repaid the loan at bar 2: ML
    # at ETH 4 is 6,000 / 5,000 = 1.2, no liquidation.
    btc = [flat(100.0)] * 4
    eth = [flat(10.0), flat(10.0), flat(10.0), flat(4.0)]
    targets = ([1.0, 0.0, 0.0, 0.0], [1.5] * 4)
    ref, engine = hand(btc, eth, targets, auto_repay=repay == "auto", repay_on_flat=repay == "off-flat")
    orders = [(1, "BTCUSDT", "buy", "signal", False, 100.0, 100.0),
              (1, "ETHUSDT", "buy", "signal", False, 1_500.0, 10.0),
              (2, "BTCUSDT", "sell", "signal", False, 100.0, 100.0)]
    if repay == "off":
        expected = orders + [(3, "ETHUSDT", "sell", "liquidation", False, 990.0, 4.0)]
        assert_orders(orders_of(ref), expected)
        (e,) = ref["liquidations"]
        assert e["bar"] == 3 and e["gap"]
        assert e["margin_level"] == pytest.approx(16.0 / 15.0, rel=1e-12)
        assert e["fee"] == pytest.approx(320.0, rel=1e-12)
        assert e["equity_before"] == pytest.approx(1_000.0, rel=1e-12)
        assert e["equity_after"] == pytest.approx(680.0, rel=1e-12) and e["bad_debt"] == 0.0
        assert ref["equity"][0][3] == pytest.approx(680.0, rel=1e-12)
        assert ref["debt"][0][3] == pytest.approx(1_360.0, rel=1e-12)
        assert ref["margin_level"][0][3] == pytest.approx(1.5, rel=1e-12)
        assert ref["position"][1][3] == pytest.approx(510.0, rel=1e-12)
    else:
        expected = orders
        assert_orders(orders_of(ref), expected)
        assert not ref["liquidations"]
        assert ref["equity"][0][3] == pytest.approx(1_000.0, rel=1e-12)
        assert ref["margin_level"][0][3] == pytest.approx(1.2, rel=1e-12)
    res = engine()
    assert_orders(engine_orders(res), expected)
    assert res.summary["n_liquidations"] == (1 if repay == "off" else 0)
    if repay == "off":
        kl = res.liquidations.drop_duplicates("event")
        for col, v in (("margin_level", 16.0 / 15.0), ("fee", 320.0), ("equity_before", 1_000.0),
                       ("equity_after", 680.0)):
            assert float(kl[col].iloc[0]) == pytest.approx(v, rel=1e-12), col


@pytest.mark.parametrize("repay_on_flat", [False, True])
def test_stop_exit_repays_on_flat_in_a_cross_account(repay_on_flat):
    # cross-3x, 5 % stop-loss.  Bar 1: 100 BTC at 100 with the cash, 1,000 ETH at 10 borrowed (level 9.5).
    # Bar 2: ETH 10 → 9 → 10.2 → 10, BTC flat: leg 1 (no liquidation: f0 = 20,000 − 11,000 > −g = 1,000)
    # reaches 9.5 at θ = 0.5: 1,000 ETH sold at 9.5.  A stop's exit is a market fill: with repay on flat
    # ETH goes flat and the 9,500 repay the quote: 500 owed, ML 10,000 / 500 = 20; without, 9,500 held,
    # 10,000 owed, ML 19,500 / 10,000 = 1.95.  Equity 9,500 either way.
    btc = [flat(100.0)] * 3
    eth = [flat(10.0), flat(10.0), (10.0, 10.2, 9.0, 10.0)]
    ref, engine = hand(btc, eth, ([1.0] * 3, [1.0] * 3), stop_loss=0.05, repay_on_flat=repay_on_flat)
    expected = [(1, "BTCUSDT", "buy", "signal", False, 100.0, 100.0),
                (1, "ETHUSDT", "buy", "signal", False, 1_000.0, 10.0),
                (2, "ETHUSDT", "sell", "stop_loss", False, 1_000.0, 9.5)]
    assert_orders(orders_of(ref), expected)
    assert ref["orders"][-1]["trigger"] == 9.5
    assert ref["equity"][0][2] == pytest.approx(9_500.0, rel=1e-12)
    assert ref["debt"][0][2] == pytest.approx(500.0 if repay_on_flat else 10_000.0, rel=1e-12)
    assert ref["margin_level"][0][2] == pytest.approx(20.0 if repay_on_flat else 1.95, rel=1e-12)
    res = engine()
    assert_orders(engine_orders(res), expected)
    assert engine_column(res, f"debt_{CROSS}")[2] == pytest.approx(ref["debt"][0][2], rel=1e-12)


@pytest.mark.parametrize("repay_on_flat", [False, True])
def test_isolated_short_closed_keeps_its_base_loan(repay_on_flat):
    # Two isolated-3x accounts of 5,000 (ETH idle).  Bar 1: BTC to −1x: 50 BTC sold at 100, all borrowed
    # (cap without repayment 5,000 / (1.5·100 − 100) = 100): 10,000 held, 50 BTC owed.  Bar 2: BTC at 90, to
    # 0: 50 BTC bought for 4,500 from what is held: 5,500 held, 50 BTC held and 50 owed (the position is 0:
    # the flat rule).  Without repay on flat the loan runs on: debt_base 50, debt 4,500, ML 10,000 / 4,500;
    # bar 3 at 80: debt 4,000, ML 9,500 / 4,000 = 2.375, equity 5,500.  With it: held and owed cancel, no
    # debt, equity 5,500.
    btc = [flat(100.0), flat(100.0), flat(90.0), flat(80.0)]
    eth = [flat(10.0)] * 4
    ref, engine = hand(btc, eth, ([-1.0, 0.0, 0.0, 0.0], [0.0] * 4), margin="isolated-3x",
                       repay_on_flat=repay_on_flat)
    expected = [(1, "BTCUSDT", "sell", "signal", False, 50.0, 100.0),
                (2, "BTCUSDT", "buy", "signal", False, 50.0, 90.0)]
    assert_orders(orders_of(ref), expected)
    assert ref["equity"][0] == pytest.approx([5_000.0, 5_000.0, 5_500.0, 5_500.0], rel=1e-12)
    assert ref["position"][0] == pytest.approx([0.0, -50.0, 0.0, 0.0], rel=1e-12)
    if repay_on_flat:
        debt_base, debt = [0.0, 50.0, 0.0, 0.0], [0.0, 5_000.0, 0.0, 0.0]
    else:
        debt_base, debt = [0.0, 50.0, 50.0, 50.0], [0.0, 5_000.0, 4_500.0, 4_000.0]
        assert ref["margin_level"][0][3] == pytest.approx(2.375, rel=1e-12)
    assert ref["debt_base"][0] == pytest.approx(debt_base, rel=1e-12)
    assert ref["debt"][0] == pytest.approx(debt, rel=1e-12)
    assert ref["equity"][1] == [5_000.0] * 4 and ref["debt_base"][1] == [0.0] * 4
    res = engine()
    assert_orders(engine_orders(res), expected)
    assert engine_column(res, "debt_base_BTCUSDT") == pytest.approx(debt_base, rel=1e-12)
    assert engine_column(res, "equity_BTCUSDT") == pytest.approx([5_000.0, 5_000.0, 5_500.0, 5_500.0], rel=1e-12)
