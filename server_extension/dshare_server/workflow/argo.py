"""Reading Argo Workflows: dshare's job states from a workflow's status, pod names.

Nothing here submits a workflow: the scientist's token may only read its own workflows
(DESIGN.md boundary 5); the broker, which compiles the run itself, submits it.
"""

from __future__ import annotations

from typing import Any

# Argo node phases to dshare job states.
NODE_STATES = {
    "Pending": "pending",
    "Running": "running",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Error": "failed",
    "Skipped": "skipped",
    "Omitted": "skipped",
}


def _fnv32a(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode():
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def pod_name(workflow: str, node_name: str, template: str) -> str:
    """Argo's v2 pod name for a node (as GeneratePodName computes it in Argo >= 3.4)."""
    if workflow == node_name:
        return workflow
    prefix = f"{workflow}-{template}" if ".inline" not in node_name else workflow
    prefix = prefix[: 253 - 10 - 1]
    return f"{prefix}-{_fnv32a(node_name)}"


def job_states(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per DAG task: state, exit code, start and finish, from the workflow's status."""
    out: dict[str, dict[str, Any]] = {}
    for node in (workflow.get("status", {}).get("nodes") or {}).values():
        if node.get("type") not in ("Pod", "Skipped", "Omitted"):
            continue
        name = node.get("displayName", "")
        exit_code = None
        if "exitCode" in (node.get("outputs") or {}):
            try:
                exit_code = int(node["outputs"]["exitCode"])
            except (TypeError, ValueError):
                exit_code = None
        out[name] = {
            "state": NODE_STATES.get(node.get("phase", ""), "pending"),
            "exit_code": exit_code,
            "started_at": node.get("startedAt"),
            "finished_at": node.get("finishedAt"),
            "message": node.get("message", ""),
        }
    return out
