"""Owner-approved code on the ledger: requests, decisions, and RecordRun's refusal of a run
whose code identity the requiring owners did not approve."""

from __future__ import annotations

import hashlib
import json

import pytest
from ledger_helpers import asset_json, refused

from dshare_chaincode.approvals import code_identity

pytestmark = pytest.mark.asyncio

SPEC = "ab" * 32
JOBS = "12" * 32
SCRIPT = "print('count')\n"
HELPER = "WORD = 'data'\n"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _code(files: dict[str, str], jobs: str = JOBS) -> str:
    return json.dumps({"job_sha256": jobs, "files": {p: _sha(t) for p, t in files.items()}})


async def _leased(network, uid, *, required=True, owner="uis"):
    policy = {"max_duration_s": 3600, "code_approval_required": required}
    await getattr(network, owner).submit(
        "RegisterAsset", asset_json(uid, policy=policy), actor="admin"
    )
    return await network.uio.submit("RequestLease", uid, "300", "study", actor="bob")


async def _request(network, uid, files, jobs=JOBS, actor="bob"):
    return await network.uio.submit(
        "RequestCodeApproval",
        json.dumps([uid]),
        _code(files, jobs),
        "jobs:\n  - python count.py\n",
        json.dumps(files),
        actor=actor,
    )


async def test_policy_field_defaults_to_false(network, uid):
    created = await network.uis.submit("RegisterAsset", asset_json(uid), actor="admin")
    assert created["policy"]["code_approval_required"] is False
    await refused(
        network.uis.submit(
            "UpdateAsset", uid, json.dumps({"policy": {"code_approval_required": "yes"}}), actor="a"
        ),
        "INVALID_ARGUMENT",
        "policy.code_approval_required: must be true or false",
    )


async def test_interactive_use_cannot_come_with_approved_code(network, uid):
    # Interactive use mounts the data into the notebook, where any code reads it: with it,
    # code approval would hold for runs only. Refused both ways, and nothing changes.
    message = (
        "policy.interactive: must be false when code_approval_required is true: interactive "
        "use lets any notebook code read the data, unapproved; turn one of them off"
    )
    both = {"max_duration_s": 3600, "code_approval_required": True, "interactive": True}
    await refused(
        network.uis.submit("RegisterAsset", asset_json(uid, policy=both), actor="admin"),
        "INVALID_ARGUMENT",
        message,
    )
    policy = {"max_duration_s": 3600, "interactive": True}
    await network.uis.submit("RegisterAsset", asset_json(uid, policy=policy), actor="admin")
    await refused(
        network.uis.submit(
            "UpdateAsset", uid, json.dumps({"policy": {"code_approval_required": True}}), actor="a"
        ),
        "INVALID_ARGUMENT",
        message,
    )
    stored = await network.uis.evaluate("GetAsset", uid, actor="admin")
    assert (stored["policy"]["interactive"], stored["policy"]["code_approval_required"]) == (
        True,
        False,
    )


async def test_request_approve_and_run(network, uid):
    lease = await _leased(network, uid)
    files = {"count.py": SCRIPT}
    request = await _request(network, uid, files)
    expected = code_identity(JOBS, {"count.py": _sha(SCRIPT)})
    assert request["code_sha256"] == expected
    assert request["state"] == "pending"
    assert request["owner_org"] == network.msp["UiS"]
    assert request["contents"] == {"count.py": SCRIPT}
    # Before the decision the run is refused, and nothing about it is kept.
    await refused(
        network.uio.submit(
            "RecordRun", json.dumps([lease["id"]]), SPEC, "count", _code(files), actor="bob"
        ),
        "POLICY_DENIED",
        f"dataset(s) {uid} of {network.msp['UiS']} require code approved by "
        f"{network.msp['UiS']}, and no code was approved for them yet; request approval "
        "(My runs, or %dshare_run --request-approval)",
    )
    assert (await network.uio.evaluate("ListRuns", actor="bob"))["items"] == []
    decided = await network.uis.submit(
        "DecideCodeApproval", request["id"], "approve", "", actor="carol"
    )
    assert decided["state"] == "approved"
    assert decided["decided_by"] == {"org": network.msp["UiS"], "actor": "carol"}
    run = await network.uio.submit(
        "RecordRun", json.dumps([lease["id"]]), SPEC, "count", _code(files), actor="bob"
    )
    assert run["code_sha256"] == expected


async def test_changed_file_is_named(network, uid):
    lease = await _leased(network, uid)
    files = {"count.py": SCRIPT, "helper.py": HELPER}
    request = await _request(network, uid, files)
    await network.uis.submit("DecideCodeApproval", request["id"], "approve", "", actor="carol")
    changed = {"count.py": SCRIPT + "import os\n", "helper.py": HELPER, "b.py": "x=1\n"}
    await refused(
        network.uio.submit(
            "RecordRun", json.dumps([lease["id"]]), SPEC, "count", _code(changed), actor="bob"
        ),
        "POLICY_DENIED",
        f"dataset(s) {uid} of {network.msp['UiS']} require code approved by "
        f"{network.msp['UiS']}; this run's code is not approved (files changed since approval "
        f"'{request['id']}': b.py (new), count.py); request approval again",
    )
    await refused(
        network.uio.submit(
            "RecordRun",
            json.dumps([lease["id"]]),
            SPEC,
            "count",
            _code(files, jobs="34" * 32),
            actor="bob",
        ),
        "POLICY_DENIED",
        f"dataset(s) {uid} of {network.msp['UiS']} require code approved by "
        f"{network.msp['UiS']}; this run's code is not approved (the jobs changed since "
        f"approval '{request['id']}' (the files did not)); request approval again",
    )


async def test_run_without_identity_is_refused(network, uid):
    lease = await _leased(network, uid)
    await refused(
        network.uio.submit("RecordRun", json.dumps([lease["id"]]), SPEC, "count", actor="bob"),
        "POLICY_DENIED",
        f"dataset(s) {uid} of {network.msp['UiS']} require code approved by "
        f"{network.msp['UiS']}; this run carries no code identity (submit it through the "
        "broker's run path)",
    )


async def test_datasets_without_the_policy_run_as_before(network, uid):
    lease = await _leased(network, uid, required=False)
    run = await network.uio.submit("RecordRun", json.dumps([lease["id"]]), SPEC, "c", actor="bob")
    assert "code_sha256" not in run
    await refused(
        _request(network, uid, {"count.py": SCRIPT}),
        "POLICY_DENIED",
        f"dataset '{uid}' does not require approved code; run it as it is",
    )


async def test_every_requiring_owner_decides(network, uid):
    l1 = await _leased(network, uid)
    l2 = await _leased(network, uid + "b", owner="uib")
    files = {"count.py": SCRIPT}
    r1 = await _request(network, uid, files)
    await network.uio.submit(
        "RequestCodeApproval",
        json.dumps([uid + "b"]),
        _code(files),
        "jobs: []",
        json.dumps(files),
        actor="bob",
    )
    await network.uis.submit("DecideCodeApproval", r1["id"], "approve", "", actor="carol")
    await refused(
        network.uio.submit(
            "RecordRun", json.dumps([l1["id"], l2["id"]]), SPEC, "c", _code(files), actor="bob"
        ),
        "POLICY_DENIED",
        f"dataset(s) {uid}b of {network.msp['UiB']} require code approved by "
        f"{network.msp['UiB']}, and no code was approved for them yet; request approval "
        "(My runs, or %dshare_run --request-approval)",
    )
    await refused(
        network.uio.submit(
            "RequestCodeApproval",
            json.dumps([uid, uid + "b"]),
            _code(files),
            "jobs: []",
            json.dumps(files),
            actor="bob",
        ),
        "INVALID_ARGUMENT",
        "dataset_ids: name datasets of one owner organization per request, got "
        f"{', '.join(sorted([network.msp['UiB'], network.msp['UiS']]))}",
    )


async def test_who_may_decide(network, uid):
    await _leased(network, uid)
    request = await _request(network, uid, {"count.py": SCRIPT})
    # The lessee's organization (the scientist's own broker) is not the owner.
    await refused(
        network.uio.submit("DecideCodeApproval", request["id"], "approve", "", actor="bob"),
        "NOT_OWNER",
        f"only the owner organization '{network.msp['UiS']}' may decide on code approval "
        f"request '{request['id']}'; you submitted as '{network.msp['UiO']}'",
    )
    # Another organization's admin.
    await refused(
        network.uib.submit("DecideCodeApproval", request["id"], "approve", "", actor="dave"),
        "NOT_OWNER",
        f"only the owner organization '{network.msp['UiS']}' may decide on code approval "
        f"request '{request['id']}'; you submitted as '{network.msp['UiB']}'",
    )
    await refused(
        network.uis.submit("DecideCodeApproval", request["id"], "deny", " ", actor="carol"),
        "INVALID_ARGUMENT",
        "reason: must not be empty",
    )
    await refused(
        network.uis.submit("DecideCodeApproval", request["id"], "maybe", "", actor="carol"),
        "INVALID_ARGUMENT",
        "decision: must be 'approve' or 'deny', got 'maybe'",
    )
    still = await network.uis.evaluate("GetCodeApproval", request["id"], actor="carol")
    assert still["state"] == "pending"
    denied = await network.uis.submit(
        "DecideCodeApproval", request["id"], "deny", "reads the raw rows", actor="carol"
    )
    assert (denied["state"], denied["reason"]) == ("denied", "reads the raw rows")
    await refused(
        network.uis.submit("DecideCodeApproval", request["id"], "approve", "", actor="carol"),
        "INVALID_STATE",
        f"code approval request '{request['id']}' is already denied",
    )


async def test_owner_member_cannot_decide_own_request(network, uid):
    await network.uis.submit(
        "RegisterAsset",
        asset_json(uid, policy={"max_duration_s": 3600, "code_approval_required": True}),
        actor="admin",
    )
    request = await network.uis.submit(
        "RequestCodeApproval",
        json.dumps([uid]),
        _code({"a.py": "1\n"}),
        "jobs: []",
        json.dumps({"a.py": "1\n"}),
        actor="erin",
    )
    await refused(
        network.uis.submit("DecideCodeApproval", request["id"], "approve", "", actor="erin"),
        "POLICY_DENIED",
        f"'erin' made code approval request '{request['id']}' and may not decide on it; "
        "another administrator of the organization must",
    )


async def test_request_validation(network, uid):
    await _leased(network, uid)
    files = {"count.py": SCRIPT}
    for code, contents, message in (
        (
            _code(files),
            {"count.py": "something else"},
            "contents['count.py']: does not match its sha256 in the manifest",
        ),
        (
            json.dumps({"job_sha256": JOBS, "files": {"../etc/passwd": "00" * 32}}),
            {},
            "code.files['../etc/passwd']: must be a relative path without '..' or empty parts",
        ),
        (
            json.dumps({"job_sha256": JOBS, "code_sha256": "00" * 32}),
            {},
            "code: unknown field(s) code_sha256; allowed: files, job_sha256",
        ),
        (_code(files), {"b": "1"}, "contents: names a file not in the manifest: 'b'"),
    ):
        await refused(
            network.uio.submit(
                "RequestCodeApproval",
                json.dumps([uid]),
                code,
                "jobs: []",
                json.dumps(contents),
                actor="bob",
            ),
            "INVALID_ARGUMENT",
            message,
        )
    # Refused, nothing was stored.
    mine = await network.uio.evaluate("ListCodeApprovals", json.dumps({"user": "bob"}), actor="b")
    assert mine["items"] == []
    first = await _request(network, uid, files)
    await refused(
        _request(network, uid, files),
        "INVALID_STATE",
        f"this code is already waiting for the decision of {network.msp['UiS']} for {uid} "
        f"(request '{first['id']}')",
    )
    mine = await network.uio.evaluate("ListCodeApprovals", json.dumps({"user": "bob"}), actor="b")
    assert [r["id"] for r in mine["items"]] == [first["id"]]
    assert "contents" not in mine["items"][0]
    queue = await network.uis.evaluate(
        "ListCodeApprovals",
        json.dumps({"owner_org": network.msp["UiS"], "state": "pending"}),
        actor="carol",
    )
    assert [r["id"] for r in queue["items"]] == [first["id"]]
    await refused(
        network.uis.evaluate("GetCodeApproval", "CA-nothing", actor="carol"),
        "APPROVAL_NOT_FOUND",
        "code approval request 'CA-nothing' does not exist",
    )
