from django.apps import AppConfig


class FleetConfig(AppConfig):
    """The fleet domain: miners, their credentials, telemetry and actions."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "fleet"

    def ready(self) -> None:
        from fleet import observability

        observability.register()
