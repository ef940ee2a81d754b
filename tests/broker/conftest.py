import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# hubfixture.py is a helper module next to the tests, not a package.
sys.path.insert(0, str(Path(__file__).parent))

from hubfixture import Hub, start_hub, stop_hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A JupyterHub with the UiS and UiO brokers as its services, one per test module
    (hubfixture.py); a module that asks for `hub` shares it between its tests only."""
    running = start_hub(tmp_path_factory.mktemp("hub"))
    try:
        yield running
    finally:
        stop_hub(running)
