from __future__ import annotations

import pytest

from tests.notifications.receivers import SmtpServer, WebhookReceiver

SECRET = "whsec-test-0123456789abcdef"


@pytest.fixture
def smtp(settings):
    server = SmtpServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_TIMEOUT = 3
    yield server
    server.stop()


@pytest.fixture
def hook_receiver():
    receiver = WebhookReceiver(SECRET)
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def webhook(db, hook_receiver):
    from portal.connection.crypto import encrypt_secret
    from portal.notifications.models import WebhookEndpoint

    return WebhookEndpoint.objects.create(
        name="ops-channel", url=hook_receiver.url, secret_token=encrypt_secret(SECRET)
    )


@pytest.fixture(autouse=True)
def _no_queue_kick(settings):
    settings.NOTIFY_KICK_WORKER = False
    settings.PORTAL_BASE_URL = "https://portal.example.test"
