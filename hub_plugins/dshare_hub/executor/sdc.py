"""Statistical disclosure control of a run's tables, recomputed from the lease's input.

The job is hostile, so nothing it writes about its own table is taken on trust: which
rows of the input stand behind each output row is recomputed here. An output column
whose name is an input column and whose values are all values of it is a group key; the
input rows behind an output row are those with its keys' values ("All"/"Total" margins
match every value). A column named for counting (count, n, freq ...), a column whose
values are exactly the recomputed group sizes (a count under another name), and a
crosstab column named for a value of an input column whose cells are the recomputed
counts, are frequency cells. A column that names a numeric input column (amount,
sum_amount, amount_sum, mean(amount), ...) aggregates it: its contributions are that
input column's values in the group. The rules applied to what is recomputed are ACRO's
(`acro_rules`). Messages name columns only by names the schema already shows (else by
position), rows by position, and thresholds: never a value of the input or the output.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dshare_chaincode.disclosure import DEFAULT_DISCLOSURE

from . import acro_rules
from .tables import NotATable, Table, is_table_name, number, read_table
from .winnow import Corpus

MARGINS = frozenset({"all", "total"})
COUNT_NAMES = frozenset(
    {"count", "counts", "n", "freq", "frequency", "size", "cnt", "num", "number", "nobs", "n_obs"}
)
_COUNT_RE = re.compile(r"^(count|n|num|cnt|freq|frequency|number)[_ (]+.*$|^.*[_ ](count|n)$")
_AGG = "sum|mean|avg|average|total|median|min|max|std|var"
_AGG_RE = (
    re.compile(rf"^(?:{_AGG})\s*\(\s*(.+?)\s*\)$"),  # mean(amount)
    re.compile(rf"^(?:{_AGG})[_ ]+(.+)$"),  # sum_amount
    re.compile(rf"^(.+?)[_ ]+(?:{_AGG})$"),  # amount_sum
)
MIN_ID_LEN = 4  # shorter identifier values ("17", "yes") are too common to mean a copy
_TOKEN = re.compile(r"[A-Za-z0-9@._+-]+")
MAX_LISTED = 8
MAX_COLUMNS_LISTED = 4  # a message stays readable, and within what the ledger records


@dataclass(frozen=True)
class Rules:
    """The owner's parameters (policy.release.disclosure) and the schema's identifiers."""

    min_cell_count: int = DEFAULT_DISCLOSURE["min_cell_count"]
    zeros_disclosive: bool = DEFAULT_DISCLOSURE["zeros_disclosive"]
    dominance_n: int = DEFAULT_DISCLOSURE["dominance_n"]
    dominance_k: float = DEFAULT_DISCLOSURE["dominance_k"]
    p_ratio: float = DEFAULT_DISCLOSURE["p_ratio"]
    min_rows: int = DEFAULT_DISCLOSURE["min_rows"]
    max_rows_ratio: float = DEFAULT_DISCLOSURE["max_rows_ratio"]
    identifier_tags: tuple[str, ...] = tuple(DEFAULT_DISCLOSURE["identifier_tags"])

    def appetite(self) -> dict[str, Any]:
        return acro_rules.appetite(
            threshold=self.min_cell_count,
            zeros=self.zeros_disclosive,
            nk_n=self.dominance_n,
            nk_k=self.dominance_k,
            p=self.p_ratio,
        )


@dataclass
class Inputs:
    """The tabular files of one lease's input, read once per run."""

    tables: list[Table] = field(default_factory=list)
    unreadable: int = 0
    _cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(len(t.rows) for t in self.tables)

    @property
    def columns(self) -> tuple[str, ...]:
        """The input's column names, sorted (asked for per output column)."""
        return self._memo(
            "columns", lambda: tuple(sorted({c for t in self.tables for c in t.columns}))
        )

    def resolve(self, name: str) -> str | None:
        """The input column ``name`` names (exactly, else ignoring case), or None."""
        if name in self._memo("names", lambda: frozenset(self.columns)):
            return name
        folded = self._memo("folded", lambda: {c.casefold(): c for c in self.columns})
        return folded.get(name.casefold())

    def values(self, column: str) -> frozenset[str]:
        return self._memo(
            ("values", column),
            lambda: frozenset(v for t, j in self._where(column) for v in t.column(j)),
        )

    def numeric(self, column: str) -> bool:
        def test() -> bool:
            vals = [v for v in self.values(column) if v]
            return bool(vals) and all(number(v) is not None for v in vals)

        return self._memo(("numeric", column), test)

    def count(self, keys: tuple[str, ...], values: tuple[str | None, ...]) -> int:
        """Input rows whose ``keys`` hold ``values`` (None matches anything)."""
        fixed = tuple(k for k, v in zip(keys, values, strict=True) if v is not None)
        wanted = tuple(v for v in values if v is not None)
        if not fixed:
            return sum(len(t.rows) for t in self.tables)
        counts = self._memo(("count", fixed), lambda: self._group(fixed))
        return int(sum(counts.get(wanted, [])))

    def contributions(
        self, keys: tuple[str, ...], values: tuple[str | None, ...], column: str
    ) -> list[float]:
        fixed = tuple(k for k, v in zip(keys, values, strict=True) if v is not None)
        wanted = tuple(v for v in values if v is not None)
        groups = self._memo(("contrib", fixed, column), lambda: self._contrib(fixed, column))
        return groups.get(wanted, [])

    def _contrib(self, keys: tuple[str, ...], column: str) -> dict[tuple[str, ...], list[float]]:
        out: dict[tuple[str, ...], list[float]] = {}
        for t in self.tables:
            if column not in t.columns or not set(keys) <= set(t.columns):
                continue
            at, j = [t.columns.index(k) for k in keys], t.columns.index(column)
            for row in t.rows:
                x = number(row[j])
                if x is not None:
                    out.setdefault(tuple(row[i] for i in at), []).append(x)
        return out

    def _group(self, keys: tuple[str, ...]) -> dict[tuple[str, ...], list[int]]:
        out: dict[tuple[str, ...], list[int]] = {}
        for t in self.tables:
            if not set(keys) <= set(t.columns):
                continue
            at = [t.columns.index(k) for k in keys]
            counter = Counter(tuple(row[i] for i in at) for row in t.rows)
            for key, n in counter.items():
                out.setdefault(key, []).append(n)
        return out

    def _where(self, column: str) -> list[tuple[Table, int]]:
        return [(t, t.columns.index(column)) for t in self.tables if column in t.columns]

    def _memo(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def inputs_of(corpus: Corpus) -> Inputs:
    """The input's tables, parsed once per corpus (the gate's cache on it)."""
    cached = corpus.derived.get("tables")
    if isinstance(cached, Inputs):
        return cached
    inputs = Inputs()
    for name, data in corpus.files:
        if not is_table_name(name):
            continue
        try:
            inputs.tables.append(read_table(name, data))
        except NotATable:
            inputs.unreadable += 1
    corpus.derived["tables"] = inputs
    return inputs


@dataclass
class Analysis:
    """What each column of one output table is, against one lease's input."""

    table: Table
    inputs: Inputs
    schema: tuple[tuple[str, tuple[str, ...]], ...]  # the dataset's (column, tags)
    safe_names: frozenset[str]  # output column names a message may show
    keys: list[tuple[int, str]] = field(default_factory=list)  # (output column, input column)
    counts: list[int] = field(default_factory=list)  # frequency columns of row groups
    crosstab: list[tuple[int, str, str | None]] = field(default_factory=list)  # (j, C, value)
    values: list[tuple[int, str]] = field(default_factory=list)  # (j, numeric input column)
    group: list[int] = field(default_factory=list)  # input rows behind each output row
    # Each row's key, asked for once per cell: made once `analyse` has found the keys.
    _row_keys: dict[int, tuple[tuple[str, ...], tuple[str | None, ...]]] = field(
        default_factory=dict
    )

    def row_key(self, r: int) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
        if r not in self._row_keys:
            names = tuple(c for _j, c in self.keys)
            row = self.table.rows[r]
            values = tuple(None if row[j].casefold() in MARGINS else row[j] for j, _c in self.keys)
            self._row_keys[r] = names, values
        return self._row_keys[r]

    def cell_count(self, r: int, column: str, value: str | None) -> int:
        names, values = self.row_key(r)
        return self.inputs.count((*names, column), (*values, value))

    def label(self, j: int) -> str:
        name = self.table.columns[j]
        return f"column {j + 1} ({name!r})" if name in self.safe_names else f"column {j + 1}"


def _aggregated(name: str, inputs: Inputs) -> str | None:
    for pattern in _AGG_RE:
        m = pattern.match(name.casefold())
        if m:
            base = inputs.resolve(m.group(1))
            if base is not None and inputs.numeric(base):
                return base
    return None


def _is_count_name(name: str) -> bool:
    low = name.casefold()
    return low in COUNT_NAMES or bool(_COUNT_RE.match(low))


def analyse(
    table: Table, inputs: Inputs, schema: tuple[tuple[str, tuple[str, ...]], ...]
) -> Analysis:
    known = {c.casefold() for c, _t in schema}
    known |= {c.casefold() for c in inputs.columns}
    safe = frozenset(
        n
        for n in table.columns
        if n.casefold() in known or _is_count_name(n) or _aggregated(n, inputs) is not None
    )
    a = Analysis(table, inputs, schema, safe)
    rest = []
    for j, name in enumerate(table.columns):
        base = inputs.resolve(name) if name else None
        vals = {v for v in table.column(j) if v and v.casefold() not in MARGINS}
        if base is not None and vals and vals <= inputs.values(base):
            a.keys.append((j, base))
        elif base is None and (renamed := _renamed(inputs, name, vals)) is not None:
            a.keys.append((j, renamed))  # an input column under another name
        else:
            rest.append(j)
    key_columns = {c for _j, c in a.keys}
    a.group = [a.inputs.count(*a.row_key(r)) for r in range(len(table.rows))]
    for j in rest:
        name = table.columns[j]
        column = table.column(j)
        numeric = all(number(v) is not None for v in column if v)
        base = inputs.resolve(name) if name else None
        agg = base if base is not None and inputs.numeric(base) else _aggregated(name, inputs)
        if _is_count_name(name):
            a.counts.append(j)
        elif agg is not None:
            a.values.append((j, agg))
        elif numeric and (crossed := _crosstab(a, j, key_columns)) is not None:
            a.crosstab.append((j, *crossed))
        elif (
            numeric
            and a.keys
            and column
            and all(number(v) == g for v, g in zip(column, a.group, strict=True))
        ):
            a.counts.append(j)  # the group sizes under another name: a disguised count
    return a


def _renamed(inputs: Inputs, name: str, vals: set[str]) -> str | None:
    """The input column whose values an output column copies under another name. Short
    numbers are left out (a count or a percentage is often some input's value too)."""
    if not vals or _is_count_name(name) or _aggregated(name, inputs) is not None:
        return None
    if all(number(v) is not None for v in vals) and min(map(len, vals)) < MIN_ID_LEN:
        return None
    return next((c for c in inputs.columns if vals <= inputs.values(c)), None)


def _crosstab(a: Analysis, j: int, keys: set[str]) -> tuple[str, str | None] | None:
    """The input column C a crosstab column is a value of, when its cells are the counts."""
    name = a.table.columns[j]
    if name.casefold() in MARGINS:
        return None  # a margin: checked as the row's count, it holds no new cell
    column = a.table.column(j)
    for c in a.inputs.columns:
        if c in keys or name not in a.inputs.values(c):
            continue
        got = [a.cell_count(r, c, name) for r in range(len(column))]
        if all(number(v) == g for v, g in zip(column, got, strict=True) if v):
            return c, name
    return None


# -- the checks: each returns "" when the table passes, else what is wrong and what to do --


def _rows(rows: Iterable[int]) -> str:
    listed = sorted(set(rows))
    shown = ", ".join(str(r + 1) for r in listed[:MAX_LISTED])
    more = len(listed) - MAX_LISTED
    return f"data rows {shown}" + (f" and {more} more" if more > 0 else "")


def _where(a: Analysis, cells: Iterable[tuple[int, int]]) -> str:
    by_column: dict[int, list[int]] = {}
    for r, j in cells:
        by_column.setdefault(j, []).append(r)
    listed = sorted(by_column.items())
    shown = "; ".join(f"{a.label(j)}: {_rows(rs)}" for j, rs in listed[:MAX_COLUMNS_LISTED])
    more = len(listed) - MAX_COLUMNS_LISTED
    return shown + (f"; and {more} more column(s)" if more > 0 else "")


def min_cell_count(a: Analysis, rules: Rules) -> str:
    crossed = {j: (c, v) for j, c, v in a.crosstab}  # looked up per cell: a table can be wide
    columns = a.counts + list(crossed)
    grid: list[list[float]] = []
    for r, row in enumerate(a.table.rows):
        line = []
        for j in columns:
            written = number(row[j])
            if j in crossed:
                truth: int | None = a.cell_count(r, *crossed[j])
            else:
                truth = a.group[r] if a.keys else None
            # The smaller of what the job wrote and what the input says: either may be it.
            seen = [x for x in (written, truth) if x is not None]
            line.append(min(seen) if seen else float("nan"))
        grid.append(line)
    failed = acro_rules.small_cells(grid, rules.appetite()) if columns else []
    if not failed:
        return ""
    zeros = "zeros included" if rules.zeros_disclosive else "zeros allowed"
    t = rules.min_cell_count
    return (
        f"{len(failed)} frequency cell(s) count fewer than {t} records ({zeros}): "
        f"{_where(a, [(r, columns[c]) for r, c in failed])}. Suppress cells below {t}, round "
        "them, or aggregate over more records (coarser groups)."
    )


def min_rows(a: Analysis, rules: Rules) -> str:
    t = rules.min_rows

    def small(n: int) -> bool:
        return 0 < n < t or (n == 0 and rules.zeros_disclosive)

    # A row is named by its first key column; without keys it aggregates the whole input.
    first = a.keys[0][0] if a.keys else 0
    # Crosstab cells are counts, judged by min_cell_count; their rows are judged here.
    failed = [(r, first) for r, n in enumerate(a.group) if small(n)]
    if not failed:
        return ""
    return (
        f"{len(failed)} aggregate(s) summarise fewer than {t} records of the input: "
        f"{_where(a, failed)} (the rows' groups, by their key columns). Suppress them, or "
        "aggregate over more records (coarser groups)."
    )


def dominance(a: Analysis, rules: Rules) -> str:
    found: list[tuple[int, int]] = []
    negative: list[tuple[int, int]] = []
    judged: dict[str, tuple[list[int], bool]] = {}  # columns aggregating one input column
    for j, column in a.values:
        if column not in judged:
            groups = [
                a.inputs.contributions(*a.row_key(r), column) or None
                for r in range(len(a.table.rows))
            ]
            judged[column] = acro_rules.dominated(groups, rules.appetite())
        rows, refused = judged[column]
        (negative if refused else found).extend((r, j) for r in rows)
    parts = []
    if found:
        parts.append(
            f"{len(found)} cell(s) are dominated by a few records (the largest "
            f"{rules.dominance_n} make up {rules.dominance_k:.0%} or more of the total, or all "
            f"but the largest 2 make up less than {rules.p_ratio:.0%} of the largest): "
            f"{_where(a, found)}. Suppress those cells, or aggregate over more records so "
            "that no few records dominate."
        )
    if negative:
        parts.append(
            f"dominance is not defined where negative values are aggregated: "
            f"{_where(a, negative)}. Aggregate positive and negative values separately."
        )
    return " ".join(parts)


def max_rows_ratio(a: Analysis, rules: Rules) -> str:
    limit = max(1, int(rules.max_rows_ratio * a.inputs.rows))
    if len(a.table.rows) <= limit:
        return ""
    return (
        f"the table has {len(a.table.rows)} rows, more than {rules.max_rows_ratio:g} times "
        "the rows of the input. Aggregate into fewer rows (counts or statistics over groups)."
    )


def no_identifiers(a: Analysis, rules: Rules) -> str:
    tagged = {name: tags for name, tags in a.schema if set(tags) & set(rules.identifier_tags)}
    if not tagged:
        return ""
    folded = {n.casefold(): n for n in tagged}
    parts = []
    named = [j for j, n in enumerate(a.table.columns) if n.casefold() in folded]
    if named:
        tags = sorted({t for j in named for t in tagged[folded[a.table.columns[j].casefold()]]})
        labels = ", ".join(a.label(j) for j in named)
        parts.append(
            f"{labels} {'is' if len(named) == 1 else 'are'} tagged "
            f"{', '.join(t for t in tags if t in rules.identifier_tags)} in the dataset's "
            "schema. Remove identifier columns."
        )
    ids: dict[str, set[str]] = {}  # an identifier value -> the input columns holding it
    for name in tagged:
        source = a.inputs.resolve(name)
        if source is None:
            continue
        for v in a.inputs.values(source):
            if len(v) >= MIN_ID_LEN:
                ids.setdefault(v, set()).add(source)
    if ids:
        found: set[str] = set()
        header = [j for j, n in enumerate(a.table.columns) if _holds(n, ids, found)]
        if header:
            parts.append(
                f"the names of {', '.join(f'column {j + 1}' for j in header)} are values of "
                f"the identifier column(s) {', '.join(sorted(found))}."
            )
        found = set()
        cells = [
            (r, j)
            for r, row in enumerate(a.table.rows)
            for j, v in enumerate(row)
            if j not in named and _holds(v, ids, found)
        ]
        if cells:
            parts.append(
                f"{len(cells)} cell(s) hold values of the identifier column(s) "
                f"{', '.join(sorted(found))}: {_where(a, cells)}."
            )
    if not parts:
        return ""
    return " ".join(parts) + " Release counts or aggregates over groups, not identifiers."


def _holds(value: str, ids: dict[str, set[str]], found: set[str]) -> bool:
    """Whether a cell is, or holds as a word, an identifier value; adds whose to `found`."""
    hits = [value] if value in ids else [t for t in _TOKEN.findall(value) if t in ids]
    for hit in hits:
        found |= ids[hit]
    return bool(hits)


CHECKS: dict[str, Callable[[Analysis, Rules], str]] = {
    "dominance": dominance,
    "max_rows_ratio": max_rows_ratio,
    "min_cell_count": min_cell_count,
    "min_rows": min_rows,
    "no_identifiers": no_identifiers,
}
