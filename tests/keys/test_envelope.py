"""Sealing storage details: round trip, and every way a sealed string must refuse to open."""

from __future__ import annotations

import base64

import pytest

from dshare_hub.keys import KeyService, KeyServiceError
from dshare_hub.keys.envelope import parse_sealed

DETAILS = {"account": "uisdata", "key": "s3cr3t-Account-Key=="}


def test_round_trip_and_no_plaintext_in_sealed(service: KeyService) -> None:
    sealed = service.seal_details("asset-1", "UiS", DETAILS)
    assert sealed.startswith("dshare-seal:v1:1:")
    assert "s3cr3t" not in sealed
    assert b"s3cr3t" not in base64.b64decode(sealed.split(":")[3])
    assert service.open_details("asset-1", "UiS", sealed) == DETAILS


def test_fresh_data_key_and_nonce_per_update(service: KeyService) -> None:
    first = service.seal_details("asset-1", "UiS", DETAILS)
    second = service.seal_details("asset-1", "UiS", DETAILS)
    assert first.split(":")[2] == "1"
    assert second.split(":")[2] == "2"
    assert first.split(":")[3] != second.split(":")[3]
    assert service.open_details("asset-1", "UiS", first) == DETAILS
    assert service.open_details("asset-1", "UiS", second) == DETAILS
    one = service.store.get("asset-1", 1)
    two = service.store.get("asset-1", 2)
    assert one is not None and two is not None and one.wrapped != two.wrapped


def test_changed_ciphertext_byte_is_refused(service: KeyService) -> None:
    sealed = service.seal_details("asset-1", "UiS", DETAILS)
    head, blob = sealed.rsplit(":", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[20] ^= 0x01
    forged = head + ":" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-1", "UiS", forged)
    assert info.value.code == "SEAL_INVALID"
    assert info.value.message == (
        "the sealed details do not open for asset 'asset-1' (owner UiS, key version 1): the "
        "ciphertext was altered or was sealed for another asset, owner or key version"
    )


def test_wrong_asset_id_is_refused(service: KeyService) -> None:
    sealed = service.seal_details("asset-1", "UiS", DETAILS)
    service.seal_details("asset-2", "UiS", {"other": "x"})
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-2", "UiS", sealed)
    assert info.value.code == "SEAL_INVALID"
    assert "asset 'asset-2'" in info.value.message


def test_wrong_asset_without_keys_is_refused(service: KeyService) -> None:
    sealed = service.seal_details("asset-1", "UiS", DETAILS)
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-9", "UiS", sealed)
    assert info.value.code == "KEY_NOT_FOUND"
    assert info.value.message.startswith("no data key version 1 for asset 'asset-9'")


def test_wrong_owner_org_is_refused(service: KeyService) -> None:
    sealed = service.seal_details("asset-1", "UiS", DETAILS)
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-1", "UiO", sealed)
    assert info.value.code == "SEAL_INVALID"


def test_wrong_key_version_is_refused(service: KeyService) -> None:
    service.seal_details("asset-1", "UiS", DETAILS)
    second = service.seal_details("asset-1", "UiS", DETAILS)
    as_v1 = second.replace("dshare-seal:v1:2:", "dshare-seal:v1:1:")
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-1", "UiS", as_v1)
    assert info.value.code == "SEAL_INVALID"
    as_v7 = second.replace("dshare-seal:v1:2:", "dshare-seal:v1:7:")
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-1", "UiS", as_v7)
    assert info.value.code == "KEY_NOT_FOUND"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (42, "sealed details must be a string 'dshare-seal:v1:<version>:<b64>'"),
        ("plain", "sealed details are not of the form 'dshare-seal:v1:<key-version>:<base64>'"),
        ("dshare-seal:v9:1:AAAA", "sealed details use format 'v9'; this broker reads only 'v1'"),
        ("dshare-seal:v1:0:AAAA", "the key version of sealed details must be a positive integer"),
        ("dshare-seal:v1:x:AAAA", "the key version of sealed details must be a positive integer"),
        ("dshare-seal:v1:1:!!!", "the ciphertext of sealed details is not valid base64"),
    ],
)
def test_malformed_sealed_strings(text: object, message: str) -> None:
    with pytest.raises(KeyServiceError) as info:
        parse_sealed(text)
    assert info.value.code == "SEAL_MALFORMED"
    assert info.value.message == message


def test_truncated_blob_is_refused(service: KeyService) -> None:
    service.seal_details("asset-1", "UiS", DETAILS)
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-1", "UiS", "dshare-seal:v1:1:AAAA")
    assert info.value.code == "SEAL_INVALID"


def test_crypto_shredding_makes_sealed_details_unreadable(service: KeyService) -> None:
    sealed = service.seal_details("asset-1", "UiS", DETAILS)
    service.seal_details("asset-1", "UiS", DETAILS)
    assert service.shred("asset-1") == 2
    stored = service.store.get("asset-1", 1)
    assert stored is not None and stored.wrapped is None and stored.kek_id is None
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-1", "UiS", sealed)
    assert info.value.code == "KEY_DESTROYED"
    assert info.value.message == (
        "the data key of asset 'asset-1' was destroyed when the asset was retired; its sealed "
        "details can no longer be opened"
    )
    # Nothing of the data key survives in the SQLite file (secure_delete), and the id is
    # burnt: sealing again under it is refused.
    with pytest.raises(KeyServiceError) as info:
        service.seal_details("asset-1", "UiS", DETAILS)
    assert info.value.code == "KEY_DESTROYED"
    assert service.shred("asset-1") == 0


def test_shredding_an_unknown_asset_burns_its_id(service: KeyService) -> None:
    assert service.shred("never-sealed") == 0
    with pytest.raises(KeyServiceError) as info:
        service.seal_details("never-sealed", "UiS", DETAILS)
    assert info.value.code == "KEY_DESTROYED"


def test_altered_wrapped_key_row_is_reported(service: KeyService) -> None:
    from sqlalchemy import update

    from dshare_hub.keys.store import DataKeyRow

    sealed = service.seal_details("asset-1", "UiS", DETAILS)
    with service.store.engine.begin() as conn:
        conn.execute(update(DataKeyRow).values(wrapped=b"\x00" * 60))
    with pytest.raises(KeyServiceError) as info:
        service.open_details("asset-1", "UiS", sealed)
    assert info.value.code == "KEY_CORRUPT"


def test_discard_forgets_only_the_refused_version(service: KeyService) -> None:
    kept = service.seal_details("asset-1", "UiS", DETAILS)
    refused = service.seal_details("asset-1", "UiS", {"x": "y"})
    service.discard("asset-1", refused)
    assert service.store.get("asset-1", 2) is None
    assert service.open_details("asset-1", "UiS", kept) == DETAILS
    again = service.seal_details("asset-1", "UiS", DETAILS)
    assert again.split(":")[2] == "2"
