from django.urls import path

from portal.settlement import views

app_name = "settlement"

urlpatterns = [
    path("", views.batch_list, name="batch-list"),
    path("new/", views.batch_create, name="batch-create"),
    path("requests/<int:change_id>/reject/", views.leg_reject, name="request-reject"),
    path("<str:prime_batch_id>/", views.batch_detail, name="batch-detail"),
    path("<str:prime_batch_id>/live/", views.batch_live, name="batch-live"),
    path("<str:prime_batch_id>/refresh/", views.batch_refresh, name="batch-refresh"),
    path("<str:prime_batch_id>/legs/request/", views.legs_request_all, name="legs-request-all"),
    path("<str:prime_batch_id>/legs/approve/", views.legs_approve, name="legs-approve"),
    path(
        "<str:prime_batch_id>/legs/<str:asset>/request/",
        views.leg_request,
        name="leg-request",
    ),
]
