"""Signing in to the dashboard with a token, and what every page checks.

The token is posted once from a form (never in a URL) and exchanged for a session cookie:
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure under
TLS, expiring with the session. Every form that changes something also carries the session's
anti-forgery value, and a request whose Origin is another site is refused."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from clusterctl.api.auth import user_for_token
from clusterctl.api.deps import ControllerDep
from clusterctl.api.web.render import page
from clusterctl.store import SignedIn, User

router = APIRouter()

COOKIE = "clusterctl_session"
SESSION_TTL = timedelta(hours=12)
"""How long a sign-in lasts; signing out ends it at once."""
MAX_FORM_BYTES = 16 * 1024


class SignInNeeded(Exception):
    """A page asked for without a session: answered by a redirect to the sign-in form."""


def signed_in(request: Request, ctl: ControllerDep) -> tuple[User, SignedIn]:
    """The user a page's session cookie signs in (their token must still be valid: a removed
    user or an expired token ends every session of theirs)."""
    value = request.cookies.get(COOKIE)
    found = ctl.web_sessions.find(value) if value else None
    user = ctl.users.by_name(found.user) if found else None
    if found is None or user is None or (
            user.expires_at is not None and user.expires_at <= datetime.now(timezone.utc)):
        raise SignInNeeded()
    return user, found


Viewer = Annotated[tuple[User, SignedIn], Depends(signed_in)]


def error_page(viewer: Viewer, status: int, detail: str) -> Response:
    """A signed-in page that says what went wrong (the API's own words)."""
    return page("error.html", status=status, me=viewer[0], csrf=viewer[1].csrf, detail=detail)


async def form(request: Request) -> dict[str, str]:
    """A posted form's fields (URL-encoded), first value of each; bounded in size."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"a form is at most {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "not a form") from None
    return {k: v[0] for k, v in fields.items()}


def same_site(request: Request) -> None:
    """Refuse a state-changing request another site's page made (its Origin says so)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise HTTPException(403, "cross-site request refused")


def check_csrf(request: Request, fields: dict[str, str], session: SignedIn) -> None:
    same_site(request)
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    sent = fields.get("csrf", "").encode("utf-8", "surrogatepass")
    if not secrets.compare_digest(sent, session.csrf.encode()):
        raise HTTPException(403, "the form's anti-forgery value is missing or wrong; "
                            "reload the page and try again")


@router.get("/login")
def login_form() -> Response:
    return page("login.html", status=200)


@router.post("/login")
async def login(request: Request, ctl: ControllerDep) -> Response:
    same_site(request)
    fields = await form(request)
    try:
        user = user_for_token(ctl, fields.get("token", "").strip())
    except HTTPException as e:
        return page("login.html", status=401, error=str(e.detail))
    value, _ = ctl.web_sessions.open(user.name, SESSION_TTL)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, value, max_age=int(SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request, ctl: ControllerDep, viewer: Viewer) -> Response:
    check_csrf(request, await form(request), viewer[1])
    value = request.cookies.get(COOKIE)
    if value:
        ctl.web_sessions.close(value)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
