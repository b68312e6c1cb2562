"""Django integration: settings, ``notify()``, the ``{% tidings_bell %}`` tag, clinic events.

Settings:
    TIDINGS_URL          the hub as this server reaches it (required)
    TIDINGS_API_KEY      the tenant's API key (required)
    TIDINGS_PUBLIC_URL   the hub as browsers reach it (default TIDINGS_URL)
    TIDINGS_TOKEN_TTL    seconds a bell's token lives (default 3600)
    TIDINGS_USER_ROLE    callable or dotted path: user -> "admin" | "front_desk" |
                         "provider" | "patient" (default: :func:`default_user_role`)

Add ``"tidings.django"`` to ``INSTALLED_APPS`` for the template tag (``{% load tidings %}``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypedDict

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_save
from django.utils.module_loading import import_string

from .. import JSON, Client

__all__ = [
    "ClinicEvent",
    "connect_appointment_events",
    "default_user_role",
    "get_client",
    "mint_token",
    "notify",
    "send_clinic_event",
]

ROLES = ("admin", "front_desk", "provider", "patient")

_client: Client | None = None


def get_client() -> Client:
    """The client for TIDINGS_URL / TIDINGS_API_KEY, made once (it keeps a connection pool)."""
    global _client
    if _client is None:
        url = getattr(settings, "TIDINGS_URL", None)
        key = getattr(settings, "TIDINGS_API_KEY", None)
        if not url or not key:
            raise ImproperlyConfigured("tidings.django needs the settings TIDINGS_URL and TIDINGS_API_KEY")
        _client = Client(url, key)
    return _client


def _forget_client(*, setting: str, **kwargs: Any) -> None:
    # override_settings in tests (and settings changed at run time) must reach the client.
    global _client
    if setting.startswith("TIDINGS_") and _client is not None:
        _client.close()
        _client = None


setting_changed.connect(_forget_client)


def notify(
    user_id: Any,
    title: str,
    message: str,
    notification_type: str = "INFO",
    related_object_type: str | None = None,
    related_object_id: Any = None,
    **extra: Any,
) -> str:
    """Drop-in for the seed's ``create_notification_task(...)``: the same arguments.

    ``notification_type`` takes the seed's ``INFO | WARNING | ERROR | SUCCESS`` (any case);
    ``related_object_*`` become the notification's ``related``. ``extra`` goes to
    :meth:`tidings.Client.publish` as is (``category``, ``link``, ``priority``, ``data``...).
    Returns the notification's id; raises :class:`tidings.TidingsError` on failure
    (where the seed's task failed silently).
    """
    related = None
    if related_object_type is not None or related_object_id is not None:
        related = {"type": related_object_type, "id": None if related_object_id is None else str(related_object_id)}
    answer = get_client().publish(
        user_id=str(user_id),
        title=title,
        message=message,
        type=notification_type.lower(),  # type: ignore[arg-type]  # the hub names a bad one (422)
        related=related,
        **extra,
    )
    notifications: list[JSON] = answer["notifications"]
    return str(notifications[0]["id"])


def default_user_role(user: Any) -> str:
    """The user's ``role`` attribute when it is a hub role (the seed's User has one), else
    ``admin`` for a superuser; anything else is a configuration error, never a guess."""
    role = str(getattr(user, "role", "") or "").lower()
    if role in ROLES:
        return role
    if getattr(user, "is_superuser", False):
        return "admin"
    raise ImproperlyConfigured(
        f"no Tidings role for user {user.pk!r}: set TIDINGS_USER_ROLE to a function user -> one of {ROLES}"
    )


def _role_of(user: Any) -> str:
    configured = getattr(settings, "TIDINGS_USER_ROLE", default_user_role)
    resolver: Callable[[Any], str] = import_string(configured) if isinstance(configured, str) else configured
    return resolver(user)


def mint_token(user: Any, locale: str | None = None) -> JSON:
    """``{"token", "expires_at"}`` for a signed-in Django user (``sub`` is ``str(user.pk)``)."""
    name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return get_client().create_token(
        str(user.pk),
        _role_of(user),  # type: ignore[arg-type]  # checked by default_user_role or the hub
        ttl_seconds=int(getattr(settings, "TIDINGS_TOKEN_TTL", 3600)),
        name=name or user.get_username(),
        locale=locale,
    )


class ClinicEvent(TypedDict, total=False):
    """What :func:`connect_appointment_events`' ``describe`` returns for a change worth an event."""

    type: str  # required: appointment.booked, appointment.confirmed, ...
    appointment: Mapping[str, Any]  # required: the contract's appointment object
    id: str  # default: a new UUID (the hub drops a repeated id)
    occurred_at: datetime | str  # default: now


def send_clinic_event(event: ClinicEvent) -> JSON:
    """``POST /v1/events`` for one appointment change → the hub's counts."""
    return get_client().post_event(
        id=event.get("id") or str(uuid.uuid4()),
        type=event["type"],
        occurred_at=event.get("occurred_at") or datetime.now(timezone.utc),
        appointment=event["appointment"],
    )


def connect_appointment_events(
    model: type[Model],
    describe: Callable[[Any, bool], ClinicEvent | None],
    *,
    dispatch_uid: str | None = None,
) -> None:
    """Posts a clinic event for each saved ``model`` instance that ``describe(instance, created)``
    turns into one (None: no event).

    The event is built at save time, from the instance as saved, and sent once the
    transaction commits: a rolled-back change must not notify anybody. A failure to
    send raises from the commit (Django's ``on_commit``), like any error of the save.
    """

    def on_save(sender: type[Model], instance: Any, created: bool, **kwargs: Any) -> None:
        event = describe(instance, created)
        if event is not None:
            event.setdefault("id", str(uuid.uuid4()))
            event.setdefault("occurred_at", datetime.now(timezone.utc))
            transaction.on_commit(lambda: send_clinic_event(event), using=kwargs.get("using"))

    post_save.connect(on_save, sender=model, weak=False, dispatch_uid=dispatch_uid or f"tidings:{model._meta.label}")
