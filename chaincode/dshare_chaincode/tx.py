"""The per-transaction context the contract's functions receive: stub plus the helpers
every transaction needs (who submits, when, JSON state, the one event)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from .errors import INVALID_ARGUMENT, ContractError
from .stub import Stub

ACTOR_MAX = 128


def dumps(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, so equal objects give equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fmt_time(ts: datetime) -> str:
    """Fixed-width UTC ISO 8601 with microseconds, so string order is time order."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def parse_time(text: str) -> datetime:
    """Inverse of `fmt_time`; refuses any other shape (fromisoformat alone is lenient)."""
    if not TIME_RE.match(text):
        raise ValueError(f"time {text!r} is not in the form 2026-01-31T12:00:00.000000Z")
    return datetime.fromisoformat(text)


class Tx:
    """One invocation: wraps the stub; never reads the wall clock."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        self._now: datetime | None = None

    @property
    def now(self) -> datetime:
        if self._now is None:
            ts = self.stub.get_tx_timestamp()
            if ts.tzinfo is None:
                raise ValueError("the stub's transaction timestamp must be timezone-aware")
            self._now = ts.astimezone(UTC)
        return self._now

    @property
    def now_text(self) -> str:
        return fmt_time(self.now)

    @property
    def org(self) -> str:
        return self.stub.get_creator().msp_id

    @property
    def actor(self) -> str:
        raw = self.stub.get_transient().get("actor")
        if raw is None:
            raise ContractError(
                INVALID_ARGUMENT,
                "transient field 'actor' is required: the broker must name the user it acts for",
                key="actor",
            )
        try:
            actor = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ContractError(
                INVALID_ARGUMENT, "transient field 'actor' must be UTF-8 text", key="actor"
            ) from None
        if not actor or len(actor) > ACTOR_MAX or not actor.isprintable():
            raise ContractError(
                INVALID_ARGUMENT,
                f"transient field 'actor' must be 1-{ACTOR_MAX} printable characters",
                key="actor",
            )
        return actor

    @property
    def who(self) -> dict[str, str]:
        return {"org": self.org, "actor": self.actor}

    def get_json(self, key: str) -> dict[str, Any] | None:
        raw = self.stub.get_state(key)
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    def put_json(self, key: str, obj: dict[str, Any]) -> None:
        self.stub.put_state(key, dumps(obj))

    def index(self, object_type: str, attrs: Sequence[str], value: bytes = b"\x00") -> str:
        key = self.stub.create_composite_key(object_type, attrs)
        self.stub.put_state(key, value)
        return key

    def unindex(self, object_type: str, attrs: Sequence[str]) -> None:
        self.stub.del_state(self.stub.create_composite_key(object_type, attrs))

    def scan(self, object_type: str, attrs: Sequence[str]) -> Iterator[tuple[list[str], bytes]]:
        """Prefix scan of a composite-key index, yielding each key's attributes and value."""
        from .stub import split_composite_key

        for key, value in self.stub.get_state_by_partial_composite_key(object_type, attrs):
            yield split_composite_key(key)[1], value

    def emit(self, name: str, payload: dict[str, Any]) -> None:
        self.stub.set_event(name, dumps(payload))
