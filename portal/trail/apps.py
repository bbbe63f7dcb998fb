from django.apps import AppConfig


class TrailConfig(AppConfig):
    name = "portal.trail"
    label = "trail"
