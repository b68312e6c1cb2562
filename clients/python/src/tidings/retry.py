"""When to send a request again: a pure decision, table-tested in tests/test_retry.py.

Only 429 (rate limited) and 503 (unavailable, overloaded) are retried: the hub has
written nothing for them, and the writes that create things carry an Idempotency-Key
that stays the same on every attempt, so a retry can never create a second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

RETRIED_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    # Attempts after the first one.
    max_retries: int = 3
    # The longest wait we accept: a Retry-After beyond it raises at once instead of
    # blocking the caller (a clinic page or worker) for minutes.
    max_wait: float = 30.0
    # Wait before retry n (0-based) when the hub gave no Retry-After: base * 2**n.
    backoff_base: float = 0.5


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retry_delay(status: int, retry_after: float | None, attempt: int, policy: RetryPolicy) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to stop and raise."""
    if status not in RETRIED_STATUSES or attempt >= policy.max_retries:
        return None
    wait = retry_after if retry_after is not None else policy.backoff_base * 2**attempt
    return wait if wait <= policy.max_wait else None
