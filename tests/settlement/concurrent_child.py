"""Code run in child processes (multiprocessing, spawn) by the concurrency tests.

A spawned child starts empty: it takes the test database's URL and the sandbox's
credentials from the environment it is given, sets Django up, and only then
imports the portal.
"""

from __future__ import annotations

import os
import threading


def _setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def run_calls(env, action, object_id, actor_ids, ready, go, results) -> None:
    """Call one settlement service from several threads at once, once `go` is set."""
    _setup(env)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from portal.approvals import services as approvals
    from portal.approvals.models import StepUpMethod
    from portal.settlement import services
    from portal.settlement.models import Leg

    staff = {user.pk: user for user in get_user_model().objects.filter(pk__in=actor_ids)}
    leg = Leg.objects.select_related("batch").get(pk=object_id) if action == "request" else None
    connection.close()

    def one(actor_id: int) -> None:
        from django.db import connection as thread_connection

        actor = staff[actor_id]
        go.wait(30)
        try:
            if action == "approve":
                (result,) = services.legs_approve(
                    change_ids=[object_id], actor=actor, step_up=StepUpMethod.TOTP
                )
                results.put(("process", os.getpid(), result.level, result.message))
            elif action == "reconcile":
                done = approvals.change_reconcile(change_id=object_id, actor=actor)
                results.put(("process", os.getpid(), done.level, done.message))
            else:
                change = services.leg_request(leg=leg, actor=actor).change
                results.put(("process", os.getpid(), "success", f"request {change.pk}"))
        except approvals.ApprovalError as exc:
            results.put(("process", os.getpid(), "refused", exc.message))
        except services.SettlementError as exc:
            results.put(("process", os.getpid(), "refused", str(exc)))
        except Exception as exc:  # reported to the test, which fails on it
            results.put(("process", os.getpid(), "crashed", repr(exc)))
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=one, args=(actor_id,)) for actor_id in actor_ids]
    for thread in threads:
        thread.start()
    ready.put(os.getpid())
    for thread in threads:
        thread.join(60)
