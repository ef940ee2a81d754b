"""Checking a broker's POST /runs body before anything is created for it."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import posixpath
from dataclasses import dataclass
from typing import Any

from dshare_server.workflow.local_runner import RunnerError, plan

from ..webapi import ApiError, bad
from .identity import UidPool
from .mockrun import check_mock_mount, is_mock_mount
from .mounts import check_mount_fields
from .store import valid_run_id


@dataclass
class RunRequest:
    run_id: str
    org: str
    user: str
    home: str
    uid: int
    gid: int
    manifest: dict[str, Any]  # with every lease claim forced read-only
    home_claim: str
    home_path: str  # where the jobs see the home (the workspace)
    mounts: dict[str, dict[str, Any]]
    workspace: bytes
    digest: str  # of the whole body: a repeated POST must be the same run
    mock: bool = False  # every mount is a mock (mockrun.py): no owner's data at all


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad(name, "must be a non-empty string")
    return value


def _os_id(body: dict[str, Any], name: str, pool: UidPool) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise bad(name, "must be the scientist's OS id, a positive integer (never root)")
    if value in pool:
        raise bad(name, "is one of the executor's job identities, not a scientist's")
    return value


def _claims(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = manifest.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("volumes", []), list):
        raise bad("manifest", "is not a compiled Argo Workflow (no spec.volumes)")
    claims = {}
    for vol in spec.get("volumes", []):
        pvc = vol.get("persistentVolumeClaim") if isinstance(vol, dict) else None
        if not isinstance(pvc, dict) or not isinstance(pvc.get("claimName"), str):
            raise bad("manifest", f"volume {vol.get('name')!r} is not a persistent volume claim")
        claims[pvc["claimName"]] = vol
    return claims


def _home_path(manifest: dict[str, Any], volume_name: str) -> str:
    paths = set()
    for tmpl in manifest["spec"].get("templates", []):
        for vm in (tmpl.get("container") or {}).get("volumeMounts", []):
            if vm.get("name") == volume_name:
                paths.add(vm.get("mountPath"))
    if len(paths) != 1:
        raise bad("manifest", "every job must mount the home claim at one and the same path")
    path = str(paths.pop())
    if not posixpath.isabs(path):
        raise bad("manifest", "the home claim's mountPath must be absolute")
    return path


def check_run_request(body: Any, pool: UidPool) -> RunRequest:
    if not isinstance(body, dict):
        raise bad("body", "must be a JSON object")
    run_id = body.get("run_id")
    if not valid_run_id(run_id):
        raise bad("run_id", "must be 1-128 letters, digits, '.', '_' or '-'")
    assert isinstance(run_id, str)
    org, user, home = _string(body, "org"), _string(body, "user"), _string(body, "home")
    if not posixpath.isabs(home) or posixpath.normpath(home) != home:
        raise bad("home", "must be the scientist's home as an absolute, normalized path")
    uid, gid = _os_id(body, "uid", pool), _os_id(body, "gid", pool)
    manifest = body.get("manifest")
    if not isinstance(manifest, dict):
        raise bad("manifest", "must be the compiled Argo Workflow, as an object")
    manifest = copy.deepcopy(manifest)
    claims = _claims(manifest)
    home_claim = _string(body, "home_claim")
    if home_claim not in claims:
        raise bad("home_claim", "is not a claim of the manifest's volumes")
    mounts = body.get("mounts") or {}
    if not isinstance(mounts, dict):
        raise bad("mounts", "must be an object {claim name: mount}")
    mounts = dict(mounts)  # checked mock mounts replace the caller's, never in its body
    mock = body.get("mock", False)
    if not isinstance(mock, bool):
        raise bad("mock", "must be true (a run on mocks) or false")
    for claim in claims:
        if claim != home_claim and claim not in mounts:
            raise bad("mounts", f"the manifest mounts claim {claim!r}, which has no lease mount")
    for claim, mount in mounts.items():
        if claim not in claims or claim == home_claim:
            raise bad(f"mounts.{claim}", "is not a lease claim of the manifest")
        if mock:
            mounts[claim] = check_mock_mount(claim, mount)
        elif is_mock_mount(mount):
            raise bad(
                f"mounts.{claim}.kind",
                "a mock mount belongs to a mock run only; send mock: true with mock mounts alone",
            )
        else:
            check_mount_fields(claim, mount)
        # Leased data is read-only whatever the manifest says.
        claims[claim]["persistentVolumeClaim"]["readOnly"] = True
    try:
        plan(manifest, {c: "/" for c in claims})
    except (RunnerError, KeyError, TypeError, AttributeError) as error:
        raise bad("manifest", f"cannot be run: {error}") from None
    home_volume = str(claims[home_claim]["name"])
    encoded = body.get("workspace") or ""
    if not isinstance(encoded, str):
        raise bad("workspace", "must be base64 of a gzip tar of the home")
    try:
        archive = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise bad("workspace", "is not valid base64") from None
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return RunRequest(
        run_id=run_id,
        org=org,
        user=user,
        home=home,
        uid=uid,
        gid=gid,
        manifest=manifest,
        home_claim=home_claim,
        home_path=_home_path(manifest, home_volume),
        mounts={c: dict(m) for c, m in mounts.items()},
        workspace=archive,
        digest=digest,
        mock=mock,
    )


def refuse_sandbox() -> ApiError:
    from .jail import HOW_TO_FIX

    return ApiError("SANDBOX_UNAVAILABLE", f"the run was refused: {HOW_TO_FIX}")
