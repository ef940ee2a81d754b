"""Ledger key layout. Simple keys hold objects; composite keys are indexes (point reads and
small prefix scans, never rich queries, so every lookup lands in the read set)."""

from __future__ import annotations

ASSET_PREFIX = "asset/"
# '0' is the character after '/', so [ASSET_PREFIX, ASSETS_END) holds exactly the assets.
ASSETS_END = "asset0"

LEASES_BY_ASSET = "lease~asset"  # [asset_id, lease_id]: every lease ever requested
LEASES_BY_LESSEE = "lease~lessee"  # [lessee_org, lease_id]
LEASES_BY_USER = "lease~user"  # [lessee_org, user, lease_id]
LEASES_BY_OWNER = "lease~owner"  # [owner_org, lease_id]
OPEN_LEASES = "open~asset"  # [asset_id, lease_id] -> {state, expires_at}: pending or active
RUNS_BY_USER = "run~user"  # [org, user, run_id]
# [owner_org, run_id]: runs with a file that waits for that organization's decision
HELD_FOR_ORG = "held~org"
APPROVALS_BY_OWNER = "approval~owner"  # [owner_org, approval_id]
APPROVALS_BY_USER = "approval~user"  # [org, user, approval_id]
APPROVALS_BY_CODE = "approval~code"  # [owner_org, code_sha256, approval_id]


def asset(asset_id: str) -> str:
    return ASSET_PREFIX + asset_id


def lease(lease_id: str) -> str:
    return "lease/" + lease_id


def run(run_id: str) -> str:
    return "run/" + run_id


def approval(approval_id: str) -> str:
    return "approval/" + approval_id
