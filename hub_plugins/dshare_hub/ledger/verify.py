"""Check an embedded ledger file end to end: every entry's hash, chain link and signature,
then replay the log's write sets into a fresh world state and history and compare them with
what is stored. Any altered byte shows up as a problem naming a log sequence number."""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from dshare_chaincode.tx import parse_time

from .identity import IdentityError, check_chain, verify_signature
from .store import connect
from .txlog import GENESIS_HASH, Proposal, new_tx_id, sha256_hex, unb64

MAX_PROBLEMS = 200


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}"


@dataclass
class VerifyReport:
    entries: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return min((p.seq for p in self.problems), default=None)

    def add(self, seq: int, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, message))


class _Replay:
    def __init__(self) -> None:
        self.state: dict[bytes, tuple[bytes, int]] = {}
        self.history: dict[tuple[bytes, int], tuple[str, str, int, bytes | None]] = {}


def _check_entry(
    report: VerifyReport,
    replay: _Replay,
    orgs: dict[str, str],
    trusted: set[tuple[str, str]],
    seq: int,
    tx_id: str,
    body_bytes: bytes,
    signature: bytes,
) -> None:
    try:
        body: dict[str, Any] = json.loads(body_bytes)
        proposal = Proposal.from_dict(body["proposal"])
    except (ValueError, KeyError, TypeError):
        report.add(seq, "the entry's body is not a readable log entry (altered bytes)")
        return
    if body.get("seq") != seq:
        report.add(seq, f"the entry's body claims sequence {body.get('seq')!r}")
    if proposal.tx_id != tx_id:
        report.add(seq, f"the tx_id column {tx_id!r} differs from the signed proposal's")
    if proposal.tx_id != new_tx_id(proposal.nonce, proposal.cert_pem):
        report.add(seq, "the transaction id does not match its nonce and certificate")
    ca = orgs.get(proposal.msp_id)
    if ca is None:
        report.add(seq, f"organization '{proposal.msp_id}' has no registered CA")
    else:
        try:
            ts = parse_time(proposal.timestamp)
            if (proposal.cert_pem, ca) not in trusted:
                check_chain(proposal.cert_pem, ca, proposal.msp_id, ts)
                trusted.add((proposal.cert_pem, ca))
            cert = x509.load_pem_x509_certificate(proposal.cert_pem.encode())
            if not verify_signature(cert, signature, proposal.signing_bytes()):
                report.add(seq, "the signature does not match the signed proposal")
        except (IdentityError, ValueError) as exc:
            report.add(seq, f"the creator's certificate is not trusted: {exc}")
    for key_text, version in body.get("reads", []):
        key = key_text.encode()
        replayed = replay.state.get(key, (b"", 0))[1]
        if replayed != version:
            report.add(
                seq,
                f"the read set claims version {version} of key {key_text!r} but the "
                f"replayed ledger had version {replayed}",
            )
    for key_text, value_b64 in body.get("writes", []):
        key = key_text.encode()
        try:
            value = None if value_b64 is None else unb64(value_b64)
        except (binascii.Error, ValueError):
            report.add(seq, f"the write set value of key {key_text!r} is not base64")
            continue
        if value is None:
            replay.state.pop(key, None)
        else:
            replay.state[key] = (value, seq)
        replay.history[(key, seq)] = (proposal.tx_id, proposal.timestamp, int(value is None), value)


def verify(path: str | Path) -> VerifyReport:
    """Walk the log of the ledger at `path`; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ledger database at {path}")
    report = VerifyReport()
    conn = connect(path, readonly=True)
    # An altered byte can leave a text column (hash, tx_id) that is not UTF-8; read it with
    # replacement characters so it is reported as a mismatch instead of aborting the walk.
    conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
    try:
        conn.execute("BEGIN")  # one snapshot, even while brokers keep committing
        orgs = dict(conn.execute("SELECT msp_id, ca_cert_pem FROM orgs").fetchall())
        replay = _Replay()
        trusted: set[tuple[str, str]] = set()
        prev = GENESIS_HASH
        expected = 1
        rows = conn.execute("SELECT seq, tx_id, body, hash, signature FROM txlog ORDER BY seq")
        for seq, tx_id, body, stored_hash, signature in rows:
            body = bytes(body)
            if seq != expected:
                report.add(seq, f"the log skips from sequence {expected - 1} to {seq}")
            expected = seq + 1
            report.entries += 1
            if sha256_hex(body) != stored_hash:
                report.add(seq, "the entry's hash does not match its bytes (altered entry)")
            try:
                linked = json.loads(body).get("prev_hash")
            except ValueError:
                linked = None
            if linked != prev:
                report.add(seq, "the entry does not link to the previous entry's hash")
            _check_entry(report, replay, orgs, trusted, seq, tx_id, body, bytes(signature))
            prev = stored_hash
        report.head_hash = prev
        _compare_state(conn, replay, report)
        _compare_history(conn, replay, report)
        conn.execute("COMMIT")
    finally:
        conn.close()
    report.problems.sort(key=lambda p: p.seq)
    return report


def _compare_state(conn: Any, replay: _Replay, report: VerifyReport) -> None:
    rows = conn.execute("SELECT key, value, version FROM state")
    stored: dict[bytes, tuple[bytes, int]] = {bytes(k): (bytes(v), ver) for k, v, ver in rows}
    for key in sorted(stored.keys() | replay.state.keys()):
        have, want = stored.get(key), replay.state.get(key)
        if have == want:
            continue
        shown = key.decode(errors="replace")
        if want is None:
            assert have is not None
            report.add(have[1], f"world state holds key {shown!r} that the log never wrote")
        elif have is None:
            report.add(want[1], f"world state lacks key {shown!r} written by this entry")
        else:
            report.add(want[1], f"world state of key {shown!r} differs from what this entry wrote")


def _compare_history(conn: Any, replay: _Replay, report: VerifyReport) -> None:
    stored = {
        (bytes(k), seq): (tx, ts, d, None if v is None else bytes(v))
        for k, seq, tx, ts, d, v in conn.execute(
            "SELECT key, seq, tx_id, timestamp, is_delete, value FROM history"
        )
    }
    for key, seq in sorted(stored.keys() | replay.history.keys()):
        if stored.get((key, seq)) != replay.history.get((key, seq)):
            shown = key.decode(errors="replace")
            report.add(seq, f"the history of key {shown!r} differs from this entry's write")
