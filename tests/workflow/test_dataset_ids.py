"""A volume may name a dataset instead of a lease: it means the caller's lease of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dshare_server.workflow import LeaseView, SpecError, parse

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)

WORKFLOW = """\
jobs:
- command: python uis.py
  volumes:
  - id: uis-lorem-corpus
    name: uis
    path: /home/jovyan/uis
"""


def leases(*views: LeaseView) -> dict[str, LeaseView]:
    return {v.id: v for v in views}


def test_dataset_id_resolves_to_my_active_lease():
    spec = parse(
        WORKFLOW,
        leases=leases(
            LeaseView("old", "released", "alice", LATER, asset_id="uis-lorem-corpus"),
            LeaseView("mine", "active", "alice", LATER, asset_id="uis-lorem-corpus"),
            LeaseView("bobs", "active", "bob", LATER, asset_id="uis-lorem-corpus"),
        ),
        user="alice",
        now=NOW,
    )
    assert spec.lease_ids == ["mine"]


def test_dataset_id_with_only_a_pending_lease_says_it_waits_for_approval():
    with pytest.raises(SpecError) as info:
        parse(
            WORKFLOW,
            leases=leases(
                LeaseView(
                    "p1", "pending", "alice", None, asset_id="uis-lorem-corpus", owner_org="UiS"
                ),
            ),
            user="alice",
            now=NOW,
        )
    assert "waiting for approval by UiS" in str(info.value)


def test_dataset_id_leased_only_by_someone_else_is_not_mine():
    with pytest.raises(SpecError) as info:
        parse(
            WORKFLOW,
            leases=leases(LeaseView("bobs", "active", "bob", LATER, asset_id="uis-lorem-corpus")),
            user="alice",
            now=NOW,
        )
    assert "volume id `uis-lorem-corpus` is not one of your leases" in str(info.value)
