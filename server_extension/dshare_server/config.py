"""Settings of the server extension, read from traitlets config and the spawner's environment."""

from __future__ import annotations

import os

from traitlets import Float, Unicode, default
from traitlets.config import Configurable


class DShareServerConfig(Configurable):
    """Where the user's organization broker is and how long to wait for it.

    The spawner sets DSHARE_BROKER_URL; nothing secret is configured here. The token used to
    call the broker is the server's own JupyterHub token (JUPYTERHUB_API_TOKEN), which
    carries only the user's dshare scopes.
    """

    broker_url = Unicode(
        help="""Base URL of the user's organization broker, ending in '/'.

        Defaults to $DSHARE_BROKER_URL, which DShareLocalSpawner and DShareKubeSpawner set.
        Change it only when running a server outside JupyterHub against a broker.
        """,
    ).tag(config=True)

    request_timeout = Float(
        30.0,
        help="Seconds to wait for the broker before answering 504 to the browser.",
    ).tag(config=True)

    views_refresh_interval = Float(
        30.0,
        help="""Seconds between asking the broker for the user's interactive views, so
        ~/datasets/<name> links to a dataset whose lease became active while the server
        runs and loses the link of one that ended. 0 turns the refresh off (links then
        change at the next spawn, or on POST /dshare/api/views).""",
    ).tag(config=True)

    runs_dir = Unicode(
        help="""Directory where local workflow runs keep their status and logs.

        Defaults to ~/.dshare/runs. Change it when the home directory is read-only.
        """,
    ).tag(config=True)

    @default("broker_url")
    def _default_broker_url(self) -> str:
        url = os.environ.get("DSHARE_BROKER_URL", "")
        return url if not url or url.endswith("/") else url + "/"

    @default("runs_dir")
    def _default_runs_dir(self) -> str:
        return os.path.join(os.path.expanduser("~"), ".dshare", "runs")
