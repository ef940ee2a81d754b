"""What only the embedded ledger does: identities, MVCC at commit, events in the log,
group commit and crash safety."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sqlite3
import stat
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from ledger_helpers import asset_json
from ledger_workers import register_forever

from dshare_chaincode.tx import fmt_time
from dshare_hub.ledger import LedgerError
from dshare_hub.ledger.core import LedgerCore, ReadConflict
from dshare_hub.ledger.embedded import EmbeddedLedger
from dshare_hub.ledger.identity import (
    IdentityError,
    create_org,
    load_identity,
    make_identity_files,
)
from dshare_hub.ledger.txlog import endorsed_bytes
from dshare_hub.ledger.verify import verify


@pytest.fixture
def env(tmp_path):
    db = tmp_path / "ledger.db"
    ids = tmp_path / "ids"
    uis = create_org(db, "UiS", identity_dir=ids)
    uio = create_org(db, "UiO", identity_dir=ids)
    core = LedgerCore(db)
    yield core, uis, uio
    core.close()


def _entries(core):
    return core._reader().execute("SELECT COUNT(*) FROM txlog").fetchone()[0]


def _expect(call, code, message):
    with pytest.raises(LedgerError) as info:
        call()
    assert (info.value.code, info.value.message) == (code, message)


# -- identity ---------------------------------------------------------------------------------


def test_identity_files_are_private_and_keys_never_printed(tmp_path):
    ident = make_identity_files(tmp_path, "UiB")
    for name in ("key.pem", "ca-key.pem"):
        assert stat.S_IMODE(os.stat(tmp_path / "UiB" / name).st_mode) == 0o600
    assert "PRIVATE" not in repr(ident) and "key=" not in repr(ident)
    assert load_identity(tmp_path, "UiB").cert_pem == ident.cert_pem
    with pytest.raises(IdentityError) as info:
        make_identity_files(tmp_path, "UiB")
    assert str(info.value) == (
        f"an identity for organization 'UiB' already exists in {tmp_path / 'UiB'}; "
        "load it instead of creating a new one"
    )
    with pytest.raises(IdentityError) as info:
        load_identity(tmp_path, "UiX")
    assert str(info.value) == (
        f"no identity for organization 'UiX' in {tmp_path / 'UiX'} (missing cert.pem); "
        "create it with `dshare ledger init`"
    )
    with pytest.raises(IdentityError) as info:
        make_identity_files(tmp_path, "../evil")
    assert str(info.value) == (
        "organization name '../evil' must be 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


def test_certificate_from_another_ca_is_refused(env, tmp_path):
    core, _uis, _uio = env
    # Same org name, a CA the ledger never registered for it.
    rogue = make_identity_files(tmp_path / "rogue", "UiS")
    _expect(
        lambda: core.submit(rogue, "RegisterAsset", [asset_json("x")], "mallory"),
        "IDENTITY_REJECTED",
        "the certificate presented for 'UiS' was not issued by 'UiS''s CA",
    )
    assert _entries(core) == 0


def test_signature_by_another_key_is_refused(env):
    core, uis, uio = env
    args = [asset_json("x")]
    endorsed = core.endorse(uis, core.propose(uis, "RegisterAsset", args, "alice"), args)
    signed = endorsed_bytes(
        endorsed.proposal.as_dict(),
        endorsed.item().endorsement(),
    )
    forged = replace(endorsed, signature=uio.sign(signed))
    _expect(
        lambda: core.commit(forged),
        "IDENTITY_REJECTED",
        f"the endorsement signature of transaction {endorsed.proposal.tx_id} does not match "
        "the certificate of 'UiS'",
    )
    assert _entries(core) == 0


def test_effects_changed_after_endorsement_are_refused(env):
    """A process that leaves a transaction in the inbox cannot alter what it writes."""
    core, uis, _uio = env
    args = [asset_json("x")]
    endorsed = core.endorse(uis, core.propose(uis, "RegisterAsset", args, "alice"), args)
    item = endorsed.item()
    key = next(iter(item.effects.writes))
    item.effects.writes[key] = b'{"owner_org": "UiO"}'
    (inbox_id,) = core._inbox.put([item], [])
    out = core._process(core._inbox.waiting(), uis)
    assert out[inbox_id]["message"] == (
        f"the endorsement signature of transaction {endorsed.proposal.tx_id} does not match "
        "the certificate of 'UiS'"
    )
    assert _entries(core) == 0


def test_unregistered_org_is_refused_until_added_while_running(env, tmp_path):
    core, _uis, _uio = env
    uib = make_identity_files(tmp_path / "later", "UiB")
    _expect(
        lambda: core.submit(uib, "RegisterAsset", [asset_json("b")], "eve"),
        "IDENTITY_REJECTED",
        "organization 'UiB' is not registered on this ledger; "
        "register its CA with `dshare ledger init`",
    )
    # Another process (here: another core) registers the CA; this running core accepts it.
    other = LedgerCore(core.path)
    other.register_org("UiB", uib.ca_cert_pem)
    other.close()
    created = json.loads(core.submit(uib, "RegisterAsset", [asset_json("b")], "eve"))
    assert created["owner_org"] == "UiB"


def test_an_org_ca_is_never_replaced(env, tmp_path):
    core, _uis, _uio = env
    rogue = make_identity_files(tmp_path / "rogue", "UiS")
    _expect(
        lambda: core.register_org("UiS", rogue.ca_cert_pem),
        "IDENTITY_REJECTED",
        "organization 'UiS' is already registered with another CA; "
        "a ledger never replaces an organization's CA silently",
    )


def test_arguments_must_match_the_proposal(env):
    core, uis, _uio = env
    proposal = core.propose(uis, "RegisterAsset", [asset_json("x")], "alice")
    _expect(
        lambda: core.endorse(uis, proposal, [asset_json("y")]),
        "LEDGER_ERROR",
        f"transaction {proposal.tx_id} is not UiS's proposal for these arguments",
    )


@pytest.mark.parametrize("minutes", [10, -10])
def test_proposal_far_from_the_ledger_clock_is_refused(env, minutes):
    core, uis, _uio = env
    at = datetime.now(UTC) + timedelta(minutes=minutes)
    proposal = core.propose(uis, "RegisterAsset", [asset_json("x")], "alice", at=at)
    _expect(
        lambda: core.endorse(uis, proposal, [asset_json("x")]),
        "LEDGER_ERROR",
        f"transaction {proposal.tx_id} is timestamped {fmt_time(at)}, more than 120 s from the "
        "ledger's clock; check the submitting machine's clock",
    )


def test_a_transaction_left_in_the_inbox_past_the_skew_is_refused(env, monkeypatch):
    from dshare_hub.ledger import commit as commit_module

    core, uis, _uio = env
    args = [asset_json("x")]
    endorsed = core.endorse(uis, core.propose(uis, "RegisterAsset", args, "alice"), args)
    real = commit_module.datetime

    class Later(real):  # the committer's clock, three minutes on
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + timedelta(minutes=3)

    monkeypatch.setattr(commit_module, "datetime", Later)
    _expect(
        lambda: core.commit(endorsed),
        "LEDGER_ERROR",
        f"transaction {endorsed.proposal.tx_id} is timestamped {endorsed.proposal.timestamp}, "
        "more than 120 s from the ledger's clock; check the submitting machine's clock",
    )


def test_malformed_timestamp_is_refused(env):
    core, uis, _uio = env
    proposal = replace(core.propose(uis, "GetAsset", ["x"], "alice"), timestamp="yesterday")
    _expect(
        lambda: core.endorse(uis, proposal, ["x"]),
        "LEDGER_ERROR",
        f"transaction {proposal.tx_id}: time 'yesterday' is not in the form "
        "2026-01-31T12:00:00.000000Z",
    )


def test_a_proposal_commits_once(env):
    core, uis, uio = env
    core.submit(uis, "RegisterAsset", [asset_json("a")], "alice")
    args = ["a", "60", "x"]
    proposal = core.propose(uio, "RequestLease", args, "bob")
    core.commit(core.endorse(uio, proposal, args))
    _expect(
        lambda: core.endorse(uio, proposal, args),
        "LEDGER_ERROR",
        f"transaction {proposal.tx_id} was already committed; a proposal is never replayed",
    )
    assert _entries(core) == 2


# -- MVCC ---------------------------------------------------------------------------------------


def test_read_set_is_checked_at_commit(env):
    core, uis, uio = env
    policy = {"exclusive": True, "max_duration_s": 60}
    core.submit(uis, "RegisterAsset", [asset_json("hot", policy=policy)], "alice")
    args = ["hot", "60", "x"]
    first = core.endorse(uio, core.propose(uio, "RequestLease", args, "bob"), args)
    second = core.endorse(uio, core.propose(uio, "RequestLease", args, "dan"), args)
    lease = json.loads(core.commit(first))
    with pytest.raises(ReadConflict) as info:
        core.commit(second)
    assert str(info.value) == f"open~asset[hot, {lease['id']}]"
    assert _entries(core) == 2
    assert verify(core.path).ok


def test_exhausted_retries_report_lease_conflict(env, monkeypatch):
    core, uis, _uio = env

    def always_conflict(endorsed):
        raise ReadConflict(b"asset/a")

    monkeypatch.setattr(core, "endorse", lambda identity, proposal, args: proposal)
    monkeypatch.setattr(core, "commit", always_conflict)
    _expect(
        lambda: core.submit(uis, "UpdateAsset", ["a", "{}"], "alice", retries=2),
        "LEASE_CONFLICT",
        "UpdateAsset conflicted with a concurrent change to 'asset/a' and was not committed; retry",
    )


def test_refused_transaction_leaves_nothing(env):
    core, uis, uio = env
    core.submit(uis, "RegisterAsset", [asset_json("a")], "alice")
    before = core._reader().execute("SELECT key, value, version FROM state").fetchall()
    _expect(
        lambda: core.submit(uio, "UpdateAsset", ["a", '{"name": "x"}'], "bob"),
        "NOT_OWNER",
        "only the owner organization 'UiS' may update asset 'a'; you submitted as 'UiO'",
    )
    after = core._reader().execute("SELECT key, value, version FROM state").fetchall()
    assert after == before
    assert _entries(core) == 1


# -- events -------------------------------------------------------------------------------------


def test_every_change_records_its_event(env):
    core, uis, uio = env
    sub = core.submit

    def ok(ident, fn, *args, actor="u"):
        return json.loads(sub(ident, fn, list(args), actor))

    ok(uis, "RegisterAsset", asset_json("a", policy={"approval_required": True}))
    ok(uis, "UpdateAsset", "a", '{"name": "A"}')
    pending = ok(uio, "RequestLease", "a", "60", "p", actor="bob")
    ok(uis, "ApproveLease", pending["id"])
    rejected = ok(uio, "RequestLease", "a", "60", "p", actor="bob")
    ok(uis, "RejectLease", rejected["id"], "no")
    ok(uis, "RegisterAsset", asset_json("b"))
    quick = ok(uio, "RequestLease", "b", "1", "p", actor="bob")
    run = ok(uio, "RecordRun", json.dumps([pending["id"]]), "ab" * 32, "r", actor="bob")
    ok(uio, "FinishRun", run["id"], "failed", actor="bob")
    ok(uio, "ReleaseLease", pending["id"], actor="bob")
    ok(uis, "RetireAsset", "a")
    threading.Event().wait(1.2)  # let the 1 s lease on "b" expire
    ok(uis, "ExpireLeases", "", actor="reaper")
    rows = core._reader().execute("SELECT body FROM txlog ORDER BY seq").fetchall()
    events = [json.loads(body)["endorsement"]["event"][0] for (body,) in rows]
    assert events == [
        "AssetRegistered",
        "AssetUpdated",
        "LeaseRequested",
        "LeaseApproved",
        "LeaseRequested",
        "LeaseRejected",
        "AssetRegistered",
        "LeaseGranted",
        "RunRecorded",
        "RunFinished",
        "LeaseReleased",
        "AssetRetired",
        "LeaseExpired",
    ]
    last = json.loads(rows[-1][0])["endorsement"]["event"]
    import base64

    assert json.loads(base64.b64decode(last[1])) == {
        "by": {"actor": "reaper", "org": "UiS"},
        "ids": [quick["id"]],
    }
    assert verify(core.path).ok


# -- group commit and crashes -------------------------------------------------------------------


def test_waiting_transactions_share_one_commit(env):
    core, uis, _uio = env
    core._group._thread_write_lock.acquire()  # hold the first leader at the write lock
    errors: list[BaseException] = []

    def register(i: int) -> None:
        try:
            core.submit(uis, "RegisterAsset", [asset_json(f"g{i}")], "alice")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(5)]
    threads[0].start()
    while not core._group._leader:
        threading.Event().wait(0.01)
    for t in threads[1:]:
        t.start()
    while True:
        with core._group._cond:
            if len(core._group._queue) == 4:
                break
        threading.Event().wait(0.01)
    core._group._thread_write_lock.release()
    for t in threads:
        t.join()
    assert errors == []
    assert core.stats.sizes == [1, 4]  # the four that waited went in one fsync
    assert _entries(core) == 5
    assert verify(core.path).ok


def test_kill_9_leaves_a_consistent_ledger(env):
    core, _uis, uio = env
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(
        target=register_forever, args=(str(core.path), str(uio.directory.parent), "UiO", ready)
    )
    proc.start()
    assert ready.wait(timeout=120)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    report = verify(core.path)
    assert report.ok, report.problems
    assert report.entries >= 20
    # The ledger keeps working after the crash. A transaction the killed process had
    # already signed and left in the inbox may be committed too, as a Fabric orderer would
    # commit a submitted transaction whose client died.
    core.submit(uio, "RegisterAsset", [asset_json("after")], "bob")
    after = verify(core.path)
    assert after.ok, after.problems
    assert report.entries + 1 <= after.entries <= report.entries + 2
    assert core._inbox.waiting() == []


def test_sqlite_file_is_in_wal_mode(env):
    core, _uis, _uio = env
    conn = sqlite3.connect(core.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# -- async wrapper ------------------------------------------------------------------------------


def test_embedded_ledger_open_creates_then_reuses_identity(tmp_path):
    async def scenario():
        first = EmbeddedLedger.open(tmp_path / "l.db", tmp_path / "ids", "UiS")
        cert = first.identity.cert_pem
        await first.submit("RegisterAsset", asset_json("a"), actor="alice")
        await first.close()
        again = EmbeddedLedger.open(tmp_path / "l.db", tmp_path / "ids", "UiS")
        assert again.identity.cert_pem == cert
        got = await again.evaluate("GetAsset", "a", actor="alice")
        await again.close()
        with pytest.raises(LedgerError) as info:
            await again.evaluate("GetAsset", "a", actor="alice")
        assert (info.value.code, info.value.message) == (
            "LEDGER_ERROR",
            "this ledger connection is closed; open it again",
        )
        return got

    assert asyncio.run(scenario())["owner_org"] == "UiS"
