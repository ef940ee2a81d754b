"""Two organizations' brokers as services of a real JupyterHub, called with real tokens."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hubfixture import Hub, start_hub, stop_hub

from dshare_hub.broker.app import load_openapi
from dshare_hub.broker.peers import canonical
from dshare_hub.keys import KekSource, KeyService, KeyServiceError, KeyStore
from dshare_hub.ledger.embedded import EmbeddedLedger
from dshare_hub.ledger.identity import load_identity, make_identity_files

pytestmark = pytest.mark.slow
SECRET = "plaintext-Storage-Credential-7f3a"
SPEC = hashlib.sha256(b"jobs").hexdigest()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = start_hub(tmp_path_factory.mktemp("hub"))
    try:
        yield hub
    finally:
        stop_hub(hub)


@pytest.fixture(scope="module")
def tokens(hub: Hub) -> dict[str, str]:
    return {
        "uis_admin": hub.make_user("siri", "UiS", "admin"),
        "uis_sci": hub.make_user("sven", "UiS", "scientist"),
        "uio_sci": hub.make_user("ola", "UiO", "scientist"),
        "uio_sci2": hub.make_user("kari", "UiO", "scientist"),
    }


@pytest.fixture(scope="module")
def dataset(hub: Hub, tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    data = tmp_path_factory.mktemp("uis-data")
    (data / "words.txt").write_text("fjord fjord mountain\n")
    body = {
        "id": "uis-words",
        "name": "UiS words",
        "description": "word counts",
        "tags": ["text"],
        "policy": {"max_duration_s": 3600},
        "storage": {"type": "local", "details": {"path": str(data), "token": SECRET}},
    }
    reply = hub.broker("UiS", "POST", "/datasets", tokens["uis_admin"], body)
    assert reply.status == 201, reply.text
    return "uis-words"


def schema(name: str) -> dict[str, Any]:
    spec = load_openapi()
    return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}


def check(value: Any, name: str) -> None:
    jsonschema.validate(value, schema(name))


def lease(hub: Hub, token: str, dataset: str, duration: int = 600) -> dict[str, Any]:
    reply = hub.broker(
        "UiO",
        "POST",
        "/leases",
        token,
        {"dataset_id": dataset, "duration_s": duration, "purpose": "count words"},
    )
    assert reply.status == 201, reply.text
    check(reply.body, "Lease")
    return reply.body


def record_run(hub: Hub, user: str, org: str, lease_id: str) -> str:
    """A run recorded on the ledger as `org`/`user`, the way that org's broker would."""

    async def go() -> str:
        ledger = EmbeddedLedger.open(hub.ledger_db, hub.identity_dir, org)
        try:
            run = await ledger.submit(
                "RecordRun", json.dumps([lease_id]), SPEC, "direct", actor=user
            )
        finally:
            await ledger.close()
        return str(run["id"])

    import asyncio

    return asyncio.run(go())


def signed(hub: Hub, payload: dict[str, Any], org: str = "UiO") -> dict[str, Any]:
    identity = load_identity(hub.identity_dir, org)
    return {
        "payload": payload,
        "signature": base64.b64encode(identity.sign(canonical(payload))).decode(),
        "certificate": identity.cert_pem,
    }


def payload(lease_id: str, run_id: str, user: str = "ola", **extra: Any) -> dict[str, Any]:
    return {
        "to": "UiS",
        "lease_id": lease_id,
        "run_id": run_id,
        "user": user,
        "org": "UiO",
        "timestamp": int(time.time()),
        "nonce": base64.b64encode(str(time.monotonic_ns()).encode()).decode(),
        **extra,
    }


def test_openapi_and_identity(hub: Hub, tokens: dict[str, str]) -> None:
    reply = hub.broker("UiS", "GET", "/openapi.json", None)
    assert reply.status == 200
    assert set(reply.body["paths"]) >= {"/datasets", "/leases", "/runs", "/me"}
    reply = hub.broker("UiS", "GET", "/me", tokens["uis_admin"])
    assert reply.body == {
        "user": "siri",
        "org": "UiS",
        "roles": ["admin"],
        "scopes": ["custom:dshare:admin", "custom:dshare:lease", "custom:dshare:read"],
    }
    check(reply.body, "Me")


def test_authentication_and_authorization_errors(hub: Hub, tokens: dict[str, str]) -> None:
    reply = hub.broker("UiS", "GET", "/datasets", None)
    assert reply.status == 401
    assert reply.body["code"] == "UNAUTHENTICATED"
    reply = hub.broker("UiS", "GET", "/datasets", "not-a-token")
    assert reply.status == 401
    # A UiO user's token does not reach the UiS broker.
    reply = hub.broker("UiS", "GET", "/datasets", tokens["uio_sci"])
    assert reply.status == 403
    assert reply.body == {
        "code": "FORBIDDEN",
        "message": "user 'ola' may not use this service (the token lacks access to it)",
    }
    # A scientist may not register datasets.
    reply = hub.broker(
        "UiS",
        "POST",
        "/datasets",
        tokens["uis_sci"],
        {"name": "x", "storage": {"type": "local", "details": {"path": "/tmp"}}},
    )
    assert reply.status == 403
    assert (
        reply.body["message"] == "your token lacks the scope custom:dshare:admin; ask an "
        "administrator of UiS for the role that grants it"
    )


def test_bad_input_names_the_field(hub: Hub, tokens: dict[str, str]) -> None:
    cases = [
        ({"storage": {"type": "local", "details": {"path": "/d"}}}, "name"),
        ({"name": "x"}, "storage"),
        ({"name": "x", "storage": {"type": "ftp", "details": {"path": "/d"}}}, "storage.type"),
        (
            {"name": "x", "storage": {"type": "local", "details": {"path": "rel"}}},
            "storage.details.path",
        ),
        ({"name": "x", "colour": 1, "storage": {}}, "colour"),
        ({"name": "", "storage": {"type": "local", "details": {"path": "/d"}}}, "name"),
    ]
    for body, field in cases:
        reply = hub.broker("UiS", "POST", "/datasets", tokens["uis_admin"], body)
        assert reply.status == 400, (body, reply.text)
        assert reply.body["code"] == "INVALID_ARGUMENT"
        assert reply.body["field"] == field, reply.body
    reply = hub.broker("UiO", "POST", "/leases", tokens["uio_sci"], {"dataset_id": "x"})
    assert (reply.status, reply.body["field"]) == (400, "duration_s")
    reply = hub.broker("UiS", "GET", "/datasets/nope", tokens["uis_admin"])
    assert (reply.status, reply.body["code"]) == (404, "ASSET_NOT_FOUND")
    # Nothing was registered by the refused requests.
    listing = hub.broker("UiS", "GET", "/datasets?org=UiS", tokens["uis_admin"])
    assert all(item["name"] != "x" for item in listing.body["items"])


def test_dataset_is_listed_without_its_storage_details(
    hub: Hub, tokens: dict[str, str], dataset: str
) -> None:
    reply = hub.broker("UiO", "GET", "/datasets?q=words", tokens["uio_sci"])
    assert reply.status == 200
    assert [item["id"] for item in reply.body["items"]] == [dataset]
    check(reply.body["items"][0], "Dataset")
    assert reply.body["items"][0]["owner_org"] == "UiS"
    reply = hub.broker("UiO", "GET", f"/datasets/{dataset}/history", tokens["uio_sci"])
    assert [entry["action"] for entry in reply.body["items"]] == ["registered"]
    assert reply.body["items"][0]["actor"] == "siri"


def test_cross_org_lease_is_mounted_by_the_owner_broker(
    hub: Hub, tokens: dict[str, str], dataset: str
) -> None:
    granted = lease(hub, tokens["uio_sci"], dataset)
    assert (granted["state"], granted["lessee_org"], granted["lessee_user"]) == (
        "active",
        "UiO",
        "ola",
    )
    reply = hub.broker(
        "UiO",
        "POST",
        "/runs",
        tokens["uio_sci"],
        {"name": "count", "lease_ids": [granted["id"]], "spec_sha256": SPEC},
    )
    assert reply.status == 201, reply.text
    check(reply.body["run"], "Run")
    mount = reply.body["mounts"][granted["id"]]
    handle = Path(mount["handle"])
    # Made by the UiS broker, under its data dir, pointing at the data.
    assert handle.is_relative_to(hub.data_dirs["UiS"])
    assert (handle / "words.txt").read_text() == "fjord fjord mountain\n"
    assert mount["expires_at"] == granted["expires_at"]

    run_id = reply.body["run"]["id"]
    reply = hub.broker("UiO", "GET", f"/runs/{run_id}", tokens["uio_sci2"])
    assert (reply.status, reply.body["code"]) == (404, "RUN_NOT_FOUND")
    reply = hub.broker(
        "UiO", "POST", f"/runs/{run_id}/finish", tokens["uio_sci"], {"outcome": "succeeded"}
    )
    assert reply.status == 200 and reply.body["outcome"] == "succeeded"
    # The owner's reaper sees the run ended on the ledger and removes the handle.
    deadline = time.monotonic() + 30
    while handle.is_symlink() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not handle.is_symlink()
    assert (
        hub.broker("UiO", "POST", f"/leases/{granted['id']}/release", tokens["uio_sci"]).status
        == 200
    )


def test_forged_replayed_and_foreign_peer_requests_are_refused(
    hub: Hub, tokens: dict[str, str], dataset: str, tmp_path: Path
) -> None:
    granted = lease(hub, tokens["uio_sci"], dataset)
    run_id = record_run(hub, "ola", "UiO", granted["id"])
    envelope = signed(hub, payload(granted["id"], run_id))
    first = hub.broker("UiS", "POST", "/peer/mounts", None, envelope)
    assert first.status == 201, first.text
    replay = hub.broker("UiS", "POST", "/peer/mounts", None, envelope)
    assert replay.status == 403
    assert replay.body == {
        "code": "REPLAYED",
        "message": "this request was already received (replay refused)",
    }
    forged = dict(envelope, payload=dict(envelope["payload"], user="kari", nonce="n-forged"))
    reply = hub.broker("UiS", "POST", "/peer/mounts", None, forged)
    assert reply.body == {
        "code": "SIGNATURE_INVALID",
        "message": "the signature does not match the payload",
    }
    # Signed by a key whose certificate comes from a CA the ledger does not know for UiO.
    rogue = make_identity_files(tmp_path, "UiO")
    body = payload(granted["id"], run_id)
    rogue_envelope = {
        "payload": body,
        "signature": base64.b64encode(rogue.sign(canonical(body))).decode(),
        "certificate": rogue.cert_pem,
    }
    reply = hub.broker("UiS", "POST", "/peer/mounts", None, rogue_envelope)
    assert reply.status == 403
    assert (
        reply.body["message"] == "the certificate presented for 'UiO' was not issued by 'UiO''s CA"
    )
    stale = signed(hub, payload(granted["id"], run_id, timestamp=int(time.time()) - 3600))
    reply = hub.broker("UiS", "POST", "/peer/mounts", None, stale)
    assert (reply.status, reply.body["code"]) == (403, "STALE_REQUEST")
    # Another user of the same org cannot use ola's lease, signed or not.
    other = signed(hub, payload(granted["id"], run_id, user="kari"))
    reply = hub.broker("UiS", "POST", "/peer/mounts", None, other)
    assert reply.body == {
        "code": "NOT_LESSEE",
        "message": f"lease '{granted['id']}' does not belong to user 'kari' of 'UiO'",
    }
    reply = hub.broker(
        "UiO",
        "POST",
        "/runs",
        tokens["uio_sci2"],
        {"name": "steal", "lease_ids": [granted["id"]], "spec_sha256": SPEC},
    )
    assert (reply.status, reply.body["code"]) == (403, "NOT_LESSEE")
    assert (
        hub.broker("UiO", "POST", f"/leases/{granted['id']}/release", tokens["uio_sci"]).status
        == 200
    )


def test_expired_lease_is_refused_and_reaped(
    hub: Hub, tokens: dict[str, str], dataset: str
) -> None:
    granted = lease(hub, tokens["uio_sci"], dataset, duration=2)
    run_id = record_run(hub, "ola", "UiO", granted["id"])
    first = hub.broker(
        "UiS", "POST", "/peer/mounts", None, signed(hub, payload(granted["id"], run_id))
    )
    assert first.status == 201, first.text
    handle = Path(first.body["handle"])
    expires = dt.datetime.strptime(granted["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    while dt.datetime.now(dt.UTC).replace(tzinfo=None) <= expires + dt.timedelta(seconds=0.5):
        time.sleep(0.2)
    reply = hub.broker(
        "UiS", "POST", "/peer/mounts", None, signed(hub, payload(granted["id"], run_id))
    )
    assert (reply.status, reply.body["code"]) == (410, "LEASE_EXPIRED")
    reply = hub.broker(
        "UiO",
        "POST",
        "/runs",
        tokens["uio_sci"],
        {"name": "late", "lease_ids": [granted["id"]], "spec_sha256": SPEC},
    )
    assert (reply.status, reply.body["code"]) == (410, "LEASE_EXPIRED")
    deadline = time.monotonic() + 30
    while handle.is_symlink() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not handle.is_symlink()
    leases = hub.broker("UiO", "GET", "/leases?scope=mine", tokens["uio_sci"]).body["items"]
    assert [x["state"] for x in leases if x["id"] == granted["id"]] == ["expired"]


def test_retire_crypto_shreds(hub: Hub, tokens: dict[str, str], dataset: str) -> None:
    import asyncio

    async def sealed_on_ledger() -> str:
        ledger = EmbeddedLedger.open(hub.ledger_db, hub.identity_dir, "UiS")
        try:
            asset = await ledger.evaluate("GetAsset", dataset, actor="test")
        finally:
            await ledger.close()
        return str(asset["sealed_storage"])

    sealed = asyncio.run(sealed_on_ledger())
    keys = KeyService(KeyStore(hub.keystores["UiS"]), KekSource(kek_file=str(hub.kek_files["UiS"])))
    assert keys.open_details(dataset, "UiS", sealed)["token"] == SECRET
    reply = hub.broker("UiS", "DELETE", f"/datasets/{dataset}", tokens["uis_sci"])
    assert reply.status == 403
    reply = hub.broker("UiS", "DELETE", f"/datasets/{dataset}", tokens["uis_admin"])
    assert reply.status == 200 and reply.body["state"] == "retired"
    assert asyncio.run(sealed_on_ledger()) == sealed  # still on the ledger, forever
    with pytest.raises(KeyServiceError) as info:
        keys.open_details(dataset, "UiS", sealed)
    assert info.value.code == "KEY_DESTROYED"
    reply = hub.broker("UiS", "DELETE", f"/datasets/{dataset}", tokens["uis_admin"])
    assert (reply.status, reply.body["code"]) == (409, "INVALID_STATE")


def test_zz_no_secret_in_logs_or_responses(hub: Hub, tokens: dict[str, str]) -> None:
    logs = hub.log_path.read_text(errors="replace")
    everything = logs + "\n".join(hub.transcript)
    assert "broker of UiS" in logs  # the brokers' logs are in there
    assert SECRET not in everything
    for token in tokens.values():
        assert token not in everything
    for org in ("UiS", "UiO"):
        kek = hub.kek_files[org].read_text().strip()
        assert kek not in everything
    assert "Traceback" not in "\n".join(hub.transcript)
