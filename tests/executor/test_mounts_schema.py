"""The schema the disclosure checks know identifiers by comes from the owner's record,
like the release policy: never from the broker that submits the run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dshare_hub.broker.materialize import LocalMaterializer
from dshare_hub.executor.mounts import OrgPlaces, open_mount

LATER = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
ASSET = {
    "id": "ds-1",
    "name": "People",
    "storage_type": "local",
    "columns": [
        {"name": "pid", "type": "string", "tags": ["pii"], "mock": {"pattern": "P####"}},
        {"name": "region", "type": "string", "tags": []},
    ],
    "policy": {"release": {"checks": ["no_identifiers"], "disclosure": {"min_rows": 25}}},
}


def test_the_owners_record_carries_the_schemas_tags_and_the_parameters(world: Path) -> None:
    data = world / "data"
    data.mkdir()
    (data / "people.csv").write_text("pid,region\nP0001,north\n")
    broker = world / "uio-broker"
    broker.mkdir(mode=0o700)
    made = asyncio.run(
        LocalMaterializer(broker).materialize(
            asset=ASSET,
            details={"path": str(data)},
            lease={"id": "lease-1", "expires_at": LATER},
            run_id="run-1",
            user="sam",
        )
    )
    roots = {"UiO": OrgPlaces(str(broker / "mounts"), (str(data),), 60301)}
    # The submitting broker's own idea of the schema is not asked for and not read.
    mount = {
        "org": "UiO",
        "lease_id": "lease-1",
        "handle": made["handle"],
        "expires_at": LATER,
        "columns": [{"name": "pid", "tags": []}],
    }
    opened = open_mount("claim-1", mount, run_id="run-1", user="sam", orgs=roots)
    try:
        assert [(c.name, c.tags) for c in opened.policy.columns] == [
            ("pid", ("pii",)),
            ("region", ()),
        ]
        assert opened.policy.checks == ("no_identifiers",)
        assert opened.policy.disclosure.min_rows == 25
    finally:
        opened.close()
