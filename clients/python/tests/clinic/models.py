import uuid

from django.db import models


class Appointment(models.Model):
    """The seed's appointment, cut to what a clinic event carries."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    number = models.CharField(max_length=40)
    status = models.CharField(max_length=20, default="BOOKED")
    start_at = models.DateTimeField()
    provider_id = models.CharField(max_length=40)
    provider_name = models.CharField(max_length=100)
    patient_id = models.CharField(max_length=40)
    patient_name = models.CharField(max_length=100)
