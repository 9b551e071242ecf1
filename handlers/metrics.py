"""The operator's figures, in one place: what /metrics (bot.web) shows in Prometheus format.

Counters live here, in handlers/, because the core, the scheduler (reminders/) and
the platform adapters (bot/) all record into them and none of those may import bot/.
Labels take names from fixed sets only (command names, platforms, outcomes), never
what a person typed, so a stranger's `/xyz123` cannot grow the scrape.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

#: How a command ended: done, refused with a message (bad input, no permission), or a crash.
OK, USER_ERROR, FAILURE = "ok", "user_error", "failure"

COMMANDS = Counter("crm_commands", "Commands, button presses and forms handled, by name and outcome",
                   ["command", "outcome"], registry=REGISTRY)
COMMAND_SECONDS = Histogram("crm_command_seconds", "Time from a command's arrival in the core to its commit "
                            "(work it leaves for after the commit, such as a large import's batches, not included)",
                            ["command"], registry=REGISTRY,
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
REMINDERS_DUE = Gauge("crm_reminders_due_unsent", "Reminders and outbox messages past due and not sent yet "
                      "(read from the database at each scrape)", registry=REGISTRY)
LATE = Counter("crm_late_deliveries", "Messages sent marked late (they fell due while no bot process ran)",
               ["kind"], registry=REGISTRY)
SENDS = Counter("crm_sends", "Tries at sending a scheduled message, by platform and outcome "
                "(sent, blocked, error)", ["platform", "outcome"], registry=REGISTRY)
RATE_LIMITED = Counter("crm_rate_limited", "429 answers from a platform's API", ["platform"], registry=REGISTRY)
RETRY_AFTER = Counter("crm_retry_after_seconds", "Seconds a platform asked to wait after a 429",
                      ["platform"], registry=REGISTRY)
IMPORT_ROWS = Counter("crm_import_rows", "Rows of /import and `crm-bot import` files, by what became of them "
                      "(added, merged, rejected); dry runs not counted", ["outcome"], registry=REGISTRY)


def command_done(command: str, outcome: str, seconds: float) -> None:
    COMMANDS.labels(command, outcome).inc()
    COMMAND_SECONDS.labels(command).observe(seconds)


def rate_limited(platform: str, retry_after: float | None) -> None:
    RATE_LIMITED.labels(platform).inc()
    if retry_after:
        RETRY_AFTER.labels(platform).inc(retry_after)


def exposition() -> bytes:
    """Every figure in Prometheus' text format."""
    return generate_latest(REGISTRY)
