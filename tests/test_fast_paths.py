"""The shortcuts run() takes agree with what they stand for."""
import numpy as np

from backtest.data.bars import PRICES, make_bars
from backtest.data.times import NAT
from backtest.data.clean import clean
from backtest.data.validate import rule_masks
from backtest.medians import spacing_median


def test_clean_is_no_rule_broken():
    rng = np.random.default_rng(3)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 2.0, 3.0])
    for _ in range(3000):
        n = int(rng.integers(1, 6))
        cols = [np.where(rng.random(n) < 0.2, rng.choice(specials, n), rng.choice([1.0, 2.0, 3.0], n))
                for _ in range(5)]
        ts = np.cumsum(rng.choice([0, 1, 1, 1, -1], n)).astype(np.int64)
        ts[rng.random(n) < 0.05] = NAT
        b = make_bars(ts, *cols)
        broken = any(mask.any() for _, _, mask, _ in rule_masks(b))
        assert clean(b.ts, b.open, b.high, b.low, b.close, b.volume) == (not broken), (ts, cols)


def test_spacing_median_is_numpy_median():
    rng = np.random.default_rng(5)
    for _ in range(20000):
        d = rng.choice([-1, 0, 1, 2, 2, 3, 60, 60, 60, 120], size=int(rng.integers(1, 12)))
        ts = np.cumsum(np.r_[1000, d]).astype(np.int64)
        got, want = spacing_median(ts), np.median(np.diff(ts))
        if (d > 0).all():
            assert got == want and type(got) is type(want), d
        else:
            assert got is None, d


def _general(df):
    """validate_ohlcv's general path: through a ``Bars`` and ``to_frame``."""
    from backtest.data.bars import from_frame, to_frame
    from backtest.data.validate import validate_bars

    b = validate_bars(from_frame(df, "bars"))
    return to_frame(b), b.timeframe


def _frames():
    import pandas as pd

    rng = np.random.default_rng(8)
    n = 500
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    cols = dict(open=open_, high=np.maximum(open_, close) * 1.001, low=np.minimum(open_, close) * 0.999,
                close=close, volume=rng.random(n))
    base = pd.date_range("2024-03-01", periods=n, freq="1h", tz="UTC")
    import zoneinfo

    for idx in (base.as_unit("ns"), base.as_unit("us"), base.as_unit("ms"), base.as_unit("s"),
                base.as_unit("ns").tz_convert(zoneinfo.ZoneInfo("UTC")).rename("timestamp"),
                base.tz_convert("Asia/Tokyo"), base.tz_localize(None), base.as_unit("ns").rename("timestamp"),
                pd.DatetimeIndex(base.as_unit("ns").asi8.view("M8[ns]"), name="timestamp", dtype="datetime64[ns, UTC]")):
        yield pd.DataFrame(cols, index=idx)
    df = pd.DataFrame(dict(cols, extra=1), index=base)  # another column: ignored
    yield df
    df = pd.DataFrame(cols, index=base)
    df.attrs.update(note="kept", symbol="BTCUSDT", timeframe="1h")
    yield df


def test_validate_as_given_is_the_general_path():
    """A frame needing no conversion takes the shortcut; its canonical
    frame equals the general path's to the bit: values, index (unit, zone,
    name, no freq), columns, dtypes and attrs."""
    import pandas as pd

    from backtest.data.validate import _as_given, validate_ohlcv

    for df in _frames():
        attrs, name = dict(df.attrs), df.index.name
        frame, prices = _as_given(df)
        assert df.attrs == attrs and df.index.name == name and frame.attrs is not df.attrs  # (the caller's, untouched)
        assert all(p is df[k].to_numpy() or np.shares_memory(p, df[k].to_numpy()) for p, k in zip(prices, PRICES))
        got = validate_ohlcv(df, "bars")
        want, timeframe = _general(df)
        pd.testing.assert_frame_equal(got, want, check_exact=True, check_freq=True)
        assert str(got.index.dtype) == "datetime64[ns, UTC]" and got.index.name == "timestamp"
        assert got.index.freq is None
        assert got.attrs == {**df.attrs, "symbol": df.attrs.get("symbol"),
                             "timeframe": df.attrs.get("timeframe") or timeframe}
        assert list(got.attrs) == list(want.attrs) + [k for k in df.attrs if k not in want.attrs]
        assert got.index.tz is want.index.tz  # the canonical zone object, whatever the input's


def test_bars_checked_on_every_run():
    """A frame is checked again on every run, its times too (an index's
    data can be written in place: ``asi8`` is a view): a price, or a time,
    changed in place after a run is refused on the next one, naming its
    row."""
    import pytest

    import backtest
    from backtest.errors import DataError

    df = next(_frames())
    backtest.run(df, np.full(len(df), 1.0), margin="cross-3x", symbol="BTCUSDT")
    df.iloc[42, df.columns.get_loc("high")] = np.nan
    with pytest.raises(DataError, match=r"bars: column 'high': row 42"):
        backtest.run(df, np.full(len(df), 1.0), margin="cross-3x", symbol="BTCUSDT")
    df = next(_frames())
    backtest.run(df, np.full(len(df), 1.0), margin="cross-3x", symbol="BTCUSDT")
    ts = df.index.asi8
    if ts.flags.writeable:  # (pandas 3: a view of the index's own data)
        ts[100] = ts[50]
        with pytest.raises(DataError, match="row 100 .*timestamps must increase"):
            backtest.run(df, np.full(len(df), 1.0), margin="cross-3x", symbol="BTCUSDT")


def test_kernel_runs_on_the_bars_as_checked():
    """A strategy that assigns a new price column to the frame it is
    handed changes its own view only: the run fills on the bars as checked,
    on every path (a frame taken as given, one cut by ``start``, one
    converted)."""
    import backtest

    def doubling(bars):
        bars["close"] = bars["close"] * 2.0
        return np.full(len(bars), 1.0)

    df = next(_frames())
    plain = backtest.run(df, np.full(len(df), 1.0), margin="cross-3x", symbol="BTCUSDT").summary["final_equity"]
    runs = [backtest.run(df, doubling, margin="cross-3x", symbol="BTCUSDT"),
            backtest.run(df, doubling, margin="cross-3x", symbol="BTCUSDT", start=df.index[0]),
            backtest.run(df.astype({"volume": np.float32}), doubling, margin="cross-3x", symbol="BTCUSDT")]
    assert [r.summary["final_equity"] for r in runs] == [plain] * 3


def test_validate_as_given_declines_what_it_cannot_check():
    """Frames the shortcut leaves to the general path, which names the
    problem or converts: a bad row, int columns, a timestamp column."""
    import pandas as pd
    import pytest

    from backtest.data.validate import _as_given, validate_ohlcv
    from backtest.errors import DataError

    df = next(_frames())
    bad = df.copy()
    bad.iloc[7, bad.columns.get_loc("low")] = -1.0
    assert _as_given(bad) is None
    with pytest.raises(DataError, match=r"bars: column 'low': row 7 .* low -1.0 <= 0"):
        validate_ohlcv(bad, "bars")
    ints = df.astype({"volume": np.int64})
    assert _as_given(ints) is None
    pd.testing.assert_frame_equal(validate_ohlcv(ints), _general(ints)[0])
    two = pd.concat({"BTCUSDT": df}, axis=1).swaplevel(axis=1)  # columns (open, BTCUSDT), ...
    assert _as_given(two) is None
    with pytest.raises(DataError, match="column 'open' appears more than once"):
        validate_ohlcv(two, "bars")
    col = df.reset_index(names="timestamp")
    assert _as_given(col) is None
    pd.testing.assert_frame_equal(validate_ohlcv(col), _general(col)[0])
    back = df.iloc[::-1]
    assert _as_given(back) is None
    with pytest.raises(DataError, match="timestamps must increase"):
        validate_ohlcv(back, "bars")


def test_epoch_seconds_floor_every_unit():
    from backtest.data.clean import epoch_seconds

    x = np.array([-2**63 + 1, -2_500_000_001, -1_000_000_000, -999_999_999, -1, 0, 1, 999_999_999,
                  1_000_000_000, 2**63 - 1], dtype=np.int64)
    for per in (1_000_000_000, 1_000_000, 1_000, 1):
        out = np.empty_like(x)
        epoch_seconds(x, per, out)
        assert (out == x // per).all(), per
    out = np.empty(4, dtype=np.int64)
    assert epoch_seconds(np.array([0, 10**9, 2 * 10**9 - 1, 3 * 10**9]), 10**9, out) == 2  # 1.999… s: same second
    assert epoch_seconds(np.array([0, 10**9, 3 * 10**9]), 10**9, out[:3]) == -1


def test_epoch_seconds_kept_with_their_index():
    """The seconds of an index are made once while it lives, and each index
    gets its own."""
    import gc

    import pandas as pd

    from backtest.derived import _KEPT
    from backtest.engine import _epoch_seconds

    a = pd.date_range("2024-01-01", periods=100, freq="1min", tz="UTC")
    b = pd.date_range("2024-01-02", periods=100, freq="1min", tz="UTC")
    sa = _epoch_seconds(a)
    assert _epoch_seconds(a) is sa
    sb = _epoch_seconds(b)
    assert sb is not sa and sb[0] - sa[0] == 86400
    assert (sa == (a - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s")).all()
    assert _epoch_seconds(a.rename("x")) is sa  # a view shares the data, and what was made from it
    key = (id(a.array), "seconds")
    assert key in _KEPT
    del a
    gc.collect()
    assert key not in _KEPT


def test_words_are_pandas_strings():
    import pandas as pd

    from backtest.words import repeat, sides, words

    codes = np.array([2, 0, 1, 2])
    vocab = ("a", "bb", "ccc")
    got = pd.Series(words(codes, vocab))
    want = pd.Series(np.array(vocab, dtype=object)[codes])
    pd.testing.assert_series_equal(got, want)
    pd.testing.assert_series_equal(pd.Series(sides(np.array([1, -1, 1]))), pd.Series(["buy", "sell", "buy"]))
    pd.testing.assert_series_equal(pd.Series(repeat("X", 3)), pd.Series(["X", "X", "X"]))


def test_fill_bars_sorted_or_not():
    from backtest.records import order_dt
    from backtest.trades import fill_bars

    rng = np.random.default_rng(4)
    for n in (0, 1, 2, 7, 300):
        orders = np.zeros(n, dtype=order_dt)
        for bars in (np.sort(rng.integers(0, 50, n)), rng.integers(0, 50, n)):
            orders["bar"] = bars
            assert (fill_bars(orders, 60) == np.unique(np.append(bars, 59))).all()


def test_record_tables_built_once_when_read(tmp_path):
    """run()'s trades, orders, liquidations and margin calls are built on
    first read, once, and are what the records say."""
    import backtest

    res = backtest.run("data/BTCUSDT-1h.parquet", margin="cross-5x", start="2021-05-01", end="2021-06-30")
    assert all(callable(res._tables[k]) for k in ("equity", "trades", "orders", "liquidations", "margin_calls"))
    orders = res.orders
    assert res.orders is orders and not callable(res._tables["orders"])
    trades = res.trades
    assert res.trades is trades and len(trades) == res.summary["n_trades"] and trades.attrs["flat"].keys() == {
        "interest", "fees"}
    assert len(orders) == res.summary["n_orders"]
    assert set(orders["kind"]) <= {"signal", "rebalance", "liquidation", "write_off"}
    assert list(orders["side"].unique()) in (["buy", "sell"], ["sell", "buy"])
    assert len(res.liquidations) == res.summary["n_liquidations"]
    assert len(res.margin_calls) == res.summary["n_margin_calls"]
    res.save(tmp_path / "out")  # the files read the same tables
    assert (tmp_path / "out" / "orders.csv").read_text().count("\n") == len(orders) + 1


def test_a_run_hands_out_its_own_index(tmp_path):
    """The index of a run's tables is a view of its own: renaming it changes
    neither the caller's frame nor what a later run on the same frame
    returns (the derived times are kept per index data, not per object)."""
    import backtest
    from backtest.data import load_ohlcv

    canonical = load_ohlcv("data/BTCUSDT-1h.parquet", "2022-01-01", "2022-03-31")
    other = canonical.copy()
    other.index = other.index.as_unit("ms").rename(None)
    for bars in (canonical, other):
        name = bars.index.name
        first = backtest.run(bars, margin="cross-5x")
        first.equity.index.name = "time"
        assert bars.index.name == name
        again = backtest.run(bars, margin="cross-5x")
        assert again.equity.index.name == "timestamp" and again.bars.index.name == "timestamp"
        again.save(tmp_path / "out")
        assert backtest.Result.load(tmp_path / "out").equity.index.name == "timestamp"


def test_derived_on_threads():
    """Many live indexes on several threads: the kept table never raises
    (the oldest goes while others read and add) and every value is right."""
    import sys
    import threading

    import pandas as pd

    from backtest.derived import _MOST, derived

    indexes = [pd.date_range("2024-01-01", periods=3 + k, freq="h", tz="UTC") for k in range(3 * _MOST)]
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(3000):
                k = int(rng.integers(len(indexes)))
                assert derived(indexes[k], "n", len) == 3 + k
        except Exception as exc:  # noqa: BLE001 (any error is the failure)
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:3]


def test_result_pickles_and_tables_can_be_replaced():
    import pickle

    import backtest

    res = backtest.run("data/BTCUSDT-1h.parquet", margin="cross-5x", start="2022-01-01", end="2022-02-28")
    back = pickle.loads(pickle.dumps(res))
    for name in ("equity", "orders", "liquidations", "margin_calls", "trades"):
        assert getattr(back, name).equals(getattr(res, name))
    old = res.__getstate__()  # a Result pickled when trades was a field, not a table built on first read
    old["trades"] = old["_tables"].pop("trades")
    older = type(res).__new__(type(res))
    older.__setstate__(old)
    assert older.trades.equals(res.trades) and older.equity.equals(res.equity)
    res.orders = res.orders.head(1)
    assert len(res.orders) == 1
