from django.urls import path

from portal.trail import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="list"),
    path("export/", views.event_export, name="export"),
    path("<int:seq>/", views.event_detail, name="detail"),
]
