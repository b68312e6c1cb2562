"""The sync and async clients: the transport around :mod:`tidings.api`.

Both share everything but the I/O: how a :class:`~tidings.api.Call` becomes a request
(:func:`_request`), how an answer becomes a result or an exception (:func:`_result`),
and when to try again (:func:`tidings.retry.retry_delay`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import httpx

from .api import JSON, Api, Call
from .errors import error_from_response
from .retry import RetryPolicy, parse_retry_after, retry_delay

__all__ = ["Client", "AsyncClient", "RetryPolicy"]

USER_AGENT = "tidings-python/0.1"


def _wire(value: Any) -> Any:
    """JSON for the values Django models hand over: aware datetimes, dates, UUIDs, decimals."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # A naive time has no instant: refusing it beats guessing the server's zone.
            raise ValueError(f"naive datetime {value.isoformat()}: give a timezone-aware one")
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return str(_wire(value))


def _request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    headers = {}
    content = None
    if call.body is not None:
        content = json.dumps(call.body, default=_wire, ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    if call.idempotency_key is not None:
        headers["Idempotency-Key"] = call.idempotency_key
    params = {k: _param(v) for k, v in (call.params or {}).items()}
    return http.build_request(call.method, call.path, content=content, headers=headers, params=params)


def _result(response: httpx.Response) -> JSON:
    if response.is_success:
        # 204 (a delete) has no body: the result is an empty object, not None, so every
        # operation has one result type.
        return response.json() if response.content else {}
    raise error_from_response(response, parse_retry_after(response.headers.get("Retry-After")))


def _delay(response: httpx.Response, attempt: int, policy: RetryPolicy) -> float | None:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return retry_delay(response.status_code, retry_after, attempt, policy)


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "Accept": "application/json", "User-Agent": USER_AGENT}


class Client(Api[JSON]):
    """A blocking client for a clinic back end (an API key of one tenant).

    ``http`` may be an ``httpx.Client`` of your own (proxies, event hooks); its base URL
    and headers are then yours to set. ``sleep`` is how the client waits between
    retries (tests pass a recorder).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout)
        self._owns_http = http is None
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def _send(self, call: Call) -> JSON:
        request = _request(self._http, call)
        attempt = 0
        while True:
            response = self._http.send(request)
            wait = _delay(response, attempt, self._retry)
            if wait is None:
                return _result(response)
            self._sleep(wait)
            attempt += 1

    def paginate(self, list_call: Callable[..., JSON], /, **filters: Any) -> Iterator[JSON]:
        """Every item of a list operation, page after page: ``client.paginate(client.list_users, role="admin")``."""
        cursor = None
        while True:
            page = list_call(**filters, cursor=cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(Api[Awaitable[JSON]]):
    """The same operations as :class:`Client`, each a coroutine."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=timeout)
        self._owns_http = http is None
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    async def _send_async(self, call: Call) -> JSON:
        request = _request(self._http, call)
        attempt = 0
        while True:
            response = await self._http.send(request)
            wait = _delay(response, attempt, self._retry)
            if wait is None:
                return _result(response)
            await self._sleep(wait)
            attempt += 1

    def _send(self, call: Call) -> Awaitable[JSON]:
        return self._send_async(call)

    async def paginate(self, list_call: Callable[..., Awaitable[JSON]], /, **filters: Any) -> AsyncIterator[JSON]:
        """Every item of a list operation: ``async for u in client.paginate(client.list_users): ...``."""
        cursor = None
        while True:
            page = await list_call(**filters, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
