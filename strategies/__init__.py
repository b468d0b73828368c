"""Strategy modules: copy one, edit it, pass it with ``--strategy path/to/file.py``.

A strategy module has

- ``PARAMS``: a dict of parameter names to default values (their types are
  the types ``--param`` accepts), and
- ``targets(bars, **params)``: returns one target exposure per bar
  (signed position value / equity; NaN keeps the current position), using
  only bars up to and including that bar: the backtest executes it at the
  next bar's open.
"""
