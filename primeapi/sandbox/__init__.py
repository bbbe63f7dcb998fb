"""A faithful local Kraken Prime REST server (stdlib HTTP, never imports Django).

Command line
============

::

    python -m primeapi.sandbox --host 127.0.0.1 --port 8765 --credentials-file PATH \\
        [--state PATH] [--demo] [--auto-confirm-after SECONDS] \\
        [--transfer-delay SECONDS] [--rate-limit off|starter|intermediate|pro] [--quiet]

Writes ``{"api_key", "api_secret", "url"}`` of the account's admin key to PATH (mode
0600), prints ``Kraken Prime sandbox listening on <url>``, and stops cleanly on
SIGINT/SIGTERM. ``--port 0`` picks a free port. With ``--state`` the whole state
(users, keys with the secrets needed to verify, nonces, trades, batches, transfers,
call log) is saved atomically (0600) after every change and reloaded on restart, so
the admin credentials stay the same. Request lines (never headers or bodies) are
logged to stderr unless ``--quiet``.

In-process API (tests)
======================

::

    from primeapi.sandbox import SandboxServer

    with SandboxServer(port=0, rate_limit="off") as sandbox:   # or .start() / .stop()
        sandbox.url            # "http://127.0.0.1:<port>"
        sandbox.admin_key      # public admin key; sandbox.admin_secret: base64 secret
        sandbox.admin_credentials()   # {"api_key", "api_secret", "url"}
        sandbox.control.add_trades(count=5)          # SandboxControl, see below

``SandboxServer(host="127.0.0.1", port=0, *, state_path=None, demo=False,
auto_confirm_after=None, transfer_delay=None, rate_limit="off", verbose=False,
clock=None)``: ``clock`` is a ``primeapi.sandbox.clock`` clock (default ``SystemClock``,
real time; ``ManualClock`` stands still until advanced); ``sandbox.advance_clock(s)``.
``SandboxControl(url)`` (``primeapi.sandbox.control``) wraps every control route:
``health``, ``state``, ``reset(demo=)``, ``trades(status)``, ``add_trades(trades |
count=, asset_kind=)``, ``confirm_batch``, ``set_can_settle``, ``complete_transfer``,
``fail_transfer``, ``complete_pending_transfers``, ``settings``, ``update_settings(**)``,
``clear_lockouts``, ``clock``, ``advance_clock(seconds)``,
``inject_fault(kind, endpoint="*", count=1, seconds=None)``, ``faults``, ``clear_faults``,
``calls(endpoint=, executed=, since=)``, ``clear_calls``.
Errors raise ``SandboxControlError`` (``.status``, ``.message``).

Control API (``/_sandbox/...``, JSON, no auth — bind to loopback only)
=====================================================================

Errors: HTTP 4xx with ``{"error": "message"}``.

=========================================  ==================================================
``GET  /_sandbox/health``                  ``{"ok": true}``
``GET  /_sandbox/state``                   summary: ``admin_key`` (public), ``users``, ``keys``
                                           (id, api_key, user_id, admin, whitelisted_ips,
                                           last_nonce — never secrets), ``trades`` {total,
                                           pending{currency, tokenized_equity}}, ``batches``
                                           (as GetPrimeSettlementBatch), ``transfers``,
                                           ``settings``, ``faults``, ``calls`` (count),
                                           ``last_call_seq``
``POST /_sandbox/reset``                   ``{"demo": false}`` — forget everything except the
                                           admin key (its nonce history stays); also clears
                                           faults, lockouts, the call log
``GET  /_sandbox/trades?status=``          ``pending`` (default) | ``batched`` | ``all`` →
                                           ``{"trades": [...]}``
``POST /_sandbox/trades``                  ``{"trades": [{"base": "BTC", "quote": "USD",
                                           "side": "buy", "volume": "1.5", "price": "30000",
                                           "asset_kind"?, "id"?, "created_at"? (ms)}]}`` or
                                           ``{"count": N, "asset_kind": "currency"}`` (random,
                                           realistic) → ``{"trades": [...]}``. ``asset_kind``
                                           defaults to ``tokenized_equity`` for bases ending
                                           in ``x`` (AAPLx), else ``currency``
``POST /_sandbox/batches/{id}/confirm``    → ``{"batch": ...}`` (Kraken's confirmation)
``POST /_sandbox/batches/{id}/legs/{asset}``  ``{"can_settle": bool}`` → ``{"leg": ...}``
``POST /_sandbox/transfers/{id}/complete`` → ``{"transfer": {id, batch_id, asset, amount,
                                           status, created_at, updated_at}}``
``POST /_sandbox/transfers/{id}/fail``     same; the leg becomes settleable again
``POST /_sandbox/transfers/complete-pending``  → ``{"transfers": [...]}``
``GET|POST /_sandbox/settings``            ``{"transfer_delay": s|null, "auto_confirm_after":
                                           s|null, "rate_limit": "off|starter|intermediate|
                                           pro", "lockout_threshold": 25, "lockout_window":
                                           60, "lockout_duration": 900}`` (POST: any subset)
                                           → ``{"settings": {...}}``
``POST /_sandbox/lockouts/clear``          forget lockouts, failure and rate counters
``GET  /_sandbox/clock``                   ``{"clock": {"time_ms": ...}}``: the sandbox's time
``POST /_sandbox/clock``                   ``{"advance": seconds}`` (≥ 0): move time forward;
                                           what fell due (auto-confirm, transfer delay,
                                           lockouts, rate-limit decay) happens at once
``GET  /_sandbox/faults``                  → ``{"faults": [{id, kind, endpoint, remaining,
                                           seconds}]}``
``POST /_sandbox/faults``                  ``{"kind": K, "endpoint": "Name"|"*", "count": 1,
                                           "seconds": S?}`` → ``{"fault": {...}}``
``DELETE /_sandbox/faults``                clear (also ``POST /_sandbox/faults/clear``)
``GET  /_sandbox/calls``                   ``?endpoint=Name&executed=true|false&since=SEQ`` →
                                           ``{"calls": [{seq, time_ms, endpoint, api_key,
                                           nonce, executed, error, peer, fault}]}``
``DELETE /_sandbox/calls``                 empty the call log (seq keeps counting)
=========================================  ==================================================

Fault kinds (each consumes one of ``count`` uses per matching ``/0/private/`` POST):

- ``latency``: wait ``seconds`` (default 1), then handle normally.
- ``timeout_after_execute``: execute, then hold the connection ``seconds`` (default 5)
  without answering and close it — the client times out although the change happened.
- ``drop_after_execute``: execute, then close the socket without any response.
- ``http_500``: not executed; HTTP 500 ``{"error":["EGeneral:Internal error"]}``.
- ``malformed``: not executed; HTTP 200 with a truncated, non-JSON body.
- ``rate_limit``: not executed; ``{"error":["EAPI:Rate limit exceeded"]}``.
- ``throttled``: not executed; ``{"error":["EService: Throttled: <unix ts>"]}`` with ts =
  now + ``seconds`` (default 5).
- ``unavailable``: not executed; ``{"error":["EService:Unavailable"]}``.

A call-log entry is ``executed: true`` only when the endpoint ran and succeeded (its
change, if any, happened); ``fault`` names the injected fault that hit the call.

Choices where Kraken's docs are silent
======================================

All of ``docs/prime-choices.md`` applies (this list agrees with it); in short:

- Errors: HTTP 200 + ``{"error": [...]}`` without ``result``; HTTP 500 +
  ``EGeneral:Internal error`` only for genuine failures (and the ``http_500`` fault).
  Unknown endpoint: HTTP 404 ``EGeneral:Unknown method`` (405 for a non-POST method).
- Bodies: JSON or ``application/x-www-form-urlencoded`` (chosen by ``Content-Type``;
  without one, a body starting with ``{`` is JSON). Form values are strings; integer
  fields take digit strings, repeated keys make a list. Bodies over 1 MiB → HTTP 413.
- Auth order: key (missing/unknown/deleted/Disabled owner → ``EAPI:Invalid key``);
  lockout (``EGeneral:Temporary lockout``); body unparseable → ``EGeneral:Invalid
  arguments``; nonce missing / not an unsigned 64-bit integer (JSON integer or numeric
  string; the signed prefix is its text as sent) → ``EAPI:Invalid nonce``; signature over
  the raw received bytes and the request target as sent → ``EAPI:Invalid signature``;
  nonce not strictly greater than the key's last → ``EAPI:Invalid nonce`` (no window;
  replay refused); the nonce is now consumed; rate limit → ``EAPI:Rate limit exceeded``
  (not counted); allow-list (peer ``client_address[0]``), then role →
  ``EGeneral:Permission denied``; fields → ``EGeneral:Invalid arguments:<detail>``.
- Lockout: bad nonces and bad signatures count per key; ``lockout_threshold`` (25)
  within ``lockout_window`` (60 s) lock the key for ``lockout_duration`` (900 s).
  The failure reaching the threshold still gets its own error. Not persisted.
- Rate limit: per key, +1 a call; starter 15 / -0.33 s⁻¹, intermediate 20 / -0.5,
  pro 20 / -1; ``off`` by default. Counters are not persisted.
- The admin key (credentials file) may call all 13 endpoints; it belongs to no Prime API
  user, so it is never listed and cannot be updated or deleted. User keys: settlement
  only — Viewer Get/List, Trader also Create/Settle; other calls ``Permission denied``.
  Key ``permissions`` follow the owner's current role (Viewer ``read::marketdata``,
  ``read::orders``; Trader adds ``write::orders``).
- Ids: users/keys 13 upper-case alphanumerics; public keys 56 base64 characters;
  secrets base64 of 64 random bytes; batches ``B_`` + 8; transfers numeric strings from
  ``"100"``; trades UUIDs. Times are integer milliseconds.
- Validation details: ``Missing <field>``, ``Invalid <field>``, ``Unexpected field
  <field>`` (only CreatePrimeApiUserKey and ListPrimeApiUserKeys refuse extra fields;
  the others ignore them), ``Invalid name`` (1-64 printable characters after trimming;
  stored trimmed), ``Invalid whitelisted_ips`` / ``Too many whitelisted_ips`` (max 100;
  addresses stay addresses, CIDRs become their network; duplicates dropped).
  ``limit`` 1-200 (default 50), ``offset``/``from``/``until`` ≥ 0.
- Business errors (all ``EGeneral:Invalid arguments:``): ``Unknown user``, ``Unknown
  key`` (also a key of another user), ``Unknown batch``, ``No unsettled trades``,
  ``Active batch exists`` (checked first), ``Batch not confirmed``, ``Unknown asset``,
  ``Leg already settled`` (checked before ``can_settle``), ``Leg cannot be settled``.
- Legs: one per asset with a non-zero net over the batch's trades (buy 1.5 BTC/USD @
  30000 → BTC +1.5 ``incoming``, USD 45000 ``outgoing``), sorted by asset; new legs have
  ``can_settle`` true. Leg ``status`` ``unsettled`` → ``settling`` (``can_settle`` false)
  → ``settled``; ``settled_at`` (ms) is present only once settled (the yaml types it as a
  non-nullable integer). A failed transfer → ``unsettled``, ``can_settle`` true.
  ``latest_spot_transfer`` is ``{}`` or ``{id, transfer_status, transfer_amount,
  transfer_asset, created_at, updated_at}``.
- Batch status from legs: none started → ``unsettled``; some ``settling``/``settled`` →
  ``partially_settled``; all → ``settled``; all ``settled`` → ``completed`` (no longer
  active). A batch whose trades net to zero has no legs and is ``completed`` at once.
  List items omit ``trade_ids``; Get/List ignore ``asset_kind``; list order
  ``created_at`` descending.
- One clock (``primeapi/sandbox/clock.py``) gives every time the sandbox uses; tests
  advance it instead of sleeping. Time-based transitions are lazy: whenever the
  sandbox is read or called, batches older
  than ``auto_confirm_after`` are confirmed and pending transfers older than
  ``transfer_delay`` complete, stamped with that logical time. Both default to off
  (control API only).
- ``--state`` keeps the account; settings, faults, lockouts and rate counters come from
  the command line / constructor at each start. ``--demo`` seeds only a fresh state:
  four users (one Disabled) with keys (some with allow-lists), two completed historical
  currency batches, and pending ``currency`` (BTC, ETH, SOL, USDC, USD, EUR) and
  ``tokenized_equity`` (AAPLx, TSLAx, NVDAx, SPYx) trades. Demo key secrets are never
  revealed (as on Kraken, they were shown once).
"""

from primeapi.sandbox.control import SandboxControl, SandboxControlError
from primeapi.sandbox.server import SandboxServer

__all__ = ["SandboxControl", "SandboxControlError", "SandboxServer"]
