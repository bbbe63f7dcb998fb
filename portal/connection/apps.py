from django.apps import AppConfig


class ConnectionConfig(AppConfig):
    name = "portal.connection"
    label = "connection"
    verbose_name = "Prime connection"

    def ready(self) -> None:
        from portal.connection import checks  # noqa: F401 - registers the system checks
