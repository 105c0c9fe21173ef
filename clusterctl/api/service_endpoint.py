"""One endpoint per service: ``/services/NAME/<path>`` on the controller, the same tokens as
the API (the service's team and admins may call it) or a key of that service (``serve key``).

A request goes to the ready replica with the fewest outstanding requests; one that no replica
began to answer (refused, or the connection dropped before the answer's first byte: a replica
that died) is tried on another; a service with no ready replica (starting, or at zero) holds it
until one is ready, then answers it, or after ``HOLD_S`` says 503 with Retry-After. Answers are
streamed through as they come (server-sent events, chunked). The caller's token is not passed on.

It is a plain ASGI layer in front of the API's routes, not a route: every request of a model's
traffic would otherwise pay for the API's middleware, dependencies and response classes (a
fifth of a millisecond here and there, most of the endpoint's cost). The edge's checks of the
path and the body's size apply as to any request (``guard.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from cachetools import TTLCache
from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from clusterctl.api.auth import user_for_token
from clusterctl.api.guard import Refusal, check_url
from clusterctl.controller.interface import ControllerApi
from clusterctl.controller.services import Endpoint
from clusterctl.store import User
from clusterctl.store.users import hash_token

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVICES = "/services/"
SERVICE_BODY = 32 << 20
"""A request's body: the model's input, passed on as sent (not the API's JSON, whose 1 MiB
limit and checks do not apply)."""
HOLD_S = 120.0
"""How long a request waits for a ready replica (a cold start from zero) before a 503."""
RETRY_AFTER_S = 10
CALLER_CACHE_S = 5.0
"""How long a token's caller is remembered: a removed user's token, a stopped service's key,
still open the endpoint for up to this long."""
USAGE_BYTES = 1 << 20
"""A JSON answer up to this size is read for its ``usage`` (tokens) as it passes."""
DROPPED = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                     b"proxy-authorization", b"te", b"trailer", b"trailers",
                     b"transfer-encoding", b"upgrade", b"host", b"authorization", b"cookie"})
"""Hop-by-hop headers, and the caller's credentials, which stay here."""
NOT_BEGUN = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
"""Failures before an answer began: the request is tried on another replica."""


@dataclass(frozen=True)
class Caller:
    """Who a token is: a user, or a key that opens one service."""

    user: User | None
    key_of: int | None


def tokens_of(headers: Any, body: bytes | None) -> int:
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


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


class ServiceEndpoint:
    def __init__(self, app: ASGIApp, controller: ControllerApi) -> None:
        self.app, self.ctl = app, controller
        self._callers: TTLCache[str, Caller] = TTLCache(maxsize=4096, ttl=CALLER_CACHE_S)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SERVICES):
            await self.app(scope, receive, send)
            return
        try:
            await self._serve(scope, receive, send)
        except Refused as e:
            await _answer(send, e.status, {"detail": e.detail}, e.headers)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            check_url(scope)
        except (Refusal, UnicodeDecodeError):
            raise Refused(422, "the path or query is not valid text") from None
        name = scope["path"][len(SERVICES):].partition("/")[0]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        caller = await self._caller(dict(headers).get(b"authorization", b"").decode("latin-1"))
        running = self.ctl.serving.running(name)
        if running is None:
            raise Refused(404, f"no running service named {name}")
        service_id, team = running
        user = caller.user
        if caller.key_of != service_id and not (
                user is not None and (user.is_admin or team in user.teams)):
            raise Refused(403, f"service {name} is for team {team}, admins and its keys")
        body = await _body(receive)
        raw = scope.get("raw_path") or scope["path"].encode()
        path = "/" + raw[len(SERVICES):].partition(b"/")[2].decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        serving = self.ctl.serving
        started = time.monotonic()
        serving.arrived(name)
        status = 502  # cut off before its end: as a gateway's error
        tokens = 0
        try:
            sent = await self._send(name, scope["method"], target, headers, body)
            if sent is None:
                status = 503
                raise Refused(503, f"service {name} has no ready replica; try again later",
                              {"Retry-After": str(RETRY_AFTER_S)})
            answer, endpoint = sent
            try:
                status, tokens = await _relay(answer, send)
            finally:
                answer.release()
                serving.release(endpoint)
        finally:
            serving.answered(name, status, time.monotonic() - started, tokens)

    async def _caller(self, authorization: str) -> Caller:
        """The caller a bearer token names; 401 without a valid one. Looked up once per
        ``CALLER_CACHE_S`` per token: a request costs no database read."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "missing token", {"WWW-Authenticate": "Bearer"})
        key = hash_token(token)
        found = self._callers.get(key)
        if found is None:
            try:
                found = await run_in_threadpool(self._lookup, token)
            except HTTPException as e:
                raise Refused(e.status_code, str(e.detail), dict(e.headers or {})) from None
            self._callers[key] = found
        return found

    def _lookup(self, token: str) -> Caller:
        try:
            return Caller(user_for_token(self.ctl, token), None)
        except HTTPException:
            key_of = self.ctl.services.service_of_key(token)
            if key_of is None:
                raise
            return Caller(None, key_of)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
                auto_decompress=False, timeout=aiohttp.ClientTimeout(sock_connect=10))
        return self._session

    async def _send(self, name: str, method: str, target: str,
                    headers: list[tuple[bytes, bytes]], body: bytes
                    ) -> tuple[aiohttp.ClientResponse, Endpoint] | None:
        """The first replica to begin an answer, with it; None once ``HOLD_S`` passed."""
        serving = self.ctl.serving
        forward = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
                   if k not in DROPPED and k != b"content-length"]  # ASGI's names: lowercase
        deadline = time.monotonic() + HOLD_S
        tried: set[int] = set()
        while True:
            endpoint = serving.pick(name, tried)
            if endpoint is None:
                if time.monotonic() > deadline or serving.running(name) is None:
                    return None
                serving.wake.set()
                tried.clear()  # a replica that failed may be back, or another started
                await asyncio.sleep(0.05)
                continue
            try:
                answer = await self._client().request(
                    method, f"http://{endpoint.host}:{endpoint.port}{target}",
                    headers=forward, data=body, allow_redirects=False)
                return answer, endpoint
            except NOT_BEGUN:
                serving.release(endpoint)
                serving.failed(name, endpoint)
                tried.add(endpoint.job_id)


async def _body(receive: Receive) -> bytes:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise Refused(499, "the caller left")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > SERVICE_BODY:
            raise Refused(413, f"the body is larger than {SERVICE_BODY} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _relay(answer: aiohttp.ClientResponse, send: Send) -> tuple[int, int]:
    """The replica's answer, chunk by chunk as it comes; its status and tokens."""
    headers = [(k.lower(), v) for k, v in answer.raw_headers if k.lower() not in DROPPED]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    keep = "json" in answer.headers.get("content-type", "")
    kept: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_any():
        if keep and size + len(chunk) <= USAGE_BYTES:
            kept.append(chunk)
        size += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    body = b"".join(kept) if keep and size <= USAGE_BYTES else None
    return answer.status, tokens_of(answer.headers, body)


async def _answer(send: Send, status: int, body: dict[str, Any],
                  headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in headers.items())]})
    await send({"type": "http.response.body", "body": data})
