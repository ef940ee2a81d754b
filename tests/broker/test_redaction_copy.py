"""The owner's broker materializes a redacted copy, never the raw directory, for a lessee
its policy hides columns from (real files, real regopy, the real LocalMaterializer)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import re
from pathlib import Path

import pytest

from dshare_hub.broker.materialize import LocalMaterializer, MaterializeError
from dshare_hub.broker.redacted import MASK, RedactionKeys
from dshare_hub.demo.content import PAYMENT_COLUMNS, PAYMENTS_REDACTION

pytestmark = pytest.mark.asyncio

ROWS = [
    ["1", "PAYMENT", "9839.64", "C1231006815", "170136.0", "M1979787155", "0"],
    ["1", "TRANSFER", "181.0", "C1305486145", "181.0", "C553264065", "1"],
    ["2", "CASH_OUT", "181.0", "C1231006815", "0.0", "C38997010", "1"],
]
HEADER = [c["name"] for c in PAYMENT_COLUMNS]
MIXED = """\
package dshare.redaction

import rego.v1

action := "hash" if input.column.name == "nameOrig"
action := "mask" if input.column.name == "nameDest"
action := "remove" if "sensitive" in input.column.tags
"""
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def table(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([HEADER, *rows])
    return out.getvalue()


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    (root / "payments").mkdir(parents=True)
    (root / "payments" / "transactions.csv").write_text(table(ROWS))
    return root


def asset(redaction: str = PAYMENTS_REDACTION) -> dict[str, object]:
    return {
        "id": "uis-payments",
        "name": "UiS mobile payments",
        "owner_org": "UiS",
        "storage_type": "local",
        "tags": [],
        "columns": PAYMENT_COLUMNS,
        "redaction": redaction,
        "policy": {},
    }


def lease(org: str = "UiO", lease_id: str = "l-1") -> dict[str, object]:
    return {
        "id": lease_id,
        "lessee_org": org,
        "purpose": "fraud model",
        "expires_at": "2099-01-01T00:00:00Z",
    }


def materializer(tmp_path: Path, storage: Path) -> LocalMaterializer:
    return LocalMaterializer(
        tmp_path / "broker",
        redacted_dir=storage / ".dshare-redacted",
        redaction_keys=RedactionKeys(tmp_path / "broker" / "redaction.key"),
    )


def read(handle: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO((Path(handle) / "transactions.csv").read_text())))


async def test_another_org_reads_hashed_ids_and_every_other_column_intact(tmp_path, storage):
    m = materializer(tmp_path, storage)
    details = {"path": str(storage / "payments")}
    mount = await m.materialize(
        asset=asset(), details=details, lease=lease(), run_id="r-1", user="ola"
    )
    handle = Path(mount["handle"])
    real = os.path.realpath(handle)
    assert real == str(storage / ".dshare-redacted" / "r-1" / "l-1")
    assert real.startswith(str(storage) + "/"), "the executor accepts only the storage roots"
    rows = read(mount["handle"])
    assert rows[0] == HEADER
    orig, dest = HEADER.index("nameOrig"), HEADER.index("nameDest")
    for got, raw in zip(rows[1:], ROWS, strict=True):
        assert HEX64.match(got[orig]) and HEX64.match(got[dest]), got
        assert got[orig] != raw[orig]
        keep = [i for i in range(len(HEADER)) if i not in (orig, dest)]
        assert [got[i] for i in keep] == [raw[i] for i in keep]
    # The same id hashes the same (joins work); different ids differently.
    assert rows[1][orig] == rows[3][orig] != rows[2][orig]
    # Keyed: the plain SHA-256 of an id a lessee guesses is not what they see.
    assert rows[1][orig] != hashlib.sha256(b"C1231006815").hexdigest()
    secret = (tmp_path / "broker" / "redaction.key").read_bytes()
    key = hmac.new(secret, b"dshare-redaction-v1\x00UiO", hashlib.sha256).digest()
    assert rows[1][orig] == hmac.new(key, b"C1231006815", hashlib.sha256).hexdigest()
    assert oct((tmp_path / "broker" / "redaction.key").stat().st_mode & 0o777) == "0o600"
    record = json.loads(Path(mount["handle"] + ".json").read_text())
    assert record["redacted"] == {"nameDest": "hash", "nameOrig": "hash"}
    assert str(storage) not in json.dumps(record)

    # Asked again for the same run: the same mount; released: handle and copy are gone.
    again = await m.materialize(
        asset=asset(), details=details, lease=lease(), run_id="r-1", user="ola"
    )
    assert again == mount
    assert await m.release(run_id="r-1") == 1
    assert not os.path.lexists(handle)
    assert not (storage / ".dshare-redacted" / "r-1").exists()
    assert (storage / "payments" / "transactions.csv").read_text() == table(ROWS)


async def test_two_lessee_orgs_cannot_link_their_hashes(tmp_path, storage):
    m = materializer(tmp_path, storage)
    details = {"path": str(storage / "payments")}
    uio = await m.materialize(
        asset=asset(), details=details, lease=lease("UiO", "l-1"), run_id="r-1", user="ola"
    )
    uib = await m.materialize(
        asset=asset(), details=details, lease=lease("UiB", "l-2"), run_id="r-2", user="per"
    )
    orig = HEADER.index("nameOrig")
    assert read(uio["handle"])[1][orig] != read(uib["handle"])[1][orig]


async def test_the_owner_reads_the_raw_directory(tmp_path, storage):
    m = materializer(tmp_path, storage)
    mount = await m.materialize(
        asset=asset(),
        details={"path": str(storage / "payments")},
        lease=lease("UiS"),
        run_id="r-1",
        user="siri",
    )
    assert os.path.realpath(mount["handle"]) == str(storage / "payments")
    assert not (storage / ".dshare-redacted").exists()


async def test_mask_and_remove(tmp_path, storage):
    m = materializer(tmp_path, storage)
    mount = await m.materialize(
        asset=asset(MIXED),
        details={"path": str(storage / "payments")},
        lease=lease(),
        run_id="r-1",
        user="ola",
    )
    rows = read(mount["handle"])
    assert rows[0] == [h for h in HEADER if h != "oldbalanceOrg"]
    dest = rows[0].index("nameDest")
    assert {r[dest] for r in rows[1:]} == {MASK}
    assert all(len(r) == len(HEADER) - 1 for r in rows)


async def test_a_file_the_broker_cannot_redact_refuses_the_whole_mount(tmp_path, storage):
    (storage / "payments" / "notes.parquet").write_bytes(b"PAR1")
    m = materializer(tmp_path, storage)
    with pytest.raises(MaterializeError) as info:
        await m.materialize(
            asset=asset(),
            details={"path": str(storage / "payments")},
            lease=lease(),
            run_id="r-1",
            user="ola",
        )
    assert (info.value.code, info.value.message) == (
        "REDACTION_FAILED",
        "asset 'uis-payments': file 'notes.parquet' of the dataset is not a CSV or TSV file; "
        "its redaction policy hides columns and the broker can redact only CSV and TSV files, "
        "so nothing is mounted: ask the owner to move other files to another dataset",
    )
    handle = tmp_path / "broker" / "mounts" / "r-1" / "l-1"
    assert not os.path.lexists(handle), "no handle, so nothing raw to mount"
    assert list((storage / ".dshare-redacted" / "r-1").iterdir()) == []
    # The record stays for the reaper, which removes it with everything else.
    assert await m.release(run_id="r-1") == 1
    assert not (tmp_path / "broker" / "mounts" / "r-1").exists()


async def test_a_link_in_the_dataset_refuses_the_mount(tmp_path, storage):
    (storage / "payments" / "raw.csv").symlink_to(storage / "payments" / "transactions.csv")
    m = materializer(tmp_path, storage)
    with pytest.raises(MaterializeError) as info:
        await m.materialize(
            asset=asset(),
            details={"path": str(storage / "payments")},
            lease=lease(),
            run_id="r-1",
            user="ola",
        )
    assert info.value.message.startswith(
        "asset 'uis-payments': file 'raw.csv' of the dataset is not a regular file;"
    )


async def test_a_row_with_a_shifted_column_is_refused_not_guessed(tmp_path, storage):
    bad = table(ROWS) + "3,PAYMENT,1.0,C1,extra,0.0,M2,0\n"
    (storage / "payments" / "transactions.csv").write_text(bad)
    m = materializer(tmp_path, storage)
    with pytest.raises(MaterializeError) as info:
        await m.materialize(
            asset=asset(),
            details={"path": str(storage / "payments")},
            lease=lease(),
            run_id="r-1",
            user="ola",
        )
    assert info.value.message == (
        "asset 'uis-payments': row 5 of 'transactions.csv' has 8 fields where its header has "
        "7; the broker does not guess which value is which column: fix the file"
    )


async def test_an_undecidable_policy_mounts_nothing(tmp_path, storage):
    both = PAYMENTS_REDACTION + '\naction := "mask" if input.column.name == "nameOrig"\n'
    m = materializer(tmp_path, storage)
    with pytest.raises(MaterializeError) as info:
        await m.materialize(
            asset=asset(both),
            details={"path": str(storage / "payments")},
            lease=lease(),
            run_id="r-1",
            user="ola",
        )
    assert (info.value.code, info.value.message) == (
        "REDACTION_FAILED",
        "asset 'uis-payments' is not mounted: its redaction: evaluating it for column "
        "'nameOrig' failed (two rules give it different actions?); make the rules give each "
        "column one action and use only built-in functions; its owner must fix the policy",
    )
    assert not (tmp_path / "broker" / "mounts" / "r-1" / "l-1.json").exists()


async def test_without_a_place_for_copies_a_redacted_dataset_is_not_mounted(tmp_path, storage):
    m = LocalMaterializer(tmp_path / "broker")
    with pytest.raises(MaterializeError) as info:
        await m.materialize(
            asset=asset(),
            details={"path": str(storage / "payments")},
            lease=lease(),
            run_id="r-1",
            user="ola",
        )
    assert (info.value.code, info.value.message) == (
        "REDACTION_UNAVAILABLE",
        "asset 'uis-payments' hides columns from UiO and this broker has nowhere to write "
        "redacted copies (BrokerApp.storage_roots or BrokerApp.redacted_copies_dir); nothing "
        "is mounted raw",
    )
