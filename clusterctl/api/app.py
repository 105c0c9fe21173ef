"""The HTTP API (FastAPI), assembled from one router per noun. Routes validate, write through
the stores and wake the scheduler; they see the controller only through ``ControllerApi`` and
never call Ray, so the API stays responsive while the cluster is slow or away."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from clusterctl.api.guard import EdgeGuard
from clusterctl.api.routes import (
    attach,
    budgets,
    hardware,
    health,
    ingest,
    jobs,
    logs,
    nodes,
    notify,
    quotas,
    reports,
    services,
    users,
)
from clusterctl.api.service_endpoint import ServiceEndpoint
from clusterctl.api.web import money, pages, signin
from clusterctl.controller import disk
from clusterctl.controller.interface import ControllerApi
from clusterctl.parsing import BadInput
from clusterctl.store import UNAVAILABLE

log = logging.getLogger(__name__)
ROUTERS = (jobs, logs, attach, nodes, users, notify, budgets, quotas, ingest, hardware, reports,
           health, services)


async def _bad_input(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadInput)
    return JSONResponse(status_code=422, content={"detail": str(exc), "field": exc.field})


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    """The first problem, named by its field (``body.gpus: ...``), as a one-line 422."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, BadInput):  # a parser's own words (``job_request.py``)
        return await _bad_input(_, cause)
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
    return JSONResponse(status_code=422,
                        content={"detail": f"{where}: {first.get('msg', 'invalid')}",
                                 "field": where})


RETRY_AFTER_S = 5


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    """The database is down or unreachable: nothing was written (the transaction did not
    commit), so the client may simply try again; the CLI does, with backoff. A disk that is
    full is not that: 507, naming the disk, since trying again will not help."""
    if disk.is_full(exc):
        return _disk_full(request)
    return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)},
                        content={"detail": "database unavailable; try again shortly",
                                 "field": None})


def _disk_full(request: Request) -> JSONResponse:
    controller: ControllerApi = request.app.state.services
    return JSONResponse(status_code=507, content={"detail": controller.disk_full(),
                                                  "field": None})


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    """A write to the data directory (an upload, a log) that failed: for space, a 507 that
    names the disk; anything else is a bug, logged, and a plain 500."""
    if disk.is_full(exc):
        return _disk_full(request)
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error", "field": None})


WARNING_HEADER = "X-Clusterctl-Warning"


def create_app(controller: ControllerApi) -> FastAPI:
    # No /docs, /redoc or /openapi.json: the API's shape is not for anyone without a token.
    app = FastAPI(title="clusterctl", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.services = controller
    app.add_exception_handler(BadInput, _bad_input)
    app.add_exception_handler(RequestValidationError, _invalid)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_down)
    app.add_exception_handler(OSError, _os_error)
    app.add_middleware(EdgeGuard)

    @app.middleware("http")
    async def _warn(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                    ) -> Response:
        """Every answer carries what is degraded (Ray away), so no one acts on stale states
        without knowing."""
        response = await call_next(request)
        notes = controller.degraded()
        if notes:
            text = "; ".join(notes.values())
            response.headers[WARNING_HEADER] = text.encode("ascii", "replace").decode()
        return response

    for module in ROUTERS:
        app.include_router(module.router)
    app.add_middleware(ServiceEndpoint, controller=controller)  # outermost: its own checks
    app.add_exception_handler(signin.SignInNeeded, _sign_in)
    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(money.router)
    app.mount("/static", StaticFiles(packages=[("clusterctl.api.web", "static")]),
              name="static")
    return app


async def _sign_in(request: Request, _: Exception) -> Response:
    """A page without a session goes to the sign-in form; a live part's stream just ends."""
    if request.url.path.startswith("/events/"):
        return PlainTextResponse("sign in first", status_code=401)
    return RedirectResponse("/login", status_code=303)
