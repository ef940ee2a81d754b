"""Registers the sample datasets through each organization's broker, as its admin.

Going through the real API (hub token → broker → sealed details → ledger) means the demo
exercises the same path an org admin's DataExplorer form does.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from .content import DemoDataset, DemoUser, demo_users, make_datasets
from .layout import DemoLayout

log = logging.getLogger(__name__)


class SeedError(RuntimeError):
    pass


def _request(
    url: str, token: str, method: str = "GET", payload: dict[str, Any] | None = None
) -> tuple[int, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback URLs of our own hub
        url,
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body) if body else None
        except ValueError:
            return e.code, body.decode(errors="replace")


def wait_for(
    url: str,
    timeout: float = 60.0,
    *,
    ok_only: bool = False,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `url` until it answers (with 200 when `ok_only`) or `timeout` seconds pass;
    give up at once when `alive` says the process that should answer has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            raise SeedError(f"the process serving {url} exited before it answered; see its log")
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310
            return
        except urllib.error.HTTPError:
            if not ok_only:
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SeedError(f"{url} did not answer within {timeout:.0f} s") from None
        time.sleep(0.25)


def ensure_hub_user(layout: DemoLayout, user: DemoUser) -> None:
    """Make `user` known to the hub with the groups the authenticator gives at login.

    Users exist in the hub only after their first login; the seeder acts for the org
    admins before anyone has logged in, so it creates them as the authenticator would.
    """
    seeder = layout.service_token_file("dshare-demo-seeder").read_text().strip()
    api = layout.hub_api_url
    status, body = _request(f"{api}/users/{user.name}", seeder, "POST", {})
    if status not in (201, 409):
        raise SeedError(f"the hub refused to create {user.name}: {status} {body}")
    groups = [f"org:{user.org}", *(f"role:{role}" for role in user.roles)]
    for group in groups:
        status, body = _request(f"{api}/groups/{group}", seeder, "POST", {})
        if status not in (201, 409):
            raise SeedError(f"the hub refused to create group {group}: {status} {body}")
        status, body = _request(
            f"{api}/groups/{group}/users", seeder, "POST", {"users": [user.name]}
        )
        if status != 200:
            raise SeedError(f"the hub refused to add {user.name} to {group}: {status} {body}")


def user_token(layout: DemoLayout, user: str) -> str:
    """A short-lived token for `user`, issued by the hub to the seeder service."""
    seeder = layout.service_token_file("dshare-demo-seeder").read_text().strip()
    status, body = _request(
        f"{layout.hub_api_url}/users/{user}/tokens",
        seeder,
        "POST",
        {"note": "dshare demo seeding", "expires_in": 600},
    )
    if status != 201 or not isinstance(body, dict):
        raise SeedError(f"the hub refused a token for {user}: {status} {body}")
    return str(body["token"])


def register(layout: DemoLayout, dataset: DemoDataset) -> None:
    token = user_token(layout, f"{dataset.org.lower()}-admin")
    base = f"{layout.public_url}services/dshare-{dataset.org.lower()}/api/v1"
    status, body = _request(f"{base}/datasets/{dataset.slug}", token)
    if status == 200:
        return
    status, body = _request(f"{base}/datasets", token, "POST", dataset.registration())
    if status != 201:
        raise SeedError(f"{dataset.org}'s broker refused {dataset.slug}: {status} {body}")
    log.info("registered %s for %s", dataset.slug, dataset.org)


def seed(layout: DemoLayout) -> int:
    """Register every sample dataset not yet on the ledger; return how many are there."""
    datasets = make_datasets(layout.data)
    for user in demo_users():
        if "admin" in user.roles:
            ensure_hub_user(layout, user)
    for org in {d.org for d in datasets}:
        wait_for(f"{layout.public_url}services/dshare-{org.lower()}/api/v1/me", 60)
    for dataset in datasets:
        register(layout, dataset)
    layout.seeded_marker.write_text(str(len(datasets)))
    return len(datasets)
