"""Secrets: after the whole embedded story (registrations, leases, the thesis experiment,
releases) no storage credential, data key, key-encryption key or org private key is found
anywhere a user can reach: homes, the server's and kernel's environment and variables,
every HTTP response, notebook outputs, logs. The scanner first proves it can find one."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest
from hubclient import HubSession
from proof_support import Record, data_keys

from dshare_hub.demo.seed import user_token
from dshare_hub.keys import KekSource

pytestmark = pytest.mark.asyncio(loop_scope="module")


class RecordingSession(HubSession):
    """A browser that keeps every response body it received."""

    bodies: list[bytes]

    async def fetch(self, *args, **kwargs):
        response = await super().fetch(*args, **kwargs)
        self.__dict__.setdefault("bodies", []).append(response.body or b"")
        return response


def forms(secret: bytes | str) -> set[bytes]:
    """The ways a secret could be written down: raw, hex, base64 (both alphabets)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    out = {raw}
    if not isinstance(secret, str):
        out |= {
            raw.hex().encode(),
            base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"="),
        }
    return {f for f in out if len(f) >= 16}


def scan(places: dict[str, bytes], needles: dict[str, set[bytes]]) -> list[str]:
    return [
        f"{name} found in {where}"
        for where, data in places.items()
        for name, variants in needles.items()
        if any(v in data for v in variants)
    ]


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p.stat().st_size < 50_000_000
    }


def processes_of(user: str) -> dict[str, bytes]:
    """Environment of the user's single-user server and of its kernels."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"JUPYTERHUB_USER={user}".encode() in environ:
            found[f"environment of pid {proc.name} ({cmdline[:80]!r})"] = environ
    return found


async def test_no_secret_reaches_a_user(deployment, logins, record: Record) -> None:
    layout = deployment.layout
    access_key = "AKIA" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)

    # An org admin registers an S3 dataset with credentials, through the broker API.
    admin_token = user_token(layout, "uis-admin")
    admin = RecordingSession(layout.public_url)
    reply = await admin.fetch(
        "services/dshare-uis/api/v1/datasets",
        "POST",
        json.dumps(
            {
                "id": "uis-s3-archive",
                "name": "UiS S3 archive",
                "description": "behind credentials",
                "tags": ["s3"],
                "policy": {"max_duration_s": 3600},
                "storage": {
                    "type": "s3",
                    "details": {
                        "bucket": "uis-archive",
                        "region": "eu-north-1",
                        "access_key_id": access_key,
                        "secret_access_key": secret_key,
                    },
                },
            }
        ),
        {"Authorization": f"token {admin_token}", "Content-Type": "application/json"},
    )
    assert reply.code == 201, reply.body

    # A UiO scientist leases it and the three corpora, runs the experiment, releases all.
    user = RecordingSession(layout.public_url)
    await user.login("uio-scientist", logins["uio-scientist"])
    await user.start_server()
    out, errors = await user.run_code(
        "import json, os\n"
        "from dshare_server.session import lease, release\n"
        "leased = [lease(d, hours=1, purpose='proof')\n"
        "          for d in ['uis-s3-archive', 'uis-lorem-corpus', 'uio-lorem-corpus',\n"
        "                    'uib-lorem-corpus']]\n"
        "%load_ext dshare_server\n"
        "run = %dshare_run workflow.yaml\n"
        "print('RUN', run.state)\n"
        "print(open('result.txt').read())\n"
        "for l in leased: release(l['id'])\n"
        "print('ENV', json.dumps(dict(os.environ)))\n"
        "import dshare_server, sys\n"
        "print('VARS', repr({k: repr(v)[:2000] for k, v in globals().items()}))\n"
        "print('MODS', repr({n: repr(vars(m))[:20000] for n, m in sys.modules.items()\n"
        "                    if n.startswith('dshare')}))\n"
    )
    assert not errors, errors
    assert "RUN succeeded" in out, out
    for path in (
        "dshare/api/datasets?limit=100",
        "dshare/api/leases?scope=mine",
        "dshare/api/runs",
        "dshare/api/datasets/uis-s3-archive",
        "dshare/api/datasets/uis-s3-archive/history",
        "dshare/api/me",
    ):
        status, _ = await user.api(path)
        assert status == 200, path

    needles: dict[str, set[bytes]] = {
        "S3 access key id": forms(access_key),
        "S3 secret access key": forms(secret_key),
    }
    for org in ("UiS", "UiO", "UiB"):
        needles[f"{org} KEK file line"] = forms(layout.kek_file(org).read_text().strip())
        for key in KekSource(kek_file=str(layout.kek_file(org))).keyring().keks:
            needles[f"{org} KEK {key.kek_id}"] = forms(key.key)
        for i, key in enumerate(data_keys(layout, org)):
            needles[f"{org} data key {i}"] = forms(key)
        private = (layout.identities / org / "key.pem").read_text()
        body = "".join(private.strip().splitlines()[1:-1])
        needles[f"{org} org private key"] = forms(body[:64])
    assert sum(1 for n in needles if "data key" in n) >= 7  # the samples and the S3 one

    places: dict[str, bytes] = {}
    places.update(files_under(layout.homes))
    places.update(processes_of("uio-scientist"))
    places["browser responses"] = b"\n".join(user.__dict__.get("bodies", []))
    places["admin responses"] = b"\n".join(admin.__dict__.get("bodies", []))
    places["notebook output"] = out.encode()
    places["hub, proxy and broker log"] = Path(deployment.log_path).read_bytes()
    assert any("environment of pid" in p for p in places), "no user process found to scan"

    # The scanner proves itself: a planted secret in any of the places is found.
    canary = secrets.token_bytes(32)
    for where in list(places):
        planted = {**places, where: places[where] + base64.b64encode(canary)}
        assert scan(planted, {"canary": forms(canary)}) == [f"canary found in {where}"]

    leaks = scan(places, needles)
    record(
        "secrets",
        {
            "secrets_searched": len(needles),
            "places_searched": len(places),
            "bytes_searched": sum(len(v) for v in places.values()),
            "leaks": leaks,
        },
    )
    assert leaks == []


async def test_cookie_authenticated_write_without_xsrf_is_refused(deployment, logins) -> None:
    session = HubSession(deployment.layout.public_url)
    await session.login("uio-scientist", logins["uio-scientist"])
    await session.start_server()
    response = await session.fetch(
        "user/uio-scientist/dshare/api/leases",
        "POST",
        json.dumps({"dataset_id": "uis-lorem-corpus", "duration_s": 60, "purpose": "x"}),
        {"Content-Type": "application/json"},
    )
    assert response.code == 403
    assert json.loads(response.body) == {
        "code": "FORBIDDEN",
        "message": "'_xsrf' argument missing from POST",
    }
    status, body = await session.api("dshare/api/leases?scope=mine")
    assert status == 200
    assert [x for x in body["items"] if x["purpose"] == "x"] == []
