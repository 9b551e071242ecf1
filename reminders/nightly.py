"""The nightly pass (03:00 in each workspace's zone): recompute every customer's derived data.

`storage.scoring.recompute_workspace` moves customers silent past 2× or 4× their
cadence to at_risk / churned and updates the auto tags, which is how the churn
warning reaches the next morning's digest. Each workspace is leased while it
runs, so one process does it and a crash mid-way is retried. Once a day the
process also drops expired buttons, codes and old redelivery keys
(handlers.core.cleanup) and finished outbox rows.
"""
from __future__ import annotations

import logging
from datetime import date, datetime

from handlers.context import Services
from handlers.core import cleanup
from storage import schedule, scoring
from storage.db import Database
from storage.models import Workspace

log = logging.getLogger(__name__)


async def recompute_due_workspaces(db: Database, now: datetime) -> int:
    """Recompute each workspace whose night has come; how many."""
    done = 0
    while True:
        async with db.transaction() as session:
            claimed = await schedule.claim_recompute(session, now)
            if claimed is None:
                return done
            workspace_id = claimed.id
        async with db.transaction() as session:
            workspace = await session.get(Workspace, workspace_id)
            assert workspace is not None
            changed = await scoring.recompute_workspace(session, workspace, now)
            schedule.finish_recompute(workspace, now)
        log.info("nightly recompute of workspace %s: %s customers changed", workspace_id, changed)
        done += 1


class DailyCleanup:
    """Runs the housekeeping once per UTC day of this process (it is idempotent)."""

    def __init__(self, db: Database, services: Services) -> None:
        self.db, self.services = db, services
        self.last_day: date | None = None

    async def run_if_due(self, now: datetime) -> bool:
        if self.last_day == now.date():
            return False
        await cleanup(self.db, self.services)
        async with self.db.transaction() as session:
            await schedule.purge_outbox(session, now)
        self.last_day = now.date()
        return True
