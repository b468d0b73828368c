"""The report of a perpetual-futures run (venue binance-usdm): funding where
spot margin has interest, the margin ratio where it has the margin level, no
borrow rates (docs/model-choices.md "Perpetual futures").

The run: the bundled BTCUSDT perp bars, 2021-05-10 → 2021-05-25, a 3x long
held on usdm-isolated-10x (the May 2021 crash liquidates it).
"""
from pathlib import Path

import numpy as np
import pandas as pd
import pymupdf  # (the test extra: a report read back, never skipped)
import pytest

import backtest
from backtest import Result
from backtest.report import write_report
from backtest.report.common import prepare
from backtest.report.pages import costs_figure, margin_figure
from backtest.report.panels import waterfall_steps
from backtest.report.tables import settings_rows, summary_rows


DATA = Path(__file__).resolve().parents[1] / "data" / "BTCUSDT_PERP-1h.parquet"
PNGS = ("equity.png", "margin.png", "costs.png")


@pytest.fixture(scope="module")
def res():
    r = backtest.run(str(DATA), strategy="hold", params={"exposure": 3}, margin="usdm-isolated-10x",
                     start="2021-05-10", end="2021-05-25")
    assert r.profile.venue == "binance-usdm" and r.summary["venue"] == "binance-usdm"
    assert r.funding is not None and len(r.funding)
    return r


def pdf_pages(path) -> list[str]:
    with pymupdf.open(path) as doc:
        return [page.get_text() for page in doc]


def by_gid(fig, gid):
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def check_report(folder: Path):
    pages = pdf_pages(folder / "report.pdf")
    text = "\n".join(pages)
    assert "funding" in text and "margin ratio" in text
    assert "borrow rates" not in text and "ML init/call/liq" not in text and "lowest margin level" not in text
    for words in ("Binance USDⓈ-M perpetual", "Margin ratio (maintenance margin / margin balance)",
                  "Funding per charge", "Cumulative funding and fees", "funding USDT"):
        assert words in text
    assert "Debt per asset" not in text and "interest" not in text
    for name in PNGS:
        assert (folder / name).stat().st_size > 5_000
    return pages


def test_report_from_the_result_and_from_its_folder(res, tmp_path):
    write_report(res, tmp_path / "fresh")
    fresh = check_report(tmp_path / "fresh")
    res.save(tmp_path / "run")
    loaded = Result.load(tmp_path / "run")
    write_report(loaded, tmp_path / "loaded")
    again = check_report(tmp_path / "loaded")
    # the folder draws the same text as the run, but for page 2's price axis (a folder has no low–high range)
    assert len(fresh) == len(again) == 4
    assert [fresh[k] for k in (0, 2, 3)] == [again[k] for k in (0, 2, 3)]


def test_settings_and_summary_rows(res):
    run = prepare(res)
    assert run.perp
    settings = dict(settings_rows(run))
    assert settings["venue"] == "Binance USDⓈ-M perpetual"
    assert settings["margin"] == "isolated, 10×"
    assert settings["margin call / liq."] == "margin ratio 80 % / 100 %"
    assert settings["clearance fee"] == "1.25 %"
    assert settings["funding"] == "BTCUSDT_PERP-funding.parquet"
    assert "borrow rates" not in settings and "ML init/call/liq" not in settings
    summary = dict(summary_rows(run))
    assert summary["funding"].startswith(f"{res.summary['funding_paid']:,.2f} USDT")
    assert f"({res.summary['n_funding']} charges)" in summary["funding"]
    assert summary["max margin ratio"] == f"{res.summary['max_margin_ratio'] * 100:,.2f} %"
    assert "interest" not in summary and "lowest margin level" not in summary


def test_margin_ratio_panel_and_costs(res):
    run = prepare(res)
    fig = margin_figure(run, "page")
    (call,), (liq,) = by_gid(fig, "mr-call"), by_gid(fig, "mr-liquidation")
    assert call.get_ydata()[0] == pytest.approx(80.0) and liq.get_ydata()[0] == pytest.approx(100.0)
    ax = call.axes
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0.0 and ax.get_ylim()[1] >= 110.0
    assert not by_gid(fig, "ml-initial")
    (marks,) = by_gid(fig, "liquidations-ml")  # health h at the trigger, drawn as the ratio 1/h
    h = res.liquidations["margin_level"].to_numpy(np.float64)
    assert marks.get_ydata() == pytest.approx(np.minimum(100.0 / h, ax.get_ylim()[1] * 0.97))
    costs = costs_figure(run, "page")
    titles = [a.get_title(loc="left") for a in costs.axes]
    assert titles[:2] == ["Funding per charge (positive = paid)", "Cumulative funding and fees"]
    assert not any("Debt" in t for t in titles)
    steps = dict(waterfall_steps(run))
    assert "interest" not in steps and steps["funding"] == pytest.approx(-res.summary["funding_paid"])
    total = run.capital + sum(steps.values())
    assert total == pytest.approx(res.summary["final_equity"])


def test_no_funding_charges_drops_the_panel(res):
    empty = Result(equity=res.equity, trades=res.trades, orders=res.orders, liquidations=res.liquidations,
                   margin_calls=res.margin_calls, summary=res.summary, settings=res.settings, profile=res.profile,
                   funding=pd.DataFrame(columns=["time", "symbol", "rate", "mark_price", "position", "payment"]))
    titles = [a.get_title(loc="left") for a in costs_figure(prepare(empty), "page").axes]
    assert titles == ["Cumulative funding and fees", "From starting capital to final equity (USDT)"]
