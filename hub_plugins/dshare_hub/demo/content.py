"""The demo's organizations, people and datasets, generated on first start.

Everything is deterministic (seeded by organization name), so the thesis's experiment has a
known answer: each corpus contains the word `lorem` a number of times recorded in the owner's
own manifest, which scientists never see.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORGS: tuple[str, ...] = ("UiS", "UiO", "UiB")

WORDS = [
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
]


@dataclass(frozen=True)
class DemoUser:
    name: str
    org: str
    roles: tuple[str, ...]


@dataclass
class DemoDataset:
    """One dataset as its owner registers it (the broker's DatasetIn)."""

    slug: str
    org: str
    name: str
    description: str
    tags: list[str]
    directory: Path
    columns: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    redaction: str = ""  # Rego (dshare_hub.broker.redaction); "" = every column as it is

    def skeleton(self) -> list[dict[str, Any]]:
        return [
            {"path": str(p.relative_to(self.directory)), "size": p.stat().st_size}
            for p in sorted(self.directory.rglob("*"))
            if p.is_file()
        ]

    def registration(self) -> dict[str, Any]:
        return {
            "id": self.slug,
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "storage": {"type": "local", "details": {"path": str(self.directory)}},
            "columns": self.columns,
            "skeleton": self.skeleton(),
            "policy": self.policy,
            "redaction": self.redaction,
        }


def demo_users() -> list[DemoUser]:
    users = []
    for org in ORGS:
        users.append(DemoUser(f"{org.lower()}-admin", org, ("admin",)))
        users.append(DemoUser(f"{org.lower()}-scientist", org, ("scientist",)))
    return users


def _corpus(directory: Path, rng: random.Random, files: int) -> int:
    """Write `files` text files; return how often `lorem` occurs in them."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for i in range(files):
        lines = []
        for _ in range(rng.randint(20, 60)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
            for _ in range(rng.choice((0, 0, 1, 2))):
                words.insert(rng.randrange(len(words) + 1), "lorem")
            count += words.count("lorem")
            lines.append(" ".join(words))
        (directory / f"part-{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return count


# `mock`: the owner's ranges for the mock anyone sees before a lease (dshare_hub.mockdata);
# the same ranges _payments draws the sample data from.
PAYMENT_COLUMNS = [
    {"name": "step", "type": "integer", "tags": [], "mock": {"min": 1, "max": 40}},
    {
        "name": "type",
        "type": "string",
        "tags": [],
        "mock": {"values": ["PAYMENT", "TRANSFER", "CASH_OUT", "DEBIT"]},
    },
    {"name": "amount", "type": "number", "tags": [], "mock": {"min": 5, "max": 20000}},
    {"name": "nameOrig", "type": "string", "tags": ["pii"], "mock": {"pattern": "C#########"}},
    {
        "name": "oldbalanceOrg",
        "type": "number",
        "tags": ["sensitive"],
        "mock": {"min": 0, "max": 50000},
    },
    {"name": "nameDest", "type": "string", "tags": ["pii"], "mock": {"pattern": "M#########"}},
    {"name": "isFraud", "type": "integer", "tags": [], "mock": {"min": 0, "max": 1}},
]


# As in the Fybrik sample: other organizations get the customer ids hashed (a keyed hash:
# joins on them still work within one lessee organization), the owner everything.
PAYMENTS_REDACTION = """\
package dshare.redaction

import rego.v1

action := "hash" if {
	input.lessee_org != input.owner_org
	input.column.name in {"nameOrig", "nameDest"}
}
"""


# The gate's disclosure checks on, with their defaults (ACRO's): tables of counts and
# statistics over groups leave at once; per-person rows, and files that are not tables
# (job logs too), wait for the owner's review.
PAYMENTS_RELEASE: dict[str, Any] = {
    "checks": [
        "dominance",
        "max_rows_ratio",
        "max_size",
        "min_cell_count",
        "min_rows",
        "no_identifiers",
        "verbatim_input",
    ],
}


def _payments(path: Path, rng: random.Random, rows: int) -> None:
    """A PaySim-like table (the Fybrik sample's data), with PII-tagged customer ids."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([c["name"] for c in PAYMENT_COLUMNS])
        for step in range(rows):
            kind = rng.choice(("PAYMENT", "TRANSFER", "CASH_OUT", "DEBIT"))
            amount = round(rng.uniform(5, 20000), 2)
            writer.writerow(
                [
                    step // 10 + 1,
                    kind,
                    amount,
                    f"C{rng.randrange(10**9):09d}",
                    round(rng.uniform(0, 50000), 2),
                    f"M{rng.randrange(10**9):09d}",
                    int(kind == "TRANSFER" and rng.random() < 0.05),
                ]
            )


def make_datasets(root: Path) -> list[DemoDataset]:
    """Create (once) every organization's sample data under root/<org>/; return them all.

    The owner-side manifest root/<org>/expected.json holds the corpus's `lorem` count.
    """
    datasets: list[DemoDataset] = []
    for org in ORGS:
        # Deterministic sample data, not secrets: the seeded generator is the point.
        rng = random.Random(f"dshare-demo-{org}")  # noqa: S311
        org_dir = root / org.lower()
        corpus_dir = org_dir / "lorem-corpus"
        manifest = org_dir / "expected.json"
        if not manifest.exists():
            lorem = _corpus(corpus_dir, rng, files=5)
            _payments(org_dir / "payments" / "transactions.csv", rng, rows=400)
            _payments(org_dir / "patients" / "visits.csv", rng, rows=120)
            tmp = manifest.with_suffix(".tmp")
            tmp.write_text(json.dumps({"lorem": lorem}, sort_keys=True))
            tmp.replace(manifest)
        low = org.lower()
        datasets += [
            DemoDataset(
                slug=f"{low}-lorem-corpus",
                org=org,
                name=f"{org} lorem corpus",
                description=(
                    f"Text files from {org} for the thesis's word-count experiment. "
                    "Workflows only: mount it in workflow.yaml, not in the notebook."
                ),
                tags=["text", "thesis", "workflow-only"],
                directory=corpus_dir,
                policy={
                    "max_duration_s": 86400,
                    "exclusive": False,
                    "max_concurrent": 10,
                    "allowed_orgs": [],
                    "approval_required": False,
                    "interactive": False,
                },
            ),
            DemoDataset(
                slug=f"{low}-payments",
                org=org,
                name=f"{org} mobile payments",
                description=(
                    "Synthetic mobile-money transactions in the style of PaySim. Customer ids "
                    "are tagged pii. May be mounted read-only in the notebook."
                ),
                tags=["tabular", "finance", "pii"],
                directory=org_dir / "payments",
                columns=PAYMENT_COLUMNS,
                redaction=PAYMENTS_REDACTION,
                policy={
                    "max_duration_s": 7 * 86400,
                    "exclusive": False,
                    "max_concurrent": 10,
                    "allowed_orgs": [],
                    "approval_required": False,
                    "interactive": True,
                    "release": PAYMENTS_RELEASE,
                },
            ),
            DemoDataset(
                slug=f"{low}-patient-visits",
                org=org,
                name=f"{org} patient visits",
                description=(
                    "Synthetic visit records. The owner approves each lease; one lessee at a time."
                ),
                tags=["tabular", "health", "pii", "approval"],
                directory=org_dir / "patients",
                columns=PAYMENT_COLUMNS,
                redaction=PAYMENTS_REDACTION,
                policy={
                    "max_duration_s": 3 * 86400,
                    "exclusive": True,
                    "max_concurrent": 1,
                    "allowed_orgs": [o for o in ORGS if o != org],
                    "approval_required": True,
                    "interactive": False,
                },
            ),
        ]
    return datasets


def expected_lorem(root: Path, org: str) -> int:
    """The owner's record of how often `lorem` occurs in its corpus."""
    return int(json.loads((root / org.lower() / "expected.json").read_text())["lorem"])
