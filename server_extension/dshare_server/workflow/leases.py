"""What the workflow parser needs to know about a lease (from the broker's Lease JSON)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def parse_timestamp(value: str | datetime | None) -> datetime | None:
    """ISO 8601 (``Z`` or an offset) to an aware UTC datetime; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class LeaseView:
    id: str
    state: str
    lessee_user: str
    expires_at: datetime | None
    asset_id: str = ""
    asset_name: str = ""
    owner_org: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LeaseView:
        return cls(
            id=str(data["id"]),
            state=str(data.get("state", "")),
            lessee_user=str(data.get("lessee_user", "")),
            expires_at=parse_timestamp(data.get("expires_at")),
            asset_id=str(data.get("asset_id", "")),
            asset_name=str(data.get("asset_name", "")),
            owner_org=str(data.get("owner_org", "")),
        )

    def is_active(self, now: datetime) -> bool:
        return self.state == "active" and (self.expires_at is None or self.expires_at > now)


def leases_by_id(items: Iterable[Mapping[str, Any] | LeaseView]) -> dict[str, LeaseView]:
    out: dict[str, LeaseView] = {}
    for item in items:
        view = item if isinstance(item, LeaseView) else LeaseView.from_json(item)
        out[view.id] = view
    return out
