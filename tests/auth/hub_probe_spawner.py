"""A spawner for the real-hub test that starts no server: it asks the hub what its
$JUPYTERHUB_API_TOKEN may do, writes the answer to a file, and fails the spawn.

That is how the test sees which of Spawner.server_token_scopes JupyterHub granted."""

from __future__ import annotations

from pathlib import Path

from jupyterhub.spawner import Spawner
from tornado.httpclient import AsyncHTTPClient
from traitlets import Unicode


class ScopeProbeSpawner(Spawner):
    probe_dir = Unicode(config=True, help="where to write <user>.json")

    async def start(self) -> tuple[str, int]:
        response = await AsyncHTTPClient().fetch(
            self.hub.api_url.rstrip("/") + "/user",
            headers={"Authorization": f"token {self.api_token}"},
        )
        Path(self.probe_dir, f"{self.user.name}.json").write_bytes(response.body)
        raise RuntimeError("scope probe recorded the server token's permissions")

    async def poll(self) -> int:
        return 0

    async def stop(self, now: bool = False) -> None:
        return None
