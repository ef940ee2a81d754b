"""dshare from a notebook cell: find, lease and release datasets as the logged-in user.

    from dshare_server.session import datasets, lease, release
    lease("uis-lorem-corpus", hours=2, purpose="word counts")

A lease of a dataset whose owner allows interactive use makes `~/datasets/<name>` a
read-only view of it at once (`refresh_datasets()`; the server also does it periodically).

Calls go to the user's organization broker with the server's JupyterHub token, which the
kernel inherits from the server; the broker decides what the user may do.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from .broker_client import BrokerError, BrokerUnavailable, _token
from .links import LinkResult, links_from_views, sync_links


class SyncBrokerClient:
    """A blocking client for code that runs in the kernel (magics, notebook helpers)."""

    def __init__(self, broker_url: str | None = None, *, timeout: float = 30.0) -> None:
        url = broker_url if broker_url is not None else os.environ.get("DSHARE_BROKER_URL", "")
        if not url:
            raise BrokerUnavailable(
                "no broker configured: DSHARE_BROKER_URL is not set in this kernel "
                "(the dshare spawners set it; start your server from JupyterHub)"
            )
        self.base = url if url.endswith("/") else url + "/"
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.base}api/v1/{path.lstrip('/')}"
        if query:
            url += "?" + urlencode(query)
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL is the configured broker
            url,
            data=data,
            method=method,
            headers={"Authorization": f"token {_token()}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read()
                return json.loads(body) if body else None
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read() or b"{}")
            except ValueError:
                detail = {}
            raise BrokerError(e.code, detail if isinstance(detail, dict) else {}) from None
        except (urllib.error.URLError, OSError) as e:
            raise BrokerUnavailable(f"the broker at {self.base} did not answer: {e}") from None

    # -- the broker API as the workflow orchestration and notebook helpers use it --------

    def list_leases(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "leases", query={"scope": "mine"})["items"])

    def start_run(self, name: str, lease_ids: list[str], spec_sha256: str) -> dict[str, Any]:
        return dict(
            self.call(
                "POST",
                "runs",
                {"name": name, "lease_ids": lease_ids, "spec_sha256": spec_sha256},
            )
        )

    def finish_run(
        self, run_id: str, outcome: str, result_sha256: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"outcome": outcome}
        if result_sha256:
            payload["result_sha256"] = result_sha256
        return dict(self.call("POST", f"runs/{quote(run_id, safe='')}/finish", payload))


def _client() -> SyncBrokerClient:
    return SyncBrokerClient()


def datasets(q: str = "", **filters: str) -> list[dict[str, Any]]:
    """Datasets visible to you, optionally searched (`q`) and filtered (org, tag, storage)."""
    query = {k: v for k, v in {"q": q, **filters}.items() if v}
    return list(_client().call("GET", "datasets", query=query)["items"])


def leases() -> list[dict[str, Any]]:
    """Your leases, active and past."""
    return _client().list_leases()


def refresh_datasets() -> LinkResult:
    """Link ~/datasets/<name> to the views of your interactive leases (and drop the links
    of ended ones) now, instead of at the server's next periodic refresh."""
    reply = _client().call("POST", "views", {})
    items = reply.get("items") if isinstance(reply, dict) else None
    root = Path(os.path.expanduser("~")) / "datasets"
    return sync_links(root, links_from_views(items))


def lease(dataset_id: str, *, hours: float = 1.0, purpose: str = "") -> dict[str, Any]:
    """Lease a dataset for `hours`; an active lease of yours on it is returned as it is."""
    client = _client()
    for existing in client.list_leases():
        if existing.get("asset_id") == dataset_id and existing.get("state") in (
            "active",
            "pending",
        ):
            return existing
    granted = dict(
        client.call(
            "POST",
            "leases",
            {"dataset_id": dataset_id, "duration_s": int(hours * 3600), "purpose": purpose},
        )
    )
    if granted.get("state") == "active" and granted.get("interactive"):
        # If this fails the lease stands; the server's periodic refresh links it later.
        with contextlib.suppress(BrokerError, BrokerUnavailable, OSError):
            refresh_datasets()
    return granted


def release(lease_id: str) -> dict[str, Any]:
    """End a lease now; its mounts are removed by the owner's broker."""
    return dict(_client().call("POST", f"leases/{quote(lease_id, safe='')}/release"))
