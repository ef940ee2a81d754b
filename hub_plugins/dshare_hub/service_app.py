"""The settings every hub-managed dshare service shares: where it listens, under which
prefix, and its config file. JupyterHub starts a managed service with its URL and prefix
in the environment, so those are the defaults; set them only for a service run by hand."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from traitlets import Integer, Unicode, default
from traitlets.config import Application


class HubServiceApp(Application):
    """Override points: `fallback_port` and `fallback_prefix()` for a service run by hand."""

    fallback_port = 8100

    ip = Unicode("127.0.0.1", help="Address to listen on.").tag(config=True)
    port = Integer(0, help="Port to listen on (hub-managed: from JUPYTERHUB_SERVICE_URL).").tag(
        config=True
    )
    base_url = Unicode(
        "", help="URL prefix to serve under (hub-managed: JUPYTERHUB_SERVICE_PREFIX)."
    ).tag(config=True)
    config_file = Unicode("", help="A Python config file to load.").tag(config=True)

    def fallback_prefix(self) -> str:
        return "/"

    @default("port")
    def _port_default(self) -> int:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        return urlparse(url).port or 80 if url else self.fallback_port

    @default("ip")
    def _ip_default(self) -> str:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        return (urlparse(url).hostname or "127.0.0.1") if url else "127.0.0.1"

    @default("base_url")
    def _base_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or self.fallback_prefix()
