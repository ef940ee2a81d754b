"""jupyter-server fixtures (pytest-jupyter): scripts/test.sh runs this suite on its own with
`-p pytest_jupyter.jupyter_server`, since that plugin's event-loop fixtures must not apply to
the other suites."""

import pytest


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"dshare_server": True}}}
