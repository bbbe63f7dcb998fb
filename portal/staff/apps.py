from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "portal.staff"
    label = "staff"
    verbose_name = "Portal staff"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
        from django.db.models.signals import post_migrate

        from portal.staff import signals
        from portal.staff.roles import ensure_roles

        post_migrate.connect(ensure_roles, sender=self)
        user_logged_in.connect(signals.on_logged_in, dispatch_uid="portal-staff-logged-in")
        user_login_failed.connect(signals.on_login_failed, dispatch_uid="portal-staff-failed")
        user_logged_out.connect(signals.on_logged_out, dispatch_uid="portal-staff-logged-out")
        user_locked_out.connect(signals.on_locked_out, dispatch_uid="portal-staff-locked-out")
