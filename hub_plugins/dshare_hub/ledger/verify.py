"""Check an embedded ledger file end to end, against what the organizations saw.

Every entry's hash, chain link, endorsement and commit signature is checked, with the
certificates the organizations' brokers trust (their state directories, `witness.py`)
rather than the ones registered in the file; the log is compared with every checkpoint those
brokers signed, so a rewrite by whoever can write the file, an entry removed or a tail cut
off is found; then the log's write sets are replayed into a fresh world state and history and
compared with what is stored. Every problem names a log sequence number (0: the file's
registered organizations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .chain import ChainWalker, Problem, blob, file_problems, rows
from .replay import Replay
from .signatures import Signatures
from .store import connect
from .txlog import GENESIS_HASH
from .witness import WitnessRecord, fingerprint, read_witness

MAX_PROBLEMS = 200

__all__ = ["Problem", "VerifyReport", "verify"]


@dataclass
class VerifyReport:
    entries: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    witnesses: list[str] = field(default_factory=list)  # organizations whose checkpoints held
    checkpoints: int = 0
    tx_seqs: dict[str, int] = field(default_factory=dict)  # every transaction id: its entry
    latest: datetime | None = None  # the latest entry timestamp
    replay: Replay | None = None  # the state the log replays to (a broker keeps it)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return min((p.seq for p in self.problems), default=None)

    def add(self, seq: int, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, message))


def _trust(
    report: VerifyReport, witnesses: list[WitnessRecord], registered: dict[str, str]
) -> dict[str, str]:
    """The CAs signatures are checked against: the witnesses' (which must agree), else the
    file's own, with a warning that this proves nothing against a deliberate rewrite."""
    if not witnesses:
        report.warnings.append(
            "no organization's state directory given (--witness): signatures are checked "
            "against the CAs registered in the file itself and no checkpoint is compared, so "
            "a deliberate rewrite or a cut-off tail cannot be detected"
        )
        return dict(registered)
    # An organization's entries count only if every witness trusts the same CA for it: one
    # broker that pinned an org (on first sight, or by a rogue operator) vouches for nobody.
    trusted: dict[str, str] = {}
    for msp in sorted({m for w in witnesses for m in w.orgs}):
        cas = {w.orgs.get(msp) for w in witnesses}
        if len(cas) == 1:
            trusted[msp] = str(cas.pop())
        elif None in cas:
            names = ", ".join(w.org for w in witnesses if msp in w.orgs)
            report.add(0, f"'{msp}' is trusted by {names} only: its entries are not vouched for")
        else:
            report.add(0, f"the witnesses trust different CA certificates for '{msp}'")
    for msp, ca in registered.items():
        if msp in trusted and trusted[msp] != ca:
            report.add(
                0,
                f"the ledger file registers another CA certificate for '{msp}' than its "
                f"organizations trust ({fingerprint(ca)} instead of {fingerprint(trusted[msp])}):"
                " a swapped certificate",
            )
    return trusted


def _compare_checkpoints(
    report: VerifyReport, witnesses: list[WitnessRecord], hashes: dict[int, str], head: int
) -> None:
    for w in witnesses:
        for problem in w.problems:
            report.add(0, problem)
        bad = False
        for cp in w.checkpoints:
            report.checkpoints += 1
            if cp.seq > head:
                report.add(
                    cp.seq,
                    f"{w.org}'s broker saw the log reach this sequence on {cp.at}, but it ends "
                    f"at {head} (entries cut off)",
                )
                bad = True
                break
            if hashes.get(cp.seq) != cp.hash:
                report.add(
                    cp.seq,
                    f"the entry differs from the one {w.org}'s broker saw here on {cp.at} "
                    "(history rewritten at or before this sequence)",
                )
                bad = True
                break
        if not bad and not w.problems:
            report.witnesses.append(w.org)


def verify(path: str | Path, witnesses: Sequence[str | Path] = ()) -> VerifyReport:
    """Check the ledger at `path` against the brokers' state directories `witnesses`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ledger database at {path}")
    records = [read_witness(Path(w)) for w in witnesses]
    wanted = {cp.seq for r in records for cp in r.checkpoints}
    report = VerifyReport()
    conn = connect(path, readonly=True)
    # An altered byte can leave a text column (hash, tx_id) that is not UTF-8; read it with
    # replacement characters so it is reported as a mismatch instead of aborting the walk.
    conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
    try:
        conn.execute("BEGIN")  # one snapshot, even while brokers keep committing
        for problem in file_problems(conn):
            report.add(problem.seq, problem.message)
        registered = {
            str(m): str(c) for m, c in conn.execute("SELECT msp_id, ca_cert_pem FROM orgs")
        }
        trusted = _trust(report, records, registered)
        unknown = (
            (lambda msp: f"organization '{msp}' is trusted by none of the witnesses given")
            if records
            else (lambda msp: f"organization '{msp}' has no registered CA")
        )
        seen = report.tx_seqs
        walker = ChainWalker(
            Signatures(trusted.get, unknown),
            first_seq=lambda tx_id, seq: seen.setdefault(tx_id, seq),
        )
        replay = Replay()
        hashes: dict[int, str] = {}
        for entry in walker.walk(rows(conn)):
            if entry.seq in wanted:
                hashes[entry.seq] = entry.hash
            replay.rerun(report.add, entry)
            replay.apply(report.add, entry)
        for problem in walker.problems:
            report.add(problem.seq, problem.message)
        report.entries = walker.entries
        report.head_hash = walker.head_hash
        report.latest = walker.latest
        report.replay = replay
        _compare_checkpoints(report, records, hashes, walker.head_seq)
        _compare_state(conn, replay, report)
        _compare_history(conn, replay, report)
        conn.execute("COMMIT")
    finally:
        conn.close()
    report.problems.sort(key=lambda p: p.seq)
    return report


def _compare_state(conn: Any, replay: Replay, report: VerifyReport) -> None:
    rows = conn.execute("SELECT key, value, version FROM state")
    stored: dict[bytes, tuple[bytes, int]] = {blob(k): (blob(v), ver) for k, v, ver in rows}
    replayed = replay.state()
    for key in sorted(stored.keys() | replayed.keys()):
        have, want = stored.get(key), replayed.get(key)
        if have == want:
            continue
        shown = key.decode(errors="replace")
        if want is None and key in replay.deleted:
            seq = replay.deleted[key]
            report.add(seq, f"world state holds key {shown!r} that this entry deleted")
        elif want is None:
            assert have is not None
            report.add(have[1], f"world state holds key {shown!r} that the log never wrote")
        elif have is None:
            report.add(want[1], f"world state lacks key {shown!r} written by this entry")
        else:
            report.add(want[1], f"world state of key {shown!r} differs from what this entry wrote")


def _compare_history(conn: Any, replay: Replay, report: VerifyReport) -> None:
    stored = {
        (blob(k), seq): (tx, ts, d, None if v is None else blob(v))
        for k, seq, tx, ts, d, v in conn.execute(
            "SELECT key, seq, tx_id, timestamp, is_delete, value FROM history"
        )
    }
    for key, seq in sorted(stored.keys() | replay.history.keys()):
        if stored.get((key, seq)) != replay.history.get((key, seq)):
            shown = key.decode(errors="replace")
            report.add(seq, f"the history of key {shown!r} differs from this entry's write")
