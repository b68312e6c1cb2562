"""Retries on 429 / 503: the decision as a table, then a real rate-limited hub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import hub as hubs
import pytest

from tidings import Client, RateLimited, RetryPolicy
from tidings.retry import parse_retry_after, retry_delay

POLICY = RetryPolicy(max_retries=3, max_wait=30.0, backoff_base=0.5)


@pytest.mark.parametrize(
    ("status", "retry_after", "attempt", "expected"),
    [
        (429, 2.0, 0, 2.0),  # the hub's word wins
        (503, 1.0, 2, 1.0),
        (503, None, 0, 0.5),  # no Retry-After: exponential backoff
        (503, None, 2, 2.0),
        (429, 2.0, 3, None),  # retries used up
        (429, 31.0, 0, None),  # longer than we wait: raise now
        (500, 1.0, 0, None),  # a bug is not retried
        (409, None, 0, None),
        (422, None, 0, None),
    ],
)
def test_retry_decision(status: int, retry_after: float | None, attempt: int, expected: float | None) -> None:
    assert retry_delay(status, retry_after, attempt, POLICY) == expected


def test_retry_after_forms() -> None:
    now = datetime(2026, 12, 3, 10, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Thu, 03 Dec 2026 10:00:07 GMT", now) == 7.0
    assert parse_retry_after("Thu, 03 Dec 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


@pytest.fixture(scope="module")
def limited_hub() -> Iterator[hubs.Hub]:
    # One request per second per key, no burst beyond one: the second quick call is a 429.
    h = hubs.start({"TIDINGS_RATE_LIMITS__PER_KEY_PER_SEC": "1", "TIDINGS_RATE_LIMITS__PER_KEY_BURST": "1"})
    yield h
    h.stop()


def test_429_is_retried_after_retry_after_with_the_same_idempotency_key(limited_hub: hubs.Hub) -> None:
    seen: list[tuple[int, str | None]] = []
    waits: list[float] = []

    def record(response: httpx.Response) -> None:
        seen.append((response.status_code, response.request.headers.get("Idempotency-Key")))

    http = httpx.Client(
        base_url=limited_hub.url,
        headers={"Authorization": f"Bearer {limited_hub.api_key}"},
        event_hooks={"response": [record]},
    )

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with Client(limited_hub.url, limited_hub.api_key, http=http, sleep=sleep) as client:
        answers = [client.publish(user_id="u-retry", title=f"t{i}", message="m") for i in range(3)]
        token = client.create_token("u-retry", "provider")["token"]
    assert all(len(a["notifications"]) == 1 for a in answers)
    # The publishes carry keys; the token request (a 429 too, then a 200) carries none.
    limited = [key for status, key in seen if status == 429 and key is not None]
    assert limited, f"the hub never said 429 to a publish: {seen}"
    assert waits and all(w >= 1 for w in waits), "waited as Retry-After said"
    # Each 429 was followed by the same request with the same key, which succeeded.
    for key in limited:
        assert (201, key) in seen
    time.sleep(1.1)
    listed = httpx.get(
        f"{limited_hub.url}/v1/me/notifications",
        headers={"Authorization": f"Bearer {token}"},
        params={"status": "all"},
    ).json()["items"]
    assert sorted(n["title"] for n in listed) == ["t0", "t1", "t2"], "no retry published twice"


def test_without_retries_the_429_is_raised_with_retry_after(limited_hub: hubs.Hub) -> None:
    with Client(limited_hub.url, limited_hub.api_key, retry=RetryPolicy(max_retries=0)) as client:
        with pytest.raises(RateLimited) as limited:
            for _ in range(5):
                client.list_users()
    assert (limited.value.status, limited.value.code) == (429, "rate_limited")
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
