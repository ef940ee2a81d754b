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

import base64
import datetime as dt
import json
import os
import pwd
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hubclient import HubSession
from proof_support import FULL

sys.path.insert(0, str(Path(__file__).parent / "attacker"))

from attack_needles import Needles, collect
from attack_scanner import mask_needles
from attack_terminal import terminal

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCIENTISTS = ["uis-scientist", "uio-scientist", "uib-scientist"]
# The whole-filesystem scans: one scientist inside make test, all three under make proof.
SCANNERS = SCIENTISTS if FULL else ["uio-scientist"]
SCAN_CAP_S = 120
SCANNER = Path(__file__).parent / "attacker" / "attack_scanner.py"
KIT = "attack-kit"  # the attacker's folder in their home (not hidden: the contents API
# refuses hidden paths by default)


@dataclass
class Arena:
    layout: Any
    sessions: dict[str, HubSession]
    needles: Needles
    report: list[dict[str, Any]] = field(default_factory=list)

    def note(self, attack: str, user: str, held: bool, **figures: Any) -> None:
        self.report.append(
            {"attack": attack, "user": user, "held": held, "figures": figures, "at": _now()}
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_report(arena: Arena) -> None:
    out = Path(os.environ.get("DSHARE_TEST_OUTPUT") or tempfile.gettempdir())
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        check=False,
    ).stdout.strip()
    body = {
        "commit": commit,
        "full": FULL,
        "needles": len(arena.needles.items),
        "needle_kinds": sorted({n.kind for n in arena.needles.items}),
        "needle_notes": arena.needles.notes,
        "attacks": arena.report,
        "held": sum(1 for r in arena.report if r["held"]),
        "failed": sum(1 for r in arena.report if not r["held"]),
    }
    (out / "attacker-report.json").write_text(json.dumps(body, indent=1, sort_keys=True))
    results = os.environ.get("DSHARE_PROOF_RESULTS")
    if results:
        Path(results).mkdir(parents=True, exist_ok=True)
        (Path(results) / "attacker.json").write_text(json.dumps(body, indent=1, sort_keys=True))


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
        _write_report(running)


def run_scanner_as_root(needles: dict[str, list[bytes]], *args: str) -> dict[str, Any]:
    spec = json.dumps(mask_needles(needles, secrets.token_bytes(16)))
    done = subprocess.run(
        [sys.executable, str(SCANNER), "-", *args],
        input=spec,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def scanner_proven(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The scanner finds planted needles in every place and form it claims to search."""
    where = tmp_path_factory.mktemp("scanner-proof")
    raw, hexed, linked, env, split, named = (secrets.token_bytes(32) for _ in range(6))
    big = bytearray(os.urandom(20 * 1024 * 1024))
    big[12345678 : 12345678 + 32] = raw
    deep = where / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "blob.bin").write_bytes(bytes(big))
    (where / "notes.txt").write_text("token=" + hexed.hex() + "\n")
    (where / "link").symlink_to("/nowhere/" + base64.b64encode(linked).decode().replace("/", "_"))
    # Across the scanner's 8 MiB read boundary.
    boundary = bytearray(os.urandom(9 * 1024 * 1024))
    cut = 8 * 1024 * 1024 - 20
    boundary[cut : cut + 32] = split
    (where / "boundary.bin").write_bytes(bytes(boundary))
    (where / ("dir-" + named.hex())).mkdir()
    (where / "huge.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    child = subprocess.Popen(
        ["sleep", "300"], env={"PATH": os.environ["PATH"], "ATTACK_CANARY": env.hex()}
    )
    try:
        needles = {
            "raw in a 20 MiB file": [raw],
            "hex in a text file": [hexed.hex().encode()],
            "symlink target": [base64.b64encode(linked).replace(b"/", b"_")],
            "child environment": [env.hex().encode()],
            "across a read boundary": [split],
            "directory name": [named.hex().encode()],
            "nowhere": [secrets.token_bytes(32)],
        }
        started = time.monotonic()
        result = run_scanner_as_root(needles, "--root", str(where), "--size-cap", str(30 << 20))
        seconds = time.monotonic() - started
        capped = run_scanner_as_root({"x": [b"y" * 16]}, "--root", str(where), "--time-cap", "0")
        small = run_scanner_as_root(needles, "--root", str(where), "--size-cap", str(1 << 20))
    finally:
        child.kill()
        child.wait()
    found = result["found"]
    assert set(found) == set(needles) - {"nowhere"}, f"the scanner missed: {result}"
    assert found["raw in a 20 MiB file"] == [str(deep / "blob.bin")]
    assert f"/proc/{child.pid}/environ" in found["child environment"]
    assert result["bytes_read"] >= 29 * 1024 * 1024 and not result["capped"]
    assert capped["capped"], "a scan cut short by its time cap must say so"
    assert small["skipped_large"] == 3 and str(where / "huge.bin") in small["large_files"]
    return {"seconds": round(seconds, 2), "bytes": result["bytes_read"]}


async def test_the_scanner_finds_what_is_planted(scanner_proven) -> None:
    assert scanner_proven["bytes"] > 0


def _last_json(text: str, tag: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith(tag + " "):
            return dict(json.loads(line[len(tag) + 1 :]))
    raise AssertionError(f"no {tag} line in the output: {text[-3000:]}")


async def allowed_datasets(arena: Arena, user: str) -> frozenset[str]:
    """Interactive datasets `user` holds an active lease on: readable in the notebook."""
    status, body = await arena.sessions[user].api("dshare/api/leases?scope=mine")
    assert status == 200, body
    return frozenset(
        lease["asset_id"]
        for lease in body.get("items", [])
        if lease.get("state") == "active" and lease.get("asset_id") in arena.needles.interactive
    )


def leaks_of(arena: Arena, result: dict[str, Any], allowed_paths: tuple[str, ...] = ()) -> dict:
    """What the scan found, minus markers of leased data under `allowed_paths`."""
    by_name = arena.needles.by_name()
    leaks = {}
    for name, places in result["found"].items():
        needle = by_name.get(name)
        if needle is not None and needle.kind == "raw data" and allowed_paths:
            places = [p for p in places if not p.startswith(allowed_paths)]
        if places:
            leaks[name] = places
    return leaks


def check_scan(arena: Arena, attack: str, user: str, result: dict[str, Any], **kw: Any) -> None:
    assert "error" not in result, f"{attack} as {user}: the scanner failed: {result['error']}"
    allowed = kw.pop("allowed_paths", ())
    leaks = leaks_of(arena, result, allowed)
    root = str(arena.layout.root)
    unscanned = [p for p in result["large_files"] if p.startswith((root, "/tmp", "/home"))]
    aliases = {
        a: b for a, b in result["aliases"].items() if allowed and (a + "/").startswith(allowed)
    }
    figures = {
        k: result[k]
        for k in (
            "uid",
            "groups",
            "files_read",
            "bytes_read",
            "unreadable_files",
            "unreadable_dirs",
            "skipped_large",
            "proc_read",
            "proc_unreadable",
            "capped",
            "seconds",
            "needle_forms",
        )
    }
    held = not leaks and not result["capped"] and not unscanned and not aliases
    arena.note(attack, user, held, leaks=leaks, unscanned_large_files=unscanned, **figures, **kw)
    assert not result["capped"], (
        f"{attack} as {user}: the scan hit its {SCAN_CAP_S} s cap after {result['files_read']} "
        "files; a partial scan proves nothing"
    )
    assert not leaks, f"{attack} as {user} (uid {result['uid']}) found: {json.dumps(leaks)}"
    assert not unscanned, f"{attack} as {user}: too large to scan in the deployment: {unscanned}"
    assert not aliases, f"{attack} as {user}: the leased data is visible elsewhere: {aliases}"


def needle_spec(arena: Arena, user: str, allowed: frozenset[str]) -> str:
    return json.dumps(mask_needles(arena.needles.for_attacker(user, allowed), os.urandom(16)))


async def put_file(session: HubSession, path: str, text: str) -> None:
    status, body = await session.api(f"api/contents/{KIT}", "PUT", {"type": "directory"})
    assert status in (200, 201), f"could not make {KIT}: {status} {body}"
    status, body = await session.api(
        f"api/contents/{KIT}/{path}", "PUT", {"type": "file", "format": "text", "content": text}
    )
    assert status in (200, 201), f"could not write {path}: {status} {body}"


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
    check_scan(arena, "kernel scan", user, _last_json(out, "SCAN"))


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
    result = _last_json(text, "SCAN")
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
    result = _last_json(out, "SCAN")
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
    result = _last_json(out, "LEDGER")
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
        results[other] = _last_json(out, "HOME")
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
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"singleuser" not in cmd:
            continue
        pairs = dict(p.split(b"=", 1) for p in env.split(b"\0") if b"=" in p)
        url = pairs.get(b"JUPYTERHUB_SERVICE_URL", b"").decode()
        user = pairs.get(b"JUPYTERHUB_USER", b"").decode()
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
        for label, status in _last_json(out, "SERVERS").items():
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
    result = _last_json(out, "PEER")
    accepted = {k: v for k, v in result.items() if 200 <= v[0] < 300}
    arena.note("forged peer mount", user, not accepted, outcome=result)
    assert not accepted, f"{user}: another org's broker accepted a forged mount: {accepted}"


# -- Attack 7: from inside a job -----------------------------------------------------------

JOB_SCRIPT = """\
import json, os, shutil, socket, subprocess, sys
result = {{'uid': os.getuid(), 'cwd': os.getcwd()}}
done = subprocess.run([sys.executable, '{kit}/attack_scanner.py', '{kit}/needles.json',
                       '--time-cap', '{cap}'], capture_output=True, text=True)
lines = done.stdout.strip().splitlines()
result['scan'] = json.loads(lines[-1]) if lines else {{'error': done.stderr[-3000:]}}
result['network'] = {{}}
for host, port in {targets!r}:
    try:
        socket.create_connection((host, port), timeout=3).close()
        result['network'][f'{{host}}:{{port}}'] = 'connected'
    except OSError as e:
        result['network'][f'{{host}}:{{port}}'] = repr(e)
writes = {{}}
try:
    with open('{mount}/attacker-was-here.txt', 'w') as f:
        f.write('x')
    writes['new file'] = 'written'
except OSError as e:
    writes['new file'] = repr(e)
try:
    first = sorted(os.listdir('{mount}'))[0]
    with open(os.path.join('{mount}', first), 'a') as f:
        f.write('x')
    writes['append'] = 'written'
except (OSError, IndexError) as e:
    writes['append'] = repr(e)
result['writes'] = writes
try:
    shutil.copytree('{mount}', 'stolen-corpus')
    result['copied'] = sorted(os.listdir('stolen-corpus'))
except OSError as e:
    result['copied'] = repr(e)
print('ATTACK', json.dumps(result))
"""

WORKFLOW = """\
name: attacker
jobs:
- command: 'python {kit}/attack_job.py'
  volumes:
  - id: '{dataset}'
    name: 'loot'
    path: '{mount}'
- command: 'cat {mount}/*'
  volumes:
  - id: '{dataset}'
    name: 'loot'
    path: '{mount}'
"""


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
    state = _last_json(out, "RUNSTATE")
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
