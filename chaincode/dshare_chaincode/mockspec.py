"""The owner-set value ranges of a column's mock (`columns[i].mock`), validated.

A mock is made from the public schema alone, so whatever is written here is public: it
says what plausible values look like (a range, a list of categories, an id pattern),
never what the real rows hold. Every refusal names the field and what to write instead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from .errors import INVALID_ARGUMENT, ContractError


def bad(field: str, message: str) -> ContractError:
    # validate.bad's twin: validate imports this module, so this one cannot import it.
    return ContractError(INVALID_ARGUMENT, f"{field}: {message}", key=field)


MOCK_FIELDS = ("max", "min", "null_fraction", "pattern", "values")
NUMERIC_TYPES = ("integer", "number")
TIME_TYPES = ("date", "datetime")
MAX_VALUES = 200
MAX_VALUE_LEN = 200
MAX_PATTERN = 64
# `#` is a digit, `?` an upper-case letter; every other character stands for itself.
PATTERN_DIGIT = "#"
PATTERN_LETTER = "?"
# Beyond this a range is a typo, and generated numbers would lose their precision.
MAX_ABS = 10**15


def _number(value: Any, field: str, ctype: str) -> int | float:
    if ctype == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(field, f"must be a whole number for an integer column, got {value!r}")
    elif not isinstance(value, int | float) or isinstance(value, bool):
        raise bad(field, f"must be a number for a number column, got {value!r}")
    if not -MAX_ABS <= value <= MAX_ABS:
        raise bad(field, f"must be between -{MAX_ABS} and {MAX_ABS}, got {value!r}")
    if value != value:  # NaN
        raise bad(field, "must be a number, got NaN")
    return value


def _moment(value: Any, field: str, ctype: str) -> str:
    example = "2024-01-31" if ctype == "date" else "2024-01-31T12:00:00Z"
    if not isinstance(value, str):
        raise bad(field, f"must be an ISO 8601 {ctype} such as {example!r}, got {value!r}")
    try:
        if ctype == "date":
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad(
            field, f"must be an ISO 8601 {ctype} such as {example!r}, got {value!r}"
        ) from None
    return value


def _order_key(value: Any, ctype: str) -> Any:
    if ctype == "date":
        return date.fromisoformat(value)
    if ctype == "datetime":
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # A time without a zone is read as UTC, as the generator writes it.
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return value


def _values(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise bad(field, f"must be a non-empty list of at most {MAX_VALUES} strings")
    if len(value) > MAX_VALUES:
        raise bad(field, f"must hold at most {MAX_VALUES} values, got {len(value)}")
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > MAX_VALUE_LEN:
            raise bad(f"{field}[{i}]", f"must be a string of 1-{MAX_VALUE_LEN} characters")
        if item in out:
            raise bad(f"{field}[{i}]", f"duplicates the value {item!r}")
        out.append(item)
    return out


def _pattern(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
        raise bad(
            field,
            f"must be a string of 1-{MAX_PATTERN} characters where '#' is a digit and '?' "
            "an upper-case letter, e.g. 'C#########'",
        )
    if not value.isprintable():
        raise bad(field, "must hold printable characters only")
    return value


def mock_ranges(value: Any, field: str, ctype: str) -> dict[str, Any]:
    """A column's validated mock ranges; `ctype` is the column's type."""
    if not isinstance(value, dict):
        raise bad(field, f"must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - set(MOCK_FIELDS))
    if unknown:
        raise bad(
            field, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(MOCK_FIELDS)}"
        )
    out: dict[str, Any] = {}
    bounds = [k for k in ("min", "max") if k in value]
    if bounds:
        if ctype in NUMERIC_TYPES:
            for k in bounds:
                out[k] = _number(value[k], f"{field}.{k}", ctype)
        elif ctype in TIME_TYPES:
            for k in bounds:
                out[k] = _moment(value[k], f"{field}.{k}", ctype)
        else:
            raise bad(
                f"{field}.{bounds[0]}",
                f"applies to integer, number, date and datetime columns, not {ctype!r}; "
                "give a string column values or a pattern",
            )
        if len(bounds) == 2 and _order_key(out["min"], ctype) > _order_key(out["max"], ctype):
            raise bad(f"{field}.max", f"must not be below min ({out['min']!r}), got {out['max']!r}")
    if "values" in value and "pattern" in value:
        raise bad(field, "give either values or pattern, not both")
    for k in ("values", "pattern"):
        if k in value and ctype != "string":
            raise bad(
                f"{field}.{k}",
                f"applies to string columns, not {ctype!r}; give an integer or number "
                "column min and max",
            )
    if "values" in value:
        out["values"] = _values(value["values"], f"{field}.values")
    if "pattern" in value:
        out["pattern"] = _pattern(value["pattern"], f"{field}.pattern")
    if "null_fraction" in value:
        nf = value["null_fraction"]
        if not isinstance(nf, int | float) or isinstance(nf, bool) or not 0 <= nf <= 1:
            raise bad(f"{field}.null_fraction", f"must be a number from 0 to 1, got {nf!r}")
        out["null_fraction"] = nf
    return out
