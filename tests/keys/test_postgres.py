"""The key store on a real PostgreSQL server: sealing, concurrent versions, rotation, shredding."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dshare_hub.keys import KekSource, KeyService, KeyServiceError, KeyStore, generate_kek_line

pytestmark = pytest.mark.slow
DETAILS = {"host": "nfs.uis.no", "password": "pg-plaintext-pw"}


def test_postgres_keystore_end_to_end(pg_url: str, kek_file: Path) -> None:
    service = KeyService(KeyStore(pg_url), KekSource(kek_file=str(kek_file)))
    sealed = service.seal_details("pg-asset", "UiS", DETAILS)
    assert service.open_details("pg-asset", "UiS", sealed) == DETAILS

    # Concurrent updates of one asset each get their own key version.
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda i: service.seal_details("pg-asset", "UiS", {"i": i}), range(8))
        )
    versions = sorted(int(text.split(":")[2]) for text in results)
    assert versions == list(range(2, 10))
    for i, text in enumerate(results):
        assert service.open_details("pg-asset", "UiS", text) == {"i": i}

    kek_file.write_text(generate_kek_line() + "\n" + kek_file.read_text())
    report = service.rotate()
    assert report.rewrapped == 9
    assert service.store.count_by_kek() == {report.kek_id: 9}
    assert service.open_details("pg-asset", "UiS", sealed) == DETAILS

    assert service.shred("pg-asset") == 9
    with pytest.raises(KeyServiceError) as info:
        service.open_details("pg-asset", "UiS", sealed)
    assert info.value.code == "KEY_DESTROYED"
    service.store.close()
