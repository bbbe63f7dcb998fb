"""The trail's pages read the same events the ledger's tests record."""

from tests.audit.conftest import clock, varied_events  # noqa: F401 - fixtures shared with the ledger
