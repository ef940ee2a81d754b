"""The parameters of the output gate's disclosure checks, as an owner sets them per dataset.

They live in the dataset's release policy (`policy.release.disclosure`); the contract
validates them so that every executor runs what the ledger accepted. Each default is the
one of ACRO (the SACRO project's "Automatic Checking of Research Outputs", `acro` 1.0.2,
acro/default.yaml), the field's reference tool; docs/output-gate.md gives each source.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import INVALID_ARGUMENT, ContractError

# The checks of tables a run writes (dshare_hub.executor.gate runs them).
DISCLOSURE_CHECKS = ("dominance", "max_rows_ratio", "min_cell_count", "min_rows", "no_identifiers")

DEFAULT_DISCLOSURE: dict[str, Any] = {
    # ACRO safe_threshold: no frequency cell below 10 (DataSHIELD's nfilter.tab is 3).
    "min_cell_count": 10,
    # ACRO zeros_are_disclosive: an empty cell says "nobody in this group has it".
    "zeros_disclosive": True,
    # ACRO safe_nk_n / safe_nk_k: the 2 largest contributors make up under 90% of a cell.
    "dominance_n": 2,
    "dominance_k": 0.9,
    # ACRO safe_pratio_p: what is left after the 2 largest is at least 10% of the largest.
    "p_ratio": 0.1,
    # ACRO safe_threshold again, for the records behind any aggregate (mean, sum, row).
    "min_rows": 10,
    # 1 / min_rows: a table whose every row aggregates min_rows records has at most that.
    "max_rows_ratio": 0.1,
    # The column tags that make a column an identifier (the demo's schemas tag pii).
    "identifier_tags": ["identifier", "pii"],
}
DISCLOSURE_FIELDS = tuple(sorted(DEFAULT_DISCLOSURE))
MAX_COUNT = 1_000_000
_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,47}$")  # as validate.TAG_RE
_MAX_TAGS = 32


def _bad(field: str, message: str) -> ContractError:
    return ContractError(INVALID_ARGUMENT, f"{field}: {message}", key=field)


def _shown(value: Any) -> str:
    text = repr(value)  # the owner's own input, cut so a refusal stays readable
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(value: Any, field: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _bad(field, f"must be a whole number from {lo} to {hi}, got {_shown(value)}")
    return value


def _fraction(value: Any, field: str, *, zero: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 <= value <= 1 if zero else 0 < value <= 1):
        span = "from 0 to 1" if zero else "above 0 and at most 1"
        raise _bad(field, f"must be a number {span} (a fraction), got {_shown(value)}")
    return float(value)


def disclosure_params(value: Any, field: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Complete, validated disclosure parameters: `value`'s over `base`'s over the defaults."""
    if not isinstance(value, dict):
        raise _bad(field, f"must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - set(DISCLOSURE_FIELDS))
    if unknown:
        allowed = ", ".join(DISCLOSURE_FIELDS)
        raise _bad(field, f"unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    merged = {**DEFAULT_DISCLOSURE, **(base or {}), **value}
    zeros = merged["zeros_disclosive"]
    if not isinstance(zeros, bool):
        raise _bad(f"{field}.zeros_disclosive", "must be true or false")
    tags = merged["identifier_tags"]
    if not isinstance(tags, list) or len(tags) > _MAX_TAGS:
        raise _bad(f"{field}.identifier_tags", f"must be a list of at most {_MAX_TAGS} tags")
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            raise _bad(
                f"{field}.identifier_tags[{i}]",
                "must be 1-48 lower-case letters, digits, '.', '_', ':' or '-'",
            )
    return {
        "dominance_k": _fraction(merged["dominance_k"], f"{field}.dominance_k", zero=False),
        "dominance_n": _whole(merged["dominance_n"], f"{field}.dominance_n", 1, 100),
        "identifier_tags": sorted(set(tags)),
        "max_rows_ratio": _fraction(
            merged["max_rows_ratio"], f"{field}.max_rows_ratio", zero=False
        ),
        "min_cell_count": _whole(merged["min_cell_count"], f"{field}.min_cell_count", 1, MAX_COUNT),
        "min_rows": _whole(merged["min_rows"], f"{field}.min_rows", 1, MAX_COUNT),
        "p_ratio": _fraction(merged["p_ratio"], f"{field}.p_ratio", zero=True),
        "zeros_disclosive": zeros,
    }
