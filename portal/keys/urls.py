from django.urls import path

from portal.keys import views

app_name = "keys"

urlpatterns = [
    # The user's panel and the users list: what reaches a user's keys too.
    path("sync/", views.sync_all, name="sync"),
    path("users/<str:prime_id>/role/preview/", views.user_role_preview, name="user-role-preview"),
    path("users/<str:prime_id>/role/", views.user_role, name="user-role"),
    path("users/<str:prime_id>/sync/", views.user_detail_resync, name="user-detail-resync"),
    # A user's keys.
    path("users/<str:prime_id>/", views.key_list, name="list"),
    path("users/<str:prime_id>/issue/", views.key_issue, name="issue"),
    path("users/<str:prime_id>/resync/", views.user_keys_resync, name="user-resync"),
    path("approved/<int:pk>/issue/", views.key_issue_approved, name="issue-approved"),
    path("<str:prime_key_id>/", views.key_row, name="row"),
    path("<str:prime_key_id>/allowlist/", views.key_allowlist, name="allowlist"),
    path(
        "<str:prime_key_id>/allowlist/preview/",
        views.key_allowlist_preview,
        name="allowlist-preview",
    ),
    path("<str:prime_key_id>/label/", views.key_label, name="label"),
    path("<str:prime_key_id>/revoke/", views.key_revoke, name="revoke"),
    path("<str:prime_key_id>/resync/", views.key_resync, name="resync"),
]
