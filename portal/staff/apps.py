from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "portal.staff"
    label = "staff"
    verbose_name = "Portal staff"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.models import Group
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
        from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save

        from portal.staff import session_access, signals
        from portal.staff.models import PortalSecurity, Staff
        from portal.staff.roles import ensure_roles
        from portal.staff.selectors import two_factor_required_forget

        post_migrate.connect(ensure_roles, sender=self)
        user_logged_in.connect(signals.on_logged_in, dispatch_uid="portal-staff-logged-in")
        user_logged_in.connect(
            session_access.on_logged_in, dispatch_uid="portal-staff-access-logged-in"
        )
        user_login_failed.connect(signals.on_login_failed, dispatch_uid="portal-staff-failed")
        user_logged_out.connect(signals.on_logged_out, dispatch_uid="portal-staff-logged-out")
        user_locked_out.connect(signals.on_locked_out, dispatch_uid="portal-staff-locked-out")
        # Roles and permissions kept in the session (session_access.py) are dropped when
        # what decides them changes; the cached two-factor requirement when it is changed.
        m2m_changed.connect(
            session_access.on_groups_changed,
            sender=Staff.groups.through,
            dispatch_uid="portal-staff-access-groups",
        )
        m2m_changed.connect(
            session_access.on_user_permissions_changed,
            sender=Staff.user_permissions.through,
            dispatch_uid="portal-staff-access-user-perms",
        )
        m2m_changed.connect(
            session_access.on_group_permissions_changed,
            sender=Group.permissions.through,
            dispatch_uid="portal-staff-access-group-perms",
        )
        post_save.connect(
            session_access.on_staff_saved, sender=Staff, dispatch_uid="portal-staff-access-saved"
        )
        post_delete.connect(
            session_access.on_group_deleted, sender=Group, dispatch_uid="portal-staff-access-group"
        )
        post_save.connect(
            two_factor_required_forget,
            sender=PortalSecurity,
            dispatch_uid="portal-staff-two-factor-required",
        )
        post_delete.connect(
            two_factor_required_forget,
            sender=PortalSecurity,
            dispatch_uid="portal-staff-two-factor-required-deleted",
        )
