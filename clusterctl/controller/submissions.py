"""The controller's rules on a job request, whoever brings it: a user submits to their own
teams, up to the priority users may give (admins to any, and that override is audited), with
dependencies that exist, a package that was uploaded, a webhook the settings allow, and GPUs
the cluster has. The request itself was parsed at the edge (``job_request.py``); what is
checked here needs the database, the settings or the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clusterctl.controller.files import PackageStore
from clusterctl.job_request import JobRequest
from clusterctl.notifications import parse_webhook
from clusterctl.parsing import BadInput
from clusterctl.store import AuditStore, Job, JobStore, NewJob, User

WhyNever = Callable[[int, int, "list[str] | None", "int | None"], "tuple[str, str] | None"]


@dataclass
class Submissions:
    jobs: JobStore
    audit: AuditStore
    packages: PackageStore
    why_never: WhyNever
    """Why a shape can never fit this cluster, as (field, why), or None."""
    wake: Callable[[], None]
    user_max_priority: int
    notify_private_ok: bool

    def submit(self, user: User, request: JobRequest, key: str | None = None) -> list[Job]:
        """The jobs ``request`` makes for ``user`` (one per task of an array), stored."""
        team = self.check(user, request)
        known = self.jobs.states(d.job for d in request.after)
        missing = [d.job for d in request.after if d.job not in known]
        if missing:
            raise BadInput("--after", f"job {missing[0]} does not exist")
        notify = (parse_webhook(request.notify, "--notify", self.notify_private_ok)
                  if request.notify else None)
        jobs = self.jobs.submit_all(NewJob(
            name=request.name or default_name(request.command), user=user.name, team=team,
            request=request, notify_url=notify, idempotency_key=key))
        if user.is_admin and (team not in user.teams
                              or request.priority > self.user_max_priority):
            self.audit.record(user.name, "job.override", str(jobs[0].id),
                              f"team {team}, priority {request.priority}")
        self.wake()
        return jobs

    def check(self, user: User, request: JobRequest) -> str:
        """The team ``request`` counts against, once the rules any job (a service's replica
        too) must meet hold: the team, the priority, the package, a shape the cluster has."""
        team = self.team_of(user, request.team)
        self.check_priority(user, request.priority)
        if request.package and not (self.packages.valid(request.package)
                                    and self.packages.exists(request.package)):
            raise BadInput("package", "is not an uploaded package id")
        never = self.why_never(request.gpus, request.nodes, request.gpu_types,
                               request.gpu_mem_bytes)
        if never:
            raise BadInput(*never)
        return team

    def team_of(self, user: User, asked: str | None) -> str:
        """The team a job of ``user`` counts against: theirs, or one they belong to (admins:
        any, for another team's quota and cost)."""
        team = asked or user.team
        if team not in user.teams and not user.is_admin:
            raise BadInput("--team", f"you may submit to {', '.join(user.teams)} only "
                           "(admins to any team)")
        return team

    def check_priority(self, user: User, priority: int, had: int = 0) -> None:
        """Users give priorities up to ``user_max_priority`` (or keep one an admin gave)."""
        if priority > max(self.user_max_priority, had) and not user.is_admin:
            raise BadInput("--priority", f"above {self.user_max_priority} needs an admin "
                           "(the user_max_priority setting)")


def default_name(command: list[str]) -> str:
    """A job without ``--name`` is named after its program (its script, for python)."""
    base = command[0].rsplit("/", 1)[-1]
    if base.startswith("python") and len(command) > 1:
        base = command[1].rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).strip("-.")
    return (cleaned or "job")[:64]
