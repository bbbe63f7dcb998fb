"""The bench's URLconf: the portal's own URLs plus Django's admin over the audit trail.

The admin is the anchor "what a team gets for free": a plain `ModelAdmin` for
AuditEvent with the list columns, filters and search a team would add on day one.
It lives on its own `AdminSite` so nothing else is exposed, and only here.
"""

from django.contrib import admin
from django.urls import path

from portal.audit.models import AuditEvent
from portal.urls import handler403, handler404, handler500
from portal.urls import urlpatterns as portal_urlpatterns

bench_admin = admin.AdminSite(name="bench_admin")


class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "outcome",
    )
    list_filter = ("action", "outcome", "target_type")
    search_fields = ("actor_label", "target_id")


bench_admin.register(AuditEvent, AuditEventAdmin)

urlpatterns = [path("bench-admin/", bench_admin.urls), *portal_urlpatterns]

__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]
