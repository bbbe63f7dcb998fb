from django.apps import AppConfig


class SettlementConfig(AppConfig):
    name = "portal.settlement"
    label = "settlement"

    def ready(self) -> None:
        # Settlement's kinds of change on the approvals engine (one four-eyes implementation).
        from portal.approvals.kinds import register
        from portal.settlement.approvals import BatchCreateKind, SettlementLegKind

        register(SettlementLegKind())
        register(BatchCreateKind())
