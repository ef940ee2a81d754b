"""The embedded ledger's transaction log format: signed proposals and hash-chained entries.

A proposal is what the submitting organization signs before anything executes. A log entry
is the proposal plus what executing it read and wrote, chained to the previous entry by
hash. Both are canonical JSON (sorted keys, no spaces) so the same bytes are hashed, signed
and verified everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

GENESIS_HASH = "0" * 64


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def args_digest(fn: str, args: Sequence[str]) -> str:
    return sha256_hex(canonical([fn, list(args)]))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class Proposal:
    """The signed part of a transaction. `tx_id` binds nonce and certificate, as in Fabric."""

    tx_id: str
    timestamp: str  # contract time format (UTC, microseconds)
    msp_id: str
    cert_pem: str
    actor: str
    fn: str
    args_digest: str
    nonce: str

    def signing_bytes(self) -> bytes:
        return canonical(self.as_dict())

    def as_dict(self) -> dict[str, str]:
        return {
            "tx_id": self.tx_id,
            "timestamp": self.timestamp,
            "msp_id": self.msp_id,
            "cert_pem": self.cert_pem,
            "actor": self.actor,
            "fn": self.fn,
            "args_digest": self.args_digest,
            "nonce": self.nonce,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Proposal:
        return cls(**{k: str(d[k]) for k in PROPOSAL_FIELDS})


PROPOSAL_FIELDS = tuple(Proposal.__dataclass_fields__)


def new_tx_id(nonce: str, cert_pem: str) -> str:
    return sha256_hex(nonce.encode() + cert_pem.encode())


def new_nonce() -> str:
    return os.urandom(24).hex()


def key_text(key: bytes) -> str:
    """Ledger keys are UTF-8 bytes in SQLite; in JSON they are text (NULs escape cleanly)."""
    return key.decode("utf-8")


FORMAT = 2  # log entries with endorsements and per-batch commit signatures
# A proposal's timestamp decides lease expiry, so an org must not be able to backdate one:
# committers refuse proposals further than this from their clock.
MAX_CLOCK_SKEW = timedelta(seconds=120)


def result_hash(result: bytes) -> str:
    return sha256_hex(result)


def endorsed_bytes(proposal: dict[str, str], endorsement: dict[str, Any]) -> bytes:
    """What the endorsing organization signs: the proposal and what executing it did.

    endorsement: reads [[key, version]], ranges [[start, end, exhausted, [[key, version]]]],
    writes [[key, base64 value or None for a delete]], event [name, base64 payload] or
    None, result_hash (sha256 of the contract's answer). Position and previous hash are not
    known yet; the commit signature covers them, as Fabric's orderer signs a block.
    """
    return canonical({"proposal": proposal, "endorsement": endorsement})


def entry_body(
    seq: int,
    prev_hash: str,
    proposal: Proposal,
    endorsement: dict[str, Any],
    signature: bytes,
) -> bytes:
    """The hashed bytes of log entry `seq`: the endorsed transaction, its endorsement
    signature, its position and the previous entry's hash."""
    return canonical(
        {
            "format": FORMAT,
            "seq": seq,
            "prev_hash": prev_hash,
            "proposal": proposal.as_dict(),
            "endorsement": endorsement,
            "signature": b64(signature),
        }
    )


def commit_bytes(seq: int, entry_hash: str, committer: str) -> bytes:
    """What the committing organization signs at the end of a batch: the head it made. The
    hash chain makes this cover every entry before it."""
    return canonical({"commit": {"seq": seq, "hash": entry_hash, "committer": committer}})


def commit_record(committer: str, cert_pem: str, signature: bytes) -> bytes:
    """The `signature` column of a batch's last entry (empty on the entries before it)."""
    return canonical({"committer": committer, "cert_pem": cert_pem, "signature": b64(signature)})
