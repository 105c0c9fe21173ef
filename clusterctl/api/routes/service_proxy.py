"""One endpoint per service: ``/services/NAME/<path>`` on the controller, the same tokens as
the API (the service's team and admins may call it).

A request goes to the ready replica with the fewest outstanding requests; one that no replica
began to answer (refused, or the connection dropped before the answer's first byte: a replica
that died) is tried on another; a service with no ready replica (starting, or at zero) holds it
until one is ready, then answers it, or after ``HOLD_S`` says 503 with Retry-After. Answers are
streamed through as they come (server-sent events, chunked). The user's token is not passed on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.controller.services import Endpoint, Serving

router = APIRouter()

HOLD_S = 120.0
"""How long a request waits for a ready replica (a cold start from zero) before a 503."""
RETRY_AFTER_S = 10
USAGE_BYTES = 1 << 20
"""A JSON answer up to this size is read for its ``usage`` (tokens) as it passes."""
DROPPED = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                     "te", "trailer", "trailers", "transfer-encoding", "upgrade", "host",
                     "authorization", "content-length", "cookie"})
"""Hop-by-hop headers, and the caller's credentials, which stay here."""
NOT_BEGUN = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
             httpx.RemoteProtocolError)
"""Failures before an answer began: the request is tried on another replica."""
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _client(request: Request) -> httpx.AsyncClient:
    client = getattr(request.app.state, "service_client", None)
    if client is None:
        client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), limits=httpx.Limits(
            max_connections=None, max_keepalive_connections=256))
        request.app.state.service_client = client
    return client


def _headers(items: list[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in items if k.lower() not in DROPPED}


def tokens_of(headers: httpx.Headers, body: bytes | None) -> int:
    """Tokens an answer says it used: ``X-Tokens``, else an OpenAI-style ``usage`` block."""
    given = headers.get("x-tokens", "")
    if given.isdigit():
        return int(given)
    if not body:
        return 0
    try:
        usage = json.loads(body).get("usage") or {}
        total = usage.get("total_tokens")
        if total is None:
            total = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
        return int(total) if isinstance(total, int | float) and total >= 0 else 0
    except (ValueError, AttributeError, TypeError):
        return 0


async def _send(client: httpx.AsyncClient, serving: Serving, name: str, request: Request,
                path: str, body: bytes) -> tuple[httpx.Response, Endpoint] | None:
    """The first replica to begin an answer, with it; None once ``HOLD_S`` passed."""
    deadline = time.monotonic() + HOLD_S
    tried: set[int] = set()
    while True:
        endpoint = serving.pick(name, tried)
        if endpoint is None:
            if time.monotonic() > deadline or serving.team(name) is None:
                return None
            serving.wake.set()
            tried.clear()  # a replica that failed may be back, or another started
            await asyncio.sleep(0.05)
            continue
        upstream = client.build_request(
            request.method, f"http://{endpoint.host}:{endpoint.port}/{path}",
            params=list(request.query_params.multi_items()),
            headers=_headers(request.headers.items()), content=body)
        try:
            return await client.send(upstream, stream=True), endpoint
        except NOT_BEGUN:
            serving.release(endpoint)
            serving.failed(name, endpoint)
            tried.add(endpoint.job_id)


@router.api_route("/services/{name}/{path:path}", methods=METHODS)
async def proxy(name: str, path: str, request: Request, user: CurrentUser,
                ctl: ControllerDep) -> Response:
    serving = ctl.serving
    team = serving.team(name)
    if team is None:
        raise HTTPException(404, f"no running service named {name}")
    if not (user.is_admin or team in user.teams):
        raise HTTPException(403, f"service {name} is for team {team} (and admins)")
    body = await request.body()
    started = time.monotonic()
    serving.arrived(name)
    try:
        sent = await _send(_client(request), serving, name, request, path, body)
    except BaseException:
        serving.answered(name, False, time.monotonic() - started)
        raise
    if sent is None:
        serving.answered(name, False, time.monotonic() - started)
        return Response(f"service {name} has no ready replica; try again later\n", 503,
                        headers={"Retry-After": str(RETRY_AFTER_S)}, media_type="text/plain")
    upstream, endpoint = sent
    return StreamingResponse(_relay(serving, name, upstream, endpoint, started),
                             status_code=upstream.status_code,
                             headers=_headers(list(upstream.headers.items())))


async def _relay(serving: Serving, name: str, upstream: httpx.Response, endpoint: Endpoint,
                 started: float) -> AsyncIterator[bytes]:
    """The answer, chunk by chunk as the replica sends it; counted once it ends."""
    keep = "json" in upstream.headers.get("content-type", "")
    kept: list[bytes] = []
    size, ok = 0, False
    try:
        async for chunk in upstream.aiter_raw():
            if keep and size + len(chunk) <= USAGE_BYTES:
                kept.append(chunk)
            size += len(chunk)
            yield chunk
        ok = upstream.status_code < 500
    finally:
        await upstream.aclose()
        serving.release(endpoint)
        body = b"".join(kept) if keep and size <= USAGE_BYTES else None
        serving.answered(name, ok, time.monotonic() - started, tokens_of(upstream.headers, body))
