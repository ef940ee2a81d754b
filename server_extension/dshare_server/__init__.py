"""User-server parts of dshare: REST handlers, the %dshare_run magic, workflows, the local runner.

Three entry points live here because Jupyter looks for them on the package:
the jupyter-server extension, the prebuilt JupyterLab extension, and the IPython extension
(`%load_ext dshare_server`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "dshare_server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "dshare"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .config import DShareServerConfig
    from .handlers import setup_handlers
    from .views_handlers import setup_views

    config = DShareServerConfig(parent=serverapp)
    # Its route first: the broker proxy's catch-all would answer it otherwise.
    setup_views(serverapp.web_app, config)
    setup_handlers(serverapp.web_app, config)
    serverapp.log.info(
        "dshare server extension loaded; broker %s", config.broker_url or "(not configured)"
    )


def load_ipython_extension(ipython: Any) -> None:
    from .magic import load_ipython_extension as load

    load(ipython)
