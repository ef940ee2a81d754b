"""The ledger-stub protocol the contract is written against, mirroring Fabric's chaincode stub.

Two implementations exist: the embedded SQLite ledger's stub and the Fabric adapter around
`fabric-chaincode-python`'s stub. Semantics follow Fabric so the contract behaves the same on
both:

- writes (`put_state`, `del_state`) are buffered and applied at commit; a read after a
  write *in the same transaction* returns the committed value, not the buffered one (Fabric
  has no read-your-writes), so the contract never reads a key it already wrote;
- every point read and every range/prefix scan of a submitted transaction is part of its
  read set and is re-checked at commit (MVCC, including phantoms in scanned ranges);
- timestamps come from the transaction proposal, never the wall clock;
- one event per transaction: a second `set_event` replaces the first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

# Fabric's composite-key namespace and separator, and the highest code point used as the
# open end of a prefix scan (Fabric's `maxUnicodeRuneValue`).
COMPOSITE_NS = "\x00"
MIN_RUNE = "\x00"
MAX_RUNE = "\U0010ffff"


@dataclass(frozen=True)
class HistoryEntry:
    """One committed change of a key, oldest first; `value` is None for a delete."""

    tx_id: str
    timestamp: datetime
    is_delete: bool
    value: bytes | None


@dataclass(frozen=True)
class Creator:
    """The submitting organization: its MSP id and the signing certificate (PEM)."""

    msp_id: str
    cert_pem: str


@runtime_checkable
class Stub(Protocol):
    """What a contract transaction may do with the ledger; see the module docstring."""

    def get_state(self, key: str) -> bytes | None: ...

    def put_state(self, key: str, value: bytes) -> None: ...

    def del_state(self, key: str) -> None: ...

    def get_state_by_range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        """Simple (non-composite) keys with start <= key < end; "" means unbounded."""
        ...

    def create_composite_key(self, object_type: str, attrs: Sequence[str]) -> str: ...

    def get_state_by_partial_composite_key(
        self, object_type: str, attrs: Sequence[str]
    ) -> Iterator[tuple[str, bytes]]: ...

    def get_history_for_key(self, key: str) -> Iterator[HistoryEntry]: ...

    def get_tx_id(self) -> str: ...

    def get_tx_timestamp(self) -> datetime: ...

    def get_creator(self) -> Creator: ...

    def get_transient(self) -> dict[str, bytes]: ...

    def set_event(self, name: str, payload: bytes) -> None: ...


def _check_part(part: str, what: str) -> None:
    if MIN_RUNE in part or MAX_RUNE in part:
        raise ValueError(f"composite key {what} {part!r} contains a reserved character")


def create_composite_key(object_type: str, attrs: Sequence[str]) -> str:
    """Fabric's composite key: ``"\\x00" + type + "\\x00" + a1 + "\\x00" + a2 + "\\x00"``."""
    _check_part(object_type, "object type")
    key = COMPOSITE_NS + object_type + MIN_RUNE
    for attr in attrs:
        _check_part(attr, "attribute")
        key += attr + MIN_RUNE
    return key


def split_composite_key(key: str) -> tuple[str, list[str]]:
    """The object type and attributes of a composite key made by `create_composite_key`."""
    if not key.startswith(COMPOSITE_NS):
        raise ValueError(f"{key!r} is not a composite key")
    parts = key[1:].split(MIN_RUNE)
    # The key ends with a separator, so the last split element is always empty.
    return parts[0], parts[1:-1]


def is_composite_key(key: str) -> bool:
    return key.startswith(COMPOSITE_NS)


def partial_key_range(object_type: str, attrs: Sequence[str]) -> tuple[str, str]:
    """The [start, end) range that a partial composite key scan covers."""
    prefix = create_composite_key(object_type, attrs)
    return prefix, prefix + MAX_RUNE
