from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "portal.staff"
    label = "staff"
    verbose_name = "Portal staff"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from portal.staff.roles import ensure_roles

        post_migrate.connect(ensure_roles, sender=self)
