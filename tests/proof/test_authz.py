"""Who may call what on the brokers: the matrix in authz_cases.py, checked cell by cell."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from pathlib import Path

from authz_cases import CALLERS, EXPECTED
from hubapi import Reply
from proof_support import Record, register
from proof_world import World

SPEC = hashlib.sha256(b"authz").hexdigest()
_ids = itertools.count()


def test_broker_authorization_matrix(
    world: World, people: dict[str, str], tmp_path: Path, record: Record
) -> None:
    admin = people["uis_admin"]
    kari = world.make_user("kari", "UiO", "scientist")  # the bystander whose objects these are
    data = tmp_path / "data"
    register(world, admin, "authz-open", data)
    register(world, admin, "authz-approval", data)
    reply = world.broker(
        "UiS",
        "PATCH",
        "/datasets/authz-approval",
        admin,
        {"policy": {"approval_required": True}},
    )
    assert reply.status == 200, reply.text

    callers: dict[str, tuple[str, str | None]] = {
        "anonymous": ("UiS", None),
        "other-org scientist": ("UiO", people["uio_sci"]),
        "same-org scientist": ("UiS", people["uis_sci"]),
        "owner-org admin": ("UiS", admin),
        "other-org admin": ("UiO", people["uio_admin"]),
    }

    def lease_of(token: str, org: str, dataset: str = "authz-open") -> str:
        got = world.broker(
            org,
            "POST",
            "/leases",
            token,
            {"dataset_id": dataset, "duration_s": 600, "purpose": "authz"},
        )
        assert got.status == 201, got.text
        return str(got.body["id"])

    def kari_run() -> str:
        got = world.broker(
            "UiO",
            "POST",
            "/runs",
            kari,
            {"name": "k", "lease_ids": [lease_of(kari, "UiO")], "spec_sha256": SPEC},
        )
        assert got.status == 201, got.text
        return str(got.body["run"]["id"])

    def fresh_dataset() -> str:
        name = f"authz-{next(_ids)}"
        register(world, admin, name, data)
        return name

    Call = Callable[[str, str | None], Reply]

    def own_run(org: str, token: str | None) -> Reply:
        lease = lease_of(token, org) if token else "none"
        return world.broker(
            org, "POST", "/runs", token, {"name": "r", "lease_ids": [lease], "spec_sha256": SPEC}
        )

    calls: dict[str, Call] = {
        "GET /openapi.json": lambda o, t: world.broker(o, "GET", "/openapi.json", t),
        "GET /me": lambda o, t: world.broker(o, "GET", "/me", t),
        "GET /datasets": lambda o, t: world.broker(o, "GET", "/datasets", t),
        "POST /datasets": lambda o, t: world.broker(
            o,
            "POST",
            "/datasets",
            t,
            {
                "id": f"authz-new-{next(_ids)}",
                "name": "n",
                "description": "d",
                "tags": [],
                "policy": {"max_duration_s": 60},
                "storage": {"type": "local", "details": {"path": str(data)}},
            },
        ),
        "GET /datasets/{id}": lambda o, t: world.broker(o, "GET", "/datasets/authz-open", t),
        "PATCH /datasets/{id}": lambda o, t: world.broker(
            o, "PATCH", "/datasets/authz-open", t, {"description": "changed"}
        ),
        "DELETE /datasets/{id}": lambda o, t: world.broker(
            o, "DELETE", f"/datasets/{fresh_dataset()}", t
        ),
        "GET /datasets/{id}/history": lambda o, t: world.broker(
            o, "GET", "/datasets/authz-open/history", t
        ),
        "GET /leases?scope=mine": lambda o, t: world.broker(o, "GET", "/leases?scope=mine", t),
        "GET /leases?scope=pending": lambda o, t: world.broker(
            o, "GET", "/leases?scope=pending", t
        ),
        "POST /leases": lambda o, t: world.broker(
            o, "POST", "/leases", t, {"dataset_id": "authz-open", "duration_s": 60, "purpose": "p"}
        ),
        "POST /leases/{id}/approve": lambda o, t: world.broker(
            o, "POST", f"/leases/{lease_of(kari, 'UiO', 'authz-approval')}/approve", t
        ),
        "POST /leases/{id}/reject": lambda o, t: world.broker(
            o, "POST", f"/leases/{lease_of(kari, 'UiO', 'authz-approval')}/reject", t
        ),
        "POST /leases/{id}/release (another user's)": lambda o, t: world.broker(
            o, "POST", f"/leases/{lease_of(kari, 'UiO')}/release", t
        ),
        "POST /runs (own lease)": own_run,
        "POST /runs (another user's lease)": lambda o, t: world.broker(
            o,
            "POST",
            "/runs",
            t,
            {"name": "r", "lease_ids": [lease_of(kari, "UiO")], "spec_sha256": SPEC},
        ),
        "GET /runs": lambda o, t: world.broker(o, "GET", "/runs", t),
        "GET /runs/{id} (another user's)": lambda o, t: world.broker(
            o, "GET", f"/runs/{kari_run()}", t
        ),
        "POST /runs/{id}/finish (another user's)": lambda o, t: world.broker(
            o, "POST", f"/runs/{kari_run()}/finish", t, {"outcome": "failed"}
        ),
        "POST /peer/mounts (unsigned)": lambda o, t: world.broker(
            o, "POST", "/peer/mounts", t, {"payload": {}, "signature": "", "certificate": ""}
        ),
        # The caller's interactive views (none here: an empty list, made by no one).
        "POST /views": lambda o, t: world.broker(o, "POST", "/views", t, {}),
        "POST /peer/views (unsigned)": lambda o, t: world.broker(
            o, "POST", "/peer/views", t, {"payload": {}, "signature": "", "certificate": ""}
        ),
    }
    assert set(calls) == set(EXPECTED)

    seen: dict[str, list[int]] = {}
    wrong: list[str] = []
    for label, call in calls.items():
        row = []
        for caller, expected in zip(CALLERS, EXPECTED[label], strict=True):
            org, token = callers[caller]
            reply = call(org, token)
            row.append(reply.status)
            if reply.status != expected:
                wrong.append(
                    f"{label} as {caller}: {reply.status} (expected {expected}) {reply.text[:200]}"
                )
            if reply.status >= 400:
                assert reply.body and set(reply.body) >= {"code", "message"}, reply.text
        seen[label] = row
    record("authz_broker", {"callers": list(CALLERS), "rows": seen})
    assert wrong == []


def test_a_token_for_one_org_is_refused_by_another_orgs_broker(
    world: World, people: dict[str, str]
) -> None:
    reply = world.broker("UiS", "GET", "/datasets", people["uio_admin"])
    assert reply.status == 403
    assert reply.body["code"] == "FORBIDDEN"
    assert "may not use this service" in reply.body["message"]
