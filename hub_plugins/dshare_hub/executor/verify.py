"""Whether every cell of an output table is what the disclosure checks take it for.

The checks (`sdc`) judge a table by what its columns are: group keys, counts, crosstab
counts, aggregates of numeric input columns. They never read the value a job wrote in an
aggregate, and a column that is none of these they do not judge at all, so without this
a job could write any number (an income plus 0.5, an id's digits) under a made-up name, or
under a name like `count` or `mean_income`, and have it released. Here each cell is
recomputed from the input: a key is a value of its input column (or a margin), a count is
a whole number no larger than the records of its group, a crosstab cell is its count, an
aggregate is its statistic over its group (to the precision written). What cannot be
verified makes the table one the checks cannot judge (`release.unknown`).

What stays possible (and is a limit of cell checks, not of this module): counts of
subsets of a group chosen by the job carry a few bits each (differencing).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable

from .sdc import Analysis, _where
from .tables import number

_FUNCS: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "total": math.fsum,
    "mean": statistics.fmean,
    "avg": statistics.fmean,
    "average": statistics.fmean,
    "median": statistics.median,
    "min": min,
    "max": max,
    "std": lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0,
    "var": lambda xs: statistics.variance(xs) if len(xs) > 1 else 0.0,
}
_F = "|".join(_FUNCS)
_NAMED = (
    re.compile(rf"^(?P<f>{_F})\s*\(\s*.+?\s*\)$"),
    re.compile(rf"^(?P<f>{_F})[_ ]+.+$"),
    re.compile(rf"^.+?[_ ]+(?P<f>{_F})$"),
)
# A column named just like a numeric input column: any of these statistics of its group.
_BARE = ("sum", "mean", "median", "min", "max")
_SUPPRESSED = frozenset({"", "nan"})


def _function(name: str) -> tuple[str, ...]:
    low = name.casefold()
    for pattern in _NAMED:
        m = pattern.match(low)
        if m:
            return (m.group("f"),)
    return _BARE


def _close(written: str, truth: float) -> bool:
    """Whether the written cell is the statistic, rounded to the decimals it shows."""
    x = number(written)
    if x is None:
        return False
    decimals = len(written.split(".", 1)[1]) if "." in written and "e" not in written else 0
    return abs(x - truth) <= 0.5 * 10.0**-decimals + 1e-9 * abs(truth)


def unverified(a: Analysis) -> dict[int, list[int]]:
    """The data rows, by output column, whose cells are not what their column is taken for."""
    table = a.table
    keys = {j for j, _c in a.keys}
    crossed = {j for j, _c, _v in a.crosstab}
    counts = set(a.counts)  # looked up per cell: a table can have thousands of columns
    values = dict(a.values)
    total = a.inputs.rows
    out: dict[int, list[int]] = {}
    # One statistic per group, input column and function, however many columns repeat it.
    stats: dict[tuple[object, ...], float | None] = {}

    def stat(r: int, column: str, f: str) -> float | None:
        names, key = a.row_key(r)
        memo = (names, key, column, f)
        if memo not in stats:
            xs = a.inputs.contributions(names, key, column)
            stats[memo] = _FUNCS[f](xs) if xs else None
        return stats[memo]

    for j in range(len(table.columns)):
        if j in keys or j in crossed:
            continue  # keys are input values, crosstab cells their counts, by detection
        bad: list[int] = []
        for r, row in enumerate(table.rows):
            v = row[j]
            if v in _SUPPRESSED:
                continue  # a suppressed cell
            if j in counts:
                x = number(v)
                limit = a.group[r] if a.keys else total
                ok = x is not None and x.is_integer() and 0 <= x <= limit
            elif j in values:
                truths = (stat(r, values[j], f) for f in _function(table.columns[j]))
                ok = any(t is not None and _close(v, t) for t in truths)
            else:
                ok = False  # no key, count or aggregate: nothing says what it holds
            if not ok:
                bad.append(r)
        if bad:
            out[j] = bad
    return out


def problem(a: Analysis) -> str:
    """What of the table could not be verified ("" when all of it was), by position."""
    found = unverified(a)
    if not found:
        return ""
    cells = [(r, j) for j, rows in found.items() for r in rows]
    return (
        f"{len(cells)} cell(s) are not what their column is taken for "
        f"({_where(a, cells)}): a group key is a value of an input column, a count a whole "
        "number no larger than its group's records, an aggregate the sum, mean, median, min, "
        "max, std or var of a numeric input column over its group"
    )
