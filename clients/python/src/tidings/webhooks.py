"""Verifying the hub's webhooks to clinic systems (the Standard Webhooks specification).

The hub signs each delivery with the endpoint's secret (``whsec_<base64 key>``, shown
once, when the endpoint is created): ``webhook-signature`` is ``v1,<base64 HMAC-SHA256(key,
"{webhook-id}.{webhook-timestamp}.{body}")>``. A receiver checks it before trusting the
body, and refuses old timestamps so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["WebhookVerificationError", "verify_webhook"]

# The specification's suggestion: five minutes either way.
DEFAULT_TOLERANCE_SECS = 300


class WebhookVerificationError(Exception):
    """The delivery is not authentic, or too old / too far in the future: answer it 400."""


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECS,
    now: float | None = None,
) -> Any:
    """Checks a delivery and returns its JSON (``{"type", "timestamp", "data"}``).

    ``headers`` may be any mapping (Django's ``request.headers``, a plain dict in any
    case); ``body`` must be the raw bytes as received, before any parsing.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        timestamp = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as missing:
        raise WebhookVerificationError(f"missing header {missing.args[0]}") from None
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    expected = base64.b64encode(
        hmac.new(_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    )
    # The header may carry several signatures (during a secret rotation): one must match.
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return json.loads(body)
    raise WebhookVerificationError("no valid signature")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_<base64>") from None
