"""The run path as a hostile scientist sees it, from their own kernel with their own token.

The broker compiles and binds runs itself, so whatever the kernel sends, it never gets
something that resolves to the data: no mount for a bare list of leases, no way to end a
run early (which would release the mounts before the gate ran), no way to talk to the
executor, no run over somebody else's lease. Storage roots keep an owner's admin from
registering a dataset that points at another organization's data or the machine's files.
"""

from __future__ import annotations

import json
import pwd
import uuid
from pathlib import Path

import pytest
from hubclient import HubSession
from rogue_broker import as_broker, rogue_body, rogue_manifest

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Runs in the scientist's kernel: the token and the broker URL are what the server has.
CALLS = """
import json, os, urllib.request
token = os.environ['JUPYTERHUB_API_TOKEN']
broker = os.environ['DSHARE_BROKER_URL'].rstrip('/') + '/api/v1/'
def call(url, method='GET', body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        'Authorization': 'token ' + token, 'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)
"""


async def _kernel(deployment, logins, user: str) -> HubSession:
    session = HubSession(deployment.layout.public_url)
    await session.login(user, logins[user])
    await session.start_server()
    return session


def _answers(out: str) -> dict[str, list]:
    return {
        line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
        for line in out.splitlines()
        if line.startswith("ANSWER-")
    }


async def test_the_kernel_gets_no_mount_and_cannot_end_a_run_or_reach_the_executor(
    deployment, logins
):
    layout = deployment.layout
    session = await _kernel(deployment, logins, "uib-scientist")
    out, errors = await session.run_code(
        CALLS
        + f"""
from dshare_server.session import lease
mine = lease('uis-lorem-corpus', hours=1, purpose='attack: mounts')
print('ANSWER-legacy', json.dumps(call(broker + 'runs', 'POST', {{
    'name': 'grab', 'lease_ids': [mine['id']], 'spec_sha256': 'ab' * 32}})))
print('ANSWER-executor', json.dumps(call({layout.executor_url!r} + 'api/v1/runs', 'POST', {{
    'run_id': 'R-forged', 'org': 'UiB', 'user': 'uib-scientist', 'mounts': {{}}}})))
print('ANSWER-executor-list', json.dumps(call({layout.executor_url!r} + 'api/v1/runs/x')))
import base64
from dshare_server.workflow.workspace import pack_home
home = base64.b64encode(pack_home(os.path.expanduser('~'))).decode()
spec = ('jobs:\\n- command: sleep 30\\n'
        '  volumes: [{{id: uis-lorem-corpus, path: /home/jovyan/uis}}]\\n')
started = call(broker + 'runs', 'POST', {{'spec': spec, 'workspace': home}})
print('ANSWER-started', json.dumps(started))
run_id = json.loads(started[1])['run']['id']
print('ANSWER-finish', json.dumps(call(broker + 'runs/' + run_id + '/finish', 'POST',
    {{'outcome': 'succeeded'}})))
print('ANSWER-decide', json.dumps(call(broker + 'runs/' + run_id + '/outputs/decide', 'POST',
    {{'path': 'anything', 'approve': True}})))
print('ANSWER-cancel', json.dumps(call(broker + 'runs/' + run_id + '/cancel', 'POST', {{}})))
"""
    )
    assert not errors, (out, errors)
    answers = _answers(out)

    status, body = answers["ANSWER-legacy"]
    assert status == 400, body
    refusal = json.loads(body)
    assert refusal["code"] == "INVALID_ARGUMENT" and refusal["field"] == "lease_ids"
    assert "send {spec, workspace}" in refusal["message"]
    assert "handle" not in body and str(layout.root) not in body

    # The executor takes brokers only: the scientist's own token is refused.
    for key in ("ANSWER-executor", "ANSWER-executor-list"):
        status, body = answers[key]
        assert status == 403, (key, body)

    status, body = answers["ANSWER-started"]
    assert status == 201, body
    assert set(json.loads(body)) == {"run"}  # a run, and nothing that mounts anything
    status, body = answers["ANSWER-finish"]
    assert (status, json.loads(body)["code"]) == (403, "FORBIDDEN"), body
    # Only an owner's admin decides what its release policy held, never the lessee.
    status, body = answers["ANSWER-decide"]
    assert (status, json.loads(body)["code"]) == (403, "FORBIDDEN"), body
    assert answers["ANSWER-cancel"][0] == 200


async def test_a_run_over_another_users_lease_is_refused_before_anything_exists(deployment, logins):
    owner = await _kernel(deployment, logins, "uio-scientist")
    out, errors = await owner.run_code(
        "from dshare_server.session import lease\n"
        "print('LEASE', lease('uib-lorem-corpus', hours=1, purpose='victim')['id'])\n"
    )
    assert not errors, (out, errors)
    victim_lease = next(x for x in out.split() if x.startswith("L-"))
    attacker = await _kernel(deployment, logins, "uis-scientist")
    status_before, runs_before = await attacker.api("dshare/api/runs")
    assert status_before == 200, runs_before
    spec = f"jobs:\\n- command: cat /data/*\\n  volumes: [{{id: {victim_lease}, path: /data}}]\\n"
    out, errors = await attacker.run_code(
        CALLS + f"print('ANSWER-run', json.dumps(call(broker + 'runs', 'POST', "
        f"{{'spec': '{spec}', 'workspace': ''}})))\n"
    )
    assert not errors, (out, errors)
    status, body = _answers(out)["ANSWER-run"]
    assert status == 400, body
    refusal = json.loads(body)
    assert (refusal["code"], refusal["field"]) == ("INVALID_ARGUMENT", "spec")
    assert victim_lease in refusal["message"] and "workflow.yaml:" in refusal["message"]
    _, runs_after = await attacker.api("dshare/api/runs")
    assert len(runs_after["items"]) == len(runs_before["items"]), "a refused run was recorded"


async def test_storage_roots_refuse_a_dataset_outside_them_and_store_nothing(deployment, logins):
    layout = deployment.layout
    admin = HubSession(layout.public_url)
    await admin.login("uis-admin", logins["uis-admin"])
    await admin.start_server()
    escape = layout.storage_root("UiS") / f"escape-{uuid.uuid4().hex[:8]}"
    escape.symlink_to(layout.storage_root("UiO"))
    for target in (
        "/etc",
        str(layout.storage_root("UiO")),
        str(layout.org_dir("UiS")),
        str(escape),
    ):
        dataset_id = f"outside-{uuid.uuid4().hex[:8]}"
        status, body = await admin.api(
            "dshare/api/datasets",
            "POST",
            {
                "id": dataset_id,
                "name": "escape attempt",
                "description": "points outside UiS's storage",
                "storage": {"type": "local", "details": {"path": target}},
            },
        )
        assert status == 400, (target, body)
        assert body["field"] == "storage.details.path"
        assert "outside this organization's storage roots" in body["message"]
        assert str(layout.storage_root("UiS")) in body["message"]
        status, _ = await admin.api(f"dshare/api/datasets/{dataset_id}")
        assert status == 404, f"a refused dataset ({target}) was stored"


async def test_a_broker_cannot_have_results_delivered_into_another_orgs_home(deployment):
    # UiO's broker, gone rogue, asks the executor to run something "for" UiS's scientist, or
    # for its own scientist but into UiS's scientist's home. Both refused; its own user's run
    # with the very same body is accepted, so the refusals are the executor's checks.
    layout = deployment.layout
    victim = pwd.getpwnam(layout.user_template.format(username="uis-scientist"))
    manifest = rogue_manifest([], [], "echo planted > planted.txt")

    async def submit(run_id: str, user: str, account: pwd.struct_passwd) -> tuple[int, dict]:
        body = rogue_body(layout, run_id, manifest, {}, user=user, account=account)
        return await as_broker(layout, "UiO", "runs", body)

    tag = uuid.uuid4().hex[:8]
    status, body = await submit(f"rogue-{tag}-1", "uis-scientist", victim)
    assert (status, body["field"]) == (403, "user"), body
    assert body["message"] == (
        "user 'uis-scientist' is not a member of UiO; a broker submits runs of its own "
        "organization's users only"
    )
    status, body = await submit(f"rogue-{tag}-2", "uio-scientist", victim)
    assert (status, body["field"]) == (403, "uid"), body
    assert not (Path(victim.pw_dir) / "planted.txt").exists()
    own = pwd.getpwnam(layout.user_template.format(username="uio-scientist"))
    status, body = await submit(f"rogue-{tag}-3", "uio-scientist", own)
    assert status == 202, body
