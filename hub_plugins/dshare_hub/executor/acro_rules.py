"""ACRO's own disclosure rules, called on the tables the gate recomputed from the input.

ACRO (SACRO project, `acro` on PyPI) checks tables a researcher builds through its own
API: `acro.crosstab(...)` keeps the evidence (count, sum, top-n tables) and runs its
checks on it. A job's output is a file, and the job is hostile: it can write an ACRO
results.json that says anything. So the gate rebuilds the evidence itself from the lease's
input and hands it to ACRO's check functions (`SDCChecks.check_min_threshold`,
`check_presence_of_zero`, `check_nk_dominance`, `check_ppercent_dominance`) with the
owner's parameters as ACRO's risk appetite: ACRO's rules, the gate's evidence.

Importing acro has side effects, contained here: it imports matplotlib (which writes a
font cache into its config directory), calls `logging.basicConfig` and sets a global
warnings filter. It is imported once, lazily, by the gate only (never where a job or a
scientist's code runs), into a throw-away matplotlib directory, and the root logger and
warnings filters are put back as they were.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import warnings
from types import SimpleNamespace
from typing import Any

_lock = threading.Lock()
_module: Any = None


def _sdcchecks() -> Any:
    global _module
    with _lock:
        if _module is None:
            root = logging.getLogger()
            handlers, level = list(root.handlers), root.level
            scratch = tempfile.mkdtemp(prefix="dshare-acro-")
            saved = {k: os.environ.get(k) for k in ("MPLCONFIGDIR", "MPLBACKEND")}
            os.environ.update(MPLCONFIGDIR=scratch, MPLBACKEND="Agg")
            try:
                with warnings.catch_warnings():
                    from acro import sdcchecks
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                shutil.rmtree(scratch, ignore_errors=True)
                root.handlers[:] = handlers
                root.setLevel(level)
            # ACRO logs its tables at debug level: never into the executor's log.
            logging.getLogger("acro").setLevel(logging.WARNING)
            _module = sdcchecks
        return _module


def _checks(appetite: dict[str, Any]) -> Any:
    return _sdcchecks().SDCChecks(appetite)


def appetite(
    *,
    threshold: int = 10,
    zeros: bool = True,
    nk_n: int = 2,
    nk_k: float = 0.9,
    p: float = 0.1,
) -> dict[str, Any]:
    """ACRO's risk appetite (its default.yaml's keys) from the owner's parameters."""
    return {
        "safe_threshold": threshold,
        "safe_dof_threshold": threshold,
        "safe_nk_n": nk_n,
        "safe_nk_k": nk_k,
        "safe_pratio_p": p,
        "check_missing_values": False,
        "survival_safe_threshold": threshold,
        "zeros_are_disclosive": zeros,
    }


def _evidence(tables: dict[str, Any]) -> Any:
    return _sdcchecks().SDCEvidence(interim_tables=tables)


def _cells(mask: Any) -> list[tuple[int, int]]:
    import numpy as np

    rows, cols = np.where(mask.fillna(True).to_numpy(dtype=bool))
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


def small_cells(counts: list[list[float]], appetite: dict[str, Any]) -> list[tuple[int, int]]:
    """(row, column) of every count cell ACRO's threshold rule (and, when zeros are
    disclosive, its zero rule) fails; `counts` is rows x columns, NaN where no cell."""
    import pandas as pd

    table = pd.DataFrame(counts, dtype=float)
    if table.empty:
        return []
    checks = _checks(appetite)
    evidence = _evidence({"count_table": table})
    model = SimpleNamespace(model_type="table", get_allfalse_table=lambda: table != table)
    _s, _m, below = checks.check_min_threshold("table", evidence, model)
    _s, _m, zeros = checks.check_presence_of_zero("table", evidence, model)
    present = table.notna()
    below = below & present
    if not appetite["zeros_are_disclosive"]:
        below = below & (table != 0)
    return sorted(set(_cells(below)) | set(_cells(zeros & present)))


def dominated(groups: list[list[float] | None], appetite: dict[str, Any]) -> tuple[list[int], bool]:
    """The rows whose contributions ACRO's n,k or p-ratio rule fails (None: no contributions),
    and whether ACRO refused to judge because a group has negative contributions (then the
    rows are those with negatives)."""
    import pandas as pd

    if not groups:
        return [], False
    n = appetite["safe_nk_n"]
    nan = float("nan")

    def frame(f: Any) -> Any:
        return pd.DataFrame([[f(g) if g else nan] for g in groups], dtype=float)

    tables = {
        "sum": frame(sum),
        "max": frame(max),
        "top_2_sum": frame(lambda g: sum(sorted(g, reverse=True)[:2])),
        "top_n_sum": frame(lambda g: sum(sorted(g, reverse=True)[:n])),
        "num_negative": frame(lambda g: sum(1 for x in g if x < 0)),
    }
    checks = _checks(appetite)
    evidence = _evidence(tables)
    status, _m, nk = checks.check_nk_dominance("table", evidence, None)
    if status == "review":  # ACRO: "Dominance not defined when negative value are present"
        return sorted({r for r, _c in _cells(nk & tables["sum"].notna())}), True
    _s, _m, pratio = checks.check_ppercent_dominance("table", evidence, None)
    present = tables["sum"].notna()
    rows = {r for r, _c in _cells(nk & present)} | {r for r, _c in _cells(pratio & present)}
    return sorted(rows), False
