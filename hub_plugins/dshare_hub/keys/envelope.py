"""Envelope encryption primitives: seal data under a data key, wrap data keys under a KEK.

Pure functions over bytes; where keys are stored is `store.py`'s business. AES-256-GCM
throughout, with a fresh random 96-bit nonce per encryption. The associated data binds a
ciphertext to its asset id, owner organization and key version, so sealed details copied
onto another asset, claimed by another org or replayed under another key version do not
open, even though the ciphertext itself is public on the ledger.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import KeyServiceError

SEAL_PREFIX = "dshare-seal"
SEAL_FORMAT = "v1"
NONCE_BYTES = 12
DATA_KEY_BYTES = 32


@dataclass(frozen=True)
class Sealed:
    """A parsed `dshare-seal:v1:<key-version>:<base64 nonce+ciphertext>` string."""

    key_version: int
    blob: bytes

    def __str__(self) -> str:
        encoded = base64.b64encode(self.blob).decode("ascii")
        return f"{SEAL_PREFIX}:{SEAL_FORMAT}:{self.key_version}:{encoded}"


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)


def _aad(kind: str, *parts: str | int) -> bytes:
    # JSON, not a joined string: an asset id containing the separator cannot alias another.
    return json.dumps([kind, *parts], separators=(",", ":")).encode("utf-8")


def seal_aad(asset_id: str, owner_org: str, key_version: int) -> bytes:
    return _aad("dshare-seal/v1", asset_id, owner_org, key_version)


def wrap_aad(asset_id: str, owner_org: str, key_version: int, kek_id: str) -> bytes:
    return _aad("dshare-wrap/v1", asset_id, owner_org, key_version, kek_id)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes | None:
    """The plaintext, or None when the blob was altered or bound to other associated data."""
    if len(blob) < NONCE_BYTES + 16:
        return None
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        return None


def parse_sealed(text: object) -> Sealed:
    if not isinstance(text, str):
        raise KeyServiceError(
            "SEAL_MALFORMED", "sealed details must be a string 'dshare-seal:v1:<version>:<b64>'"
        )
    parts = text.split(":")
    if len(parts) != 4 or parts[0] != SEAL_PREFIX:
        raise KeyServiceError(
            "SEAL_MALFORMED",
            "sealed details are not of the form 'dshare-seal:v1:<key-version>:<base64>'",
        )
    if parts[1] != SEAL_FORMAT:
        raise KeyServiceError(
            "SEAL_MALFORMED",
            f"sealed details use format {parts[1]!r}; this broker reads only {SEAL_FORMAT!r}",
        )
    if not parts[2].isdigit() or int(parts[2]) < 1:
        raise KeyServiceError(
            "SEAL_MALFORMED", "the key version of sealed details must be a positive integer"
        )
    try:
        blob = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        raise KeyServiceError(
            "SEAL_MALFORMED", "the ciphertext of sealed details is not valid base64"
        ) from None
    return Sealed(int(parts[2]), blob)
