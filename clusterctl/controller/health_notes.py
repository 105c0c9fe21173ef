"""What ``/healthz`` and the CLI's warnings say of the controller: the database, the disk and
Ray, from the parts the controller holds (a mixin of ``Controller``, kept apart so that the
controller's module stays about wiring)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from clusterctl.controller import disk
from clusterctl.store import Engine, ping

if TYPE_CHECKING:
    from clusterctl.controller.scheduling import Scheduler


class HealthNotes:
    engine: Engine
    disk_dirs: list[Path]
    scheduler: Scheduler

    def health(self) -> dict[str, str]:
        problems = {k: v for k, v in self.degraded().items() if k != "disk"}
        down = ping(self.engine)
        if down:
            problems["database"] = f"unavailable: {down}"
        full, _ = disk.problems(self.disk_dirs)
        if full:
            problems["disk"] = full
        return problems

    def disk_full(self) -> str:
        return disk.full_message(self.disk_dirs)

    def degraded(self) -> dict[str, str]:
        full, low = disk.problems(self.disk_dirs)
        notes: dict[str, str] = {}
        if full or low:
            notes["disk"] = full or low or ""
        ray_down, since = self.scheduler.ray_down, self.scheduler.ray_down_since
        if ray_down is not None:
            when = datetime.fromtimestamp(since or time.time(), timezone.utc)
            notes["ray"] = (f"Ray unavailable since {when:%Y-%m-%d %H:%M:%S} UTC ({ray_down}); "
                            "jobs show their last known state and new ones wait in the queue")
        return notes
