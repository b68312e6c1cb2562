"""Errors of the hub as exceptions that carry the contract's error code.

The hub answers every error as ``{"error": {"code", "message", "field"?}}`` (docs/API.md,
"Conventions"); ``code`` is the stable part to branch on, ``message`` is for people.
"""

from __future__ import annotations

from typing import Any

import httpx


class TidingsError(Exception):
    """An error answer of the hub (any status 400 and up)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        # Seconds the hub asked us to wait (429, 503), when it said so.
        self.retry_after = retry_after


class BadRequest(TidingsError):
    """400: malformed JSON or a bad query parameter."""


class Unauthorized(TidingsError):
    """401: missing, unknown, revoked or expired credential."""


class Forbidden(TidingsError):
    """403: authenticated, but this credential may not do that."""


class NotFound(TidingsError):
    """404: unknown object, or one of another tenant (the hub never says which)."""


class Conflict(TidingsError):
    """409: e.g. ``idempotency_key_reused``, ``template_name_taken``, ``invalid_status``."""


class Invalid(TidingsError):
    """422: well-formed but invalid; ``field`` names the JSON path."""


class RateLimited(TidingsError):
    """429: over a quota; ``retry_after`` says when to come back."""


class Unavailable(TidingsError):
    """503: the hub's database or bus is down, or the node is full."""


_BY_STATUS: dict[int, type[TidingsError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: RateLimited,
    503: Unavailable,
}


def error_from_response(response: httpx.Response, retry_after: float | None) -> TidingsError:
    """Builds the exception for an error answer.

    A body that is not the contract's error shape (a proxy's HTML page, the empty body
    the HTTP stack sends for a malformed request head) still raises, with code
    ``http_<status>`` and the start of the body as the message.
    """
    cls = _BY_STATUS.get(response.status_code, TidingsError)
    error: Any = None
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        pass
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        field = error.get("field")
        return cls(
            response.status_code,
            error["code"],
            str(error.get("message", "")),
            field if isinstance(field, str) else None,
            retry_after,
        )
    return cls(
        response.status_code,
        f"http_{response.status_code}",
        response.text[:200] or response.reason_phrase,
        None,
        retry_after,
    )
