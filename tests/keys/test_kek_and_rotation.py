"""KEK sources, rotation under a running service, and the `dshare keys` commands."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path

import pytest

from dshare_hub.keys import KekSource, KeyService, KeyServiceError, KeyStore, generate_kek_line
from dshare_hub.keys.cli import add_keys_commands

DETAILS = {"bucket": "uis-data", "secret_key": "AKIA-plaintext-secret"}


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dshare")
    add_keys_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_kek_from_environment_variable(keystore_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSHARE_TEST_KEK", generate_kek_line())
    service = KeyService(KeyStore(keystore_url), KekSource(kek_env="DSHARE_TEST_KEK"))
    sealed = service.seal_details("a", "UiS", DETAILS)
    assert service.open_details("a", "UiS", sealed) == DETAILS
    monkeypatch.setenv("DSHARE_TEST_KEK", generate_kek_line())
    with pytest.raises(KeyServiceError) as info:
        service.open_details("a", "UiS", sealed)
    assert info.value.code == "KEK_UNKNOWN"
    assert "environment variable DSHARE_TEST_KEK" in info.value.message


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        ("", "KEK_MISSING", "holds no key. Put a base64 256-bit key in it"),
        ("# only a comment\n", "KEK_MISSING", "holds no key."),
        ("not*base64\n", "KEK_INVALID", "line 1: not base64."),
        (base64.b64encode(b"short").decode(), "KEK_INVALID", "line 1: the key is 5 bytes"),
    ],
)
def test_bad_kek_files(tmp_path: Path, content: str, code: str, message: str) -> None:
    path = tmp_path / "kek"
    path.write_text(content)
    with pytest.raises(KeyServiceError) as info:
        KekSource(kek_file=str(path)).keyring()
    assert info.value.code == code
    assert message in info.value.message
    assert str(path) in info.value.message


def test_kek_source_needs_exactly_one_origin(tmp_path: Path) -> None:
    with pytest.raises(KeyServiceError) as info:
        KekSource()
    assert info.value.code == "KEK_MISSING"
    with pytest.raises(KeyServiceError):
        KekSource(kek_file="a", kek_env="B")
    with pytest.raises(KeyServiceError) as info:
        KekSource(kek_file=str(tmp_path / "absent")).keyring()
    assert "does not exist" in info.value.message
    with pytest.raises(KeyServiceError) as info:
        KekSource(kek_env="DSHARE_SURELY_UNSET_VAR").keyring()
    assert info.value.message == (
        "environment variable DSHARE_SURELY_UNSET_VAR is not set; it must hold the org's KEK"
    )


def test_kek_never_in_repr_or_errors(kek_file: Path) -> None:
    keyring = KekSource(kek_file=str(kek_file)).keyring()
    line = kek_file.read_text().strip()
    assert line not in repr(keyring)
    assert keyring.current.kek_id not in line


def test_rotation_keeps_everything_readable_while_serving(
    service: KeyService, kek_file: Path, keystore_url: str
) -> None:
    sealed = {f"asset-{i}": service.seal_details(f"asset-{i}", "UiS", DETAILS) for i in range(7)}
    old_id = service.kek_source.keyring().current.kek_id
    assert service.store.count_by_kek() == {old_id: 7}

    assert _run_cli(["keys", "generate-kek", "--prepend", str(kek_file)]) == 0
    assert kek_file.stat().st_mode & 0o077 == 0
    # The running service picks up the new KEK file without a restart...
    new_id = service.kek_source.keyring().current.kek_id
    assert new_id != old_id
    sealed["asset-new"] = service.seal_details("asset-new", "UiS", DETAILS)
    for asset_id, text in sealed.items():
        assert service.open_details(asset_id, "UiS", text) == DETAILS

    # ...and the rotation command re-wraps the rest while it keeps serving.
    argv = ["keys", "rotate", "--keystore-url", keystore_url, "--kek-file", str(kek_file)]
    assert _run_cli(argv) == 0
    assert service.store.count_by_kek() == {new_id: 8}
    assert _run_cli(argv) == 0  # idempotent

    # Drop the old KEK: everything still opens, because nothing is wrapped under it.
    kek_file.write_text(kek_file.read_text().splitlines()[0] + "\n")
    for asset_id, text in sealed.items():
        assert service.open_details(asset_id, "UiS", text) == DETAILS


def test_rotation_without_old_kek_reports_clearly(service: KeyService, kek_file: Path) -> None:
    service.seal_details("asset-1", "UiS", DETAILS)
    kek_file.write_text(generate_kek_line() + "\n")
    with pytest.raises(KeyServiceError) as info:
        service.rotate()
    assert info.value.code == "KEK_UNKNOWN"
    assert "add that KEK back (after the current one)" in info.value.message


def test_cli_generate_and_status(
    tmp_path: Path, keystore_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "org.kek"
    assert _run_cli(["keys", "generate-kek", "--out", str(out)]) == 0
    assert _run_cli(["keys", "generate-kek", "--out", str(out)]) == 1
    assert "exists; use --prepend" in capsys.readouterr().err
    assert _run_cli(["keys", "generate-kek", "--prepend", str(tmp_path / "nope")]) == 1
    service = KeyService(KeyStore(keystore_url), KekSource(kek_file=str(out)))
    service.seal_details("x", "UiS", DETAILS)
    capsys.readouterr()
    argv = ["keys", "status", "--keystore-url", keystore_url, "--kek-file", str(out)]
    assert _run_cli(argv) == 0
    kek_id = service.kek_source.keyring().current.kek_id
    assert capsys.readouterr().out == f"current KEK: {kek_id}\n{kek_id} (current): 1 data key(s)\n"
    (tmp_path / "bad").write_text("zzz\n")
    argv = ["keys", "rotate", "--keystore-url", keystore_url, "--kek-file", str(tmp_path / "bad")]
    assert _run_cli(argv) == 1
    assert "line 1: not base64" in capsys.readouterr().err


def test_shredded_key_bytes_leave_the_sqlite_file(service: KeyService, tmp_path: Path) -> None:
    service.seal_details("asset-1", "UiS", DETAILS)
    stored = service.store.get("asset-1", 1)
    assert stored is not None and stored.wrapped is not None
    service.shred("asset-1")
    service.store.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("keys.sqlite*"))
    assert stored.wrapped not in raw
