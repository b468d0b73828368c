"""A Pro profile's per-asset MMRs in a cross account of several symbols
(docs/model-choices.md "Several symbols"): as in a one-symbol run, the
account's assets must share one MMR; the account then runs as Pro with it,
and different ones are refused with one line."""
import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main
from backtest.errors import UserError

PRO = """[profiles.p]
mode = "cross"
max_leverage = 5
liquidation_ml = 1.0
liquidation_fee = 0.03
mmr = {mmr}
{table}
"""
BTC, ETH = "data/BTCUSDT-1h.parquet", "data/ETHUSDT-1h.parquet"


def _file(tmp_path, mmr, table=""):
    path = tmp_path / f"p{abs(hash((mmr, table)))}.toml"
    path.write_text(PRO.format(mmr=mmr, table=table))
    return path


def _run(path, **kw):
    return backtest.run_multi([BTC, ETH], "hold", {"exposure": 4.0}, margin="p", margin_file=path,
                              start="2021-04-10", end="2021-06-01", **kw)


def test_one_mmr_for_every_asset_runs_as_pro_with_it(tmp_path):
    # every asset at 0.08 through the table, the profile's own mmr 0.05 unused: the run is Pro at MMR 0.08
    table = "[profiles.p.asset_mmr]\nBTC = 0.08\nETH = 0.08\nUSDT = 0.08\n"
    given = _run(_file(tmp_path, 0.05, table))
    plain = _run(_file(tmp_path, 0.08))
    assert given.summary["n_liquidations"] > 0  # the May 2021 crash reaches the level
    pd.testing.assert_frame_equal(given.equity, plain.equity)
    assert given.summary == plain.summary
    # and it differs from Pro at 0.05 (the table is not ignored)
    other = _run(_file(tmp_path, 0.05))
    assert not np.allclose(other.equity["margin_level_cross"], given.equity["margin_level_cross"], equal_nan=True)


@pytest.mark.parametrize("table, listed", [
    ("[profiles.p.asset_mmr]\nBTC = 0.1\n", "BTC (0.1), ETH (0.05), USDT (0.05)"),
    ("[profiles.p.asset_mmr]\nUSDT = 0.1\nETH = 0.1\n", "BTC (0.05), ETH (0.1), USDT (0.1)"),
])
def test_different_mmrs_in_the_account_are_refused(tmp_path, capsys, table, listed):
    path = _file(tmp_path, 0.05, table)
    with pytest.raises(UserError, match="different MMRs in one cross account") as e:
        _run(path)
    assert listed in str(e.value)
    assert main(["run", "--data", BTC, "--data", ETH, "--strategy", "hold", "--margin-file", str(path),
                 "--margin", "p", "--no-report", "--end", "2021-01-05"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and listed in err


def test_an_isolated_symbol_beside_keeps_its_own_profile(tmp_path):
    # BTC in the Pro cross account with its table, ETH isolated on a classic profile: only the cross
    # account's assets (BTC, USDT) need one MMR
    table = "[profiles.p.asset_mmr]\nBTC = 0.07\nUSDT = 0.07\n"
    res = backtest.run_multi([BTC, ETH], "hold", {"exposure": 2.0}, margin="BTCUSDT=p,ETHUSDT=isolated-3x",
                             margin_file=_file(tmp_path, 0.05, table), end="2021-01-05")
    assert res.summary["final_equity"] > 0.0


@pytest.mark.parametrize("spec", ["BTCUSDT=p,ETHUSDT=cross-3x", "BTCUSDT=cross-3x,ETHUSDT=p"])
def test_a_pro_table_does_not_join_another_cross_profile(tmp_path, spec):
    # one cross account takes one cross profile, a table of per-asset MMRs or not (it used to replace the
    # other symbol's profile silently)
    table = "[profiles.p.asset_mmr]\nBTC = 0.08\nETH = 0.08\nUSDT = 0.08\n"
    with pytest.raises(UserError, match="so one cross profile"):
        backtest.run_multi([BTC, ETH], "hold", margin=spec, margin_file=_file(tmp_path, 0.05, table), end="2021-01-05")
