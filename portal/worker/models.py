"""The worker's shared state: the job ledger, the poller's request budget and its leader."""

from __future__ import annotations

from django.db import models


class JobRun(models.Model):
    """One run of a scheduled job for one time slot; the unique slot makes a second run a no-op."""

    job = models.CharField(max_length=64)
    slot = models.CharField(max_length=40)
    worker = models.CharField(max_length=120)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "slot"], name="worker_job_once")]
        indexes = [models.Index(fields=["job", "-started_at"], name="worker_job_recent")]

    def __str__(self) -> str:
        return f"{self.job}@{self.slot}"


class PollBudget(models.Model):
    """The Kraken poller's token bucket, shared by every worker (whoever leads spends it)."""

    name = models.CharField(max_length=64, primary_key=True)
    tokens = models.FloatField()
    refilled_at = models.FloatField(help_text="Unix time of the last refill.")

    def __str__(self) -> str:
        return f"{self.name}: {self.tokens:.1f}"


class Leadership(models.Model):
    """Who holds a leader role now (for the status page and the failover test, not the lock)."""

    role = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=120)
    since = models.DateTimeField()
    last_cycle_at = models.DateTimeField(null=True, blank=True)
    cycles = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.role}: {self.holder}"
