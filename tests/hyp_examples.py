"""How many examples a randomized (hypothesis) test runs.

CI runs each test's full count (``.ci/run`` sets ``MARGINBT_FULL=1``); a
local run of the README's test command a quarter of it, at least 25, so
that it stays near ten minutes on two cores (the randomized differential
tests are most of the suite's time); ``MARGINBT_EXAMPLES`` sets one count
for every test."""
import os


def examples(full: int) -> int:
    """The number of examples of a test whose full count is ``full``."""
    given = os.environ.get("MARGINBT_EXAMPLES")
    if given:
        return int(given)
    if os.environ.get("MARGINBT_FULL") == "1":
        return full
    return max(full // 4, 25)
