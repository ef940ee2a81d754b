"""An in-memory versioned world state with Fabric's simulate-then-validate semantics.

Used by the test doubles (Gateway service, shim peer). A `Simulation` is the contract's
Stub during endorsement: reads see committed state only and are recorded with versions;
writes are buffered. `World.commit` re-checks the reads like Fabric's MVCC validation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from fabric_protos.peer import transaction_pb2

from dshare_chaincode.stub import (
    Creator,
    HistoryEntry,
    create_composite_key,
    is_composite_key,
    partial_key_range,
)

Version = tuple[int, int]


@dataclass
class World:
    state: dict[str, tuple[bytes, Version]] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    height: int = 1  # block 0 is the genesis block

    def version(self, key: str) -> Version | None:
        entry = self.state.get(key)
        return entry[1] if entry else None

    def scan(self, start: str, end: str) -> list[tuple[str, bytes, Version]]:
        return [
            (k, v, ver)
            for k, (v, ver) in sorted(self.state.items())
            if k >= start and (end == "" or k < end)
        ]

    def commit(self, sim: Simulation) -> tuple[int, int]:
        """Validate and apply one transaction in its own block; (validation code, block)."""
        block = self.height
        self.height += 1
        for key, seen in sim.reads.items():
            if self.version(key) != seen:
                return transaction_pb2.MVCC_READ_CONFLICT, block
        for start, end, seen_rows in sim.ranges:
            if [(k, ver) for k, _, ver in self.scan(start, end)] != seen_rows:
                return transaction_pb2.PHANTOM_READ_CONFLICT, block
        for key, value in sim.writes.items():
            self.history.setdefault(key, []).append(
                HistoryEntry(sim.tx_id, sim.timestamp, value is None, value)
            )
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = (value, (block, 0))
        return transaction_pb2.VALID, block


@dataclass
class Simulation:
    """The contract's Stub during endorsement (Fabric semantics, see module docstring)."""

    world: World
    tx_id: str
    timestamp: datetime
    creator: Creator
    transient: dict[str, bytes]
    reads: dict[str, Version | None] = field(default_factory=dict)
    ranges: list[tuple[str, str, list[tuple[str, Version]]]] = field(default_factory=list)
    writes: dict[str, bytes | None] = field(default_factory=dict)
    event: tuple[str, bytes] | None = None

    def get_state(self, key: str) -> bytes | None:
        self.reads[key] = self.world.version(key)
        entry = self.world.state.get(key)
        return entry[0] if entry else None

    def put_state(self, key: str, value: bytes) -> None:
        self.writes[key] = value

    def del_state(self, key: str) -> None:
        self.writes[key] = None

    def _range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        rows = self.world.scan(start, end)
        self.ranges.append((start, end, [(k, ver) for k, _, ver in rows]))
        return iter([(k, v) for k, v, _ in rows])

    def get_state_by_range(self, start: str, end: str) -> Iterator[tuple[str, bytes]]:
        return (kv for kv in self._range(start or "\x01", end) if not is_composite_key(kv[0]))

    def create_composite_key(self, object_type: str, attrs: Sequence[str]) -> str:
        return create_composite_key(object_type, attrs)

    def get_state_by_partial_composite_key(
        self, object_type: str, attrs: Sequence[str]
    ) -> Iterator[tuple[str, bytes]]:
        return self._range(*partial_key_range(object_type, attrs))

    def get_history_for_key(self, key: str) -> Iterator[HistoryEntry]:
        return iter(list(self.world.history.get(key, [])))

    def get_tx_id(self) -> str:
        return self.tx_id

    def get_tx_timestamp(self) -> datetime:
        return self.timestamp

    def get_creator(self) -> Creator:
        return self.creator

    def get_transient(self) -> dict[str, bytes]:
        return dict(self.transient)

    def set_event(self, name: str, payload: bytes) -> None:
        self.event = (name, payload)
