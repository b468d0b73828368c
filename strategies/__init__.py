"""Strategy modules: copy one, edit it, pass it with ``--strategy path/to/file.py``.

A strategy module has

- ``PARAMS``: a dict of parameter names to default values (their types are
  the types ``--param`` accepts), and
- ``targets(bars, **params)``: returns one target exposure per bar
  (signed position value / equity; NaN keeps the current position), using
  only bars up to and including that bar: the backtest executes it at the
  next bar's open.

``targets`` may instead return a dict: the targets under ``"target"``, and
optionally ``"limit"`` (a limit price per bar for a new target, NaN =
market), ``"expiry"`` (bars a limit order stands, default 1),
``"stop_loss"`` / ``"take_profit"`` (a fraction of the entry price, or a
price per bar) and ``"trailing_stop"`` (a fraction); see
``backtest/strategy.py`` and the README.
"""
