"""Users and tokens: who am I, add, remove and list users, rotate tokens, node tokens for
agents, and the audit trail of admin actions (all but whoami: admins only)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fastapi import APIRouter, HTTPException

from clusterctl import parsing
from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.api.schemas import (
    AuditOut,
    NodeTokenOut,
    UserChange,
    UserCreate,
    UserCreated,
    UserOut,
    UserRemoved,
)
from clusterctl.parsing import BadInput
from clusterctl.states import LIVE, JobState, ordered
from clusterctl.store import User, UserExists

router = APIRouter()


def require_admin(user: User, what: str) -> None:
    if not user.is_admin:
        raise HTTPException(403, f"only an admin can {what}")


def expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.now(timezone.utc) + timedelta(seconds=parsing.parse_duration(text,
                                                                               "--expires"))


def user_out(u: User) -> UserOut:
    return UserOut(name=u.name, team=u.team, teams=u.teams, is_admin=u.is_admin,
                   expires_at=u.expires_at, unix_user=u.account)


def parse_teams(teams: list[str]) -> list[str]:
    out: list[str] = []
    for t in teams:
        name = parsing.parse_name(t, "--team")
        if name not in out:
            out.append(name)
    return out


@router.get("/v1/whoami", response_model=UserOut)
def whoami(user: CurrentUser) -> UserOut:
    return user_out(user)


@router.post("/v1/users", response_model=UserCreated, status_code=201)
def add_user(body: UserCreate, user: CurrentUser, ctl: ControllerDep) -> UserCreated:
    require_admin(user, "add users")
    name = parsing.parse_name(body.name, "NAME")
    team, *others = parse_teams([body.team, *body.other_teams])
    expires_at = expiry(body.expires)
    unix_user = parsing.parse_unix_user(body.unix_user, "--unix-user") if body.unix_user else None
    try:
        created, token = ctl.users.add(name, team, body.admin, expires_at, others, unix_user)
    except UserExists:
        raise HTTPException(409, f"user {name} already exists") from None
    ctl.audit.record(user.name, "user.add", name,
                     f"teams {', '.join(created.teams)}" + (", admin" if body.admin else "")
                     + (f", expires {expires_at:%Y-%m-%d}" if expires_at else "")
                     + (f", Unix account {unix_user}" if unix_user else ""))
    return UserCreated(**user_out(created).model_dump(), token=token)


@router.patch("/v1/users/{name}", response_model=UserOut)
def set_user(name: str, body: UserChange, user: CurrentUser, ctl: ControllerDep) -> UserOut:
    """A user's teams (the first their default: which quotas and costs they may use) and the
    Unix account their jobs run as."""
    require_admin(user, "change users")
    who = parsing.parse_name(name, "NAME")
    if body.teams is None and body.unix_user is None:
        raise BadInput("--team", "give --team or --unix-user (what to change)")
    teams = parse_teams(body.teams) if body.teams is not None else None
    unix_user = (parsing.parse_unix_user(body.unix_user, "--unix-user")
                 if body.unix_user is not None else None)
    changed = ctl.users.change(who, teams, unix_user)
    if changed is None:
        raise HTTPException(404, f"no such user: {who}")
    if teams is not None:
        ctl.audit.record(user.name, "user.teams", who, ", ".join(teams))
    if unix_user is not None:
        ctl.audit.record(user.name, "user.unix_user", who, unix_user)
    return user_out(changed)


@router.delete("/v1/users/{name}", response_model=UserRemoved)
def remove_user(name: str, user: CurrentUser, ctl: ControllerDep,
                cancel_running: bool = False) -> UserRemoved:
    """Refuse the user's requests at once; cancel their queued jobs (and running ones with
    ``cancel_running``); running jobs otherwise finish."""
    require_admin(user, "remove users")
    who = parsing.parse_name(name, "NAME")
    if who == user.name:
        raise BadInput("NAME", "you cannot remove yourself")
    if not ctl.users.remove(who):
        raise HTTPException(404, f"no such user: {who}")
    cancelled, running = [], []
    live, _ = ctl.jobs.search(user=who, states=ordered(LIVE), limit=100_000)
    for job in live:
        assert job.id is not None
        if job.state == JobState.PENDING or cancel_running:
            ctl.jobs.request_cancel(job.id, user.name, True)
            cancelled.append(job.id)
        else:
            running.append(job.id)
    ctl.wake()
    ctl.audit.record(user.name, "user.remove", who,
                     f"cancelled {len(cancelled)} job(s), {len(running)} left running")
    return UserRemoved(name=who, cancelled=cancelled, running=running)


@router.post("/v1/users/{name}/token", response_model=UserCreated)
def rotate_token(name: str, user: CurrentUser, ctl: ControllerDep,
                 expires: str | None = None) -> UserCreated:
    """A new token for a user; the old one stops working at once (admins only)."""
    require_admin(user, "rotate tokens")
    who = parsing.parse_name(name, "NAME")
    expires_at = expiry(expires)
    token = ctl.users.rotate(who, expires_at)
    target = ctl.users.by_name(who)
    if target is None or token is None:
        raise HTTPException(404, f"no such user: {who}")
    ctl.audit.record(user.name, "user.token", who,
                     f"rotated, expires {expires_at:%Y-%m-%d}" if expires_at else "rotated")
    return UserCreated(**user_out(target).model_dump(), token=token)


@router.get("/v1/users", response_model=list[UserOut])
def list_users(user: CurrentUser, ctl: ControllerDep) -> list[UserOut]:
    return [user_out(u) for u in ctl.users.all()]


@router.post("/v1/nodes/{node}/token", response_model=NodeTokenOut, status_code=201)
def node_token(node: str, user: CurrentUser, ctl: ControllerDep) -> NodeTokenOut:
    require_admin(user, "issue node tokens")
    name = parsing.parse_node_name(node)
    token = ctl.users.issue_node_token(name, user.name)
    return NodeTokenOut(node=name, token=token)


@router.get("/v1/audit", response_model=list[AuditOut])
def audit(user: CurrentUser, ctl: ControllerDep, since: str = "30d") -> list[AuditOut]:
    require_admin(user, "read the audit trail")
    start = datetime.now(timezone.utc) - timedelta(seconds=parsing.parse_duration(since,
                                                                                "--since"))
    return [AuditOut(at=e.at, actor=e.actor, action=e.action, target=e.target,
                     detail=e.detail) for e in ctl.audit.since(start)]
