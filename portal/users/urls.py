from django.urls import path

from portal.users import views

app_name = "users"

# The role change and the resyncs reach the user's keys too: they are served by the keys
# app (keys:user-role-preview, keys:user-role, keys:user-detail-resync, keys:sync).
urlpatterns = [
    path("", views.user_list, name="list"),
    path("new/", views.user_create, name="create"),
    path("<str:prime_id>/", views.user_detail, name="detail"),
    path("<str:prime_id>/rename/", views.user_rename, name="rename"),
    path("<str:prime_id>/status/", views.user_status, name="status"),
    path("<str:prime_id>/labels/", views.user_labels, name="labels"),
    path("<str:prime_id>/reviewed/", views.user_review, name="review"),
]
