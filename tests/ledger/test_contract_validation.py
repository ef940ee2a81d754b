"""Argument validation of the contract, function by function, with exact messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dshare_chaincode import validate
from dshare_chaincode.contract import invoke
from dshare_chaincode.errors import ContractError
from dshare_chaincode.stub import Creator
from dshare_chaincode.tx import parse_time


def _msg(fn, *args, **kw):
    with pytest.raises(ContractError) as info:
        fn(*args, **kw)
    assert info.value.code == "INVALID_ARGUMENT"
    return info.value.message, info.value.key


@pytest.mark.parametrize(
    ("call", "message", "key"),
    [
        (
            lambda: validate.text("x" * 11, "name", max_len=10),
            "name: must be at most 10 characters, got 11",
            "name",
        ),
        (lambda: validate.tags("pii", "tags"), "tags: must be a list of tags", "tags"),
        (
            lambda: validate.tags([f"t{i}" for i in range(33)], "tags"),
            "tags: must hold at most 32 tags, got 33",
            "tags",
        ),
        (
            lambda: validate.columns({}, "columns"),
            "columns: must be a list of {name, type, tags}",
            "columns",
        ),
        (
            lambda: validate.columns(["age"], "columns"),
            "columns[0]: must be a JSON object, got str",
            "columns[0]",
        ),
        (
            lambda: validate.skeleton("a.csv", "skeleton"),
            "skeleton: must be a list of {path, size}",
            "skeleton",
        ),
        (
            lambda: validate.skeleton([{"path": "/etc", "size": 1}], "skeleton"),
            "skeleton[0].path: must be a relative path without '..'",
            "skeleton[0].path",
        ),
        (
            lambda: validate.skeleton([{"path": "a", "size": 1, "mode": 7}], "skeleton"),
            "skeleton[0]: unknown field(s) mode; allowed: path, size",
            "skeleton[0]",
        ),
        (
            lambda: validate.skeleton([{"path": "a", "size": 1.5}], "skeleton"),
            "skeleton[0].size: must be a whole number between 0 and 9223372036854775807",
            "skeleton[0].size",
        ),
        (
            lambda: validate.sealed("x" * 65_537, "sealed_storage"),
            "sealed_storage: must be at most 65536 characters, got 65537",
            "sealed_storage",
        ),
        (
            lambda: validate.integer(True, "limit", lo=1, hi=5),
            "limit: must be a whole number between 1 and 5",
            "limit",
        ),
        (
            lambda: validate.policy([], "policy"),
            "policy: must be a JSON object, got list",
            "policy",
        ),
        (
            lambda: validate.policy({"allowed_orgs": "UiO"}, "policy"),
            "policy.allowed_orgs: must be a list of organization ids ([] = any)",
            "policy.allowed_orgs",
        ),
        (
            lambda: validate.policy({"max_concurrent": 0}, "policy"),
            "policy.max_concurrent: must be between 1 and 100000, got 0",
            "policy.max_concurrent",
        ),
        (
            lambda: validate.sha256_hex("AB" * 32, "spec_sha256"),
            "spec_sha256: must be a SHA-256 digest: 64 lower-case hex characters",
            "spec_sha256",
        ),
    ],
)
def test_validators(call, message, key):
    assert _msg(call) == (message, key)


def test_limits_on_counts():
    assert _msg(validate.columns, [{"name": f"c{i}"} for i in range(1001)], "columns") == (
        "columns: must hold at most 1000 columns, got 1001",
        "columns",
    )
    assert _msg(validate.skeleton, [{"path": "a", "size": 0}] * 10_001, "skeleton") == (
        "skeleton: must hold at most 10000 entries, got 10001",
        "skeleton",
    )


class FakeStub:
    """Just enough stub to reach the checks that no ledger lets a caller trigger."""

    def __init__(self, transient):
        self._transient = transient

    def get_transient(self):
        return self._transient

    def get_creator(self):
        return Creator("UiS", "")

    def get_tx_timestamp(self):
        return datetime.now(UTC)

    def get_tx_id(self):
        return "0" * 64


def test_missing_actor_is_refused():
    with pytest.raises(ContractError) as info:
        invoke(FakeStub({}), "RetireAsset", ["a"])  # type: ignore[arg-type]
    assert (info.value.code, info.value.message, info.value.key) == (
        "INVALID_ARGUMENT",
        "transient field 'actor' is required: the broker must name the user it acts for",
        "actor",
    )


def test_actor_must_be_utf8():
    with pytest.raises(ContractError) as info:
        invoke(FakeStub({"actor": b"\xff"}), "RetireAsset", ["a"])  # type: ignore[arg-type]
    assert info.value.message == "transient field 'actor' must be UTF-8 text"


def test_arguments_must_be_strings():
    with pytest.raises(ContractError) as info:
        invoke(FakeStub({}), "GetAsset", [7])  # type: ignore[arg-type, list-item]
    assert (info.value.code, info.value.message, info.value.key) == (
        "INVALID_ARGUMENT",
        "GetAsset argument asset_id must be a string",
        "asset_id",
    )


def test_time_format_is_strict():
    assert parse_time("2026-01-31T12:00:00.000000Z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    with pytest.raises(ValueError) as info:
        parse_time("2026-01-31T12:00:00+00:00")
    assert str(info.value) == (
        "time '2026-01-31T12:00:00+00:00' is not in the form 2026-01-31T12:00:00.000000Z"
    )
