"""Column redaction in the real embedded deployment, from where a hostile scientist stands.

UiS's payments carry the demo's Rego policy: nameOrig and nameDest hashed for every other
organization. A UiO scientist leases the table from their own kernel and runs a job with
%dshare_run: the job's view of the table has both columns hashed and the others intact,
and nothing it can reach (its mount table, parent directories, links) leads to the raw
file. The notebook view of the same lease is redacted the same way, with the same hashes
(one key per lessee organization: joins still work). UiS's own scientist reads the raw
table. UiS's admin saving a broken policy is refused with its line, and the old policy
stays in force; a stricter one reaches the view and the next run of a lease taken before it.
Nothing the lessee's kernel can open (files, /proc) holds a raw id or UiS's hash key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil

import pytest
from hubclient import HubSession, signed_in
from redacted_table import HASHED, assert_redacted, rows

from dshare_hub.demo.content import PAYMENTS_REDACTION

pytestmark = pytest.mark.asyncio(loop_scope="module")

DATASET = "uis-payments"
LINK = "~/datasets/UiS mobile payments/transactions.csv"
WORKFLOW = """\
name: redaction-{name}
jobs:
- command: 'python {name}.py'
  volumes:
  - id: 'uis-payments'
    name: 'pay'
    path: '/data/pay'
"""
# A customer id no table holds: the scans must find it where they planted it.
PLANTED_ID = "C" + "0" * 9
# The job: its view of the table, and everything it tries to reach the raw file by. The
# summary leaves through the gate; raw customer ids (C/M + 9 digits) must be nowhere.
LOOK = r"""
import hashlib, json, os, re
raw_id = re.compile(r'\b[CM][0-9]{9}\b')
out = {'table': open('/data/pay/transactions.csv').read()}
out['mountinfo'] = open('/proc/self/mountinfo').read()
found = []
# The scan proves itself first: the id planted in the job's /tmp must be found there.
with open('/tmp/planted-id.txt', 'w') as planted:
    planted.write('C' + '0' * 9 + '\n')  # not spelled out: look.py is scanned too
real = os.path.realpath('/data/pay')
# Where the table lies and the directories above it, up to (not including) the root,
# whose system directories hold no data: a ../ or a link out of the view finds nothing.
tops = ['/data', '/data/pay/..', '/tmp', os.getcwd()]
up = real
while os.path.dirname(up) != up:
    tops.append(up)
    up = os.path.dirname(up)
tops = [t for t in dict.fromkeys(os.path.realpath(t) for t in tops) if t != '/']
for top in tops:
    for here, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(here, name)
            try:
                if os.path.getsize(path) > 2_000_000:
                    continue
                with open(path, errors='replace') as f:
                    text = f.read()
            except OSError:
                continue
            if raw_id.search(text):
                found.append(path)
out['walked'] = tops
out['raw_ids_found_in'] = sorted(set(found))
out['realpath'] = os.path.realpath('/data/pay/transactions.csv')
os.makedirs('redaction', exist_ok=True)
# The table itself is an input: the gate would hold a copy. A digest of it and the
# per-column check leave instead, which is what a real analysis would send out.
table = out.pop('table')
out['table_sha256'] = hashlib.sha256(table.encode()).hexdigest()
rows = [line.split(',') for line in table.splitlines()]
out['header'] = rows[0]
out['hashed'] = {c: all(re.fullmatch('[0-9a-f]{64}', r[rows[0].index(c)]) for r in rows[1:])
                 for c in rows[0]}
out['first_hash_sha256'] = hashlib.sha256(rows[1][rows[0].index('nameOrig')].encode()).hexdigest()
json.dump(out, open('redaction/summary.json', 'w'))
"""
# The stricter policy's job: what it sees of the `type` column.
TYPES = """
import json, os
rows = [line.split(',') for line in open('/data/pay/transactions.csv').read().splitlines()]
os.makedirs('redaction', exist_ok=True)
types = sorted({r[rows[0].index('type')] for r in rows[1:]})
json.dump({'types': types}, open('redaction/types.json', 'w'))
"""


async def _session(deployment, logins, user: str) -> HubSession:
    return await signed_in(deployment.layout.public_url, user, logins[user])


def _last(out: str, tag: str) -> dict:
    line = next(x for x in reversed(out.splitlines()) if x.startswith(tag + " "))
    return json.loads(line[len(tag) + 1 :])


async def _run(scientist: HubSession, name: str, code: str, lease: str = "") -> dict:
    """Run job `name` with `%dshare_run` from the kernel (leasing uis-payments first unless
    `lease` is given); returns {id, state, lease}."""
    await scientist.put_text(f"redaction-{name}.yaml", WORKFLOW.format(name=name))
    await scientist.put_text(f"{name}.py", code)
    take = (
        f"granted = {{'id': {lease!r}}}\n"
        if lease
        else f"granted = lease({DATASET!r}, hours=1, purpose='fraud model')\n"
    )
    out, errors = await scientist.run_code(
        "import json, os\n"
        "from dshare_server.session import lease\n"
        f"{take}"
        "%load_ext dshare_server\n"
        f"run = %dshare_run redaction-{name}.yaml\n"
        "print('RUN', json.dumps({'id': run.id, 'state': run.state, 'lease': granted['id']}))\n"
    )
    assert not errors, (out, errors)
    run = _last(out, "RUN")
    assert run["state"] == "succeeded", out
    return run


async def _released(deployment, logins, scientist: HubSession, run_id: str, path: str) -> None:
    """`path` of the run reached the scientist's home: the gate's disclosure checks judge
    the file, not this test, so UiS's admin lets a held one out, as a reviewing owner would."""
    status, record = await scientist.api(f"dshare/api/runs/{run_id}")
    assert status == 200, record
    decision = {o["path"]: o for o in record.get("outputs") or []}[path]["decision"]
    if decision == "held":
        admin = await _session(deployment, logins, "uis-admin")
        status, body = await admin.api(
            f"dshare/api/runs/{run_id}/outputs/decide",
            "POST",
            {"path": path, "approve": True, "reason": "no raw ids in it"},
        )
        assert status == 200, body
    else:
        assert decision == "released", record


async def test_a_job_and_the_notebook_of_another_org_read_hashed_ids_only(deployment, logins):
    layout = deployment.layout
    raw_path = layout.data / "uis" / "payments" / "transactions.csv"
    raw = raw_path.read_text()
    copies = layout.storage_root("UiS") / ".dshare-redacted"
    scientist = await _session(deployment, logins, "uio-scientist")
    run = await _run(scientist, "look", LOOK)
    home = layout.homes / "uio-scientist"
    await _released(deployment, logins, scientist, run["id"], "redaction/summary.json")
    summary = json.loads((home / "redaction" / "summary.json").read_text())
    # The job's table: the raw header, both id columns hashed, every other column intact.
    assert summary["header"] == raw.splitlines()[0].split(",")
    assert {c for c, hashed in summary["hashed"].items() if hashed} == set(HASHED)
    assert summary["raw_ids_found_in"] == ["/tmp/planted-id.txt"], (
        "a raw customer id was reachable from the job (or the scan found not even the planted one)"
    )
    assert "/data" in summary["walked"] and len(summary["walked"]) >= 3, summary["walked"]
    for text in (summary["mountinfo"], summary["realpath"]):
        assert str(layout.data) not in text and ".dshare-redacted" not in text, text[:400]

    # The notebook view of the same lease: redacted the same way, the same hashes.
    out, errors = await scientist.run_code(
        "import json, os\n"
        "from dshare_server.session import _client, refresh_datasets\n"
        "print('VIEWS', json.dumps(_client().call('POST', 'views', {})))\n"
        "refresh_datasets()\n"
        f"link = os.path.expanduser({LINK!r})\n"
        "print('VIEW', json.dumps({'text': open(link).read(),"
        " 'real': os.path.realpath(link)}))\n"
        # Told where the copies and the raw file lie (a scientist is not), they still
        # reach neither.
        "probe = {}\n"
        f"for p in [{str(copies)!r}, {str(raw_path)!r}, {str(raw_path.parent)!r}]:\n"
        "    try:\n"
        "        probe[p] = ['ok', os.listdir(p) if os.path.isdir(p) else open(p).read(9)]\n"
        "    except OSError as e:\n"
        "        probe[p] = [type(e).__name__]\n"
        "print('PROBE', json.dumps(probe))\n"
    )
    assert not errors, (out, errors)
    assert set(map(tuple, _last(out, "PROBE").values())) == {("PermissionError",)}, out
    view = _last(out, "VIEW")
    mapping = assert_redacted(view["text"], raw)
    first_raw = raw.splitlines()[1].split(",")[raw.splitlines()[0].split(",").index("nameOrig")]
    seen_first = mapping[first_raw]
    # Keyed: hashing a guessed id (plain SHA-256) does not give what the lessee sees.
    assert seen_first != hashlib.sha256(first_raw.encode()).hexdigest()
    assert summary["first_hash_sha256"] == hashlib.sha256(seen_first.encode()).hexdigest(), (
        "the job and the notebook hash the same id alike"
    )
    assert summary["table_sha256"] == hashlib.sha256(view["text"].encode()).hexdigest()
    assert str(layout.data) not in view["real"]
    # The raw file was given no entry for the lessee: only the copy's inodes were.
    acl = os.popen(f"getfacl -n -p --omit-header {raw_path}").read()
    uid = (home.stat()).st_uid
    assert f"user:{uid}:" not in acl, acl

    # The owner's own scientist reads the raw table (the policy hashes for others only).
    own = await _session(deployment, logins, "uis-scientist")
    out, errors = await own.run_code(
        "from dshare_server.session import lease\n"
        f"lease({DATASET!r}, hours=1, purpose='own analysis')\n"
        "import json, os\n"
        "from dshare_server.session import refresh_datasets\n"
        "refresh_datasets()\n"
        f"print('OWN', json.dumps(open(os.path.expanduser({LINK!r})).read()))\n"
    )
    assert not errors, (out, errors)
    assert _last(out, "OWN") == raw

    out, errors = await scientist.run_code(
        f"from dshare_server.session import release\nrelease({run['lease']!r})\n"
    )
    assert not errors, (out, errors)
    shutil.rmtree(home / "redaction")


async def test_a_broken_policy_is_refused_with_its_line_and_the_old_one_stays(deployment, logins):
    admin = await _session(deployment, logins, "uis-admin")
    broken = PAYMENTS_REDACTION.replace('"nameDest"}\n}', '"nameDest"}\n')
    status, body = await admin.api(f"dshare/api/datasets/{DATASET}", "PATCH", {"redaction": broken})
    assert (status, body) == (
        400,
        {
            "code": "INVALID_ARGUMENT",
            "message": "redaction: line 5: this is unclosed; fix the Rego and save again",
            "field": "redaction",
        },
    ), body
    typo = PAYMENTS_REDACTION.replace(
        'input.column.name in {"nameOrig", "nameDest"}', '"pi" in input.column.tags'
    )
    status, body = await admin.api(f"dshare/api/datasets/{DATASET}", "PATCH", {"redaction": typo})
    assert (status, body["code"], body["field"]) == (400, "INVALID_ARGUMENT", "redaction"), body
    assert body["message"].startswith(
        "redaction: line 7: the tag 'pi' is carried by no column of this dataset"
    )
    status, stored = await admin.api(f"dshare/api/datasets/{DATASET}")
    assert status == 200, stored
    assert stored["redaction"] == PAYMENTS_REDACTION
    # A scientist may not change it at all.
    scientist = await _session(deployment, logins, "uis-scientist")
    status, body = await scientist.api(f"dshare/api/datasets/{DATASET}", "PATCH", {"redaction": ""})
    assert (status, body["code"]) == (403, "FORBIDDEN"), body


async def test_a_stricter_policy_reaches_a_view_made_before_it(deployment, logins):
    layout = deployment.layout
    raw = (layout.data / "uis" / "payments" / "transactions.csv").read_text()
    scientist = await _session(deployment, logins, "uio-scientist")
    admin = await _session(deployment, logins, "uis-admin")
    read_view = (
        "import json, os\n"
        "from dshare_server.session import lease, refresh_datasets\n"
        f"granted = lease({DATASET!r}, hours=1, purpose='fraud model')\n"
        "refresh_datasets()\n"
        f"link = os.path.expanduser({LINK!r})\n"
        "text = open(link).read() if os.path.exists(link) else ''\n"
        "print('SEEN', json.dumps({'lease': granted['id'], 'text': text}))\n"
    )
    out, errors = await scientist.run_code(read_view)
    assert not errors, (out, errors)
    first = _last(out, "SEEN")
    assert_redacted(first["text"], raw)
    stricter = PAYMENTS_REDACTION + '\naction := "mask" if input.column.name == "type"\n'
    status, body = await admin.api(
        f"dshare/api/datasets/{DATASET}", "PATCH", {"redaction": stricter}
    )
    assert status == 200, body
    try:
        # The owner's reaper removes the view made under the old plan; the next refresh
        # makes it from the new one.
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            out, errors = await scientist.run_code(read_view)
            assert not errors, (out, errors)
            seen = _last(out, "SEEN")["text"]
            header = seen.splitlines()[0].split(",") if seen else []
            if header and {r.split(",")[header.index("type")] for r in seen.splitlines()[1:]} == {
                "***"
            }:
                break
            assert asyncio.get_running_loop().time() < deadline, seen[:300]
            await asyncio.sleep(3)
        # A run under the lease taken before the policy changed gets the stricter copy too.
        run = await _run(scientist, "seetypes", TYPES, lease=first["lease"])
        await _released(deployment, logins, scientist, run["id"], "redaction/types.json")
        types = layout.homes / "uio-scientist" / "redaction" / "types.json"
        assert json.loads(types.read_text()) == {"types": ["***"]}
        shutil.rmtree(types.parent)
    finally:
        status, body = await admin.api(
            f"dshare/api/datasets/{DATASET}", "PATCH", {"redaction": PAYMENTS_REDACTION}
        )
        assert status == 200, body
    out, errors = await scientist.run_code(
        f"from dshare_server.session import release\nrelease({first['lease']!r})\n"
    )
    assert not errors, (out, errors)


RAW_ID = re.compile(rb"\b[CM][0-9]{9}\b")
# What the lessee's kernel tries, told everything a scan as root found: open each file that
# holds a raw id or the key; keep its own view file open and look through /proc at every
# process's open files, command line and environment (test_interactive_views.py tries to
# hard-link the view file and more); scan what it can read for customer ids (it reports
# them, the test knows which are UiS's).
PROBE = r"""
import json, os, re
told = json.loads(@TOLD@)
seen = {'open': {}, 'fds': [], 'proc_text': [], 'ids': {}}
for p in told['holding']:
    try:
        with open(p, 'rb') as f:
            f.read(1)
        seen['open'][p] = 'ok'
    except OSError as e:
        seen['open'][p] = type(e).__name__
held = open(os.path.expanduser(told['link']))
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        fds = os.listdir(f'/proc/{pid}/fd')
    except OSError:
        fds = []
    for fd in fds:
        try:
            seen['fds'].append([pid == str(os.getpid()), os.readlink(f'/proc/{pid}/fd/{fd}')])
        except OSError:
            pass
    for part in ('cmdline', 'environ'):
        try:
            with open(f'/proc/{pid}/{part}', 'rb') as f:
                seen['proc_text'].append(f.read().decode(errors='replace'))
        except OSError:
            pass
held.close()
planted = os.path.expanduser('~/planted-scan.txt')
with open(planted, 'w') as f:
    f.write(told['planted'])
raw_id = re.compile(rb'\b[CM][0-9]{9}\b')
for top in told['tops']:
    for here, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(here, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > 5_000_000:
                    continue
                with open(path, 'rb') as f:
                    found = sorted({m.decode() for m in raw_id.findall(f.read())})
            except OSError:
                continue
            if found:
                seen['ids'][path] = found
os.unlink(planted)
print('SEEN', json.dumps(seen))
"""


def _holding(top, needles: set[bytes], key: bytes) -> list[str]:
    """Every file under `top` (as root) whose bytes hold a raw id or the key."""
    found = []
    for here, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(here, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > 5_000_000:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if key in data or key.hex().encode() in data or needles & set(RAW_ID.findall(data)):
                found.append(path)
    return found


async def test_nothing_the_lessee_can_open_holds_a_raw_id_or_the_hash_key(deployment, logins):
    layout = deployment.layout
    raw_path = layout.data / "uis" / "payments" / "transactions.csv"
    table = rows(raw_path.read_text())
    ids = {r[table[0].index(c)] for r in table[1:] for c in HASHED}
    scientist = await _session(deployment, logins, "uio-scientist")
    out, errors = await scientist.run_code(
        "import json\n"
        "from dshare_server.session import lease, refresh_datasets\n"
        f"granted = lease({DATASET!r}, hours=1, purpose='fraud model')\n"
        "refresh_datasets()\n"
        "print('LEASE', json.dumps(granted['id']))\n"
    )
    assert not errors, (out, errors)
    lease_id = _last(out, "LEASE")
    try:
        # Made at the first redacted mount (the module's first test, or this view).
        key_path = layout.org_dir("UiS") / "broker" / "redaction.key"
        key = key_path.read_bytes()
        holding = _holding(layout.root, {i.encode() for i in ids}, key)
        # The root-side scan proves itself on the raw table and the key file.
        assert {str(raw_path), str(key_path)} <= set(holding), holding
        told = {
            "holding": holding,
            "link": LINK,
            "planted": PLANTED_ID,
            "tops": [str(layout.homes / "uio-scientist"), str(layout.root), "/dev/shm", "/var/tmp"],
        }
        out, errors = await scientist.run_code(PROBE.replace("@TOLD@", repr(json.dumps(told))))
        assert not errors, (out, errors)
        seen = _last(out, "SEEN")
        assert set(seen["open"].values()) == {"PermissionError"}, seen["open"]
        # The kernel's own open view file shows in its /proc: the fd scan works.
        views = str(layout.views_dir("UiS"))
        assert any(own and target.startswith(views) for own, target in seen["fds"]), seen["fds"]
        storage = [t for _, t in seen["fds"] if t.startswith(str(layout.data))]
        assert storage == [], "a process the lessee can inspect holds UiS's storage open"
        text = "\n".join(seen["proc_text"])
        assert "ipykernel" in text, "the /proc scan read no command line at all"
        assert key.hex() not in text and not ids & set(re.findall(r"[CM][0-9]{9}", text))
        planted = str(layout.homes / "uio-scientist" / "planted-scan.txt")
        assert seen["ids"].get(planted) == [PLANTED_ID], "the kernel's scan found not its plant"
        leaked = {p: sorted(ids & set(found)) for p, found in seen["ids"].items()}
        assert {p: f for p, f in leaked.items() if f} == {}, "raw UiS ids readable by UiO"
    finally:
        out, errors = await scientist.run_code(
            f"from dshare_server.session import release\nrelease({lease_id!r})\n"
        )
        assert not errors, (out, errors)


async def test_a_purpose_that_makes_the_policy_undecidable_gets_nothing(deployment, logins):
    # The purpose is the lessee's own words. A policy that tightens on one purpose can be
    # made undecidable by it (two actions for nameOrig): the lessee then gets nothing, never
    # the raw table.
    purpose = "audit everything"
    fragile = PAYMENTS_REDACTION + f'\naction := "mask" if input.purpose == "{purpose}"\n'
    admin = await _session(deployment, logins, "uis-admin")
    status, body = await admin.api(
        f"dshare/api/datasets/{DATASET}", "PATCH", {"redaction": fragile}
    )
    assert status == 200, body
    scientist = await _session(deployment, logins, "uio-scientist")
    await scientist.put_text("redaction-refused.yaml", WORKFLOW.format(name="refused"))
    await scientist.put_text("refused.py", "print('never runs')\n")
    why = (
        "the broker of UiS refused: asset 'uis-payments' is not {}: its redaction: evaluating "
        "it for column 'nameOrig' failed (two rules give it different actions?); make the "
        "rules give each column one action and use only built-in functions; its owner must "
        "fix the policy"
    )
    lease_id = ""
    try:
        out, errors = await scientist.run_code(
            "import json, os\n"
            "from dshare_server.session import _client, lease, refresh_datasets\n"
            f"granted = lease({DATASET!r}, hours=1, purpose={purpose!r})\n"
            "print('LEASE', json.dumps([granted['id'], granted.get('purpose')]))\n"
            "%load_ext dshare_server\n"
            "run = %dshare_run redaction-refused.yaml\n"
            "print('VIEWS', json.dumps(_client().call('POST', 'views', {})))\n"
            "refresh_datasets()\n"
            f"print('LINK', json.dumps(os.path.lexists(os.path.expanduser({LINK!r}))))\n"
        )
        assert not errors, (out, errors)
        lease_id, said = _last(out, "LEASE")
        assert said == purpose, "an older lease of this user was reused"
        assert f"%dshare_run: REDACTION_FAILED: {why.format('mounted')}" in out.splitlines(), out
        assert "never runs" not in out
        views = _last(out, "VIEWS")
        assert [v for v in views["items"] if v["asset_id"] == DATASET] == [], views
        mine = [u for u in views["unavailable"] if u["asset_id"] == DATASET]
        assert [(u["code"], u["message"]) for u in mine] == [
            ("REDACTION_FAILED", why.format("shown"))
        ], views
        assert _last(out, "LINK") is False
    finally:
        status, body = await admin.api(
            f"dshare/api/datasets/{DATASET}", "PATCH", {"redaction": PAYMENTS_REDACTION}
        )
        assert status == 200, body
        if lease_id:
            out, errors = await scientist.run_code(
                f"from dshare_server.session import release\nrelease({lease_id!r})\n"
            )
            assert not errors, (out, errors)
