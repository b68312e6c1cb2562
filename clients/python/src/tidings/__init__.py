"""Client for the Tidings notification hub (docs/API.md of the hub is the reference).

>>> from tidings import Client
>>> hub = Client("https://tidings.clinic.example", api_key)
>>> hub.publish(user_id="u-17", title="New appointment", message="Sun 10:00", priority="high")

:class:`Client` blocks, :class:`AsyncClient` has the same operations as coroutines.
Errors are :class:`TidingsError` subclasses carrying the hub's error ``code``;
429 and 503 are retried as :class:`RetryPolicy` says, honouring ``Retry-After``.
``verify_webhook`` checks the hub's signed webhooks; ``tidings.django`` is the
Django integration.
"""

from .api import JSON, Call
from .client import AsyncClient, Client
from .errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    TidingsError,
    Unauthorized,
    Unavailable,
)
from .retry import RetryPolicy
from .webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Call",
    "Client",
    "Conflict",
    "Forbidden",
    "Invalid",
    "JSON",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "TidingsError",
    "Unauthorized",
    "Unavailable",
    "WebhookVerificationError",
    "verify_webhook",
]
