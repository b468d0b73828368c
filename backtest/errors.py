"""The one exception type a user ever sees.

Every mistake a user can make (a bad file, a bad flag, a strategy that
raises) becomes a ``UserError`` whose message is one line naming the file,
column, row or flag.  The CLI prints it and exits with code 2; the Python API
lets it propagate.
"""


class UserError(Exception):
    """A user-facing error: one line, no traceback needed."""


class DataError(UserError):
    """Bad OHLCV input: the message names the file, the column and the row."""
