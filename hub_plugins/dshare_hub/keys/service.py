"""The key service: seal and open an asset's storage details, shred them, rotate the KEK.

Each seal uses a fresh random data key (one per asset and per update), stored wrapped by
the organization's current KEK under the next key version of that asset. The sealed string
carries only that version; which KEK wraps the data key is the key store's business, so
rotating the KEK never touches what is on the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .envelope import (
    Sealed,
    decrypt,
    encrypt,
    new_data_key,
    parse_sealed,
    seal_aad,
    wrap_aad,
)
from .errors import KeyServiceError
from .kek import Kek, KekSource
from .store import KeyStore, StoredKey


@dataclass(frozen=True)
class RotationReport:
    kek_id: str
    rewrapped: int
    skipped: int


class KeyService:
    def __init__(self, store: KeyStore, kek_source: KekSource) -> None:
        self.store = store
        self.kek_source = kek_source

    def seal(self, asset_id: str, owner_org: str, plaintext: bytes) -> str:
        kek = self.kek_source.keyring().current
        data_key = new_data_key()

        def wrapped_for(version: int) -> tuple[str, bytes]:
            aad = wrap_aad(asset_id, owner_org, version, kek.kek_id)
            return kek.kek_id, encrypt(kek.key, data_key, aad)

        version, _ = self.store.add(asset_id, owner_org, wrapped_for)
        blob = encrypt(data_key, plaintext, seal_aad(asset_id, owner_org, version))
        return str(Sealed(version, blob))

    def open(self, asset_id: str, owner_org: str, sealed_text: str) -> bytes:
        sealed = parse_sealed(sealed_text)
        stored = self.store.get(asset_id, sealed.key_version)
        if stored is None:
            raise KeyServiceError(
                "KEY_NOT_FOUND",
                f"no data key version {sealed.key_version} for asset {asset_id!r} in this "
                "org's key store: the details were sealed by another broker or for another "
                "asset",
            )
        if stored.shredded:
            raise KeyServiceError(
                "KEY_DESTROYED",
                f"the data key of asset {asset_id!r} was destroyed when the asset was retired; "
                "its sealed details can no longer be opened",
            )
        data_key = self._unwrap(stored)
        plaintext = decrypt(data_key, sealed.blob, seal_aad(asset_id, owner_org, stored.version))
        if plaintext is None:
            raise KeyServiceError(
                "SEAL_INVALID",
                f"the sealed details do not open for asset {asset_id!r} (owner {owner_org}, key "
                f"version {sealed.key_version}): the ciphertext was altered or was sealed for "
                "another asset, owner or key version",
            )
        return plaintext

    def seal_details(self, asset_id: str, owner_org: str, details: dict[str, Any]) -> str:
        payload = json.dumps(details, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return self.seal(asset_id, owner_org, payload)

    def open_details(self, asset_id: str, owner_org: str, sealed_text: str) -> dict[str, Any]:
        value = json.loads(self.open(asset_id, owner_org, sealed_text))
        if not isinstance(value, dict):
            raise KeyServiceError("SEAL_INVALID", "sealed details do not hold a JSON object")
        return value

    def discard(self, asset_id: str, sealed_text: str) -> None:
        """Undo a `seal` the ledger refused, so a refused request leaves nothing stored."""
        self.store.discard(asset_id, parse_sealed(sealed_text).key_version)

    def shred(self, asset_id: str) -> int:
        return self.store.shred(asset_id)

    def rotate(self) -> RotationReport:
        """Re-wrap every live data key under the current KEK, one row at a time.

        Each row is swapped with a compare-and-set, so the broker keeps sealing and opening
        while this runs, a crash leaves every row readable (old or new wrap), and running it
        again finishes the job.
        """
        keyring = self.kek_source.keyring()
        current = keyring.current
        rewrapped = skipped = 0
        for stored in self.store.keys_not_under(current.kek_id):
            data_key = self._unwrap(stored)
            aad = wrap_aad(stored.asset_id, stored.owner_org, stored.version, current.kek_id)
            rewrapped_key = encrypt(current.key, data_key, aad)
            if self.store.replace_wrapped(stored, current.kek_id, rewrapped_key):
                rewrapped += 1
            else:
                skipped += 1
        return RotationReport(current.kek_id, rewrapped, skipped)

    def _unwrap(self, stored: StoredKey) -> bytes:
        assert stored.kek_id is not None and stored.wrapped is not None
        kek: Kek | None = self.kek_source.keyring().get(stored.kek_id)
        if kek is None:
            raise KeyServiceError(
                "KEK_UNKNOWN",
                f"data key {stored.asset_id!r} v{stored.version} is wrapped under KEK "
                f"{stored.kek_id}, which is not in {self.kek_source.origin}; add that KEK "
                "back (after the current one) until `dshare keys rotate` has finished",
            )
        aad = wrap_aad(stored.asset_id, stored.owner_org, stored.version, kek.kek_id)
        data_key = decrypt(kek.key, stored.wrapped, aad)
        if data_key is None:
            raise KeyServiceError(
                "KEY_CORRUPT",
                f"the wrapped data key {stored.asset_id!r} v{stored.version} does not unwrap "
                f"under KEK {kek.kek_id}: the key store row was altered",
            )
        return data_key
