"""The shared stub helpers and the error wire format both ledgers rely on."""

from __future__ import annotations

import pytest

from dshare_chaincode.errors import CODES, ContractError, parse_wire
from dshare_chaincode.stub import (
    create_composite_key,
    is_composite_key,
    partial_key_range,
    split_composite_key,
)


def test_composite_key_uses_fabric_layout() -> None:
    key = create_composite_key("lease~asset", ["a1", "L1"])
    assert key == "\x00lease~asset\x00a1\x00L1\x00"
    assert split_composite_key(key) == ("lease~asset", ["a1", "L1"])
    assert is_composite_key(key)
    assert not is_composite_key("asset:a1")


def test_partial_range_covers_exactly_the_prefix() -> None:
    start, end = partial_key_range("lease~asset", ["a1"])
    inside = create_composite_key("lease~asset", ["a1", "zzz"])
    other = create_composite_key("lease~asset", ["a10", "L"])
    assert start <= inside < end
    assert not (start <= other < end)


def test_composite_key_refuses_separator_in_attribute() -> None:
    with pytest.raises(ValueError, match="contains a reserved character"):
        create_composite_key("t", ["a\x00b"])


def test_split_refuses_simple_key() -> None:
    with pytest.raises(ValueError, match="is not a composite key"):
        split_composite_key("asset:a1")


@pytest.mark.parametrize("code", sorted(CODES))
def test_wire_round_trip(code: str) -> None:
    err = ContractError(code, "asset 'a1' is not there", key="a1")
    assert str(err) == f"{code}: asset 'a1' is not there"
    back = parse_wire("chaincode response 500, " + err.to_wire())
    assert back is not None
    assert (back.code, back.message) == (code, "asset 'a1' is not there")


def test_wire_without_code_is_none() -> None:
    assert parse_wire("connection reset by peer") is None


def test_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown contract error code 'NOPE'"):
        ContractError("NOPE", "x")
