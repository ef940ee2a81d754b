"""A rogue organization rewrites the shared ledger under running brokers: the others find
it at their next reaper pass and answer every request with the reason, not the forgery.

UiO's admin, holding UiO's ledger key and write access to the ledger file (every broker's
account has it in the embedded deployment), runs its scientist's lease request again for an
hour instead of ten minutes, signs it, recomputes every hash after it, countersigns them as
UiO and rebuilds the world state and history to match: everything `verify` can check
without the brokers' own checkpoints holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hubfixture import Hub, start_hub, stop_hub
from ledger_forgery import LedgerFile, find, rerun_with

from dshare_hub.ledger.identity import load_identity
from dshare_hub.ledger.verify import verify
from dshare_hub.ledger.witness import read_checkpoints

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = start_hub(tmp_path_factory.mktemp("hub"))
    try:
        yield hub
    finally:
        stop_hub(hub)


def test_brokers_refuse_to_serve_a_rewritten_ledger(hub: Hub, tmp_path) -> None:
    admin = hub.make_user("siri", "UiS", "admin")
    scientist = hub.make_user("ola", "UiO", "scientist")
    data = tmp_path / "data"
    data.mkdir()
    (data / "words.txt").write_text("fjord\n")
    body = {
        "id": "uis-words",
        "name": "UiS words",
        "description": "word counts",
        "tags": ["text"],
        "policy": {"max_duration_s": 3600},
        "storage": {"type": "local", "details": {"path": str(data)}},
    }
    assert hub.broker("UiS", "POST", "/datasets", admin, body).status == 201
    leased = hub.broker(
        "UiO",
        "POST",
        "/leases",
        scientist,
        {"dataset_id": "uis-words", "duration_s": 600, "purpose": "count words"},
    )
    assert leased.status == 201, leased.text
    log = LedgerFile(hub.ledger_db)
    # Until both brokers' reaper passes (every second here) have checkpointed the lease.
    deadline = time.monotonic() + 30
    while any(
        max((cp.seq for cp in read_checkpoints(hub.data_dirs[org])[0]), default=0) < log.head()
        for org in ("UiS", "UiO")
    ):
        assert time.monotonic() < deadline, "the brokers never checkpointed the head"
        time.sleep(0.2)

    entries = log.entries()
    i = find(entries, "RequestLease", "UiO")
    uio = load_identity(hub.identity_dir, "UiO")
    rerun_with(entries, i, ["uis-words", "3600", "count words"], uio)
    log.write(entries, keys={"UiO": uio})
    assert verify(hub.ledger_db).ok  # without the brokers' checkpoints, nothing shows

    deadline = time.monotonic() + 30
    while True:
        reply = hub.broker("UiS", "GET", "/datasets", admin)
        if reply.status != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert reply.status == 503, reply.text
    assert reply.body["code"] == "LEDGER_TAMPERED"
    assert reply.body["message"].startswith("the ledger does not extend what UiS's broker saw: ")
    assert "history rewritten at or before this sequence" in reply.body["message"]
    # The scientist's own org's broker is UiO's, the forger's: UiS's answer is what counts.
    mine = hub.broker("UiS", "GET", "/datasets/uis-words", admin)
    assert mine.status == 503 and mine.body["code"] == "LEDGER_TAMPERED"

    report = verify(hub.ledger_db, [hub.data_dirs["UiS"], hub.data_dirs["UiO"]])
    assert not report.ok
    assert any("UiS's broker saw here on" in str(p) for p in report.problems), report.problems
    logged = hub.log_path.read_text()
    assert logged.count("the ledger does not extend what UiS's broker saw") >= 1
