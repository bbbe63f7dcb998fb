from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "portal.keys"
    label = "keys"

    def ready(self) -> None:
        from portal.keys.approvals import register_kinds

        register_kinds()
