"""The embedded ledger's two signatures, checked the same way by every reader.

An entry is *endorsed*: the creator's organization signs the proposal together with what
executing it read, wrote, emitted and answered (`txlog.endorsed_bytes`). A batch is
*committed*: the organization whose broker made it durable signs the last entry's position
and hash (`txlog.commit_bytes`), which the hash chain ties to every entry before it; this is
how Fabric's peers sign proposal responses and its orderer signs blocks.

Certificates are checked against the CAs the reader trusts (`ca_for`), never against
whatever the file being checked says, once per certificate.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509

from .identity import IdentityError, check_chain, verify_signature
from .txlog import Proposal, commit_bytes, endorsed_bytes, unb64


def _not_trusted(msp_id: str) -> str:
    return (
        f"organization '{msp_id}' is not trusted here; add its CA certificate with "
        "`dshare ledger trust` before accepting its entries"
    )


class Signatures:
    """`ca_for(msp)`: the CA trusted for an organization, or None; `unknown(msp)`: what to
    say about one that has none."""

    def __init__(
        self,
        ca_for: Callable[[str], str | None],
        unknown: Callable[[str], str] = _not_trusted,
    ) -> None:
        self._ca_for = ca_for
        self._unknown = unknown
        self._certs: dict[tuple[str, str, str], x509.Certificate] = {}

    def certificate(self, msp_id: str, cert_pem: str, at: datetime) -> x509.Certificate:
        """`cert_pem` if a CA trusted for `msp_id` issued it and it is valid at `at`."""
        ca = self._ca_for(msp_id)
        if ca is None:
            raise IdentityError(self._unknown(msp_id))
        key = (msp_id, cert_pem, ca)
        cert = self._certs.get(key)
        if cert is None:
            cert = check_chain(cert_pem, ca, msp_id, at)
            self._certs[key] = cert
        elif not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise IdentityError(f"the certificate presented for '{msp_id}' is not valid at {at}")
        return cert

    def check_endorsement(
        self, proposal: Proposal, endorsement: dict[str, Any], signature: bytes, at: datetime
    ) -> None:
        """Raise IdentityError unless `proposal`'s organization signed this endorsement."""
        cert = self.certificate(proposal.msp_id, proposal.cert_pem, at)
        if not verify_signature(cert, signature, endorsed_bytes(proposal.as_dict(), endorsement)):
            raise IdentityError(
                f"the endorsement signature of transaction {proposal.tx_id} does not match "
                f"the certificate of '{proposal.msp_id}'"
            )

    def endorsement_problem(
        self, proposal: Proposal, endorsement: dict[str, Any], signature: bytes, at: datetime
    ) -> str | None:
        """Why the endorsement signature of a logged entry does not hold, or None."""
        try:
            cert = self.certificate(proposal.msp_id, proposal.cert_pem, at)
        except IdentityError as exc:
            return f"the endorsing certificate is not trusted: {exc}"
        if not verify_signature(cert, signature, endorsed_bytes(proposal.as_dict(), endorsement)):
            return (
                f"the endorsement signature of '{proposal.msp_id}' does not match the entry "
                "(changed after it was signed)"
            )
        return None

    def commit_problem(self, seq: int, entry_hash: str, record: bytes, at: datetime) -> str | None:
        """Why the commit signature `record` on entry `seq` does not hold, or None."""
        try:
            data = json.loads(record)
            committer, cert_pem = str(data["committer"]), str(data["cert_pem"])
            signature = unb64(data["signature"])
        except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
            return "the commit signature is not a readable commit record (altered bytes)"
        try:
            cert = self.certificate(committer, cert_pem, at)
        except IdentityError as exc:
            return f"the committer's certificate is not trusted: {exc}"
        if not verify_signature(cert, signature, commit_bytes(seq, entry_hash, committer)):
            return (
                f"the commit signature of '{committer}' does not match this entry's position "
                "and hash (the chain was changed after it was committed)"
            )
        return None
