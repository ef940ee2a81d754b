"""An organization's own memory of the embedded ledger, kept outside the ledger file.

Whoever can write the ledger file can rewrite it and recompute every hash; what they cannot
do is change what each organization's broker saw. A broker keeps, in its own state
directory (never the ledger's):

- ``ledger-trust.json``: its organization, its certificate, and the CA certificate of every
  organization it accepts entries from. Signatures are checked against these, never
  against the CAs registered in the ledger file, so a certificate swapped in the file is
  found.
- ``ledger-checkpoints.jsonl``: checkpoints signed with its organization's key, one per
  line: the sequence number and hash of the log's head as it saw it, at each commit it made
  and at each reaper pass.

Before it checkpoints, the broker checks that the log still extends its last checkpoint:
the entry there hashes as it did, nothing after it was cut off, and every entry since links
to the one before (and, at start and at reaper passes, carries valid signatures).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dshare_chaincode.tx import fmt_time

from .chain import ChainWalker, Problem, blob, file_problems, rows
from .identity import IdentityError, OrgIdentity, check_chain, verify_signature
from .replay import Replay
from .signatures import Signatures
from .txlog import GENESIS_HASH, canonical, sha256_hex

TRUST_FILE = "ledger-trust.json"
CHECKPOINTS_FILE = "ledger-checkpoints.jsonl"
KEEP_CHECKPOINTS = 1000  # the file is cut back to this many when it holds twice as many

log = logging.getLogger("dshare.ledger.witness")


class LedgerTampered(Exception):
    """The ledger does not extend what this organization saw; `problem` says where."""

    def __init__(self, problem: Problem, others: int = 0) -> None:
        more = f" ({others} more problem(s) after it)" if others else ""
        super().__init__(f"{problem}{more}")
        self.problem = problem


@dataclass(frozen=True)
class Checkpoint:
    org: str
    seq: int
    hash: str
    at: str
    reason: str
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        return canonical(
            {"org": self.org, "seq": self.seq, "hash": self.hash, "at": self.at, "why": self.reason}
        )

    def line(self) -> str:
        doc = json.loads(self.signed_bytes())
        doc["signature"] = base64.b64encode(self.signature).decode("ascii")
        return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"

    @classmethod
    def parse(cls, line: str) -> Checkpoint:
        doc = json.loads(line)
        return cls(
            org=str(doc["org"]),
            seq=int(doc["seq"]),
            hash=str(doc["hash"]),
            at=str(doc["at"]),
            reason=str(doc["why"]),
            signature=base64.b64decode(doc["signature"], validate=True),
        )


def fingerprint(pem: str) -> str:
    try:
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    except (ValueError, TypeError, AttributeError):
        return "an unreadable certificate"
    return hashlib.sha256(der).hexdigest()[:16]


@dataclass
class WitnessRecord:
    """What one state directory holds, read by `dshare ledger verify` (checked, not trusted
    blindly: the checkpoints must be signed by the certificate its trust file names, issued
    by the CA it trusts for its own organization)."""

    directory: Path
    org: str
    cert_pem: str
    orgs: dict[str, str]
    checkpoints: list[Checkpoint]
    problems: list[str]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_trust(directory: Path) -> tuple[str, str, dict[str, str]]:
    path = directory / TRUST_FILE
    try:
        doc = json.loads(path.read_text(encoding="ascii"))
        orgs = {str(k): str(v) for k, v in doc["orgs"].items()}
        return str(doc["org"]), str(doc["cert_pem"]), orgs
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IdentityError(
            f"{path} is not a readable trust file (org, cert_pem, orgs); restore it from a "
            "backup or write it again with `dshare ledger trust`"
        ) from None


def write_trust(directory: Path, org: str, cert_pem: str, orgs: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {"org": org, "cert_pem": cert_pem, "orgs": dict(sorted(orgs.items()))}
    _write_atomic(directory / TRUST_FILE, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def read_checkpoints(directory: Path) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints in `directory`, and what is wrong with the file. A torn last line (a
    crash while appending) is dropped quietly; a bad line before it is a problem."""
    path = directory / CHECKPOINTS_FILE
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except FileNotFoundError:
        return [], []
    out: list[Checkpoint] = []
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        try:
            out.append(Checkpoint.parse(line))
        except (ValueError, KeyError, TypeError):
            if number < len(lines):
                problems.append(f"{path} line {number} is not a readable checkpoint")
    return out, problems


def read_witness(directory: Path) -> WitnessRecord:
    org, cert_pem, orgs = read_trust(directory)
    checkpoints, problems = read_checkpoints(directory)
    record = WitnessRecord(directory, org, cert_pem, orgs, [], problems)
    try:
        cert = check_chain(cert_pem, orgs.get(org, ""), org, datetime.now(UTC))
    except IdentityError as exc:
        # A certificate that has expired since still signed its old checkpoints.
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode())
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(orgs[org].encode()))
        except Exception:
            problems.append(f"{directory / TRUST_FILE}: {exc}")
            return record
    for cp in checkpoints:
        if cp.org != org or not verify_signature(cert, cp.signature, cp.signed_bytes()):
            problems.append(
                f"{directory / CHECKPOINTS_FILE}: the checkpoint of sequence {cp.seq} is not "
                f"signed by {org}"
            )
        else:
            record.checkpoints.append(cp)
    return record


class Witness:
    """One organization's broker's memory of the ledger (see the module docstring)."""

    def __init__(self, directory: str | Path, identity: OrgIdentity) -> None:
        self.directory = Path(directory)
        self.identity = identity
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.orgs: dict[str, str] = {}
        self.latest: Checkpoint | None = None
        self.new = False
        self._count = 0
        # Checked up to here in this process's life, with every transaction id seen so far
        # (read from the entries, so a replayed one is found whatever the tx_id column says).
        self._verified: tuple[int, str] = (0, GENESIS_HASH)
        self._tx_seqs: dict[str, int] | None = None
        self._latest_ts: datetime | None = None  # the latest entry timestamp checked
        # The state the checked log replays to, from the full check at start: each entry
        # this broker has not seen runs again on it (`replay.py`).
        self._replay: Replay | None = None
        # One check or checkpoint at a time: commits, reads and the reaper all make them.
        self.lock = threading.RLock()
        self.signatures = Signatures(self.ca_for)
        self._load()

    # -- files ---------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            org, _cert, orgs = read_trust(self.directory)
            self.new = False
        except FileNotFoundError:
            org, orgs = self.identity.msp_id, {}
            self.new = True  # this broker's first start with this state directory
        if org != self.identity.msp_id:
            raise IdentityError(
                f"{self.directory / TRUST_FILE} belongs to '{org}', not to "
                f"'{self.identity.msp_id}'; each broker keeps its own state directory"
            )
        own = orgs.get(org)
        if own is not None and own != self.identity.ca_cert_pem:
            raise IdentityError(
                f"{self.directory / TRUST_FILE} trusts another CA for '{org}' than the one "
                f"in its identity directory; restore the right one before starting"
            )
        self.orgs = orgs
        checkpoints, problems = read_checkpoints(self.directory)
        if problems:
            raise IdentityError("; ".join(problems))
        self._count = len(checkpoints)
        cert = x509.load_pem_x509_certificate(self.identity.cert_pem.encode())
        for cp in reversed(checkpoints):
            if cp.org == org and verify_signature(cert, cp.signature, cp.signed_bytes()):
                self.latest = cp
                break
            raise IdentityError(
                f"{self.directory / CHECKPOINTS_FILE}: the last checkpoint (sequence {cp.seq}) "
                f"is not signed by {org}'s current key"
            )

    def trust(self, orgs: dict[str, str], *, first_sight: bool = False) -> None:
        """Accept entries from `orgs` ({msp id: CA PEM}); an org already trusted with another
        CA is refused. `first_sight` marks pinning what the ledger file says (logged)."""
        for msp, ca in orgs.items():
            known = self.orgs.get(msp)
            if known is not None and known != ca:
                raise IdentityError(
                    f"'{msp}' is already trusted with CA {fingerprint(known)}, not "
                    f"{fingerprint(ca)}; a trusted CA is never replaced silently"
                )
        added = {m: c for m, c in orgs.items() if m not in self.orgs}
        if not added:
            return
        self.orgs.update(added)
        write_trust(self.directory, self.identity.msp_id, self.identity.cert_pem, self.orgs)
        if first_sight:
            log.warning(
                "%s: first start, trusting the CAs the ledger file registers: %s; compare "
                "these fingerprints with each organization's",
                self.identity.msp_id,
                ", ".join(f"{m} {fingerprint(c)}" for m, c in sorted(added.items())),
            )

    def verified(
        self,
        head: tuple[int, str],
        tx_seqs: dict[str, int],
        latest: datetime | None,
        replay: Replay | None,
    ) -> None:
        """Every entry up to `head` was checked by a full `verify`, which found `tx_seqs`,
        entries up to time `latest`, and replayed the state to `replay`."""
        if head[0] >= self._verified[0]:
            self._verified = head
            self._tx_seqs = dict(tx_seqs)
            self._latest_ts = latest
            self._replay = replay

    @property
    def replay(self) -> Replay | None:
        return self._replay

    def committed(
        self,
        applied: list[tuple[str, int]],
        head: tuple[int, str],
        at: datetime,
        *,
        replayed: bool,
    ) -> None:
        """This process appended `applied` (tx id, seq) up to `head`, right after a check;
        `replayed`: on this witness's replay too (else the next look runs them on it)."""
        if self._tx_seqs is not None:
            self._tx_seqs.update(dict(applied))
            if replayed or self._replay is None:
                self._verified = head
                self._latest_ts = max(at, self._latest_ts or at)

    def saw(self, tx_id: str, seq: int) -> bool:
        """Whether this broker's checks found transaction `tx_id` as entry `seq`."""
        return self._tx_seqs is not None and self._tx_seqs.get(tx_id) == seq

    def ca_for(self, msp_id: str) -> str | None:
        return self.orgs.get(msp_id)

    def record(self, seq: int, entry_hash: str, reason: str, *, durable: bool = False) -> None:
        """Sign and append a checkpoint of the head (`seq`, `entry_hash`)."""
        if self.latest is not None and (self.latest.seq, self.latest.hash) == (seq, entry_hash):
            return
        cp = Checkpoint(self.identity.msp_id, seq, entry_hash, fmt_time(datetime.now(UTC)), reason)
        cp = Checkpoint(**{**cp.__dict__, "signature": self.identity.sign(cp.signed_bytes())})
        path = self.directory / CHECKPOINTS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as fh:
            fh.write(cp.line())
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        self.latest = cp
        self._count += 1
        if self._count > 2 * KEEP_CHECKPOINTS:
            kept, _ = read_checkpoints(self.directory)
            kept = kept[-KEEP_CHECKPOINTS:]
            _write_atomic(path, "".join(c.line() for c in kept))
            self._count = len(kept)

    # -- checks ----------------------------------------------------------------------------

    def check(self, conn: Any) -> tuple[int, str]:
        """Raise LedgerTampered unless the log at `conn` (inside a read transaction) extends
        the last checkpoint and every entry this process has not checked yet is intact,
        signed and new; return the head. Take `lock` around it and `record`."""
        try:
            return self._check(conn)
        except LedgerTampered:
            raise
        except Exception as exc:
            raise LedgerTampered(
                Problem(0, f"the ledger file cannot be read as a ledger ({type(exc).__name__})")
            ) from None

    def _check(self, conn: Any) -> tuple[int, str]:
        self._check_orgs(conn)
        for problem in file_problems(conn):
            raise LedgerTampered(problem)
        org = self.identity.msp_id
        head_row = conn.execute("SELECT max(seq) FROM txlog").fetchone()
        head = int(head_row[0] or 0)
        cp = self.latest
        if cp is not None:
            if head < cp.seq:
                raise LedgerTampered(
                    Problem(
                        cp.seq,
                        f"{org}'s broker saw the log reach this sequence on {cp.at}, but it "
                        f"ends at {head} (entries cut off)",
                    )
                )
            row = conn.execute("SELECT body, hash FROM txlog WHERE seq = ?", (cp.seq,)).fetchone()
            if row is None or row[1] != cp.hash or sha256_hex(blob(row[0])) != cp.hash:
                raise LedgerTampered(
                    Problem(
                        cp.seq,
                        f"the entry differs from the one {org}'s broker saw here on {cp.at} "
                        "(history rewritten at or before this sequence)",
                    )
                )
        start = self._verified
        if self._tx_seqs is None:  # nothing walked from genesis yet in this process
            start, self._tx_seqs = (0, GENESIS_HASH), {}
        seen = self._tx_seqs
        walker = ChainWalker(
            self.signatures,
            after_seq=start[0],
            after_hash=start[1],
            first_seq=lambda tx_id, seq: seen.setdefault(tx_id, seq),
            latest=self._latest_ts,
        )
        replay = self._replay
        for entry in walker.walk(rows(conn, start[0])):
            if cp is not None and entry.seq == cp.seq and entry.hash != cp.hash:
                walker.add(cp.seq, f"the entry differs from the one {org}'s broker saw on {cp.at}")
            if replay is not None and not walker.problems:
                replay.rerun(walker.add, entry)
                replay.apply(walker.add, entry)
        if walker.problems:
            # Entries may be half applied to the replay: the next full check builds another.
            self._replay = None
            # What this walk learnt is not trusted: the next check walks it again.
            for tx_id, seq in list(seen.items()):
                if seq > start[0]:
                    del seen[tx_id]
            first = min(walker.problems, key=lambda p: p.seq)
            raise LedgerTampered(first, len(walker.problems) - 1)
        self._verified = (walker.head_seq, walker.head_hash)
        self._latest_ts = walker.latest
        return walker.head_seq, walker.head_hash

    def _check_orgs(self, conn: Any) -> None:
        for msp, ca in conn.execute("SELECT msp_id, ca_cert_pem FROM orgs"):
            trusted = self.orgs.get(msp)
            if trusted is not None and trusted != ca:
                raise LedgerTampered(
                    Problem(
                        0,
                        f"the ledger file registers another CA certificate for '{msp}' than "
                        f"the one {self.identity.msp_id}'s broker trusts ({fingerprint(ca)} "
                        f"instead of {fingerprint(trusted)}): a swapped certificate",
                    )
                )
