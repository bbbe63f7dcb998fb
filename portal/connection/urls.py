from django.urls import path

from portal.connection import views

app_name = "connection"

urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("save/", views.save, name="save"),
    path("test/", views.test, name="test"),
    path("clear/", views.clear, name="clear"),
]
