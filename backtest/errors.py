"""The exception types a user ever sees.

Every mistake a user can make (a bad file, a bad flag, a strategy that
raises) becomes a ``UserError`` whose message is one line naming the file,
column, row, flag or argument.  The CLI prints it and exits with code 2; the
Python API lets it propagate.

They subclass the built-in types a Python user already catches: a bad value
is a ``ValueError`` (``UserError``, ``DataError``), a value of the wrong type
a ``TypeError`` as well (``UserTypeError``), so ``except ValueError`` and
``except TypeError`` work as for any library.
"""


class UserError(ValueError):
    """A user-facing error: one line, no traceback needed."""


class DataError(UserError):
    """Bad OHLCV input: the message names the file, the column and the row."""


class UserTypeError(UserError, TypeError):
    """An argument of the wrong type (``capital="1000"``): a ``TypeError``
    that the CLI reports like any ``UserError``."""
