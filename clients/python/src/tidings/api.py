"""Every call a clinic back end makes to the hub, written once.

``Api[R]`` builds a :class:`Call` per operation and hands it to ``_send``; the sync
client's ``_send`` returns the answer (``R`` = ``JSON``), the async client's returns an
awaitable of it (``R`` = ``Awaitable[JSON]``). So each operation, its path, its body
and its idempotency rule exist in one place for both clients.

Answers are the hub's JSON objects as documented in docs/API.md (the shapes are the
contract's; this package does not copy them into classes that could drift).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

JSON = dict[str, Any]
R = TypeVar("R")

Role = Literal["admin", "front_desk", "provider", "patient"]
Priority = Literal["low", "normal", "high", "critical"]
NotificationType = Literal["info", "warning", "error", "success"]
Channel = Literal["sms", "whatsapp", "email"]
Language = Literal["en", "ar"]
When = datetime | str


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API, before it is sent (and sent again, unchanged, on retry)."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, Any] | None = None
    # Sent as the Idempotency-Key header; fixed here, so every retry carries the same one.
    idempotency_key: str | None = None


def _path(*segments: str) -> str:
    # Ids come from callers (a Django pk, a patient number): never let one add a path segment.
    return "/v1/" + "/".join(quote(str(s), safe="") for s in segments)


def _fields(**values: Any) -> JSON:
    """The body's fields that were given: an absent optional field is left to the hub's default."""
    return {k: v for k, v in values.items() if v is not None}


def _key(given: str | None) -> str:
    return given if given is not None else str(uuid.uuid4())


class Api(Generic[R]):
    """The operations; see :class:`tidings.Client` and :class:`tidings.AsyncClient`."""

    def _send(self, call: Call) -> R:
        raise NotImplementedError

    # Publishing in-app notifications

    def publish(
        self,
        *,
        title: str,
        message: str,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
        role: Role | None = None,
        type: NotificationType | None = None,
        category: str | None = None,
        related: Mapping[str, Any] | None = None,
        link: str | None = None,
        data: Any = None,
        priority: Priority | None = None,
        escalate: Sequence[Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        """``POST /v1/notifications`` to exactly one of ``user_id``, ``user_ids``, ``role``.

        → ``{"notifications": [{"id", "user_id"}, ...]}``. An Idempotency-Key is made up
        when none is given, so the client's own retries never publish twice; pass your
        own (e.g. derived from the change that caused it) to make *your* retries safe too.
        """
        body = _fields(
            user_id=user_id,
            user_ids=list(user_ids) if user_ids is not None else None,
            role=role,
            title=title,
            message=message,
            type=type,
            category=category,
            related=related,
            link=link,
            data=data,
            priority=priority,
            escalate=escalate,
        )
        return self._send(Call("POST", _path("notifications"), body, idempotency_key=_key(idempotency_key)))

    # Tokens and the user directory

    def create_token(
        self,
        user_id: str,
        role: Role,
        *,
        ttl_seconds: int | None = None,
        name: str | None = None,
        locale: str | None = None,
    ) -> R:
        """``POST /v1/tokens`` → ``{"token", "expires_at"}``: a user token for a browser."""
        body = _fields(user_id=user_id, role=role, ttl_seconds=ttl_seconds, name=name, locale=locale)
        return self._send(Call("POST", _path("tokens"), body))

    def revoke_tokens(self, user_id: str) -> R:
        """``POST /v1/users/{id}/revoke-tokens``: every token of the user issued before now stops working."""
        return self._send(Call("POST", _path("users", user_id, "revoke-tokens")))

    def put_user(self, user_id: str, role: Role, *, name: str | None = None, locale: str | None = None) -> R:
        """``PUT /v1/users/{id}``: adds or replaces a user of the directory (what ``role`` publishes reach)."""
        return self._send(Call("PUT", _path("users", user_id), _fields(role=role, name=name, locale=locale)))

    def list_users(self, *, role: Role | None = None, limit: int | None = None, cursor: str | None = None) -> R:
        """``GET /v1/users`` → ``{"items", "next_cursor"}``."""
        return self._send(Call("GET", _path("users"), params=_fields(role=role, limit=limit, cursor=cursor)))

    # Clinic events

    def post_event(
        self,
        *,
        id: str,
        type: str,
        occurred_at: When,
        appointment: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> R:
        """``POST /v1/events`` → ``{"notifications", "messages", "reminders_scheduled", "reminders_cancelled"}``.

        The event ``id`` is the idempotency key here (the hub answers a repeated id with
        the first answer): give the same id when you send the same change again.
        """
        body = _fields(id=id, type=type, occurred_at=occurred_at, appointment=appointment, **fields)
        return self._send(Call("POST", _path("events"), body))

    def list_events(
        self, *, appointment_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> R:
        """``GET /v1/events`` → the event log, newest first."""
        params = _fields(appointment_id=appointment_id, limit=limit, cursor=cursor)
        return self._send(Call("GET", _path("events"), params=params))

    # Messages to patients

    def send_message(
        self,
        *,
        patient_id: str | None = None,
        to: str | None = None,
        channel: Channel | None = None,
        template: str | None = None,
        body: str | None = None,
        subject: str | None = None,
        language: Language | None = None,
        variables: Mapping[str, str] | None = None,
        kind: str | None = None,
        send_at: When | None = None,
        group_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        """``POST /v1/messages`` → ``{"id", "status": "queued", "channel"}`` or a ``suppressed`` answer."""
        payload = _fields(
            patient_id=patient_id,
            to=to,
            channel=channel,
            template=template,
            body=body,
            subject=subject,
            language=language,
            variables=variables,
            kind=kind,
            send_at=send_at,
            group_key=group_key,
        )
        return self._send(Call("POST", _path("messages"), payload, idempotency_key=_key(idempotency_key)))

    def send_bulk(
        self,
        *,
        template: str,
        recipients: Sequence[Mapping[str, Any]],
        channel: Channel | None = None,
        send_at: When | None = None,
        group_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> R:
        """``POST /v1/messages/bulk`` → ``{"batch_id", "queued", "suppressed"}``."""
        payload = _fields(
            template=template, recipients=list(recipients), channel=channel, send_at=send_at, group_key=group_key
        )
        return self._send(Call("POST", _path("messages", "bulk"), payload, idempotency_key=_key(idempotency_key)))

    def get_message(self, message_id: str) -> R:
        """``GET /v1/messages/{id}``: the message, its status and its events."""
        return self._send(Call("GET", _path("messages", message_id)))

    def list_messages(
        self,
        *,
        status: str | None = None,
        channel: Channel | None = None,
        template: str | None = None,
        from_: When | None = None,
        to: When | None = None,
        q: str | None = None,
        patient_id: str | None = None,
        batch_id: str | None = None,
        group_key: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> R:
        """``GET /v1/messages`` (``from_`` is the ``from`` filter) → ``{"items", "next_cursor"}``."""
        params = _fields(
            status=status,
            channel=channel,
            template=template,
            to=to,
            q=q,
            patient_id=patient_id,
            batch_id=batch_id,
            group_key=group_key,
            limit=limit,
            cursor=cursor,
        )
        if from_ is not None:
            params["from"] = from_
        return self._send(Call("GET", _path("messages"), params=params))

    def cancel_message(self, message_id: str) -> R:
        """``POST /v1/messages/{id}/cancel``: only a still queued message (else ``Conflict`` ``invalid_status``)."""
        return self._send(Call("POST", _path("messages", message_id, "cancel")))

    def cancel_group(self, group_key: str) -> R:
        """``POST /v1/messages/cancel`` → ``{"group_key", "cancelled"}``: every queued message of the group."""
        return self._send(Call("POST", _path("messages", "cancel"), {"group_key": group_key}))

    def retry_message(self, message_id: str) -> R:
        """``POST /v1/messages/{id}/retry``: a failed or bounced message, queued again."""
        return self._send(Call("POST", _path("messages", message_id, "retry")))

    def get_batch(self, batch_id: str) -> R:
        """``GET /v1/messages/batches/{id}`` → a bulk's counts by status."""
        return self._send(Call("GET", _path("messages", "batches", batch_id)))

    def message_stats(self, *, days: int | None = None) -> R:
        """``GET /v1/messages/stats?days=`` → totals, by status and channel, success rate, daily, cost."""
        return self._send(Call("GET", _path("messages", "stats"), params=_fields(days=days)))

    # Templates

    def create_template(
        self,
        *,
        name: str,
        channel: Channel,
        kind: str,
        body_en: str,
        body_ar: str,
        variables: Sequence[str] = (),
        subject_en: str | None = None,
        subject_ar: str | None = None,
        is_active: bool | None = None,
    ) -> R:
        """``POST /v1/templates`` → the template (version 1)."""
        body = _template(name, channel, kind, body_en, body_ar, variables, subject_en, subject_ar, is_active)
        return self._send(Call("POST", _path("templates"), body))

    def update_template(
        self,
        template_id: str,
        *,
        name: str,
        channel: Channel,
        kind: str,
        body_en: str,
        body_ar: str,
        variables: Sequence[str] = (),
        subject_en: str | None = None,
        subject_ar: str | None = None,
        is_active: bool | None = None,
    ) -> R:
        """``PUT /v1/templates/{id}`` (the whole template) → its next version."""
        body = _template(name, channel, kind, body_en, body_ar, variables, subject_en, subject_ar, is_active)
        return self._send(Call("PUT", _path("templates", template_id), body))

    def list_templates(
        self,
        *,
        channel: Channel | None = None,
        kind: str | None = None,
        active: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> R:
        """``GET /v1/templates`` → ``{"items", "next_cursor"}``."""
        params = _fields(channel=channel, kind=kind, limit=limit, cursor=cursor)
        if active is not None:
            params["active"] = "true" if active else "false"
        return self._send(Call("GET", _path("templates"), params=params))

    def get_template(self, template_id: str) -> R:
        """``GET /v1/templates/{id}``: the current version."""
        return self._send(Call("GET", _path("templates", template_id)))

    def delete_template(self, template_id: str) -> R:
        """``DELETE /v1/templates/{id}`` (answers ``{}``); ``Conflict`` ``template_in_use`` if rules send it."""
        return self._send(Call("DELETE", _path("templates", template_id)))

    def toggle_template(self, template_id: str) -> R:
        """``POST /v1/templates/{id}/toggle``: ``is_active`` flipped."""
        return self._send(Call("POST", _path("templates", template_id, "toggle")))

    def test_template(self, template_id: str, *, language: Language, variables: Mapping[str, str]) -> R:
        """``POST /v1/templates/{id}/test`` → ``{"subject", "body"}``; ``Invalid`` ``missing_variables`` names each."""
        body = {"language": language, "variables": dict(variables)}
        return self._send(Call("POST", _path("templates", template_id, "test"), body))

    # Webhooks to the clinic's systems (verify deliveries with tidings.webhooks.verify_webhook)

    def create_webhook_endpoint(self, url: str, event_types: Sequence[str], *, enabled: bool | None = None) -> R:
        """``POST /v1/webhook-endpoints`` → the endpoint with its ``secret`` (shown only here)."""
        body = _fields(url=url, event_types=list(event_types), enabled=enabled)
        return self._send(Call("POST", _path("webhook-endpoints"), body))

    def list_webhook_endpoints(self, *, limit: int | None = None, cursor: str | None = None) -> R:
        """``GET /v1/webhook-endpoints`` → ``{"items", "next_cursor"}`` (without secrets)."""
        return self._send(Call("GET", _path("webhook-endpoints"), params=_fields(limit=limit, cursor=cursor)))

    def delete_webhook_endpoint(self, endpoint_id: str) -> R:
        """``DELETE /v1/webhook-endpoints/{id}``: the endpoint, its waiting deliveries and its log."""
        return self._send(Call("DELETE", _path("webhook-endpoints", endpoint_id)))

    # Patient preferences

    def get_patient_preferences(self, patient_id: str) -> R:
        """``GET /v1/patients/{id}/preferences`` (the defaults with ``"stored": false`` for a new patient)."""
        return self._send(Call("GET", _path("patients", patient_id, "preferences")))

    def put_patient_preferences(
        self,
        patient_id: str,
        *,
        phone: str | None = None,
        email: str | None = None,
        language: Language | None = None,
        preferred_channel: Channel | None = None,
        channels: Mapping[str, bool] | None = None,
        kinds: Mapping[str, bool] | None = None,
    ) -> R:
        """``PUT /v1/patients/{id}/preferences``: replaces them all (absent switches take their defaults)."""
        body = _fields(
            phone=phone,
            email=email,
            language=language,
            preferred_channel=preferred_channel,
            channels=channels,
            kinds=kinds,
        )
        return self._send(Call("PUT", _path("patients", patient_id, "preferences"), body))


def _template(
    name: str,
    channel: str,
    kind: str,
    body_en: str,
    body_ar: str,
    variables: Sequence[str],
    subject_en: str | None,
    subject_ar: str | None,
    is_active: bool | None,
) -> JSON:
    return _fields(
        name=name,
        channel=channel,
        kind=kind,
        body_en=body_en,
        body_ar=body_ar,
        variables=list(variables),
        subject_en=subject_en,
        subject_ar=subject_ar,
        is_active=is_active,
    )
