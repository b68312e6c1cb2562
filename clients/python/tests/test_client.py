"""The sync client against a real hub: every area a clinic back end calls."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import hub as hubs
import pytest
from conftest import as_user

from tidings import Client, Conflict, Invalid, NotFound, Unauthorized


def inbox(hub: hubs.Hub, client: Client, user_id: str) -> list[dict]:
    token = client.create_token(user_id, "provider")["token"]
    with as_user(hub, token) as browser:
        r = browser.get("/v1/me/notifications", params={"status": "all"})
        r.raise_for_status()
        return r.json()["items"]


def test_publish_to_a_user_with_the_extensions(hub: hubs.Hub, client: Client, uid: str) -> None:
    answer = client.publish(
        user_id=f"u-{uid}",
        title="New appointment",
        message="Ahmed booked Sun 10:00 — أحمد",
        type="warning",
        category="appointments",
        related={"type": "appointment", "id": "8a6f"},
        link="/appointments/8a6f",
        data={"n": 1},
        priority="high",
        escalate=[{"after_s": 600, "to": {"role": "front_desk"}}],
    )
    [created] = answer["notifications"]
    [seen] = inbox(hub, client, f"u-{uid}")
    assert seen["id"] == created["id"]
    assert (seen["title"], seen["message"], seen["type"], seen["priority"]) == (
        "New appointment",
        "Ahmed booked Sun 10:00 — أحمد",
        "warning",
        "high",
    )
    assert seen["related"] == {"type": "appointment", "id": "8a6f"}
    assert seen["data"] == {"n": 1}


def test_publish_sends_an_idempotency_key_and_a_given_one_replays(hub: hubs.Hub, uid: str) -> None:
    keys: list[str | None] = []
    http = httpx.Client(
        base_url=hub.url,
        headers={"Authorization": f"Bearer {hub.api_key}"},
        event_hooks={"request": [lambda r: keys.append(r.headers.get("Idempotency-Key"))]},
    )
    with Client(hub.url, hub.api_key, http=http) as client:
        first = client.publish(user_id=f"u-{uid}", title="t", message="m")
        second = client.publish(user_id=f"u-{uid}", title="t", message="m")
        assert first != second, "two calls are two notifications"
        replay_a = client.publish(user_id=f"u-{uid}", title="x", message="m", idempotency_key=f"k-{uid}")
        replay_b = client.publish(user_id=f"u-{uid}", title="x", message="m", idempotency_key=f"k-{uid}")
        assert replay_a == replay_b
        with pytest.raises(Conflict) as reused:
            client.publish(user_id=f"u-{uid}", title="other", message="m", idempotency_key=f"k-{uid}")
        assert reused.value.code == "idempotency_key_reused"
    assert all(keys) and len(set(keys[:2])) == 2
    assert len(inbox(hub, client, f"u-{uid}")) == 3


def test_directory_role_publish_and_pagination(client: Client, uid: str) -> None:
    role_users = [f"fd-{uid}-{i}" for i in range(3)]
    for user in role_users:
        assert client.put_user(user, "front_desk", name=f"Desk {user}", locale="ar")["role"] == "front_desk"
    listed = [u["user_id"] for u in client.paginate(client.list_users, role="front_desk", limit=1)]
    assert set(role_users) <= set(listed)
    assert len(listed) == len(set(listed)), "pages neither repeat nor skip"
    answer = client.publish(role="front_desk", title="Desk", message="all of you")
    assert set(role_users) <= {n["user_id"] for n in answer["notifications"]}
    many = client.publish(user_ids=[f"a-{uid}", f"b-{uid}"], title="t", message="m")
    assert sorted(n["user_id"] for n in many["notifications"]) == [f"a-{uid}", f"b-{uid}"]


def test_errors_carry_the_contract_code_and_field(hub: hubs.Hub, client: Client, uid: str) -> None:
    with pytest.raises(Invalid) as bad:
        client.publish(user_id=f"u-{uid}", title="t", message="m", priority="urgent")  # type: ignore[arg-type]
    assert (bad.value.status, bad.value.code, bad.value.field) == (422, "invalid", "priority")
    with pytest.raises(NotFound) as missing:
        client.get_message("00000000-0000-4000-8000-000000000000")
    assert missing.value.code == "not_found"
    with Client(hub.url, "tdk_wrong_key_0000000000") as stranger, pytest.raises(Unauthorized) as denied:
        stranger.list_users()
    assert denied.value.code == "unauthorized"
    with pytest.raises(ValueError, match="naive datetime"):
        client.send_message(to="+966501234567", body="hi", kind="billing", send_at=datetime(2030, 1, 1))


def test_tokens_and_revocation(hub: hubs.Hub, client: Client, uid: str) -> None:
    minted = client.create_token(f"u-{uid}", "admin", ttl_seconds=120, name="Sara", locale="ar")
    assert set(minted) == {"token", "expires_at"}
    with as_user(hub, minted["token"]) as browser:
        assert browser.get("/v1/me/unread-count").status_code == 200
        assert client.revoke_tokens(f"u-{uid}")["user_id"] == f"u-{uid}"
        assert browser.get("/v1/me/unread-count").status_code == 401


def test_templates_lifecycle(client: Client, uid: str) -> None:
    name = f"reminder.{uid}"
    fields = dict(name=name, channel="sms", kind="appointment_reminder", variables=["patient_name", "time"])
    created = client.create_template(
        **fields, body_en="Hi {patient_name}, see you at {time}", body_ar="مرحبا {patient_name}، موعدك {time}"
    )
    assert (created["version"], created["is_active"]) == (1, True)
    with pytest.raises(Conflict) as taken:
        client.create_template(**fields, body_en="x {patient_name} {time}", body_ar="y {patient_name} {time}")
    assert taken.value.code == "template_name_taken"
    updated = client.update_template(
        created["id"], **fields, body_en="Hello {patient_name} at {time}", body_ar="أهلا {patient_name} {time}"
    )
    assert updated["version"] == 2
    assert client.get_template(created["id"])["body_en"] == "Hello {patient_name} at {time}"
    rendered = client.test_template(created["id"], language="ar", variables={"patient_name": "أحمد", "time": "10:00"})
    assert rendered == {"subject": None, "body": "أهلا أحمد 10:00"}
    with pytest.raises(Invalid) as missing:
        client.test_template(created["id"], language="en", variables={"patient_name": "A"})
    assert (missing.value.code, missing.value.field) == ("missing_variables", "variables")
    assert "time" in missing.value.message
    assert client.toggle_template(created["id"])["is_active"] is False
    inactive = [t["name"] for t in client.paginate(client.list_templates, active=False, channel="sms")]
    assert name in inactive
    assert client.delete_template(created["id"]) == {}
    with pytest.raises(NotFound):
        client.get_template(created["id"])


def test_preferences_messages_cancel_and_stats(client: Client, uid: str) -> None:
    patient = f"p-{uid}"
    assert client.get_patient_preferences(patient)["stored"] is False
    stored = client.put_patient_preferences(
        patient,
        phone="+966501234567",
        email=f"{uid}@example.com",
        language="ar",
        preferred_channel="sms",
        kinds={"marketing": False},
    )
    assert (stored["language"], stored["kinds"]["marketing"]) == ("ar", False)
    assert client.get_patient_preferences(patient)["stored"] is True

    later = datetime.now(timezone.utc) + timedelta(days=1)
    queued = client.send_message(
        patient_id=patient, body="Your results are ready", kind="results", send_at=later, group_key=f"g-{uid}"
    )
    assert (queued["status"], queued["channel"]) == ("queued", "sms")
    suppressed = client.send_message(patient_id=patient, body="Offer", kind="marketing")
    assert (suppressed["status"], suppressed["reason"]) == ("suppressed", "kind_disabled")

    message = client.get_message(queued["id"])
    assert (message["status"], message["to"], message["language"]) == ("queued", "+966501234567", "ar")
    assert [m["id"] for m in client.list_messages(patient_id=patient, status="queued")["items"]] == [queued["id"]]
    assert client.cancel_message(queued["id"])["status"] == "cancelled"
    with pytest.raises(Conflict) as twice:
        client.cancel_message(queued["id"])
    assert twice.value.code == "invalid_status"

    template = client.create_template(
        name=f"bulk.{uid}", channel="sms", kind="billing", body_en="Invoice {n}", body_ar="فاتورة {n}", variables=["n"]
    )
    batch = client.send_bulk(
        template=template["name"],
        recipients=[{"to": "+966500000001", "variables": {"n": "1"}}, {"patient_id": patient, "variables": {"n": "2"}}],
        send_at=later,
        group_key=f"bulk-{uid}",
    )
    assert (batch["queued"], batch["suppressed"]) == (2, 0)
    assert client.get_batch(batch["batch_id"])["total"] == 2
    assert client.cancel_group(f"bulk-{uid}") == {"group_key": f"bulk-{uid}", "cancelled": 2}

    stats = client.message_stats(days=1)
    assert stats["by_status"]["cancelled"] >= 3 and stats["by_status"]["suppressed"] >= 1
    assert stats["total"] == sum(stats["by_status"].values())


def test_clinic_events_are_posted_once_per_id(client: Client, uid: str) -> None:
    start = datetime.now(timezone.utc) + timedelta(days=3)
    event = dict(
        id=f"evt-{uid}",
        type="appointment.arrived",
        occurred_at=datetime.now(timezone.utc),
        appointment={
            "id": f"apt-{uid}",
            "number": f"APT-{uid}",
            "start_at": start,
            "provider": {"id": f"dr-{uid}", "name": "Dr. Sara"},
            "patient": {"id": f"p-{uid}", "name": "Ahmed"},
        },
    )
    first = client.post_event(**event)  # type: ignore[arg-type]
    assert first["notifications"] == 1  # the provider hears of the arrival
    assert client.post_event(**event) == first  # type: ignore[arg-type]
    [logged] = client.list_events(appointment_id=f"apt-{uid}")["items"]
    assert (logged["id"], logged["type"], logged["outcome"]) == (f"evt-{uid}", "appointment.arrived", "applied")
