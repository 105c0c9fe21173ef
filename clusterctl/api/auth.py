"""Who is calling: a user (API token) or a node agent (node token)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clusterctl.store import User

_bearer = HTTPBearer(auto_error=False)


def current_user(
    request: Request, response: Response,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user whose token the request carries; 401 without a valid one (unknown, of a
    removed user, or expired). A token that expires says when in ``X-Token-Expires``, so the
    CLI can warn ahead."""
    user = user_for_token(request.app.state.services, creds.credentials if creds else None)
    if user.expires_at is not None:
        response.headers["X-Token-Expires"] = user.expires_at.isoformat()
    return user


def user_for_token(services: Any, token: str | None) -> User:
    """The user a token belongs to; 401 for none, an unknown one, or an expired one (also
    for a WebSocket, which carries its token in the same header)."""
    if not token:
        raise HTTPException(401, "missing token", headers={"WWW-Authenticate": "Bearer"})
    user = services.users.by_token(token)
    if user is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    if user.expires_at is not None and user.expires_at <= datetime.now(timezone.utc):
        raise HTTPException(401, f"token expired on {user.expires_at:%Y-%m-%d %H:%M} UTC; "
                            "an admin can issue a new one (admin user token NAME --rotate)",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def current_node(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The node whose agent token the request carries; 401 without a valid one."""
    node = None
    if creds is not None and creds.credentials:
        node = request.app.state.services.users.node_for_token(creds.credentials)
    if node is None:
        raise HTTPException(401, "missing or invalid node token",
                            headers={"WWW-Authenticate": "Bearer"})
    return str(node)


CurrentNode = Annotated[str, Depends(current_node)]
