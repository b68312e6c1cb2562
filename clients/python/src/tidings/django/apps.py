from django.apps import AppConfig


class TidingsConfig(AppConfig):
    name = "tidings.django"
    # The module's last part, "django", would be the default label: a confusing one.
    label = "tidings"
    verbose_name = "Tidings"
