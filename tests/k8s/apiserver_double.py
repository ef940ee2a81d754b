"""A test double of the Kubernetes API server: NOT a cluster, only the paths dshare calls.

An aiohttp server on 127.0.0.1 that keeps objects in memory and answers like the real API
for: create / get / replace / delete / list (with an equality labelSelector) of namespaces,
serviceaccounts, secrets, persistentvolumes, persistentvolumeclaims, pods, roles and
rolebindings, plus serviceaccounts/<name>/token (TokenRequest). It answers 409 for a
duplicate, 404 for a missing object and 422 for a body that fails strict validation with
kubernetes-validate against Kubernetes 1.32. Faults (status codes) can be injected for the
next N matching requests, and every request is recorded so tests can check call sequences.
Nothing is scheduled, mounted or authorized: the double checks shapes, not behaviour.
"""

from __future__ import annotations

import base64
import copy
import itertools
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate
from aiohttp import web

K8S_VERSION = "1.32"

# resource -> (apiVersion, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "namespaces": ("v1", "Namespace", False),
    "serviceaccounts": ("v1", "ServiceAccount", True),
    "secrets": ("v1", "Secret", True),
    "persistentvolumes": ("v1", "PersistentVolume", False),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim", True),
    "pods": ("v1", "Pod", True),
    "roles": ("rbac.authorization.k8s.io/v1", "Role", True),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding", True),
}

_PREFIX = r"^/(?:api/v1|apis/rbac\.authorization\.k8s\.io/v1)"
_NAMESPACED = re.compile(_PREFIX + r"/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?(?:/(token))?$")
_CLUSTER = re.compile(_PREFIX + r"/([a-z]+)(?:/([^/]+))?$")


def validation_error(body: dict[str, Any]) -> str | None:
    """The first line of kubernetes-validate's complaint about `body`, or None if it is valid."""
    try:
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc).splitlines()[0]
    return None


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    status: int


class ApiServerDouble:
    """Start with `await double.start()`; `double.url` is the server's base URL."""

    def __init__(self) -> None:
        # (resource, namespace or "", name) -> object
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.tokens: list[dict[str, Any]] = []
        self._version = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- control ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests matching method and path with `status`."""
        self.faults.append(Fault(method, re.compile(path_regex), status, times, headers or {}))

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self.objects.get((resource, namespace, name))

    def names(self, resource: str) -> list[str]:
        return sorted(
            f"{ns}/{name}" if ns else name for (r, ns, name) in self.objects if r == resource
        )

    def calls(self, method: str | None = None) -> list[str]:
        return [
            f"{r.method} {r.path} {r.status}"
            for r in self.requests
            if method is None or r.method == method
        ]

    # -- HTTP ------------------------------------------------------------------------------

    def _status(self, code: int, reason: str, message: str) -> web.Response:
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            },
            status=code,
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response = await self._dispatch(request)
        self.requests.append(
            Request(request.method, request.path, dict(request.query), response.status)
        )
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        for fault in self.faults:
            if (
                fault.remaining > 0
                and fault.method == request.method
                and fault.path.search(request.path)
            ):
                fault.remaining -= 1
                resp = self._status(fault.status, "Injected", f"injected HTTP {fault.status}")
                resp.headers.update(fault.headers)
                return resp
        match = _NAMESPACED.match(request.path)
        if match:
            namespace, resource, name, sub = match.groups()
        else:
            match = _CLUSTER.match(request.path)
            if not match:
                return self._status(404, "NotFound", f"the double has no path {request.path}")
            resource, name = match.groups()
            namespace, sub = "", None
        if resource not in RESOURCES:
            return self._status(404, "NotFound", f"the double has no resource {resource}")
        namespaced = RESOURCES[resource][2]
        if sub == "token":
            return await self._token(request, namespace, name)
        if not namespaced and namespace:
            return self._status(404, "NotFound", f"{resource} is not namespaced")
        body: dict[str, Any] = {}
        if request.method in ("POST", "PUT"):
            body = await request.json()
        if request.method == "POST" and name is None:
            return self._create(resource, namespace, body)
        if request.method == "GET" and name is None:
            return self._list(resource, namespace, request.query.get("labelSelector", ""))
        if name is None:
            return self._status(405, "MethodNotAllowed", "method not allowed")
        key = (resource, namespace, name)
        if request.method == "GET":
            obj = self.objects.get(key)
            if obj is None:
                return self._status(404, "NotFound", f'{resource} "{name}" not found')
            return web.json_response(obj)
        if request.method == "DELETE":
            obj = self.objects.pop(key, None)
            if obj is None:
                return self._status(404, "NotFound", f'{resource} "{name}" not found')
            return web.json_response(obj)
        if request.method == "PUT":
            if key not in self.objects:
                return self._status(404, "NotFound", f'{resource} "{name}" not found')
            return self._store(resource, namespace, body, replace_of=self.objects[key])
        return self._status(405, "MethodNotAllowed", "method not allowed")

    def _create(self, resource: str, namespace: str, body: dict[str, Any]) -> web.Response:
        name = (body.get("metadata") or {}).get("name", "")
        if (resource, namespace, name) in self.objects:
            return self._status(409, "AlreadyExists", f'{resource} "{name}" already exists')
        return self._store(resource, namespace, body, replace_of=None)

    def _store(
        self,
        resource: str,
        namespace: str,
        body: dict[str, Any],
        replace_of: dict[str, Any] | None,
    ) -> web.Response:
        api_version, kind, namespaced = RESOURCES[resource]
        # As the real API server: apiVersion and kind may be left out, the path says them.
        body = {"apiVersion": api_version, "kind": kind, **body}
        problem = validation_error(body)
        if problem is None and body.get("kind") != kind:
            problem = f"kind {body.get('kind')!r} sent to {resource}"
        meta = body.get("metadata") or {}
        if problem is None and namespaced and meta.get("namespace", namespace) != namespace:
            problem = "metadata.namespace does not match the request path"
        if problem is None and not meta.get("name"):
            problem = "metadata.name: Required value"
        if problem is not None:
            return self._status(422, "Invalid", problem)
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if namespaced:
            meta["namespace"] = namespace
        meta["uid"] = replace_of["metadata"]["uid"] if replace_of else str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._version))
        meta["creationTimestamp"] = (
            replace_of["metadata"]["creationTimestamp"]
            if replace_of
            else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        if kind == "Secret" and "stringData" in obj:
            # As the real API does: stringData is write-only, stored base64 in data.
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(v.encode()).decode()
        self.objects[(resource, namespace, meta["name"])] = obj
        return web.json_response(obj, status=200 if replace_of else 201)

    def _list(self, resource: str, namespace: str, label_selector: str) -> web.Response:
        api_version, kind, _ = RESOURCES[resource]
        wanted: dict[str, str] = {}
        for term in filter(None, label_selector.split(",")):
            key, _, value = term.partition("=")
            wanted[key] = value
        items = [
            obj
            for (r, ns, _name), obj in sorted(self.objects.items())
            if r == resource
            and (not namespace or ns == namespace)
            and all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]
        return web.json_response(
            {
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": str(next(self._version))},
                "items": items,
            }
        )

    async def _token(self, request: web.Request, namespace: str, name: str) -> web.Response:
        if request.method != "POST":
            return self._status(405, "MethodNotAllowed", "method not allowed")
        if ("serviceaccounts", namespace, name) not in self.objects:
            return self._status(404, "NotFound", f'serviceaccounts "{name}" not found')
        body = await request.json()
        problem = validation_error(body)
        spec = body.get("spec") or {}
        seconds = spec.get("expirationSeconds", 3600)
        if problem is None and seconds < 600:
            problem = "spec.expirationSeconds: may not specify a duration less than 10 minutes"
        bound = spec.get("boundObjectRef")
        if problem is None and bound:
            target = self.objects.get(("secrets", namespace, bound.get("name", "")))
            if target is None or target["metadata"]["uid"] != bound.get("uid"):
                problem = "spec.boundObjectRef: the referenced Secret does not exist"
        if problem is not None:
            return self._status(422, "Invalid", problem)
        expires = datetime.now(UTC) + timedelta(seconds=seconds)
        token = f"double-token-{secrets.token_hex(8)}"
        record = {
            "namespace": namespace,
            "service_account": name,
            "audiences": spec.get("audiences"),
            "expiration_seconds": seconds,
            "bound": bound,
            "token": token,
        }
        self.tokens.append(record)
        out = copy.deepcopy(body)
        out["metadata"] = {"name": name, "namespace": namespace}
        out["status"] = {
            "token": token,
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return web.json_response(out, status=201)
