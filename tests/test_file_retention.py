"""The controller's files do not grow for ever (#17): a job's log goes log_retention_s after
the job ended, a package once no job that may still run uses it and it is older than
package_retention_s; everything a live job needs stays. Real files, real databases."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from factories import new_job

from clusterctl.controller.files import LogStore, PackageStore, expire_files
from clusterctl.states import JobState
from clusterctl.store import JobStore, make_engine, migrate

DAY = 86400.0


def test_logs_and_packages_expire_and_live_ones_stay(db_url: str, tmp_path: Path) -> None:
    migrate(db_url)
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    at = [now - timedelta(days=100)]
    jobs = JobStore(make_engine(db_url), clock=lambda: at[0])
    logs, packages = LogStore(tmp_path / "logs"), PackageStore(tmp_path / "packages")
    old_pkg, live_pkg, fresh_pkg = (packages.put(bytes([i]) * 10) for i in range(3))
    long_over = jobs.submit(new_job(package=old_pkg))        # ended 100 days ago
    at[0] = now - timedelta(days=10)
    recent = jobs.submit(new_job())                          # ended 10 days ago
    waiting = jobs.submit(new_job(package=live_pkg))         # still pending
    for job in (long_over, recent):
        at[0] = job.submitted_at
        jobs.transition(job.id, JobState.PENDING, JobState.CANCELLED, "test",  # type: ignore[arg-type]
                        values={"ended_at": job.submitted_at})
    for job in (long_over, recent, waiting):
        logs.append(job.id, 1, 0, b"output\n")  # type: ignore[arg-type]
    month_ago = now.timestamp() - 30 * DAY
    for sha in (old_pkg, live_pkg):
        os.utime(packages.path(sha), (month_ago, month_ago))

    removed = expire_files(jobs, logs, packages, log_keep_s=90 * DAY, package_keep_s=7 * DAY,
                           now=now.timestamp())
    assert removed == (1, 1)
    assert sorted(logs.job_ids()) == sorted([recent.id, waiting.id])
    assert not packages.exists(old_pkg)  # its job is over and it is a month old
    assert packages.exists(live_pkg)     # a pending job will need it
    assert packages.exists(fresh_pkg)    # uploaded just now: a submit may follow
    assert expire_files(jobs, logs, packages, log_keep_s=90 * DAY, package_keep_s=7 * DAY,
                        now=now.timestamp()) == (0, 0)
