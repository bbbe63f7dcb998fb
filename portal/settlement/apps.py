from django.apps import AppConfig


class SettlementConfig(AppConfig):
    name = "portal.settlement"
    label = "settlement"
