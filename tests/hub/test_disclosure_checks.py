"""The gate's disclosure checks in the embedded deployment, from where a scientist stands.

A UiS scientist leases UiS's payments (the demo turns the checks on for it) and, from a
real kernel, runs a job that writes what a hostile or careless scientist would: a table
of customers, the same ids under another column name or as a column's name, fraud counts
with small cells, sums over groups of one or two payments, a file that claims to be CSV
and is not, amounts shifted by a half under a made-up column name, a Parquet file of a
kilobyte that decodes to gigabytes (to exhaust the root executor's memory), and the
honest result, counts by transaction type as CSV and as JSON. Only the honest tables
arrive in the home; each held file says which check held it, where, and what to change,
and no message quotes the data.
"""

from __future__ import annotations

import base64
import csv
import io
import shutil
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hubclient import signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATASET = "uis-payments"
USER = "uis-scientist"
WORKFLOW = """\
name: disclosure
jobs:
- command: 'python3 sdc_job.py'
  volumes:
  - id: '{dataset}'
    name: 'payments'
    path: '/data/payments'
"""
JOB = """\
import base64, collections, csv, json, os
rows = list(csv.DictReader(open('/data/payments/transactions.csv')))
os.makedirs('sdc', exist_ok=True)
def table(name, header, lines):
    with open(os.path.join('sdc', name), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(lines)
table('per_person.csv', ['nameOrig', 'amount'], [(r['nameOrig'], r['amount']) for r in rows[:25]])
table('renamed.csv', ['customer', 'step'], [(r['nameOrig'], r['step']) for r in rows[:3]])
by_type = collections.Counter(r['type'] for r in rows)
table('by_type.csv', ['type', 'count'], sorted(by_type.items()))
table('header.csv', ['type', rows[0]['nameOrig']], sorted(by_type.items()))
json.dump([{'type': k, 'n': v} for k, v in sorted(by_type.items())], open('sdc/by_type.json', 'w'))
fraud = collections.Counter((r['type'], r['isFraud']) for r in rows)
table('fraud.csv', ['type', 'isFraud', 'x'], sorted((t, f, n) for (t, f), n in fraud.items()))
open('sdc/broken.csv', 'wb').write(bytes(range(256)))
sums = collections.defaultdict(float)
for r in rows:
    sums[(int(r['step']), r['type'])] += float(r['amount'])
table('sums.csv', ['step', 'type', 'amount_sum'],
      [(*k, round(v, 2)) for k, v in sorted(sums.items())])
table('shifted.csv', ['q'], [(float(r['amount']) + 0.5,) for r in rows[:5]])
open('sdc/bomb.parquet', 'wb').write(base64.b64decode('{bomb}'))
print('wrote', len(rows))
"""


def _bomb() -> str:
    """One 1 MiB string in a dictionary page, repeated 4000 times: 4 GiB decoded."""
    out = io.BytesIO()
    bomb = pa.DictionaryArray.from_arrays(pa.array([0] * 4000, pa.int32()), ["x" * (1 << 20)])
    pq.write_table(pa.table({"v": bomb}), out, compression="zstd")
    return base64.b64encode(out.getvalue()).decode()


def _fix(check: str) -> str:
    return {
        "no_identifiers": "Release counts or aggregates over groups, not identifiers.",
        "min_cell_count": "Suppress cells below 10, round them, or aggregate over more records "
        "(coarser groups).",
    }[check]


async def test_per_person_tables_are_held_and_aggregates_released(deployment, logins) -> None:
    layout = deployment.layout
    data = (layout.data / "uis" / "payments" / "transactions.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(data)))
    fraud = Counter((r["type"], r["isFraud"]) for r in rows)
    small = sorted(k for k, n in fraud.items() if n < 10)
    assert small, "the demo's payments have no small fraud cell: this test's premise is gone"

    scientist = await signed_in(layout.public_url, USER, logins[USER])
    await scientist.put_text("sdc-workflow.yaml", WORKFLOW.format(dataset=DATASET))
    await scientist.put_text("sdc_job.py", JOB.replace("{bomb}", _bomb()))
    out, errors = await scientist.run_code(
        "from dshare_server.session import lease, release\n"
        f"mine = lease({DATASET!r}, hours=1, purpose='disclosure checks')\n"
        "%load_ext dshare_server\n"
        "run = %dshare_run sdc-workflow.yaml\n"
        "print('RUN', run.id, run.state)\n"
        "release(mine['id'])\n"
    )
    assert not errors, (out, errors)
    _, run_id, state = next(line for line in out.splitlines() if line.startswith("RUN ")).split()
    assert state == "succeeded", out

    status, run = await scientist.api(f"dshare/api/runs/{run_id}")
    assert status == 200, run
    files = {o["path"]: o for o in run["outputs"] if o["path"].startswith("sdc/")}
    assert {p: o["decision"] for p, o in files.items()} == {
        "sdc/by_type.csv": "released",
        "sdc/by_type.json": "released",
        "sdc/per_person.csv": "held",
        "sdc/renamed.csv": "held",
        "sdc/fraud.csv": "held",
        "sdc/broken.csv": "held",
        "sdc/shifted.csv": "held",
        "sdc/header.csv": "held",
        "sdc/sums.csv": "held",
        "sdc/bomb.parquet": "held",
    }
    assert files["sdc/per_person.csv"]["held_by"] == ["UiS"]

    def failed(path: str) -> dict[str, str]:
        return {c["name"]: c["message"] for c in files[path]["checks"] if not c["passed"]}

    assert failed("sdc/per_person.csv")["no_identifiers"] == (
        "sdc/per_person.csv: column 1 ('nameOrig') is tagged pii in the dataset's schema. "
        f"Remove identifier columns. {_fix('no_identifiers')}"
    )
    assert {"min_rows", "no_identifiers"} <= set(failed("sdc/per_person.csv"))
    # The attacker renames the column: its values still are the customers' ids.
    renamed = failed("sdc/renamed.csv")
    assert renamed["no_identifiers"] == (
        "sdc/renamed.csv: 3 cell(s) hold values of the identifier column(s) nameOrig: "
        f"column 1: data rows 1, 2, 3. {_fix('no_identifiers')}"
    )
    assert set(renamed) == {"min_rows", "no_identifiers"}  # one customer per row, too
    # Counts under a name that hides them are still counts, recomputed from the input.
    positions = sorted(fraud).index(small[0]) + 1
    assert failed("sdc/fraud.csv")["min_cell_count"].startswith(
        f"sdc/fraud.csv: {len(small)} frequency cell(s) count fewer than 10 records (zeros "
        f"included): column 3: data rows {positions}"
    )
    assert failed("sdc/broken.csv") == {
        "table": "the disclosure checks cannot read sdc/broken.csv as a table: it is not "
        "UTF-8 text (byte 128); dataset UiS mobile payments holds such files for its "
        "owner's review. Write results as tables: CSV, TSV, Parquet, or JSON records."
    }
    # An id in a header is an id too, and the message names the column by position only.
    assert failed("sdc/header.csv")["no_identifiers"] == (
        "sdc/header.csv: the names of column 2 are values of the identifier column(s) "
        f"nameOrig. {_fix('no_identifiers')}"
    )
    # Sums over groups the job chose so small that one or two payments make them up.
    groups: dict[tuple[int, str], list[float]] = {}
    for r in rows:
        groups.setdefault((int(r["step"]), r["type"]), []).append(float(r["amount"]))

    def dominated(amounts: list[float]) -> bool:  # ACRO's n,k (2, 0.9) and p-ratio (0.1)
        top = sorted(amounts, reverse=True)
        return sum(top[:2]) >= 0.9 * sum(top) or sum(top[2:]) < 0.1 * top[0]

    few = sum(1 for g in groups.values() if dominated(g))
    assert few, "no (step, type) group of the demo's payments is dominated: premise gone"
    assert failed("sdc/sums.csv")["dominance"].startswith(
        f"sdc/sums.csv: {few} cell(s) are dominated by a few records (the largest 2 make up "
        "90% or more of the total"
    )
    # Numbers no input column's statistic explains are not judged as if they were counts.
    assert set(failed("sdc/shifted.csv")) == {"table"}
    assert failed("sdc/shifted.csv")["table"].startswith(
        "the disclosure checks cannot verify sdc/shifted.csv: 5 cell(s) are not what their "
        "column is taken for (column 1: data rows 1, 2, 3, 4, 5)"
    )
    # The gate refuses to decode the bomb (the run finished: the executor survived it).
    assert failed("sdc/bomb.parquet") == {
        "table": "the disclosure checks cannot read sdc/bomb.parquet as a table: it decodes "
        "to more than 268435456 bytes, more than the gate reads; dataset UiS mobile payments "
        "holds such files for its owner's review. Write results as tables: CSV, TSV, "
        "Parquet, or JSON records."
    }
    # What the job printed is not a table either: the owner reviews the job's log too.
    logs = [o for o in run["outputs"] if o["path"].endswith(".log")]
    assert logs and all(o["decision"] == "held" for o in logs), run["outputs"]

    # Only the aggregates arrived; no message quotes a customer id or an amount.
    home = layout.homes / USER
    by_type = Counter(r["type"] for r in rows)
    assert (home / "sdc" / "by_type.csv").read_bytes().decode() == (
        "type,count\r\n" + "".join(f"{k},{v}\r\n" for k, v in sorted(by_type.items()))
    )
    assert (home / "sdc" / "by_type.json").is_file()
    held_files = ("per_person.csv", "renamed.csv", "fraud.csv", "broken.csv", "shifted.csv")
    for held in (*held_files, "header.csv", "sums.csv", "bomb.parquet"):
        assert not (home / "sdc" / held).exists(), held
    values = {r[c] for r in rows for c in ("nameOrig", "nameDest", "amount")}
    messages = [c["message"] for o in files.values() for c in o["checks"]]
    assert not [m for m in messages if any(v in m for v in values)]

    # The scientist deletes what arrived: later suites scan homes for raw data.
    shutil.rmtree(home / "sdc")
