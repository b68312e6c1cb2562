"""tidings.django in a tiny Django project (tests/django_project) against the real hub."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import hub as hubs
import pytest
from clinic.models import Appointment
from conftest import as_user
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import Client as Browser

from tidings import Client, Invalid
from tidings.django import notify


@pytest.fixture(autouse=True)
def tidings_settings(settings: Any, hub: hubs.Hub) -> None:
    settings.TIDINGS_URL = hub.url
    settings.TIDINGS_API_KEY = hub.api_key


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_notify_takes_the_seeds_arguments(hub: hubs.Hub, client: Client) -> None:
    user_id, appointment_id = uuid.uuid4(), uuid.uuid4()
    notification_id = notify(
        user_id=user_id,
        title="Patient arrived",
        message="Ahmed is at the front desk",
        notification_type="WARNING",
        related_object_type="appointment",
        related_object_id=appointment_id,
    )
    token = client.create_token(str(user_id), "provider")["token"]
    with as_user(hub, token) as browser:
        [seen] = browser.get("/v1/me/notifications").json()["items"]
    assert seen["id"] == notification_id
    assert (seen["title"], seen["type"], seen["user_id"]) == ("Patient arrived", "warning", str(user_id))
    assert seen["related"] == {"type": "appointment", "id": str(appointment_id)}
    # Beyond the seed's arguments, publish's own go through.
    extra_id = notify(user_id, "Lab", "Results ready", category="lab_results", priority="critical", link="/labs/9")
    with as_user(hub, token) as browser:
        extra = browser.get("/v1/me/notifications").json()["items"][0]
    assert (extra["id"], extra["type"], extra["category"], extra["priority"], extra["link"], extra["related"]) == (
        extra_id,
        "info",
        "lab_results",
        "critical",
        "/labs/9",
        None,
    )
    with pytest.raises(Invalid) as bad:
        notify(user_id, "t", "m", notification_type="URGENT")
    assert bad.value.field == "type"


def test_notify_without_settings_is_a_configuration_error(settings: Any) -> None:
    del settings.TIDINGS_API_KEY
    with pytest.raises(ImproperlyConfigured, match="TIDINGS_API_KEY"):
        notify("u-1", "t", "m")


@pytest.mark.django_db
def test_the_bell_tag_mints_a_token_for_request_user(hub: hubs.Hub) -> None:
    user = User.objects.create_user("desk-amal", first_name="Amal", last_name="Saad")
    browser = Browser()
    browser.force_login(user)
    html = browser.get("/").content.decode()
    match = re.search(
        r'<tidings-bell url="([^"]+)" token="([^"]+)" history-url="/notifications/"></tidings-bell>', html
    )
    assert match, html
    assert match.group(1) == hub.url
    token = match.group(2)
    assert (claims(token)["sub"], claims(token)["role"], claims(token)["name"]) == (
        str(user.pk),
        "front_desk",
        "Amal Saad",
    )
    with as_user(hub, token) as hub_browser:
        assert hub_browser.get("/v1/me/unread-count").status_code == 200


@pytest.mark.django_db
def test_the_bell_tag_renders_nothing_for_a_visitor() -> None:
    assert "tidings-bell" not in Browser().get("/").content.decode()


def test_the_bell_tag_needs_the_request_in_the_context() -> None:
    with pytest.raises(ImproperlyConfigured, match="context_processors.request"):
        Template("{% load tidings %}{% tidings_bell %}").render(Context({}))


@pytest.mark.django_db(transaction=True)
def test_appointment_changes_are_posted_as_clinic_events(client: Client) -> None:
    appointment = Appointment.objects.create(
        number="APT-2026-000123",
        start_at=datetime.now(timezone.utc) + timedelta(days=2),
        provider_id=f"dr-{uuid.uuid4().hex[:8]}",
        provider_name="Dr. Sara Al-Harbi",
        patient_id=f"p-{uuid.uuid4().hex[:8]}",
        patient_name="Ahmed Al-Saud",
    )
    appointment.status = "ARRIVED"
    appointment.save()
    appointment.status = "IN_ROOM"  # no event for this one
    appointment.save()
    events = client.list_events(appointment_id=str(appointment.id))["items"]
    assert [e["type"] for e in events] == ["appointment.arrived", "appointment.booked"]
    assert events[1]["payload"]["appointment"]["number"] == "APT-2026-000123"
    assert events[0]["result"]["notifications"] == 1, "the provider heard of the arrival"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_posts_nothing(client: Client) -> None:
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        appointment = Appointment.objects.create(
            number="APT-ROLLBACK",
            start_at=datetime.now(timezone.utc) + timedelta(days=2),
            provider_id="dr-rb",
            provider_name="Dr. R",
            patient_id="p-rb",
            patient_name="P",
        )
        raise RuntimeError("the view failed after the save")
    assert client.list_events(appointment_id=str(appointment.id))["items"] == []
