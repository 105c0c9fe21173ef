"""Validation at the edge, before any route: what no route may ever see.

- A request body has a size limit (413), checked as it streams in: 1 MiB for the API's JSON,
  more for agents' sample batches; working-directory uploads enforce their own limit.
- Text is valid UTF-8 without NUL characters or lone UTF-16 surrogates (``"\\ud800"`` is valid
  JSON, but no database stores it, and once stored it broke every listing for every user):
  anywhere in a JSON body, its keys included, and in the path and query string. The refusal is
  a 422 that names the field, like every other bad input.

It is a plain ASGI middleware, so the body it read is handed on to the route unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1 << 20
BODY_LIMITS: dict[str, int | None] = {
    "/v1/agent/samples": 32 << 20,  # a spool's backlog, shipped in batches
    "/v1/packages": None,  # streamed; the route enforces max_package_mb itself
}
MAX_DEPTH = 32
"""How deep a JSON body may nest (ours nest three or four levels)."""
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class Refusal(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message


def check_text(value: str, field: str) -> None:
    bad = _BAD_TEXT.search(value)
    if bad is not None:
        what = "a NUL character" if bad.group() == "\x00" else "a lone UTF-16 surrogate"
        raise Refusal(422, field, f"contains {what}; text must be valid UTF-8 without NUL")


def check_json(value: Any, field: str = "body") -> None:
    """Every string of a decoded JSON value, keys included, and its depth: no body of ours
    nests past ``MAX_DEPTH``, and the routes' own parsing recurses. A loop, not recursion, so
    a deep body is refused rather than crashing the check."""
    todo: list[tuple[Any, str, int]] = [(value, field, 0)]
    while todo:
        item, where, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise Refusal(422, "body", f"nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, dict):
            for k, v in item.items():
                check_text(k, where)
                todo.append((v, f"{where}.{k}" if where != "body" else k, depth + 1))
        elif isinstance(item, list):
            todo.extend((v, f"{where}.{i}", depth + 1) for i, v in enumerate(item))


def check_body(raw: bytes) -> Any:
    """The JSON value of ``raw``, once checked (routes that validate a large body take it
    from here instead of decoding it again: ``decoded_body``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(422, "body", "is not valid UTF-8") from None
    try:
        value = json.loads(text)
    except RecursionError:  # deeper than the interpreter's stack: json gives up first
        raise Refusal(422, "body", f"nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise Refusal(422, "body", "is not valid JSON") from None
    check_json(value)
    return value


DECODED = "clusterctl_json_body"
"""Where the guard leaves a JSON body it decoded, in the request's scope state."""


def decoded_body(scope: Scope) -> tuple[bool, Any]:
    """(whether the guard decoded this request's JSON body, its value)."""
    state = scope.get("state") or {}
    return (DECODED in state), state.get(DECODED)


def check_url(scope: Scope) -> None:
    check_text(scope.get("path", ""), "path")  # the server has percent-decoded it
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True, errors="strict"):
        check_text(key, "query")
        check_text(value, key)


class EdgeGuard:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_url(scope)
        except (Refusal, UnicodeDecodeError) as e:
            refusal = e if isinstance(e, Refusal) else Refusal(422, "query", "is not UTF-8")
            await _refuse(send, refusal)
            return
        limit = BODY_LIMITS.get(scope.get("path", ""), self.max_body)
        if limit is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left while sending: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(send, Refusal(413, "body", f"is larger than {limit} bytes"))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(scope):
            try:
                scope.setdefault("state", {})[DECODED] = check_body(body)
            except Refusal as e:
                await _refuse(send, e)
                return
        await self.app(scope, _replay(body, receive), send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # no content type: FastAPI reads JSON bodies anyway


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read here, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, refusal: Refusal) -> None:
    body = json.dumps({"detail": str(refusal), "field": refusal.field}).encode()
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
