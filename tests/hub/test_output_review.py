"""What a run's gate held, decided by the owner's admin, as both people see it.

A UiO scientist's job copies UiS's workflow-only corpus into two files and counts it into
a third. The count leaves at once; the copies are held for UiS. UiS's admin finds them in
the review queue of their own server, releases one and denies the other with a reason;
the scientist's home gets exactly the released file, and My runs says which file was
released, which denied and why. Nobody else can see the queue or decide on it.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
from heldrun import run_copying_workflow
from hubclient import HubSession

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATASET = "uis-lorem-corpus"


async def _session(deployment, logins, user: str) -> HubSession:
    session = HubSession(deployment.layout.public_url)
    await session.login(user, logins[user])
    await session.start_server()
    return session


def _files(run: dict) -> dict[str, dict]:
    return {o["path"]: o for o in run.get("outputs") or [] if o["path"].startswith("review/")}


async def test_held_files_are_decided_by_the_owner_and_only_released_ones_arrive(
    deployment, logins
):
    layout = deployment.layout
    scientist = await _session(deployment, logins, "uio-scientist")
    run_id = await run_copying_workflow(scientist, DATASET)

    status, run = await scientist.api(f"dshare/api/runs/{run_id}")
    assert status == 200, run
    files = _files(run)
    assert {p: o["decision"] for p, o in files.items()} == {
        "review/count.txt": "released",
        "review/copy-a.txt": "held",
        "review/copy-b.txt": "held",
    }
    assert files["review/copy-a.txt"]["held_by"] == ["UiS"]
    home = layout.homes / "uio-scientist"
    assert (home / "review" / "count.txt").is_file()
    assert not (home / "review" / "copy-a.txt").exists()

    # Only UiS's admins see UiS's queue; a scientist of UiS is refused, UiO's admin (the
    # lessee's own organization) has nothing of this run to decide.
    admin = await _session(deployment, logins, "uis-admin")
    status, queue = await admin.api("dshare/api/outputs/held")
    assert status == 200, queue
    waiting = next(r for r in queue["items"] if r["id"] == run_id)
    assert (waiting["user"], waiting["org"]) == ("uio-scientist", "UiO")
    assert sorted(o["path"] for o in waiting["outputs"]) == [
        "review/copy-a.txt",
        "review/copy-b.txt",
    ]
    failed = [c["name"] for c in waiting["outputs"][0]["checks"] if not c["passed"]]
    assert "verbatim_input" in failed
    uis_scientist = await _session(deployment, logins, "uis-scientist")
    status, body = await uis_scientist.api("dshare/api/outputs/held")
    assert (status, body["code"]) == (403, "FORBIDDEN"), body
    assert body["message"] == (
        "your token lacks the scope custom:dshare:admin; ask an administrator of UiS for the "
        "role that grants it"
    )
    status, body = await uis_scientist.api(
        f"dshare/api/runs/{run_id}/outputs/decide",
        "POST",
        {"path": "review/copy-a.txt", "approve": True},
    )
    assert (status, body["code"]) == (403, "FORBIDDEN"), body
    uio_admin = await _session(deployment, logins, "uio-admin")
    status, body = await uio_admin.api("dshare/api/outputs/held")
    assert status == 200, body
    assert run_id not in [r["id"] for r in body["items"]]

    # A denial needs a reason; refusing it changes nothing.
    status, body = await admin.api(
        f"dshare/api/runs/{run_id}/outputs/decide",
        "POST",
        {"path": "review/copy-b.txt", "approve": False, "reason": ""},
    )
    assert (status, body["code"], body["message"]) == (
        400,
        "INVALID_ARGUMENT",
        "reason: must not be empty",
    ), body
    status, body = await admin.api(
        f"dshare/api/runs/{run_id}/outputs/decide",
        "POST",
        {"path": "review/copy-a.txt", "approve": True, "reason": "a sample we publish anyway"},
    )
    assert status == 200, body
    status, body = await admin.api(
        f"dshare/api/runs/{run_id}/outputs/decide",
        "POST",
        {"path": "review/copy-b.txt", "approve": False, "reason": "the raw corpus"},
    )
    assert status == 200, body
    status, queue = await admin.api("dshare/api/outputs/held")
    assert run_id not in [r["id"] for r in queue["items"]], "decided files left the queue"

    status, run = await scientist.api(f"dshare/api/runs/{run_id}")
    files = _files(run)
    assert files["review/copy-a.txt"]["decision"] == "released"
    assert files["review/copy-b.txt"]["decision"] == "denied"
    assert files["review/copy-b.txt"]["decisions"]["UiS"]["reason"] == "the raw corpus"
    assert files["review/copy-b.txt"]["decisions"]["UiS"]["actor"] == "uis-admin"
    # The released file arrives with the bytes whose digest the ledger holds; the denied
    # one never does.
    delivered = home / "review" / "copy-a.txt"
    assert delivered.is_file(), "an approved file was not delivered when the decision returned"
    digest = hashlib.sha256(delivered.read_bytes()).hexdigest()
    assert digest == files["review/copy-a.txt"]["sha256"]
    assert not (home / "review" / "copy-b.txt").exists()
    # The scientist deletes what the owner let out: later suites (the attacker's scans)
    # find raw data in no home unless it is theirs to see.
    shutil.rmtree(home / "review")
