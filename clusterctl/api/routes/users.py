"""Users and tokens: who am I, add and list users (admins), node tokens for agents (admins)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from clusterctl import parsing
from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import Controller
from clusterctl.api.schemas import NodeTokenOut, UserCreate, UserCreated, UserOut
from clusterctl.store import UserExists

router = APIRouter()


@router.get("/v1/whoami", response_model=UserOut)
def whoami(user: CurrentUser) -> UserOut:
    return UserOut(name=user.name, team=user.team, is_admin=user.is_admin)


@router.post("/v1/users", response_model=UserCreated, status_code=201)
def add_user(body: UserCreate, user: CurrentUser, ctl: Controller) -> UserCreated:
    if not user.is_admin:
        raise HTTPException(403, "only an admin can add users")
    name = parsing.parse_name(body.name, "NAME")
    team = parsing.parse_name(body.team, "--team")
    try:
        created, token = ctl.users.add(name, team, body.admin)
    except UserExists:
        raise HTTPException(409, f"user {name} already exists") from None
    return UserCreated(name=created.name, team=created.team, is_admin=created.is_admin,
                       token=token)


@router.post("/v1/users/{name}/token", response_model=UserCreated)
def rotate_token(name: str, user: CurrentUser, ctl: Controller) -> UserCreated:
    """A new token for a user; the old one stops working at once (admins only)."""
    if not user.is_admin:
        raise HTTPException(403, "only an admin can rotate tokens")
    who = parsing.parse_name(name, "NAME")
    target = ctl.users.by_name(who)
    token = ctl.users.rotate(who)
    if target is None or token is None:
        raise HTTPException(404, f"no such user: {who}")
    return UserCreated(name=target.name, team=target.team, is_admin=target.is_admin,
                       token=token)


@router.get("/v1/users", response_model=list[UserOut])
def list_users(user: CurrentUser, ctl: Controller) -> list[UserOut]:
    return [UserOut(name=u.name, team=u.team, is_admin=u.is_admin) for u in ctl.users.all()]


@router.post("/v1/nodes/{node}/token", response_model=NodeTokenOut, status_code=201)
def node_token(node: str, user: CurrentUser, ctl: Controller) -> NodeTokenOut:
    if not user.is_admin:
        raise HTTPException(403, "only an admin can issue node tokens")
    name = parsing.parse_node_name(node)
    return NodeTokenOut(node=name, token=ctl.users.issue_node_token(name))
