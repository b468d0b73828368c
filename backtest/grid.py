"""A sweep's grid, lazily: axes, combinations, chunks and a pre-flight.

Nothing here holds the grid's combinations in memory: an axis
``START:STOP:STEP`` is an ``Axis`` (values computed on demand), combinations come from ``itertools.product`` one at a time, and
chunks are cut from that stream as the workers ask for them.  So a grid of
10^8 combinations is counted (a product of axis lengths) and refused in
microseconds, and an allowed one costs memory per chunk in flight, not per
combination.

``preflight`` counts, estimates time and memory, and refuses a grid above
``max_combos`` (``--max-combos``, default 1,000,000) with one line.
"""
import itertools
import math
from collections.abc import Sequence

from .errors import UserError

MAX_COMBOS = 1_000_000
MARGIN_AXIS = "margin"
# the trader's own moves as axes (a sweep's only): a reserve, the level its top-ups lift to, the safety buffer
MOVE_AXES = ("reserve", "top_up_ml", "keep_ml")
# measured on the project's 2-core machine (README "Performance"): kernel bar-steps per second per thread,
# bytes a finished combination's row costs in the table (about 40 metrics), and the fixed cost of a sweep
STEPS_PER_SECOND = 110e6
ROW_BYTES = 600
BASE_BYTES = 150 * 2**20


class Axis(Sequence):
    """``START:STOP:STEP`` values, computed when read (floats rounded to 12
    decimals); equal to the list of the same values."""

    def __init__(self, start, step, count, kind=float):
        self.start, self.step, self.count, self.kind = start, step, count, kind

    def __len__(self):
        return self.count

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(self.count))]
        if k < 0:
            k += self.count
        if not 0 <= k < self.count:
            raise IndexError(k)
        value = self.kind(self.start + k * self.step)
        return round(value, 12) if self.kind is float else value

    def __eq__(self, other):
        return isinstance(other, Sequence) and len(self) == len(other) and list(self) == list(other)

    __hash__ = None

    def __repr__(self):
        return f"Axis({self.start}:{self.start + (self.count - 1) * self.step}:{self.step}, {self.count} values)"


def axis(kind, start, stop, step, spec, max_values=MAX_COMBOS):
    """The lazy values of ``START:STOP:STEP`` (STOP included when the steps
    land on it); more than ``max_values`` is refused before any is made."""
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    if count > max_values:
        raise UserError(f"--grid {spec}: {count:,} values, more than --max-combos {max_values:,} allows for the "
                        "whole grid; use a larger STEP or raise --max-combos")
    return Axis(start, step, count, kind)


def raw_count(grid: dict, margins) -> int:
    """Combinations before the strategy's ``valid`` rule: a product of lengths."""
    n = len(grid.get(MARGIN_AXIS, margins))
    for key, values in grid.items():
        if key != MARGIN_AXIS:
            n *= len(values)
    return n


def iter_combinations(strategy, grid: dict, margins, skipped=None):
    """The grid's parameter dicts (``margin`` included), one at a time, in
    the order ``itertools.product`` gives; those the strategy's ``valid``
    rule rejects are left out and counted in ``skipped[0]``."""
    axes = {k: v for k, v in grid.items() if k != MARGIN_AXIS and k not in MOVE_AXES}
    moves = {k: grid[k] for k in MOVE_AXES if k in grid}  # (after the strategy's: its valid rule does not see them)
    margin_values = grid.get(MARGIN_AXIS, margins)
    rule = getattr(strategy.module, "valid", None) if strategy.module else None
    names = list(axes)
    for values in itertools.product(*axes.values(), *moves.values(), margin_values):
        params = dict(strategy.params)
        params.update(zip(names, values[: len(names)]))
        if rule is not None and not rule(**params):
            if skipped is not None:
                skipped[0] += 1
            continue
        params.update(zip(moves, values[len(names):-1]))
        params[MARGIN_AXIS] = values[-1]
        yield params


def count_valid(strategy, grid: dict, margins) -> tuple:
    """(valid combinations, skipped ones): one pass, nothing kept."""
    skipped = [0]
    n = sum(1 for _ in iter_combinations(strategy, grid, margins, skipped))
    return n, skipped[0]


def chunks(strategy, grid, margins, size, todo=None):
    """``(k, combinations of chunk k)`` for the chunks in ``todo`` (all when
    None), cut lazily from the combination stream."""
    stream = iter_combinations(strategy, grid, margins)
    k = 0
    while True:
        block = list(itertools.islice(stream, size))
        if not block:
            return
        if todo is None or k in todo:
            yield k, block
        k += 1


def estimate(combos: int, bars: int, threads: int, indicator_rows: int = 0) -> tuple:
    """(seconds, bytes) a sweep should take: kernel bar-steps at the
    measured rate on every thread; the bars, the indicator bank, the
    per-thread buffers and the table of results."""
    seconds = combos * bars / (STEPS_PER_SECOND * max(threads, 1))
    memory = BASE_BYTES + 8 * bars * (6 + indicator_rows + 2 * threads) + combos * ROW_BYTES
    return seconds, memory


def preflight(strategy, grid, margins, bars: int, threads: int, max_combos=MAX_COMBOS) -> dict:
    """Count the grid, refuse it above ``max_combos`` (one line with the
    count and the flag), and estimate its time and memory."""
    raw = raw_count(grid, margins)
    if raw > max_combos:
        raise UserError(f"--grid: {raw:,} combinations, more than --max-combos {max_combos:,}; "
                        "narrow the grid or raise --max-combos")
    valid, skipped = count_valid(strategy, grid, margins)
    rows = sum(len(v) for k, v in grid.items() if k != MARGIN_AXIS)
    seconds, memory = estimate(valid, bars, threads, rows)
    return {"combinations": valid, "skipped": skipped, "seconds": seconds, "bytes": memory}


def describe(plan: dict, bars: int) -> str:
    """The pre-flight's one line."""
    s = plan["seconds"]
    when = f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"
    return (f"sweep: {plan['combinations']:,} combinations ({plan['skipped']:,} skipped by the strategy's rule) × "
            f"{bars:,} bars: about {when}, about {plan['bytes'] / 2**20:,.0f} MiB")
