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
from dshare_hub.broker.redacted import MASK, RedactionKeys, hash_value
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


def read(handle: str, name: str = "transactions.csv") -> list[list[str]]:
    return list(csv.reader(io.StringIO((Path(handle) / name).read_text())))


async def mount(
    m: LocalMaterializer, storage: Path, redaction: str = PAYMENTS_REDACTION, org: str = "UiO"
) -> dict[str, object]:
    return await m.materialize(
        asset=asset(redaction),
        details={"path": str(storage / "payments")},
        lease=lease(org),
        run_id="r-1",
        user="ola",
    )


async def refused(
    m: LocalMaterializer, storage: Path, redaction: str = PAYMENTS_REDACTION
) -> MaterializeError:
    with pytest.raises(MaterializeError) as info:
        await mount(m, storage, redaction)
    return info.value


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
    mounted = await mount(m, storage, org="UiS")
    assert os.path.realpath(str(mounted["handle"])) == str(storage / "payments")
    assert not (storage / ".dshare-redacted").exists()


async def test_mask_and_remove(tmp_path, storage):
    m = materializer(tmp_path, storage)
    mounted = await mount(m, storage, MIXED)
    rows = read(str(mounted["handle"]))
    assert rows[0] == [h for h in HEADER if h != "oldbalanceOrg"]
    dest = rows[0].index("nameDest")
    assert {r[dest] for r in rows[1:]} == {MASK}
    assert all(len(r) == len(HEADER) - 1 for r in rows)


async def test_a_file_the_broker_cannot_redact_refuses_the_whole_mount(tmp_path, storage):
    (storage / "payments" / "notes.parquet").write_bytes(b"PAR1")
    m = materializer(tmp_path, storage)
    error = await refused(m, storage)
    assert (error.code, error.message) == (
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
    error = await refused(m, storage)
    assert error.message.startswith(
        "asset 'uis-payments': file 'raw.csv' of the dataset is not a regular file;"
    )


async def test_a_row_with_a_shifted_column_is_refused_not_guessed(tmp_path, storage):
    bad = table(ROWS) + "3,PAYMENT,1.0,C1,extra,0.0,M2,0\n"
    (storage / "payments" / "transactions.csv").write_text(bad)
    m = materializer(tmp_path, storage)
    error = await refused(m, storage)
    assert error.message == (
        "asset 'uis-payments': row 5 of 'transactions.csv' has 8 fields where its header has "
        "7; the broker does not guess which value is which column: fix the file"
    )


async def test_an_undecidable_policy_mounts_nothing(tmp_path, storage):
    both = PAYMENTS_REDACTION + '\naction := "mask" if input.column.name == "nameOrig"\n'
    m = materializer(tmp_path, storage)
    error = await refused(m, storage, both)
    assert (error.code, error.message) == (
        "REDACTION_FAILED",
        "asset 'uis-payments' is not mounted: its redaction: evaluating it for column "
        "'nameOrig' failed (two rules give it different actions?); make the rules give each "
        "column one action and use only built-in functions; its owner must fix the policy",
    )
    assert not (tmp_path / "broker" / "mounts" / "r-1" / "l-1.json").exists()


async def test_without_a_place_for_copies_a_redacted_dataset_is_not_mounted(tmp_path, storage):
    m = LocalMaterializer(tmp_path / "broker")
    error = await refused(m, storage)
    assert (error.code, error.message) == (
        "REDACTION_UNAVAILABLE",
        "asset 'uis-payments' hides columns from UiO and this broker has nowhere to write "
        "redacted copies (BrokerApp.storage_roots or BrokerApp.redacted_copies_dir); nothing "
        "is mounted raw",
    )


def raw_ids_in(top: Path) -> dict[str, list[str]]:
    """{file under top: the raw customer ids of ROWS its bytes hold}, every file read."""
    ids = {row[i] for row in ROWS for i in (3, 5)}
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in top.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = sorted(i for i in ids if i.encode() in data)
        if hits:
            found[str(path.relative_to(top))] = hits
    return found


async def test_quoted_fields_embedded_newlines_and_a_second_table_in_a_subfolder(tmp_path, storage):
    # The raw ids hide where a line-by-line reader would miss them: inside quotes with the
    # separator and a newline, in a TSV in a subfolder, behind a byte-order mark.
    tricky = [
        ["1", "PAYMENT", "1.0", "C1231006815", "0.0", "M1979787155,\nC1305486145", "0"],
        ["2", 'say "hi", then\nleave', "2.0", '"C38997010"', "0.0", "M1979787155", "0"],
    ]
    (storage / "payments" / "transactions.csv").write_text(table(tricky))
    (storage / "payments" / "2024").mkdir()
    tsv = io.StringIO()
    csv.writer(tsv, delimiter="\t", lineterminator="\r\n").writerows(
        [["nameDest", "amount"], ["C1231006815\tM1979787155", "3.0"]]
    )
    (storage / "payments" / "2024" / "dest.TSV").write_text(tsv.getvalue())
    (storage / "payments" / "2024" / "orig.csv").write_text(
        "\ufeffnameOrig,amount\nC1305486145,4.0\n", encoding="utf-8"
    )
    raw = raw_ids_in(storage / "payments")
    assert set(raw) == {"transactions.csv", "2024/dest.TSV", "2024/orig.csv"}, raw
    mounted = await mount(materializer(tmp_path, storage), storage)
    copy = Path(os.path.realpath(str(mounted["handle"])))
    assert raw_ids_in(copy) == {}
    rows = read(str(copy))
    assert [r[HEADER.index("type")] for r in rows[1:]] == ["PAYMENT", 'say "hi", then\nleave']
    assert all(HEX64.match(r[HEADER.index("nameDest")]) for r in rows[1:])
    key = RedactionKeys(tmp_path / "broker" / "redaction.key").for_lessee("UiO")
    assert rows[2][HEADER.index("nameOrig")] == hash_value(key, '"C38997010"')
    sub = list(csv.reader(io.StringIO((copy / "2024" / "dest.TSV").read_text()), delimiter="\t"))
    assert sub == [["nameDest", "amount"], [hash_value(key, "C1231006815\tM1979787155"), "3.0"]]
    assert read(str(copy / "2024"), "orig.csv") == [
        ["nameOrig", "amount"],
        [hash_value(key, "C1305486145"), "4.0"],
    ]


NO_HEADER = (
    "asset 'uis-payments': the first row of 'transactions.csv' names none of the dataset's "
    "columns, so the broker cannot tell which of its values the redaction policy hides and "
    "nothing is mounted: give it a header row with the columns' names, separated by commas"
)


@pytest.mark.parametrize(
    "text",
    [
        "1,PAYMENT,9839.64,C1231006815,170136.0,M1979787155,0\n",
        ";".join(HEADER) + "\n1;PAYMENT;9839.64;C1231006815;170136.0;M1979787155;0\n",
    ],
    ids=["no header row", "semicolons"],
)
async def test_a_table_the_broker_would_misread_is_refused_not_copied_raw(tmp_path, storage, text):
    (storage / "payments" / "transactions.csv").write_text(text)
    error = await refused(materializer(tmp_path, storage), storage)
    assert (error.code, error.message) == ("REDACTION_FAILED", NO_HEADER)
    assert not (storage / ".dshare-redacted" / "r-1" / "l-1").exists()


@pytest.mark.parametrize("cell", [" nameOrig", "NameOrig", "nameorig "])
async def test_a_hidden_column_spelled_otherwise_in_the_header_is_refused(tmp_path, storage, cell):
    header = [cell if h == "nameOrig" else h for h in HEADER]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *ROWS])
    (storage / "payments" / "transactions.csv").write_text(out.getvalue())
    error = await refused(materializer(tmp_path, storage), storage)
    assert error.message == (
        f"asset 'uis-payments': the header of 'transactions.csv' has {cell!r}, not the "
        "dataset's column 'nameOrig' whose values the redaction policy hides, so nothing is "
        "mounted: write the column's name exactly as the dataset's schema has it"
    )


async def test_a_stray_quote_is_refused_not_glued_into_one_field(tmp_path, storage):
    # Unterminated, the quote in the allowed last column would swallow the next row, raw
    # ids and all, into that column's value: a row of the right length.
    (storage / "payments" / "transactions.csv").write_text(
        table(ROWS[:1])
        + '2,PAYMENT,1.0,C553264065,0.0,M1979787155,"0\n3,PAYMENT,1.0,C1305486145,0.0,M1,0\n'
    )
    error = await refused(materializer(tmp_path, storage), storage)
    assert error.message == (
        "asset 'uis-payments': 'transactions.csv' is not valid CSV at line 4 (unexpected end "
        "of data); fix the file: a value that holds the separator, a quote or a line break "
        "must be in double quotes, its own quotes doubled"
    )
    assert not (storage / ".dshare-redacted" / "r-1" / "l-1").exists()


@pytest.mark.parametrize("org", ["UiO", "UiS"])
@pytest.mark.parametrize("copies", ["payments/.dshare-redacted", "payments", "."])
async def test_a_dataset_that_holds_or_lies_among_the_copies_is_not_mounted(
    tmp_path, storage, org, copies
):
    # A storage root registered whole (or a copies dir set to a dataset's directory or
    # above it): its lessees would read other lessees' copies.
    m = LocalMaterializer(tmp_path / "broker", redacted_dir=storage / copies)
    with pytest.raises(MaterializeError) as info:
        await mount(m, storage, org=org)
    assert (info.value.code, info.value.message) == (
        "STORAGE_UNAVAILABLE",
        "the directory of asset 'uis-payments' holds or lies among this broker's redacted "
        "copies, which no lessee may read, so it is not mounted; ask its owner to register a "
        "directory of its own below the storage root",
    )
    assert not (tmp_path / "broker" / "mounts" / "r-1").exists()
