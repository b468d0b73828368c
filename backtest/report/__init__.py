"""Reports a trader reads: ``report.pdf`` and PNGs of a run.

``plot_equity(result, path)`` draws ``equity.png`` (equity with liquidation
markers over the margin level); ``write_report(result, out_dir)`` writes
``report.pdf`` (settings and summary, equity and drawdown; price with trades
and liquidations, margin level, exposure; debt, costs and the
capital-to-equity waterfall; event tables) with ``equity.png``,
``margin.png`` and ``costs.png`` beside it.  Long runs are min/max decimated
(``decimate``) so 70,000 bars draw in well under a second per figure.
A perpetual-futures run (venue ``binance-usdm``) shows its margin ratio
(80 % margin call, 100 % liquidation) instead of the margin level, and
funding instead of debt and interest.
"""
from .decimate import decimate
from .pages import plot_equity, write_report

__all__ = ["decimate", "plot_equity", "write_report"]
