"""The output gate on the ledger: release policies, what left a run, owners' decisions."""

from __future__ import annotations

import json

import pytest
from ledger_helpers import asset_json, refused

pytestmark = pytest.mark.asyncio

SPEC = "ab" * 32
SHA = "cd" * 32


async def _run_over_two_owners(network, uid):
    """A UiO run reading one UiS and one UiB dataset."""
    await network.uis.submit("RegisterAsset", asset_json(uid), actor="admin")
    await network.uib.submit("RegisterAsset", asset_json(uid + "b"), actor="admin")
    l1 = await network.uio.submit("RequestLease", uid, "300", "s", actor="bob")
    l2 = await network.uio.submit("RequestLease", uid + "b", "300", "s", actor="bob")
    return await network.uio.submit(
        "RecordRun", json.dumps([l1["id"], l2["id"]]), SPEC, "count", actor="bob"
    )


def _outputs(network, *held_by):
    return json.dumps(
        [
            {"path": "count.txt", "sha256": SHA, "size": 9, "decision": "released", "checks": []},
            {
                "path": "copy.txt",
                "sha256": "ef" * 32,
                "size": 4096,
                "decision": "held",
                "held_by": [network.msp[o] for o in held_by],
                "checks": [
                    {"name": "verbatim_input", "passed": False, "message": "copied 4096 bytes"}
                ],
            },
        ]
    )


async def test_release_policy_defaults_and_validation(network, uid):
    created = await network.uis.submit("RegisterAsset", asset_json(uid), actor="admin")
    assert created["policy"]["release"] == {
        "checks": ["max_size", "verbatim_input"],
        "max_output_bytes": 1048576,
        "mode": "checks",
        "unknown": "hold",
    }
    patched = await network.uis.submit(
        "UpdateAsset", uid, json.dumps({"policy": {"release": {"mode": "review"}}}), actor="a"
    )
    assert patched["policy"]["release"]["mode"] == "review"
    assert patched["policy"]["release"]["max_output_bytes"] == 1048576
    for release, message in (
        (
            {"mode": "never"},
            "policy.release.mode: must be one of auto, checks, review, got 'never'",
        ),
        (
            {"checks": ["psychic"]},
            "policy.release.checks[0]: unknown check 'psychic'; known: dominance, "
            "max_rows_ratio, max_size, min_cell_count, min_rows, no_identifiers, verbatim_input",
        ),
        ({"unknown": "maybe"}, "policy.release.unknown: must be 'hold' or 'release'"),
        (
            {"colour": "red"},
            "policy.release: unknown field(s) colour; allowed: checks, disclosure, "
            "max_output_bytes, mode, unknown",
        ),
    ):
        await refused(
            network.uis.submit(
                "UpdateAsset", uid, json.dumps({"policy": {"release": release}}), actor="a"
            ),
            "INVALID_ARGUMENT",
            message,
        )
    # Refusals changed nothing already stored.
    current = await network.uis.evaluate("GetAsset", uid, actor="a")
    assert current["policy"]["release"]["mode"] == "review"


async def test_outputs_are_recorded_with_the_outcome_and_decided_by_every_holder(network, uid):
    run = await _run_over_two_owners(network, uid)
    await refused(
        network.uis.submit("DecideOutput", run["id"], "copy.txt", "true", "", actor="carol"),
        "INVALID_STATE",
        f"run '{run['id']}' is still running; its outputs are decided after it ends",
    )
    done = await network.uio.submit(
        "FinishRun", run["id"], "succeeded", SHA, _outputs(network, "UiS", "UiB"), actor="bob"
    )
    assert [(o["path"], o["decision"]) for o in done["outputs"]] == [
        ("count.txt", "released"),
        ("copy.txt", "held"),
    ]
    # The lessee cannot release its own held file: only the organizations that held it.
    await refused(
        network.uio.submit("DecideOutput", run["id"], "copy.txt", "true", "", actor="bob"),
        "NOT_OWNER",
        f"output 'copy.txt' of run '{run['id']}' was not held by {network.msp['UiO']}; only "
        f"{', '.join(sorted([network.msp['UiS'], network.msp['UiB']]))} decide on it",
    )
    await refused(
        network.uis.submit("DecideOutput", run["id"], "nope.txt", "true", "", actor="carol"),
        "INVALID_ARGUMENT",
        f"path: run '{run['id']}' has no output 'nope.txt'",
    )
    await refused(
        network.uis.submit("DecideOutput", run["id"], "copy.txt", "false", "", actor="carol"),
        "INVALID_ARGUMENT",
        "reason: must not be empty",
    )
    one = await network.uis.submit("DecideOutput", run["id"], "copy.txt", "true", "ok", actor="c")
    copy = next(o for o in one["outputs"] if o["path"] == "copy.txt")
    assert copy["decision"] == "held", "one of two holders approving releases nothing"
    both = await network.uib.submit("DecideOutput", run["id"], "copy.txt", "true", "ok", actor="d")
    copy = next(o for o in both["outputs"] if o["path"] == "copy.txt")
    assert copy["decision"] == "released"
    assert copy["decisions"][network.msp["UiB"]]["actor"] == "d"
    await refused(
        network.uib.submit("DecideOutput", run["id"], "copy.txt", "false", "late", actor="d"),
        "INVALID_STATE",
        f"output 'copy.txt' of run '{run['id']}' is already released",
    )


async def test_one_denial_denies(network, uid):
    run = await _run_over_two_owners(network, uid)
    await network.uio.submit(
        "FinishRun", run["id"], "succeeded", SHA, _outputs(network, "UiS", "UiB"), actor="bob"
    )
    denied = await network.uib.submit(
        "DecideOutput", run["id"], "copy.txt", "false", "raw rows", actor="d"
    )
    copy = next(o for o in denied["outputs"] if o["path"] == "copy.txt")
    assert (copy["decision"], copy["decisions"][network.msp["UiB"]]["reason"]) == (
        "denied",
        "raw rows",
    )


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ("{}", "outputs: must be a JSON list of {path, sha256, size, decision, held_by}"),
        (
            json.dumps([{"path": "../x", "sha256": SHA, "size": 1, "decision": "released"}]),
            "outputs[0].path: must be a relative path without '..'",
        ),
        (
            json.dumps([{"path": "x", "sha256": SHA, "size": 1, "decision": "denied"}]),
            "outputs[0].decision: must be 'held' or 'released' when a run ends",
        ),
        (
            json.dumps([{"path": "x", "sha256": SHA, "size": 1, "decision": "held"}]),
            "outputs[0].held_by: a held file names who held it; a released one none",
        ),
    ],
)
async def test_bad_outputs_are_refused_and_the_run_stays_running(network, uid, outputs, message):
    run = await _run_over_two_owners(network, uid)
    await refused(
        network.uio.submit("FinishRun", run["id"], "succeeded", SHA, outputs, actor="bob"),
        "INVALID_ARGUMENT",
        message,
    )
    assert (await network.uio.evaluate("GetRun", run["id"], actor="bob"))["state"] == "running"


def _queued(queue, run_id):
    """The paths of `run_id` in an organization's ListHeldOutputs queue."""
    return [o["path"] for r in queue["items"] if r["id"] == run_id for o in r["outputs"]]


async def test_each_holder_sees_its_own_queue_until_it_decides(network, uid):
    run = await _run_over_two_owners(network, uid)
    assert _queued(await network.uis.evaluate("ListHeldOutputs", actor="c"), run["id"]) == []
    await network.uio.submit(
        "FinishRun", run["id"], "succeeded", SHA, _outputs(network, "UiS", "UiB"), actor="bob"
    )
    uis = await network.uis.evaluate("ListHeldOutputs", actor="c")
    # Only the held file waits; the released one never reaches an admin.
    assert _queued(uis, run["id"]) == ["copy.txt"]
    entry = next(r for r in uis["items"] if r["id"] == run["id"])
    assert (entry["user"], entry["name"]) == ("bob", "count")
    assert entry["outputs"][0]["checks"][0]["message"] == "copied 4096 bytes"
    assert _queued(await network.uib.evaluate("ListHeldOutputs", actor="d"), run["id"]) == [
        "copy.txt"
    ]
    assert _queued(await network.uio.evaluate("ListHeldOutputs", actor="bob"), run["id"]) == []

    await network.uis.submit("DecideOutput", run["id"], "copy.txt", "true", "ok", actor="c")
    assert _queued(await network.uis.evaluate("ListHeldOutputs", actor="c"), run["id"]) == []
    assert _queued(await network.uib.evaluate("ListHeldOutputs", actor="d"), run["id"]) == [
        "copy.txt"
    ], "UiS approving leaves UiB's decision to make"
    await network.uib.submit("DecideOutput", run["id"], "copy.txt", "true", "ok", actor="d")
    assert _queued(await network.uib.evaluate("ListHeldOutputs", actor="d"), run["id"]) == []


async def test_a_denial_empties_every_holders_queue(network, uid):
    run = await _run_over_two_owners(network, uid)
    await network.uio.submit(
        "FinishRun", run["id"], "succeeded", SHA, _outputs(network, "UiS", "UiB"), actor="bob"
    )
    await network.uib.submit("DecideOutput", run["id"], "copy.txt", "false", "raw", actor="d")
    # Denied by one is denied: nothing is left for the other holder to decide.
    assert _queued(await network.uis.evaluate("ListHeldOutputs", actor="c"), run["id"]) == []
    await refused(
        network.uis.submit("DecideOutput", run["id"], "copy.txt", "true", "", actor="c"),
        "INVALID_STATE",
        f"output 'copy.txt' of run '{run['id']}' is already denied",
    )
