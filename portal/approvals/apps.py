from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "portal.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # The approvals app registers its own kind (a policy change); every other app
        # registers its kinds from its own ready(), so this app imports none of them.
        from portal.approvals.kinds import register
        from portal.approvals.services.policy import PolicyChangeKind

        register(PolicyChangeKind())
