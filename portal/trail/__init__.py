"""The audit trail's pages: the explorer, an event's detail, exports and history links.

The ledger itself (recording, the hash chain, verification, export files) is the
`portal.audit` app, which every other app writes to; these pages sit above the staff
app (they check permissions), so they live apart and the ledger depends on nothing above it.
"""
