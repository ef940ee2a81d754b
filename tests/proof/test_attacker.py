"""A hostile scientist's test suite: everything a demo scientist can reach, they try.

Trust boundaries 1-4 of the design (docs: "Who is trusted with what"): no secret reaches a
scientist (kernel, terminal, jobs), raw data only inside a job sandbox, a run's writes
reach the home only through the output gate, no one reads another's home or server.

Every secret of the running deployment is read as root first (attacker/attack_needles.py);
then each scientist, logged in through the hub's form, runs attacker/attack_scanner.py over
the whole filesystem and /proc from a kernel, from a JupyterLab terminal and from inside a
job, and tries the ledger, other users' homes and servers and another org's broker. The
scanner proves itself first on planted values (as root): an attack counts only after that.

`make test` runs the full-filesystem scans as one scientist; `make proof` as all three.
Every attack, user, outcome and figure goes to $DSHARE_TEST_OUTPUT/attacker-report.json.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hubclient import HubSession
from proof_support import FULL

sys.path.insert(0, str(Path(__file__).parent / "attacker"))

from attack_kit import (
    JOB_SCRIPT,
    KIT,
    SCAN_CAP_S,
    SCANNER,
    WORKFLOW,
    Arena,
    allowed_datasets,
    check_scan,
    last_json,
    needle_spec,
    prove_scanner,
    put_file,
    write_report,
)
from attack_needles import collect, server_processes
from attack_scanner import mask_needles
from attack_terminal import terminal

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCIENTISTS = ["uis-scientist", "uio-scientist", "uib-scientist"]
# The whole-filesystem scans: one scientist inside make test, all three under make proof.
SCANNERS = SCIENTISTS if FULL else ["uio-scientist"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def arena(deployment, logins) -> AsyncIterator[Arena]:
    """The three scientists signed in with their servers running, and every secret."""
    layout = deployment.layout
    sessions = {}
    for name in SCIENTISTS:
        session = HubSession(layout.public_url)
        response = await session.login(name, logins[name])
        assert response.code == 302, f"{name} could not log in: {response.code}"
        await session.start_server()
        sessions[name] = session
    running = Arena(layout, sessions, collect(layout, SCIENTISTS))
    try:
        yield running
    finally:
        write_report(running)


@pytest.fixture(scope="module")
def scanner_proven(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return prove_scanner(tmp_path_factory.mktemp("scanner-proof"))


async def test_the_scanner_finds_what_is_planted(scanner_proven) -> None:
    assert scanner_proven["bytes"] > 0


# -- Attack 1: scan everything from a kernel -------------------------------------------


@pytest.mark.parametrize("user", SCANNERS)
async def test_kernel_scan_finds_no_secret(arena: Arena, scanner_proven, user: str) -> None:
    session = arena.sessions[user]
    spec = needle_spec(arena, user, await allowed_datasets(arena, user))
    code = (
        "import subprocess, sys, json\n"
        f"done = subprocess.run([sys.executable, '-c', {SCANNER.read_text()!r}, '-',\n"
        f"    '--time-cap', '{SCAN_CAP_S}'], input={spec!r}, capture_output=True, text=True)\n"
        "lines = done.stdout.strip().splitlines()\n"
        "print('SCAN', lines[-1] if lines else json.dumps({'error': done.stderr[-3000:]}))\n"
    )
    out, errors = await session.run_code(code, timeout=SCAN_CAP_S + 120)
    assert not errors, errors
    check_scan(arena, "kernel scan", user, last_json(out, "SCAN"))


# -- Attack 2: the same from a JupyterLab terminal --------------------------------------


@pytest.mark.parametrize("user", SCANNERS)
async def test_terminal_scan_finds_no_secret(arena: Arena, scanner_proven, user: str) -> None:
    session = arena.sessions[user]
    await put_file(session, "attack_scanner.py", SCANNER.read_text())
    await put_file(
        session, "needles.json", needle_spec(arena, user, await allowed_datasets(arena, user))
    )
    done = "TERMINAL-" + secrets.token_hex(4)
    text = await terminal(
        session,
        f'cd; cd {KIT} 2>/dev/null || cd "$(dirname "$(find / -maxdepth 6 -type d -name {KIT} '
        f'-user "$(id -u)" 2>/dev/null | head -1)")/{KIT}"; echo UID=$(id -u); '
        f"python3 attack_scanner.py needles.json --time-cap {SCAN_CAP_S} --out scan.json "
        ">/dev/null; echo; echo SCAN $(cat scan.json); rm -f scan.json needles.json",
        done,
        timeout=SCAN_CAP_S + 120,
    )
    uid = re.search(r"UID=(\d+)", text)
    assert uid, f"the terminal printed no uid: {text[-2000:]}"
    result = last_json(text, "SCAN")
    check_scan(arena, "terminal scan", user, result, terminal_uid=int(uid.group(1)))
    assert int(uid.group(1)) != 0, f"{user}'s terminal runs as root"


# -- Attack 3: other processes' environments --------------------------------------------


@pytest.mark.parametrize("user", SCIENTISTS)
async def test_no_other_users_token_in_any_process(arena: Arena, user: str) -> None:
    """Cheap and for every scientist: only /proc, no filesystem walk."""
    others = {
        n.name: n.forms for n in arena.needles.items if n.kind == "user token" and n.holder != user
    }
    assert others, "no other user's server token was found to hunt for"
    spec = json.dumps(mask_needles(others, os.urandom(16)))
    code = (
        "import subprocess, sys, json, tempfile\n"
        "empty = tempfile.mkdtemp()\n"
        f"done = subprocess.run([sys.executable, '-c', {SCANNER.read_text()!r}, '-',\n"
        "    '--root', empty], input=" + repr(spec) + ", capture_output=True, text=True)\n"
        "print('SCAN', done.stdout.strip().splitlines()[-1])\n"
    )
    out, errors = await arena.sessions[user].run_code(code)
    assert not errors, errors
    result = last_json(out, "SCAN")
    arena.note(
        "other users' tokens in /proc",
        user,
        not result["found"],
        found=result["found"],
        proc_read=result["proc_read"],
        proc_unreadable=result["proc_unreadable"],
        uid=result["uid"],
    )
    assert not result["found"], f"{user} read other users' tokens: {result['found']}"


# -- Attack 4: rewrite the ledger ---------------------------------------------------------


@pytest.mark.parametrize("user", SCIENTISTS)
async def test_ledger_cannot_be_written(arena: Arena, user: str) -> None:
    db = str(arena.layout.ledger_db)
    code = f"""
import json, os, sqlite3
out = {{}}
try:
    open({db!r}, 'r+b').close()
    out['open r+b'] = 'opened'
except OSError as e:
    out['open r+b'] = repr(e)
try:
    conn = sqlite3.connect({db!r}, timeout=2)
    table = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchone()[0]
    conn.execute(f'UPDATE "{{table}}" SET rowid = rowid')
    conn.execute('CREATE TABLE attacker_was_here (x)')
    conn.commit()
    out['sqlite update'] = 'committed to ' + table
except Exception as e:
    out['sqlite update'] = repr(e)
try:
    path = os.path.join(os.path.dirname({db!r}), 'attacker-was-here')
    open(path, 'w').close()
    os.unlink(path)
    out['create in ledger dir'] = 'created'
except OSError as e:
    out['create in ledger dir'] = repr(e)
try:
    open({db!r}, 'rb').read(16)
    out['read'] = 'read'
except OSError as e:
    out['read'] = repr(e)
print('LEDGER', json.dumps(out))
"""
    out, errors = await arena.sessions[user].run_code(code)
    assert not errors, errors
    result = last_json(out, "LEDGER")
    wrote = {k: v for k, v in result.items() if k != "read" and v in ("opened", "created")}
    wrote.update({k: v for k, v in result.items() if v.startswith("committed")})
    arena.note("write the ledger", user, not wrote, outcome=result)
    assert not wrote, f"{user} could write the ledger database: {wrote}"


# -- Attack 5: another user's home and server ---------------------------------------------


def _plant(arena: Arena, owner: str) -> tuple[Path, str]:
    home = arena.layout.homes / owner
    info = home.stat()
    secret = "planted-" + secrets.token_hex(16)
    path = home / f"private-{secrets.token_hex(4)}.txt"
    path.write_text(secret + "\n")
    os.chown(path, info.st_uid, info.st_gid)
    path.chmod(0o644)  # a file as a user's umask leaves it: the home itself must protect
    return path, secret


@pytest.mark.parametrize("user", SCIENTISTS)
async def test_other_homes_are_closed(arena: Arena, user: str) -> None:
    results = {}
    for other in SCIENTISTS:
        if other == user:
            continue
        planted, _ = _plant(arena, other)
        code = f"""
import json, os
out = {{}}
try:
    out['list'] = sorted(os.listdir({str(planted.parent)!r}))[:5]
except OSError as e:
    out['list'] = repr(e)
try:
    out['read'] = open({str(planted)!r}).read()
except OSError as e:
    out['read'] = repr(e)
try:
    open(os.path.join({str(planted.parent)!r}, 'from-{user}.txt'), 'w').write('x')
    out['write'] = 'written'
except OSError as e:
    out['write'] = repr(e)
print('HOME', json.dumps(out))
"""
        out, errors = await arena.sessions[user].run_code(code)
        assert not errors, errors
        results[other] = last_json(out, "HOME")
        planted.unlink()
        (planted.parent / f"from-{user}.txt").unlink(missing_ok=True)
    broken = {
        other: {
            k: v
            for k, v in r.items()
            if isinstance(v, list) or v == "written" or (isinstance(v, str) and "planted-" in v)
        }
        for other, r in results.items()
    }
    broken = {k: v for k, v in broken.items() if v}
    arena.note("other users' homes", user, not broken, outcome=results)
    assert not broken, f"{user} reached other users' homes: {broken}"


def _server_ports() -> dict[str, int]:
    """{user: port} of the running single-user servers, read as root from /proc."""
    ports = {}
    for env in server_processes().values():
        if b"singleuser" not in env["\0cmdline"]:
            continue
        url = env.get("JUPYTERHUB_SERVICE_URL", b"").decode()
        user = env.get("JUPYTERHUB_USER", b"").decode()
        match = re.search(r":(\d+)", url)
        if user and match:
            ports[user] = int(match.group(1))
    return ports


@pytest.mark.parametrize("user", SCIENTISTS)
async def test_other_servers_are_closed(arena: Arena, user: str) -> None:
    layout = arena.layout
    ports = _server_ports()
    session = arena.sessions[user]
    outcome: dict[str, Any] = {}
    for other in SCIENTISTS:
        if other == user:
            continue
        # With the browser's cookies, through the proxy.
        response = await session.fetch(f"user/{other}/api/contents")
        outcome[f"{other} via proxy, cookie"] = response.code
        # From the kernel, with the attacker's own server token: through the proxy, the
        # hub's own port, and straight at the other server's port.
        targets = {
            "via proxy, token": f"{layout.public_url}user/{other}/api/contents",
            "via hub port, token": f"http://{layout.ip}:{layout.hub_port}/user/{other}/api/contents",
        }
        if other in ports:
            targets["direct, token"] = f"http://127.0.0.1:{ports[other]}/user/{other}/api/contents"
        code = f"""
import json, os, urllib.request, urllib.error
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
opener = urllib.request.build_opener(NoRedirect)
out = {{}}
for label, url in {targets!r}.items():
    request = urllib.request.Request(url, headers={{
        'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}})
    try:
        out[label] = opener.open(request, timeout=10).status
    except urllib.error.HTTPError as e:
        out[label] = e.code
    except OSError as e:
        out[label] = repr(e)
print('SERVERS', json.dumps(out))
"""
        out, errors = await session.run_code(code)
        assert not errors, errors
        for label, status in last_json(out, "SERVERS").items():
            outcome[f"{other} {label}"] = status
    opened = {k: v for k, v in outcome.items() if v == 200}
    arena.note("other users' servers", user, not opened, outcome=outcome)
    assert not opened, f"{user} read another user's server: {opened}"


# -- Attack 6: another org's broker, peer to peer ---------------------------------------


@pytest.mark.parametrize("user", SCIENTISTS)
async def test_forged_peer_mount_is_refused(arena: Arena, user: str) -> None:
    layout = arena.layout
    me = user.split("-")[0]
    victim = "uis" if me != "uis" else "uio"
    victim_org = {"uis": "UiS", "uio": "UiO", "uib": "UiB"}[victim]
    my_org = {"uis": "UiS", "uio": "UiO", "uib": "UiB"}[me]
    index = ["uis", "uio", "uib"].index(victim)
    corpus = f"{victim}-lorem-corpus"
    my_cert = layout.identities / my_org / "cert.pem"
    code = f"""
import base64, datetime, json, secrets, urllib.request, urllib.error
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from dshare_server.session import lease
mine = lease({corpus!r}, hours=1, purpose='attacker: forged peer mount')
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, {my_org!r}),
                  x509.NameAttribute(NameOID.COMMON_NAME, 'broker')])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256()))
try:
    real_cert = open({str(my_cert)!r}).read()
except OSError:
    real_cert = None
def envelope(certificate):
    payload = {{'to': {victim_org!r}, 'lease_id': mine['id'],
               'run_id': 'run-' + secrets.token_hex(6), 'user': {user!r}, 'org': {my_org!r},
               'timestamp': int(now.timestamp()), 'nonce': secrets.token_urlsafe(18)}}
    body = json.dumps(payload, sort_keys=True, separators=(',', ':')).encode()
    signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    return {{'payload': payload, 'signature': base64.b64encode(signature).decode(),
            'certificate': certificate}}
pem = cert.public_bytes(serialization.Encoding.PEM).decode()
attempts = {{'self-signed certificate': envelope(pem)}}
if real_cert:
    attempts['my org certificate, my own key'] = envelope(real_cert)
out = {{}}
urls = {{'proxy': {layout.public_url!r} + 'services/dshare-{victim}/api/v1/peer/mounts',
        'broker port': 'http://{layout.ip}:{layout.broker_port(index)}/services/dshare-{victim}/api/v1/peer/mounts'}}
for what, env in attempts.items():
    for where, url in urls.items():
        for n in (1, 2):  # the second is a replay of the first
            request = urllib.request.Request(url, data=json.dumps(env).encode(),
                headers={{'Content-Type': 'application/json'}}, method='POST')
            try:
                reply = urllib.request.urlopen(request, timeout=10)
                out[f'{{what}} via {{where}} #{{n}}'] = [reply.status, reply.read().decode()[:300]]
            except urllib.error.HTTPError as e:
                out[f'{{what}} via {{where}} #{{n}}'] = [e.code, e.read().decode()[:300]]
            except OSError as e:
                out[f'{{what}} via {{where}} #{{n}}'] = [0, repr(e)]
print('PEER', json.dumps(out))
"""
    out, errors = await arena.sessions[user].run_code(code)
    assert not errors, errors
    result = last_json(out, "PEER")
    accepted = {k: v for k, v in result.items() if 200 <= v[0] < 300}
    arena.note("forged peer mount", user, not accepted, outcome=result)
    assert not accepted, f"{user}: another org's broker accepted a forged mount: {accepted}"


# -- Attack 7: from inside a job -----------------------------------------------------------


@pytest.mark.parametrize("user", SCANNERS)
async def test_a_job_reaches_nothing_but_its_lease(arena: Arena, scanner_proven, user: str) -> None:
    layout = arena.layout
    session = arena.sessions[user]
    dataset = "uis-lorem-corpus"
    mount = "/home/jovyan/loot"
    targets = [(layout.ip, layout.hub_port), (layout.ip, layout.port)]
    targets += [(layout.ip, layout.broker_port(i)) for i in range(3)]
    targets += [("1.1.1.1", 443)]
    await put_file(session, "attack_scanner.py", SCANNER.read_text())
    # In the job the leased corpus is expected under the mount (and nowhere else).
    await put_file(session, "needles.json", needle_spec(arena, user, frozenset()))
    await put_file(
        session,
        "attack_job.py",
        JOB_SCRIPT.format(kit=KIT, cap=SCAN_CAP_S, targets=targets, mount=mount),
    )
    status, body = await session.api(
        "api/contents/attack-workflow.yaml",
        "PUT",
        {
            "type": "file",
            "format": "text",
            "content": WORKFLOW.format(kit=KIT, dataset=dataset, mount=mount),
        },
    )
    assert status in (200, 201), body
    code = f"""
import json, os
from dshare_server.session import lease
lease({dataset!r}, hours=1, purpose='attacker: job scan')
%load_ext dshare_server
run = %dshare_run attack-workflow.yaml
print('RUNSTATE', json.dumps({{'state': getattr(run, 'state', None),
    'message': getattr(run, 'message', repr(run)),
    'outputs': getattr(run, 'outputs', None),
    'logs': {{j: run.logs(j) for j in run.jobs}} if run is not None else {{}}}}, default=str))
"""
    out, errors = await session.run_code(code, timeout=SCAN_CAP_S + 240)
    assert not errors, errors
    state = last_json(out, "RUNSTATE")
    logs = "\n".join(state["logs"].values())
    found = re.findall(r"^ATTACK (.*)$", logs, re.M)
    home = layout.homes / user
    markers = [n for n in arena.needles.items if n.dataset == dataset]
    arrived = sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and any(m.forms[0] in p.read_bytes() for m in markers)
    )
    figures = {
        "run_state": state["state"],
        "run_message": state["message"],
        "outputs": state["outputs"],
        "corpus_in_home": arrived,
    }
    if not found:
        arena.note("job attack", user, False, **figures, logs=logs[-3000:])
        raise AssertionError(f"the attacker's job printed no result: {state}")
    result = json.loads(found[-1])
    connected = {k: v for k, v in result["network"].items() if v == "connected"}
    written = {k: v for k, v in result["writes"].items() if v == "written"}
    figures.update(
        job_uid=result["uid"],
        network=result["network"],
        writes=result["writes"],
        copied=result["copied"],
    )
    arena.note("job: network", user, not connected, network=result["network"])
    arena.note("job: write the leased data", user, not written, writes=result["writes"])
    arena.note("job: corpus copied home past the gate", user, not arrived, **figures)
    seen = [
        p
        for n in markers
        for p in result["scan"].get("found", {}).get(n.name, [])
        if p.startswith(mount + "/")
    ]
    assert seen, f"the job's scan did not even see its own lease under {mount}: {result}"
    # The second job prints the corpus to its log: the log is an output like any file.
    in_logs = [m.name for m in markers if m.forms[0].decode(errors="replace") in logs]
    arena.note("job: corpus printed to the job's log", user, not in_logs, found=in_logs)
    assert not in_logs, f"leased data reached {user} through a job's log: {in_logs}"
    assert not connected, f"a job of {user} reached the network: {connected}"
    assert not written, f"a job of {user} wrote into its leased data: {written}"
    check_scan(arena, "job scan", user, result["scan"], allowed_paths=(mount + "/",))
    assert not arrived, f"the leased corpus reached {user}'s home past the gate: {arrived}"
    # The job runs as a uid of its own: not root, not the scientist (trust boundary 4).
    scientist_uid = pwd.getpwnam(layout.user_template.format(username=user)).pw_uid
    assert result["uid"] not in (0, scientist_uid), (
        f"{user}'s job runs as uid {result['uid']} (the scientist is {scientist_uid})"
    )
