"""Walk-forward sweeps: each test span is backtest.run of the chosen
parameters from the equity carried over, the choice sees no later bar; and
the sweep ranks never-liquidated combinations first."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.errors import UserError
from backtest.ranking import ranked
from backtest.sweep import SweepResult, sweep
from backtest.walkforward import parse_spec

ROOT = Path(__file__).resolve().parent.parent
BTC = ROOT / "data" / "BTCUSDT-1h.parquet"
GRID = {"fast": [10, 20], "slow": [50, 100], "leverage": [1.0, 3.0]}
SPAN = {"start": "2020-01-01", "end": "2022-06-30"}
WF = "train=180d,test=60d"


def test_every_test_span_is_backtest_run_from_the_equity_carried_over(tmp_path):
    frame = backtest.load_ohlcv(BTC, **SPAN)
    res = sweep(frame, "sma_cross", GRID, out=tmp_path / "wf", walk_forward=WF, rank="sharpe", progress=False,
                margin=["cross-3x", "cross-5x"])
    w = res.windows
    assert len(w) == 13  # 912 days: train ends on days 180, 240, ..., 900 (< 912); the last test span ends early
    assert w["start_equity"].iloc[0] == 10_000.0
    assert (w["start_equity"].iloc[1:].to_numpy() == w["end_equity"].iloc[:-1].to_numpy()).all()
    assert (w["train_end"] < w["test_start"]).all()
    assert w[["param_fast", "param_slow", "param_leverage", "param_margin"]].drop_duplicates().shape[0] > 1
    for row in w.to_dict("records"):
        one = backtest.run(frame, "sma_cross", {k: row[f"param_{k}"] for k in ("fast", "slow", "leverage")},
                           margin=row["param_margin"], capital=row["start_equity"], start=row["test_start"],
                           end=row["test_end"])
        assert one.summary["final_equity"] == row["end_equity"]
        for m in ("total_return", "max_drawdown", "sharpe", "n_liquidations"):
            assert one.summary[m] == row[f"oos_{m}"], m
        stitched = res.equity[res.equity["window"] == row["window"]]
        assert (stitched["equity"].to_numpy() == one.equity["equity"].to_numpy()).all()
        # the in-sample numbers are the chosen combination's backtest.run on the training span
    row = w.iloc[3]
    train = backtest.run(frame, "sma_cross", {k: row[f"param_{k}"] for k in ("fast", "slow", "leverage")},
                         margin=row["param_margin"], start=row["train_start"], end=row["train_end"])
    assert train.summary["sharpe"] == row["is_sharpe"]
    on_disk = pd.read_csv(tmp_path / "wf" / "walkforward.csv")
    assert len(on_disk) == len(w) and (tmp_path / "wf" / "walkforward.png").stat().st_size > 1000
    assert len(pd.read_parquet(tmp_path / "wf" / "walkforward.parquet")) == len(res.equity)


def test_the_choice_depends_only_on_bars_before_the_test_span(tmp_path):
    frame = backtest.load_ohlcv(BTC, **SPAN)
    base = sweep(frame, "sma_cross", GRID, out=tmp_path / "a", walk_forward=WF, progress=False).windows
    params = ["param_fast", "param_slow", "param_leverage"]
    k = 4
    cut = base["train_end"].iloc[k]
    other = frame.copy()
    after = other.index > cut
    rng = np.random.default_rng(5)
    scale = np.exp(np.cumsum(rng.normal(0, 0.02, after.sum())))  # another future: a random walk on the prices
    for col in ("open", "high", "low", "close"):
        other.loc[after, col] = other.loc[after, col].to_numpy() * scale
    moved = sweep(other, "sma_cross", GRID, out=tmp_path / "b", walk_forward=WF, progress=False).windows
    pd.testing.assert_frame_equal(moved[params].iloc[: k + 1], base[params].iloc[: k + 1])
    assert (moved[[f"is_{m}" for m in ("sharpe", "total_return")]].iloc[: k + 1].to_numpy()
            == base[[f"is_{m}" for m in ("sharpe", "total_return")]].iloc[: k + 1].to_numpy()).all()
    # the perturbation does reach what comes after: window k's test span and later choices differ
    assert moved["oos_total_return"].iloc[k] != base["oos_total_return"].iloc[k]
    assert not moved[params].iloc[k + 1:].reset_index(drop=True).equals(base[params].iloc[k + 1:].reset_index(drop=True))


def test_a_liquidated_row_ranks_below_every_never_liquidated_one(tmp_path):
    table = pd.DataFrame({"leverage": [1.0, 5.0, 2.0, 3.0], "sharpe": [0.5, 3.0, np.nan, 0.9],
                          "n_liquidations": [0, 2, 0, 0], "final_equity": [1.0, 2.0, 3.0, 4.0]})
    order = ranked(table, "sharpe")["leverage"].tolist()
    assert order == [3.0, 1.0, 2.0, 5.0]  # by Sharpe among the never liquidated (NaN last), then the liquidated
    res = SweepResult(table, tmp_path, 0, 0.0, {})
    assert res.top("sharpe", 2)["leverage"].tolist() == [3.0, 1.0]
    assert ranked(table, "max_drawdown" if "max_drawdown" in table else "sharpe", ascending=True)["leverage"].tolist() \
        == [1.0, 3.0, 2.0, 5.0]
    # a real sweep: on isolated-10x in 2024 Q1, 9x is liquidated once yet returns more than 1x (+104 % vs +68 %)
    real = sweep(BTC, "hold", {"exposure": [1.0, 2.0, 5.0, 9.0]}, out=tmp_path / "s", margin="isolated-10x",
                 start="2024-01-01", end="2024-03-31", progress=False)
    by = real.table.set_index("exposure")
    assert by.loc[9.0, "n_liquidations"] > 0 and by.loc[9.0, "total_return"] > by.loc[1.0, "total_return"]
    assert (by.loc[[1.0, 2.0, 5.0], "n_liquidations"] == 0).all()
    assert real.top("total_return", 4)["exposure"].tolist() == [5.0, 2.0, 1.0, 9.0]


@pytest.mark.parametrize("spec, says", [
    ("train=1d", "missing test"), ("train=abc,test=1d", "train=abc: expected"), ("train=0d,test=1d", "train=0d: must"),
    ("train=30d,test=10d,foo=1d", "train=DURATION"), ("test=1d", "missing train"),
    ("train=3000d,test=90d", "no window fits"),
])
def test_bad_walk_forward_is_one_line_and_exit_2(tmp_path, capsys, spec, says):
    code = main(["sweep", "--strategy", "sma_cross", "--grid", "fast=10,20", "--grid", "slow=50", "--start",
                 "2021-01-01", "--end", "2021-12-31", "--walk-forward", spec, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "x").exists()


def test_walk_forward_from_python_and_the_cli(tmp_path, capsys):
    assert parse_spec({"train": "365d", "test": "90d"})[:2] == (365 * 86400, 90 * 86400)
    with pytest.raises(TypeError, match="walk_forward"):
        sweep(BTC, "sma_cross", GRID, out=tmp_path / "p", walk_forward=3, progress=False)
    with pytest.raises(UserError, match="scheduler"):
        sweep(BTC, "sma_cross", GRID, out=tmp_path / "p", walk_forward=WF, scheduler="local", progress=False)
    out = tmp_path / "cli"
    argv = ["sweep", "--strategy", "sma_cross", "--grid", "fast=10,20", "--grid", "slow=50,100", "--start",
            "2021-01-01", "--end", "2022-03-31", "--walk-forward", "train=120d,test=60d", "--rank", "total_return",
            "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "walk-forward: " in text and "walkforward.csv" in text
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    (out / "walkforward.png").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "walkforward.png").stat().st_size > 1000


def test_an_equity_past_the_largest_capital_stops_the_walk_with_one_line(tmp_path):
    with pytest.raises(UserError, match=r"walk.forward: the equity after window 0 \(.*\) passes 1e\+15"):
        sweep(BTC, "hold", {"exposure": [1.0]}, out=tmp_path / "w", walk_forward="train=60d,test=60d",
              capital=9e14, start="2023-01-01", end="2023-07-01", progress=False)
