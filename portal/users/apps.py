from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "portal.users"
    label = "users"

    def ready(self) -> None:
        from portal.users.approvals import register_kinds

        register_kinds()
