"""Fixtures: the API server double and a KubeApi pointed at it (no waiting between retries)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from dshare_hub.k8s.api import KubeApi, RetryPolicy

from .apiserver_double import ApiServerDouble


@pytest_asyncio.fixture
async def double() -> AsyncIterator[ApiServerDouble]:
    server = ApiServerDouble()
    await server.start()
    yield server
    await server.stop()


class SleepRecorder:
    """Stands in for asyncio.sleep: records the backoff delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest_asyncio.fixture
async def kube_api(double: ApiServerDouble, sleeps: SleepRecorder) -> AsyncIterator[KubeApi]:
    config = client.Configuration(host=double.url)
    async with client.ApiClient(config) as api_client:
        yield KubeApi(api_client, retry=RetryPolicy(attempts=4, base_delay=0.1), sleep=sleeps)
