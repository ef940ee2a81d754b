"""An in-memory versioned world state with Fabric's simulate-then-validate semantics.

Used by the test doubles (peers, the committer, the shim peer). A `Simulation` is the
contract's Stub during endorsement: reads see committed state only and are recorded with
versions; writes are buffered. `Simulation.rwset` encodes what it did as Fabric's KVRWSet
(reads with versions, range queries with what they saw, writes), the bytes every endorsing
peer signs; the committer re-checks that rwset against the state at commit (MVCC, including
phantoms in scanned ranges) with `World.validate` and applies it with `World.apply`.
All peers share one `World`: the committed state is the same on every peer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import transaction_pb2

from dshare_chaincode.stub import (
    Creator,
    HistoryEntry,
    create_composite_key,
    is_composite_key,
    partial_key_range,
)

Version = tuple[int, int]


def _read(key: str, version: Version | None) -> kv_rwset_pb2.KVRead:
    if version is None:  # the key did not exist: Fabric leaves the version out
        return kv_rwset_pb2.KVRead(key=key)
    return kv_rwset_pb2.KVRead(
        key=key, version=kv_rwset_pb2.Version(block_num=version[0], tx_num=version[1])
    )


def _version(read: kv_rwset_pb2.KVRead) -> Version | None:
    if not read.HasField("version"):
        return None
    return (read.version.block_num, read.version.tx_num)


@dataclass
class World:
    state: dict[str, tuple[bytes, Version]] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    height: int = 1  # block 0 is the genesis block
    tx_ids: set[str] = field(default_factory=set)  # every ordered transaction, valid or not

    def version(self, key: str) -> Version | None:
        entry = self.state.get(key)
        return entry[1] if entry else None

    def scan(self, start: str, end: str) -> list[tuple[str, bytes, Version]]:
        return [
            (k, v, ver)
            for k, (v, ver) in sorted(self.state.items())
            if k >= start and (end == "" or k < end)
        ]

    def next_block(self) -> int:
        """Cut a block for one transaction (the double orders each in its own block)."""
        block = self.height
        self.height += 1
        return block

    def validate(self, rwset: kv_rwset_pb2.KVRWSet) -> int:
        """Fabric's MVCC check of one transaction's reads: a validation code."""
        for read in rwset.reads:
            if self.version(read.key) != _version(read):
                return int(transaction_pb2.MVCC_READ_CONFLICT)
        for query in rwset.range_queries_info:
            now = [(k, ver) for k, _, ver in self.scan(query.start_key, query.end_key)]
            seen = [(r.key, _version(r)) for r in query.raw_reads.kv_reads]
            if now != seen:
                return int(transaction_pb2.PHANTOM_READ_CONFLICT)
        return int(transaction_pb2.VALID)

    def apply(
        self, rwset: kv_rwset_pb2.KVRWSet, block: int, tx_id: str, timestamp: datetime
    ) -> None:
        for write in rwset.writes:
            value = None if write.is_delete else bytes(write.value)
            self.history.setdefault(write.key, []).append(
                HistoryEntry(tx_id, timestamp, write.is_delete, value)
            )
            if value is None:
                self.state.pop(write.key, None)
            else:
                self.state[write.key] = (value, (block, 0))


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

    def rwset(self) -> kv_rwset_pb2.KVRWSet:
        """What this simulation read and wrote, as the KVRWSet an endorsement covers."""
        return kv_rwset_pb2.KVRWSet(
            reads=[_read(k, v) for k, v in sorted(self.reads.items())],
            range_queries_info=[
                kv_rwset_pb2.RangeQueryInfo(
                    start_key=start,
                    end_key=end,
                    itr_exhausted=True,
                    raw_reads=kv_rwset_pb2.QueryReads(kv_reads=[_read(k, v) for k, v in rows]),
                )
                for start, end, rows in self.ranges
            ],
            writes=[
                kv_rwset_pb2.KVWrite(key=k, is_delete=v is None, value=v or b"")
                for k, v in sorted(self.writes.items())
            ],
        )

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
