from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "portal.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Events come from the audit trail: a notification is written in the same
        # transaction as the audit event of the change it reports.
        from portal.notifications import receivers  # noqa: F401
