"""The dashboard's pages, their actions, and the live updates each open page listens to.

A page is rendered whole once; after that, each of its live parts is re-rendered on the server
every second and pushed (server-sent events) only when it changed, so a new job, a change of
state or a GPU's new reading shows without a reload, and nothing reloads when nothing moved."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from clusterctl.api.deps import ControllerDep
from clusterctl.api.routes import jobs as job_routes
from clusterctl.api.web import views
from clusterctl.api.web.render import HEADERS, fragment, page
from clusterctl.api.web.signin import COOKIE, Viewer, check_csrf, error_page, form
from clusterctl.parsing import BadInput
from clusterctl.states import JobState

router = APIRouter()

PUSH_S = 1.0
"""How often an open page's live parts are rendered again (and sent if they changed): within
2 s of an agent's sample, the GPUs page shows it."""
KEEPALIVE_S = 15.0
ACTIONS = {"cancel": job_routes.cancel, "hold": job_routes.hold, "release": job_routes.release}


def _queue_parts(ctl: Any, viewer: Viewer, filters: views.Filters) -> str:
    return fragment("queue_parts.html", q=views.queue(ctl, viewer[0], filters))


@router.get("/")
def queue(request: Request, ctl: ControllerDep, viewer: Viewer, user: str | None = None,
          team: str | None = None, state: str | None = None,
          before: str | None = None, gpu_type: str | None = None) -> Response:
    try:
        filters = views.Filters.of(user, team, state, before, gpu_type)
        parts = _queue_parts(ctl, viewer, filters)
    except BadInput as e:
        return error_page(viewer, 422, str(e))
    return page("queue.html", me=viewer[0], csrf=viewer[1].csrf, filters=filters,
                parts=parts, live=_live(f"/events/queue?{filters.query()}", parts),
                states=list(JobState.__members__))


@router.get("/gpus")
def gpus(ctl: ControllerDep, viewer: Viewer) -> Response:
    parts = fragment("gpus_parts.html", nodes=views.gpus(ctl, viewer[0]))
    return page("gpus.html", me=viewer[0], csrf=viewer[1].csrf,
                live=_live("/events/gpus", parts), parts=parts)


def _services_parts(ctl: Any) -> str:
    return fragment("services_parts.html", services=views.services(ctl))


@router.get("/services")
def services(ctl: ControllerDep, viewer: Viewer) -> Response:
    """Model services: replicas, traffic and what a request costs, live."""
    parts = _services_parts(ctl)
    return page("services.html", me=viewer[0], csrf=viewer[1].csrf,
                live=_live("/events/services", parts), parts=parts)


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str, ctl: ControllerDep, viewer: Viewer) -> Response:
    try:
        view = views.job(ctl, viewer[0], job_id, chart=True)
    except HTTPException as e:
        return error_page(viewer, e.status_code, str(e.detail))
    except BadInput as e:
        return error_page(viewer, 422, str(e))
    parts = fragment("job_parts.html", v=view, csrf=viewer[1].csrf)
    return page("job.html", me=viewer[0], csrf=viewer[1].csrf, v=view,
                live=_live(f"/events/jobs/{view.job.id}", parts), parts=parts)


@router.post("/jobs/{job_id}/{action}")
async def act(request: Request, job_id: str, action: str, ctl: ControllerDep,
              viewer: Viewer) -> Response:
    """Cancel, hold or release, as the API does them (the same owner and admin rules)."""
    check_csrf(request, await form(request), viewer[1])
    do = ACTIONS.get(action)
    if do is None:
        return error_page(viewer, 404, f"no such action: {action}")
    try:
        await run_in_threadpool(do, job_id, viewer[0], ctl)
    except HTTPException as e:
        return error_page(viewer, e.status_code, str(e.detail))
    except BadInput as e:
        return error_page(viewer, 422, str(e))
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


# -- live parts ---------------------------------------------------------------------------------


@router.get("/events/queue")
def queue_events(request: Request, ctl: ControllerDep, viewer: Viewer,
                 user: str | None = None, team: str | None = None, state: str | None = None,
                 before: str | None = None, gpu_type: str | None = None) -> Response:
    filters = views.Filters.of(user, team, state, before, gpu_type)
    return _stream(request, ctl, lambda: _queue_parts(ctl, viewer, filters))


@router.get("/events/gpus")
def gpu_events(request: Request, ctl: ControllerDep, viewer: Viewer) -> Response:
    return _stream(request, ctl, lambda: fragment("gpus_parts.html",
                                             nodes=views.gpus(ctl, viewer[0])))


@router.get("/events/services")
def service_events(request: Request, ctl: ControllerDep, viewer: Viewer) -> Response:
    return _stream(request, ctl, lambda: _services_parts(ctl))


@router.get("/events/jobs/{job_id}")
def job_events(request: Request, job_id: str, ctl: ControllerDep, viewer: Viewer) -> Response:
    return _stream(request, ctl, lambda: fragment("job_parts.html",
                                             v=views.job(ctl, viewer[0], job_id),
                                             csrf=viewer[1].csrf))


def _live(path: str, parts: str) -> str:
    """The address of a page's live stream, with the hash of the part the page was rendered
    with (``shown``): a part that changed between the page's render and its stream's start (a
    job ending while its page loads on a busy machine) is sent at once instead of never."""
    return f"{path}{'&' if '?' in path else '?'}shown={_tag(parts)}"


def _stream(request: Request, ctl: Any, render: Callable[[], str]) -> Response:
    """Rendered once here, before the stream starts: a bad filter or a job that is not theirs
    is answered (422, 403, 404) instead of a stream that breaks."""
    cookie = request.cookies.get(COOKIE, "")

    def fresh() -> str | None:
        """The part again, or None once the session has ended (signed out, expired)."""
        return render() if ctl.web_sessions.find(cookie) is not None else None

    # a stream that came back has the last part it got (its id); a new one, the page's
    shown = request.headers.get("last-event-id") or request.query_params.get("shown")
    return StreamingResponse(_changes(request, render(), fresh, shown),
                             media_type="text/event-stream",
                             headers={**HEADERS, "X-Accel-Buffering": "no"})


def _tag(part: str) -> str:
    return hashlib.blake2b(part.encode(), digest_size=8).hexdigest()


def _event(part: str) -> bytes:
    """One part as an event, its ``id`` the part's hash: a browser whose stream breaks sends
    the last one back (``Last-Event-ID``) when it reconnects."""
    return (f"id: {_tag(part)}\ndata: " + part.replace("\n", "\ndata: ") + "\n\n").encode()


async def _changes(request: Request, first: str, render: Callable[[], str | None],
                   shown: str | None = None) -> AsyncIterator[bytes]:
    """The part each time it changes, a comment now and then so proxies keep the connection,
    until the page goes away or the session ends. A new page has the first part already (only
    its hash is sent, as the stream's id); a page whose stream broke and came back
    (``shown``: the hash of the last part it got) gets the part at once if it changed
    meanwhile: else a job that ended while the stream was away showed RUNNING for good."""
    last: str | None = first
    yield _event(first) if shown is not None and shown != _tag(first) else \
        f"id: {_tag(first)}\n\n".encode()
    quiet = 0.0
    while last is not None and not await request.is_disconnected():
        await asyncio.sleep(PUSH_S)
        try:
            now = await run_in_threadpool(render)
        except HTTPException:  # the job is no longer theirs to see, say: stop
            return
        if now is None:
            return
        if now != last:
            last, quiet = now, 0.0
            yield _event(now)
        else:
            quiet += PUSH_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield b": still here\n\n"
