"""Submitting compiled workflows to Argo on Kubernetes with the user's own token.

The spawner mounts a short-lived per-user token (default /var/run/secrets/dshare/token,
the namespace in a file beside it). The token is read from the file for every request
because Kubernetes rotates projected tokens; it is never logged or put in an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
DEFAULT_TOKEN_FILE = "/var/run/secrets/dshare/token"  # noqa: S105 - a path, not a secret
FINAL_PHASES = {"Succeeded", "Failed", "Error"}
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


class ArgoError(RuntimeError):
    """Kubernetes refused a request; the message says which and why, without the token."""


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


def _describe(exc: ApiException, what: str) -> ArgoError:
    reason = exc.reason or "error"
    detail = ""
    if exc.body:
        try:
            detail = json.loads(exc.body).get("message", "")
        except (ValueError, AttributeError):
            detail = ""
    hint = ""
    if exc.status == 401:
        hint = " (the token was refused: restart your server to get a fresh one)"
    elif exc.status == 403:
        hint = " (your account may only manage workflows in its own namespace)"
    return ArgoError(f"{what} failed: {exc.status} {reason}{': ' + detail if detail else ''}{hint}")


class ArgoClient:
    def __init__(
        self,
        *,
        host: str | None = None,
        token_file: str = DEFAULT_TOKEN_FILE,
        namespace: str | None = None,
        ca_file: str | None = None,
        verify_ssl: bool = True,
    ) -> None:
        self.token_file = Path(token_file)
        if host is None:
            khost = os.environ.get("KUBERNETES_SERVICE_HOST")
            kport = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not khost:
                raise ArgoError(
                    "no Kubernetes API server: KUBERNETES_SERVICE_HOST is not set "
                    "(use the local runner outside Kubernetes)"
                )
            host = f"https://{khost}:{kport}"
        if namespace is None:
            ns_file = self.token_file.with_name("namespace")
            if not ns_file.exists():
                raise ArgoError(f"no namespace given and {ns_file} does not exist")
            namespace = ns_file.read_text().strip()
        self.namespace = namespace
        cfg = client.Configuration(host=host)
        ca = ca_file or str(self.token_file.with_name("ca.crt"))
        if os.path.exists(ca):
            cfg.ssl_ca_cert = ca
        cfg.verify_ssl = verify_ssl
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        cfg.refresh_api_key_hook = self._refresh_token
        self._refresh_token(cfg)
        self.api = client.ApiClient(cfg)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    def _refresh_token(self, cfg: client.Configuration) -> None:
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise ArgoError(
                f"cannot read the token file {self.token_file}: {exc.strerror}"
            ) from None
        cfg.api_key = {"BearerToken": token}

    async def close(self) -> None:
        await self.api.close()

    async def submit(self, manifest: dict[str, Any]) -> dict[str, Any]:
        try:
            created: dict[str, Any] = await self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, manifest
            )
        except ApiException as exc:
            raise _describe(exc, "submitting the workflow") from None
        return created

    async def get(self, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            raise _describe(exc, f"reading workflow {name}") from None
        return obj

    async def stop(self, name: str) -> None:
        """Terminate a running workflow (its exit handler still reports to the broker)."""
        try:
            await self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, {"spec": {"shutdown": "Terminate"}}
            )
        except ApiException as exc:
            raise _describe(exc, f"stopping workflow {name}") from None

    async def watch(
        self, name: str, on_status: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Follow the workflow until it finishes; returns the last object seen."""
        last: dict[str, Any] = await self.get(name)
        if on_status is not None:
            on_status(last)
        while last.get("status", {}).get("phase") not in FINAL_PHASES:
            w = watch.Watch()
            try:
                async with w.stream(
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    field_selector=f"metadata.name={name}",
                    resource_version=last.get("metadata", {}).get("resourceVersion"),
                    timeout_seconds=300,
                ) as stream:
                    async for event in stream:
                        obj = event["object"]
                        if event["type"] == "DELETED":
                            raise ArgoError(f"workflow {name} was deleted while running")
                        last = obj
                        if on_status is not None:
                            on_status(obj)
                        if obj.get("status", {}).get("phase") in FINAL_PHASES:
                            break
            except ApiException as exc:
                raise _describe(exc, f"watching workflow {name}") from None
        return last

    async def logs(self, workflow: dict[str, Any], job: str) -> str:
        """The main container's log of ``job`` (a DAG task name) in a submitted workflow."""
        wf_name = workflow["metadata"]["name"]
        for node in (workflow.get("status", {}).get("nodes") or {}).values():
            if node.get("displayName") == job and node.get("type") == "Pod":
                pod = pod_name(wf_name, node["name"], node.get("templateName", job))
                try:
                    text: str = await self.core.read_namespaced_pod_log(
                        pod, self.namespace, container="main"
                    )
                except ApiException as exc:
                    raise _describe(exc, f"reading the log of {job}") from None
                return text
        raise ArgoError(f"workflow {wf_name} has no started job `{job}`")


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
