"""Mock previews through real brokers of a real JupyterHub: any scientist, no lease, the
same mock from every broker, refusals with exact messages, nothing of the storage."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
from hubfixture import Hub

from dshare_hub import mockdata
from dshare_hub.broker.app import load_openapi
from dshare_hub.demo.content import PAYMENT_COLUMNS

pytestmark = pytest.mark.slow
SECRET = "plaintext-Storage-Credential-mock-91c2"


@pytest.fixture(scope="module")
def tokens(hub: Hub) -> dict[str, str]:
    return {
        "uis_admin": hub.make_user("siri", "UiS", "admin"),
        "uis_sci": hub.make_user("sven", "UiS", "scientist"),
        "uio_sci": hub.make_user("ola", "UiO", "scientist"),
        "uio_admin": hub.make_user("olav", "UiO", "admin"),
    }


def register(hub: Hub, token: str, data: Path, asset_id: str, **fields: object):
    body = {
        "id": asset_id,
        "name": f"UiS {asset_id}",
        "description": "payments",
        "tags": ["tabular"],
        "policy": {"max_duration_s": 3600},
        "storage": {"type": "local", "details": {"path": str(data), "token": SECRET}},
        **fields,
    }
    return hub.broker("UiS", "POST", "/datasets", token, body)


@pytest.fixture(scope="module")
def datasets(hub: Hub, tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("uis-data")
    (data / "transactions.csv").write_text("step,type\n1,REAL-ROW-MARKER\n")
    skeleton = [{"path": "transactions.csv", "size": 30}]
    pay = register(
        hub, tokens["uis_admin"], data, "uis-pay", columns=PAYMENT_COLUMNS, skeleton=skeleton
    )
    assert pay.status == 201, pay.text
    text = register(hub, tokens["uis_admin"], data, "uis-text", skeleton=skeleton)
    assert text.status == 201, text.text
    return pay.body


def test_a_scientist_without_a_lease_previews_any_orgs_mock(hub, tokens, datasets) -> None:
    # Ola of UiO holds no lease and asks her own broker about UiS's dataset.
    reply = hub.broker("UiO", "GET", "/datasets/uis-pay/mock?rows=7", tokens["uio_sci"])
    assert reply.status == 200, reply.text
    spec = load_openapi()
    jsonschema.validate(
        reply.body, {"$ref": "#/components/schemas/MockPreview", "components": spec["components"]}
    )
    body = reply.body
    assert body["mock"] is True
    assert body["label"] == "Mock data — synthetic, not the real rows"
    assert body["file"] == "transactions.csv"
    assert [c["name"] for c in body["columns"]] == [c["name"] for c in PAYMENT_COLUMNS]
    assert len(body["rows"]) == 7
    for step, kind, amount, orig, balance, dest, fraud in body["rows"]:
        assert 1 <= step <= 40
        assert kind in ("PAYMENT", "TRANSFER", "CASH_OUT", "DEBIT")
        assert 5 <= amount <= 20000 and 0 <= balance <= 50000
        assert re.fullmatch(r"C\d{9}", orig) and re.fullmatch(r"M\d{9}", dest)
        assert fraud in (0, 1)
    # The owner's broker makes the very same mock: it comes from the ledger's schema alone.
    same = hub.broker("UiS", "GET", "/datasets/uis-pay/mock?rows=7", tokens["uis_sci"])
    assert same.body == body
    expected = mockdata.mock_table("uis-pay", datasets["columns"], 7, part="transactions.csv")
    assert body["rows"] == [list(r) for r in expected.rows]
    # Nothing of the real rows or of the storage.
    assert "REAL-ROW-MARKER" not in reply.text and SECRET not in reply.text
    assert "uis-data" not in reply.text


@pytest.mark.parametrize(
    ("path", "status", "code", "message", "field"),
    [
        (
            "/datasets/uis-pay/mock?rows=0",
            400,
            "INVALID_ARGUMENT",
            "rows: must be a whole number from 1 to 100, got '0'",
            "rows",
        ),
        (
            "/datasets/uis-pay/mock?rows=101",
            400,
            "INVALID_ARGUMENT",
            "rows: must be a whole number from 1 to 100, got '101'",
            "rows",
        ),
        (
            "/datasets/uis-pay/mock?rows=ten",
            400,
            "INVALID_ARGUMENT",
            "rows: must be a whole number from 1 to 100, got 'ten'",
            "rows",
        ),
        (
            "/datasets/uis-text/mock",
            409,
            "INVALID_STATE",
            "dataset 'uis-text' has no columns in its schema, so it has no mock table; its "
            "skeleton (files and sizes) is all there is to see before a lease",
            None,
        ),
        (
            "/datasets/uis-nothing/mock",
            404,
            "ASSET_NOT_FOUND",
            "asset 'uis-nothing' does not exist",
            None,
        ),
    ],
)
def test_bad_previews_are_refused_with_what_to_do(
    hub, tokens, datasets, path, status, code, message, field
) -> None:
    reply = hub.broker("UiO", "GET", path, tokens["uio_sci"])
    assert reply.status == status, reply.text
    expected = {"code": code, "message": message}
    if field:
        expected["field"] = field
    assert reply.body == expected


def test_a_preview_needs_a_token(hub, datasets) -> None:
    reply = hub.broker("UiO", "GET", "/datasets/uis-pay/mock", None)
    assert reply.status == 401
    assert reply.body["code"] == "UNAUTHENTICATED"


def test_bad_mock_ranges_are_refused_at_registration_and_nothing_is_kept(
    hub, tokens, tmp_path
) -> None:
    columns = [{"name": "amount", "type": "number", "tags": [], "mock": {"min": 9, "max": 1}}]
    reply = register(hub, tokens["uis_admin"], tmp_path, "uis-badmock", columns=columns)
    assert reply.status == 400, reply.text
    assert reply.body == {
        "code": "INVALID_ARGUMENT",
        "message": "columns[0].mock.max: must not be below min (9), got 1",
        "field": "columns[0].mock.max",
    }
    assert hub.broker("UiS", "GET", "/datasets/uis-badmock", tokens["uis_sci"]).status == 404


def test_the_owner_opts_in_to_the_synthesizer_and_only_the_owner_may(hub, tokens, tmp_path):
    data = tmp_path / "synth"
    data.mkdir()
    lines = ["step,type,amount,nameOrig"]
    for i in range(100):
        kind = "PAYMENT" if i < 70 else "DEBIT" if i < 95 else "RARE-KIND"
        lines.append(f"{i},{kind},{100 + i}.5,C{i:09d}")
    (data / "t.csv").write_text("\n".join(lines) + "\n")
    columns = [
        {"name": "step", "type": "integer", "tags": []},
        {"name": "type", "type": "string", "tags": []},
        {"name": "amount", "type": "number", "tags": []},
        {"name": "nameOrig", "type": "string", "tags": ["pii"]},
    ]
    reply = register(
        hub,
        tokens["uis_admin"],
        data,
        "uis-synth",
        columns=columns,
        skeleton=[{"path": "t.csv", "size": 1}],
    )
    assert reply.status == 201, reply.text
    path = "/datasets/uis-synth/mock/synthesize"
    refused = hub.broker("UiS", "POST", path, tokens["uis_sci"], {})
    assert refused.status == 403
    assert refused.body["message"] == (
        "your token lacks the scope custom:dshare:admin; ask an administrator of UiS for the "
        "role that grants it"
    )
    foreign = hub.broker("UiO", "POST", path, tokens["uio_admin"], {})
    assert foreign.status == 403
    assert foreign.body == {
        "code": "NOT_OWNER",
        "message": "only the owner organization 'UiS' may synthesize the mock of asset 'uis-synth'",
    }
    bad = hub.broker("UiS", "POST", path, tokens["uis_admin"], {"min_count": 1})
    assert bad.body == {
        "code": "INVALID_ARGUMENT",
        "message": "min_count: must be a whole number from 5 to 10000",
        "field": "min_count",
    }
    unchanged = hub.broker("UiS", "GET", "/datasets/uis-synth", tokens["uis_sci"]).body
    assert [c.get("mock") for c in unchanged["columns"]] == [None] * 4

    done = hub.broker("UiS", "POST", path, tokens["uis_admin"], {})
    assert done.status == 200, done.text
    mocks = {c["name"]: c["mock"] for c in done.body["columns"]}
    assert mocks == {
        "step": {"min": 5, "max": 95, "null_fraction": 0.0},
        "type": {"values": ["DEBIT", "PAYMENT"], "null_fraction": 0.0},
        "amount": {"min": 105.5, "max": 195.5, "null_fraction": 0.0},
        "nameOrig": {"pattern": "ID-########", "null_fraction": 0.0},
    }
    preview = hub.broker("UiO", "GET", "/datasets/uis-synth/mock?rows=50", tokens["uio_sci"])
    assert preview.status == 200, preview.text
    assert {r[1] for r in preview.body["rows"]} <= {"DEBIT", "PAYMENT"}
    assert "RARE-KIND" not in preview.text and "C000000001" not in preview.text
