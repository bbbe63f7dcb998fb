from tests.walk.cases import ALL_ROLES, Case

ADMIN = frozenset({"Admin"})


def _webhook(sandbox) -> dict:
    from portal.notifications.models import WebhookEndpoint

    endpoint, _ = WebhookEndpoint.objects.get_or_create(
        name="walk", defaults={"url": "https://hooks.example.test/walk"}
    )
    return {"pk": endpoint.pk}


CASES = [
    Case("notifications:inbox", allowed=ALL_ROLES),
    Case("notifications:read", allowed=ALL_ROLES, method="POST"),
    Case("notifications:preferences", allowed=ALL_ROLES),
    Case("notifications:preferences", allowed=ALL_ROLES, method="POST", data={}),
    Case("notifications:webhooks", allowed=ADMIN),
    Case(
        "notifications:webhooks",
        allowed=ADMIN,
        method="POST",
        data={"name": "w", "url": "https://hooks.example.test/w", "secret": "0123456789abcdef"},
    ),
    Case("notifications:webhook-edit", allowed=ADMIN, kwargs=_webhook),
    Case("notifications:webhook-delete", allowed=ADMIN, method="POST", kwargs=_webhook),
]
