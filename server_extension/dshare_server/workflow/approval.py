"""Asking the owners of a workflow's data to approve its code (`%dshare_run
--request-approval`, My runs): the same workflow text and home snapshot a run sends, so
the broker computes the code identity exactly as it will for the run."""

from __future__ import annotations

from typing import Any, Protocol

from .leases import leases_by_id
from .orchestrate import RunContext, snapshot_body
from .spec import parse


class ApprovalBroker(Protocol):
    async def list_leases(self) -> list[dict[str, Any]]: ...

    async def request_approval(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /approvals` with `{spec, workspace, working_dir}`."""
        ...


async def request_approval(text: str, broker: ApprovalBroker, ctx: RunContext) -> dict[str, Any]:
    """Raises SpecError (line and column) before anything is sent for a bad workflow."""
    leases = leases_by_id(await broker.list_leases())
    parse(text, leases=leases, user=ctx.user, home_path=ctx.home_path)
    return await broker.request_approval(await snapshot_body(text, ctx))


def describe(reply: dict[str, Any]) -> str:
    """What the notebook prints after a request: one line per owner asked or skipped."""
    lines = [
        f"code approval requested from {r['owner_org']} for {', '.join(r['dataset_ids'])}: "
        f"request {r['id']} (code {str(r['code_sha256'])[:12]}, {len(r['files'])} file(s): "
        f"{', '.join(f['path'] for f in r['files']) or 'none'})"
        for r in reply.get("items") or []
    ]
    lines += [str(s.get("message")) for s in reply.get("skipped") or []]
    return "\n".join(lines)
