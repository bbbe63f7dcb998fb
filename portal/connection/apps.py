from django.apps import AppConfig


class ConnectionConfig(AppConfig):
    name = "portal.connection"
    label = "connection"
    verbose_name = "Prime connection"
