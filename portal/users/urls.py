from django.urls import path

from portal.users import views

app_name = "users"

urlpatterns = [
    path("", views.user_list, name="list"),
    path("new/", views.user_create, name="create"),
    path("sync/", views.sync_all, name="sync"),
    path("<str:prime_id>/", views.user_detail, name="detail"),
    path("<str:prime_id>/rename/", views.user_rename, name="rename"),
    path("<str:prime_id>/status/", views.user_status, name="status"),
    path("<str:prime_id>/role/preview/", views.user_role_preview, name="role-preview"),
    path("<str:prime_id>/role/", views.user_role, name="role"),
    path("<str:prime_id>/labels/", views.user_labels, name="labels"),
    path("<str:prime_id>/reviewed/", views.user_review, name="review"),
    path("<str:prime_id>/resync/", views.user_resync, name="resync"),
]
