"""``python -m backtest.data data check FILE`` — the data commands on their own."""
import sys

from .cli import main

sys.exit(main())
