"""The clinic's signal wiring: appointment changes become clinic events (the seed's appointments/signals.py)."""

from typing import Any

from tidings.django import ClinicEvent, connect_appointment_events

from .models import Appointment

STATUS_EVENTS = {
    "CONFIRMED": "appointment.confirmed",
    "ARRIVED": "appointment.arrived",
    "CANCELLED": "appointment.cancelled",
}


def describe(appointment: Appointment, created: bool) -> ClinicEvent | None:
    event_type = "appointment.booked" if created else STATUS_EVENTS.get(appointment.status)
    if event_type is None:
        return None
    payload: dict[str, Any] = {
        "id": str(appointment.id),
        "number": appointment.number,
        "start_at": appointment.start_at,
        "provider": {"id": appointment.provider_id, "name": appointment.provider_name},
        "patient": {"id": appointment.patient_id, "name": appointment.patient_name},
    }
    return {"type": event_type, "appointment": payload}


def connect() -> None:
    connect_appointment_events(Appointment, describe)
