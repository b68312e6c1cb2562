from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import hub as hubs
import pytest

from tidings import Client


@pytest.fixture(scope="session")
def hub() -> Iterator[hubs.Hub]:
    # Webhook deliveries to the test receiver on loopback are allowed (test_webhooks.py).
    h = hubs.start({"TIDINGS_WEBHOOKS__ALLOW_INTERNAL_TARGETS": "true"})
    yield h
    h.stop()


@pytest.fixture
def client(hub: hubs.Hub) -> Iterator[Client]:
    with Client(hub.url, hub.api_key) as c:
        yield c


@pytest.fixture
def uid() -> str:
    """A fresh id prefix: the tests share one hub, so each test works on its own users and patients."""
    return uuid.uuid4().hex[:10]


def as_user(hub: hubs.Hub, token: str) -> httpx.Client:
    """Plain HTTP with a user token: what a browser does, to check what the client did."""
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
