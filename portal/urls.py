"""Top-level URLs: one namespace per app."""

from django.urls import include, path

from portal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("staff/", include("portal.staff.urls")),
    path("audit/", include("portal.trail.urls")),
    path("prime-users/", include("portal.users.urls")),
    path("keys/", include("portal.keys.urls")),
    path("settlement/", include("portal.settlement.urls")),
    path("connection/", include("portal.connection.urls")),
    path("approvals/", include("portal.approvals.urls")),
]

handler403 = "portal.web.permission_denied"
handler404 = "portal.web.page_not_found"
handler500 = "portal.web.server_error"
