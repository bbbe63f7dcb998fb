from django.apps import AppConfig


class ConnectionConfig(AppConfig):
    name = "portal.connection"
    label = "connection"
    verbose_name = "Prime connection"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from portal.connection import checks  # noqa: F401 - registers the system checks
        from portal.connection.models import ConnectionHealth, StoredConnection
        from portal.connection.selectors import connection_status_forget, connection_status_warm

        # The status strip is cached for a few seconds; a change here drops it at once.
        for model in (StoredConnection, ConnectionHealth):
            for signal in (post_save, post_delete):
                signal.connect(
                    connection_status_forget,
                    sender=model,
                    dispatch_uid=f"portal-connection-status-{model.__name__}-{signal is post_save}",
                )
        from django.contrib.auth.signals import user_logged_in

        user_logged_in.connect(connection_status_warm, dispatch_uid="portal-connection-status-warm")
