"""Small, retried calls to the Kubernetes API through kubernetes_asyncio.

Each call handles its statuses explicitly: 404 on read/delete means "not there" (a value, not
an error), 409 on create means "already there", 429 and 5xx (and dropped connections) are
retried with exponential backoff, anything else is raised as KubeApiError. Bodies and results
are plain dicts in the API's JSON form, as the builders in `objects` and `storage` make them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})

# kind -> (API group client, snake_case resource name as in kubernetes_asyncio, namespaced)
_KINDS: dict[str, tuple[str, str, bool]] = {
    "ServiceAccount": ("core", "service_account", True),
    "Secret": ("core", "secret", True),
    "PersistentVolume": ("core", "persistent_volume", False),
    "PersistentVolumeClaim": ("core", "persistent_volume_claim", True),
    "Pod": ("core", "pod", True),
    "Role": ("rbac", "role", True),
    "RoleBinding": ("rbac", "role_binding", True),
}


class KubeApiError(Exception):
    """A Kubernetes API call that failed for good; says what, where and the server's reason."""

    def __init__(self, status: int, action: str, reason: str) -> None:
        super().__init__(f"Kubernetes API refused to {action}: HTTP {status} {reason}")
        self.status = status
        self.action = action
        self.reason = reason


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry 429/5xx and dropped connections."""

    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    request_timeout: float = 30.0


def _reason(exc: ApiException) -> str:
    # The Status body's message says what was wrong; fall back to the HTTP reason.
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "")


def _retry_after(exc: ApiException) -> float | None:
    headers: Any = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class KubeApi:
    """The handful of calls dshare makes, over one kubernetes_asyncio ApiClient."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def _method(self, verb: str, kind: str, namespace: str | None) -> Callable[..., Any]:
        try:
            group, resource, namespaced = _KINDS[kind]
        except KeyError:
            raise ValueError(f"dshare does not manage objects of kind {kind!r}") from None
        api = self.core if group == "core" else self.rbac
        if namespaced and namespace is None:
            if verb != "list":
                raise ValueError(f"{kind} is namespaced: pass a namespace")
            return getattr(api, f"list_{resource}_for_all_namespaces")
        infix = "namespaced_" if namespaced else ""
        return getattr(api, f"{verb}_{infix}{resource}")

    async def _call(self, action: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn`, retrying 429/5xx/connection failures; other ApiExceptions propagate."""
        policy = self.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                return await fn()
            except ApiException as exc:
                if exc.status not in RETRIED_STATUSES or attempt == policy.attempts:
                    raise
                delay = _retry_after(exc)
                why = f"HTTP {exc.status}"
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                if attempt == policy.attempts:
                    raise KubeApiError(0, action, f"connection failed: {exc!r}") from None
                delay = None
                why = type(exc).__name__
            if delay is None:
                delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not crypto
            delay = min(delay, policy.max_delay)
            log.warning("%s: %s, retry %d in %.2fs", action, why, attempt, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _to_dict(self, obj: Any) -> dict[str, Any]:
        result = self.api_client.sanitize_for_serialization(obj)
        return result if isinstance(result, dict) else {}

    def _args(self, name: str | None, namespace: str | None, kind: str) -> list[str]:
        namespaced = _KINDS[kind][2]
        args = [] if name is None else [name]
        return [*args, namespace] if namespaced and namespace is not None else args

    async def create(self, body: dict[str, Any], *, replace: bool = False) -> bool:
        """Create `body`; True if created, False if it already existed (409).

        With `replace`, an existing object is overwritten with `body` (used for the Role, so
        its rules are always exactly dshare's, even if someone widened them).
        """
        kind = body["kind"]
        name = body["metadata"]["name"]
        namespace = body["metadata"].get("namespace")
        action = f"create {kind} {namespace + '/' if namespace else ''}{name}"
        create = self._method("create", kind, namespace)
        timeout = self.retry.request_timeout
        try:
            await self._call(
                action,
                lambda: create(*self._args(None, namespace, kind), body, _request_timeout=timeout),
            )
            log.info("created %s %s", kind, name)
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise KubeApiError(exc.status, action, _reason(exc)) from None
        if replace:
            await self.replace(body)
        return False

    async def replace(self, body: dict[str, Any]) -> None:
        kind = body["kind"]
        name = body["metadata"]["name"]
        namespace = body["metadata"].get("namespace")
        action = f"replace {kind} {name}"
        method = self._method("replace", kind, namespace)
        timeout = self.retry.request_timeout
        try:
            await self._call(
                action,
                lambda: method(*self._args(name, namespace, kind), body, _request_timeout=timeout),
            )
        except ApiException as exc:
            raise KubeApiError(exc.status, action, _reason(exc)) from None

    async def read(
        self, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object as a dict, or None if it does not exist."""
        action = f"read {kind} {name}"
        method = self._method("read", kind, namespace)
        timeout = self.retry.request_timeout
        try:
            obj = await self._call(
                action,
                lambda: method(*self._args(name, namespace, kind), _request_timeout=timeout),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeApiError(exc.status, action, _reason(exc)) from None
        return self._to_dict(obj)

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete; True if it was there, False if it was already gone (404)."""
        action = f"delete {kind} {name}"
        method = self._method("delete", kind, namespace)
        timeout = self.retry.request_timeout
        try:
            await self._call(
                action,
                lambda: method(*self._args(name, namespace, kind), _request_timeout=timeout),
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeApiError(exc.status, action, _reason(exc)) from None
        log.info("deleted %s %s", kind, name)
        return True

    async def list(
        self, kind: str, *, label_selector: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of `kind` matching `label_selector` (all namespaces when none is given)."""
        action = f"list {kind} ({label_selector})"
        method = self._method("list", kind, namespace)
        timeout = self.retry.request_timeout
        try:
            result = await self._call(
                action,
                lambda: method(
                    *self._args(None, namespace, kind),
                    label_selector=label_selector,
                    _request_timeout=timeout,
                ),
            )
        except ApiException as exc:
            raise KubeApiError(exc.status, action, _reason(exc)) from None
        return list(self._to_dict(result).get("items") or [])

    async def request_token(
        self, service_account: str, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """POST serviceaccounts/<name>/token; returns the TokenRequest with its status."""
        action = f"request a token for ServiceAccount {namespace}/{service_account}"
        timeout = self.retry.request_timeout
        try:
            result = await self._call(
                action,
                lambda: self.core.create_namespaced_service_account_token(
                    service_account, namespace, cast(Any, body), _request_timeout=timeout
                ),
            )
        except ApiException as exc:
            raise KubeApiError(exc.status, action, _reason(exc)) from None
        return self._to_dict(result)

    # -- Argo Workflows (custom objects): the broker submits, stops and follows its runs.

    async def create_workflow(self, body: dict[str, Any]) -> bool:
        """Create a Workflow; True if created, False if one of that name exists (409)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        action = f"create Workflow {namespace}/{name}"
        timeout = self.retry.request_timeout
        try:
            await self._call(
                action,
                lambda: self.custom.create_namespaced_custom_object(
                    *WORKFLOWS[:2], namespace, WORKFLOWS[2], body, _request_timeout=timeout
                ),
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise KubeApiError(exc.status, action, _reason(exc)) from None
        log.info("created Workflow %s/%s", namespace, name)
        return True

    async def read_workflow(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The Workflow, or None if it does not exist (never submitted, or collected)."""
        action = f"read Workflow {namespace}/{name}"
        timeout = self.retry.request_timeout
        try:
            result = await self._call(
                action,
                lambda: self.custom.get_namespaced_custom_object(
                    *WORKFLOWS[:2], namespace, WORKFLOWS[2], name, _request_timeout=timeout
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeApiError(exc.status, action, _reason(exc)) from None
        return dict(result)

    async def patch_workflow(self, name: str, namespace: str, patch: dict[str, Any]) -> bool:
        """Merge-patch a Workflow; False if it is gone (404)."""
        action = f"patch Workflow {namespace}/{name}"
        timeout = self.retry.request_timeout
        try:
            await self._call(
                action,
                # kubernetes_asyncio takes _content_type at runtime; its stubs do not list it.
                lambda: self.custom.patch_namespaced_custom_object(  # type: ignore[call-arg]
                    *WORKFLOWS[:2],
                    namespace,
                    WORKFLOWS[2],
                    name,
                    patch,
                    _content_type="application/merge-patch+json",
                    _request_timeout=timeout,
                ),
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeApiError(exc.status, action, _reason(exc)) from None
        return True


# group, version, plural of Argo's Workflow
WORKFLOWS = ("argoproj.io", "v1alpha1", "workflows")


def selector(labels: dict[str, str]) -> str:
    """A label selector matching all of `labels` exactly."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
