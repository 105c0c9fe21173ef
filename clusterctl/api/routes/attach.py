"""WebSockets to a running job: its terminal (``clusterctl run``, ``attach``) and the ports it
serves (``clusterctl port-forward``).

The controller relays bytes between the user's WebSocket and a TCP connection to the job's
node: to its runner's terminal (``executor/terminal.py``), or to the port itself. The user
proves who they are with the same bearer token as every call, and only the job's owner (or
an admin) gets through. Refusals are a JSON text message ``{"error": ..., "status": N}`` and
a close with code 4000 + N, since a browser or a client library sees neither the body nor the
status of a refused WebSocket handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from clusterctl.api.auth import user_for_token
from clusterctl.api.deps import load_job
from clusterctl.api.routes.jobs import require_owner
from clusterctl.controller.interface import ControllerApi
from clusterctl.executor import terminal as wire
from clusterctl.executor.types import Started
from clusterctl.parsing import BadInput, parse_natural
from clusterctl.states import ENDED, JobState
from clusterctl.store import Job

router = APIRouter()
log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _token(ws: WebSocket) -> str | None:
    scheme, _, token = ws.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _running_job(ctl: ControllerApi, ws: WebSocket, job_id: str) -> tuple[Job, Started | None]:
    """The job the path names, checked as every route checks it (in a worker thread: the
    database is not async)."""
    try:
        user = user_for_token(ctl, _token(ws))
        job = load_job(ctl, job_id)
        require_owner(user, job, "terminal")
    except HTTPException as e:
        raise Refused(e.status_code, str(e.detail)) from None
    except BadInput as e:
        raise Refused(422, str(e)) from None
    return job, ctl.attach_point(job.id) if job.id is not None else None


async def _refuse(ws: WebSocket, status: int, message: str) -> None:
    await ws.send_text(json.dumps({"error": message, "status": status}))
    await ws.close(code=4000 + status, reason=message[:120])


async def _checked(ws: WebSocket, job_id: str, interactive: bool
                   ) -> tuple[Job, Started] | None:
    """Accept, then the job and where its rank 0 runs; None once refused (said and closed).
    A job that has ended is answered with how it ended, as a final message."""
    ctl: ControllerApi = ws.app.state.services
    await ws.accept()
    try:
        job, point = await run_in_threadpool(_running_job, ctl, ws, job_id)
    except Refused as e:
        await _refuse(ws, e.status, str(e))
        return None
    if interactive and job.interactive is None:
        await _refuse(ws, 409, f"job {job.id} is a batch job (submit); only jobs started with "
                      "`clusterctl run` have a terminal: see `clusterctl logs`")
        return None
    state = JobState(job.state)
    if state in ENDED:
        await ws.send_text(json.dumps({"ended": job.state, "reason": job.reason,
                                       "exit_code": job.exit_code}))
        await ws.close()
        return None
    if state != JobState.RUNNING or point is None:
        await _refuse(ws, 503, f"job {job.id} is {job.state}: not running yet"
                      if state != JobState.RUNNING else
                      f"job {job.id} runs, but the controller cannot reach it now "
                      "(it may have just restarted); try again")
        return None
    return job, point


@router.websocket("/v1/jobs/{job_id}/attach")
async def attach(ws: WebSocket, job_id: str) -> None:
    """The job's terminal: binary messages are its input and output, text messages control
    (``terminal.from_user``) and, from the server, ``{"exit_code": N}`` at the end."""
    offset_text = ws.query_params.get("offset")
    checked = await _checked(ws, job_id, interactive=True)
    if checked is None:
        return
    _, point = checked
    if point.terminal is None:
        await _refuse(ws, 503, "the job's terminal is not known (a runner of an older "
                      "release?)")
        return
    host, port, key = point.terminal
    try:
        offset = None if not offset_text else parse_natural(offset_text, "offset")
    except BadInput as e:
        await _refuse(ws, 422, str(e))
        return
    hello = wire.frame(wire.HELLO, json.dumps({"key": key, "offset": offset}).encode())
    await _relay(ws, host, port, hello, _from_user_to_runner, _from_runner_to_user)


@router.websocket("/v1/jobs/{job_id}/ports/{port}")
async def forward(ws: WebSocket, job_id: str, port: str) -> None:
    """One TCP connection to a port the job serves (``run --port``), on its node."""
    checked = await _checked(ws, job_id, interactive=False)
    if checked is None:
        return
    job, point = checked
    ports = (job.interactive or {}).get("ports") or []
    try:
        number = parse_natural(port, "port", 65535)
    except BadInput:
        number = None
    if number is None or number not in ports:
        shown = ", ".join(str(p) for p in ports) or "none (run --port PORT declares one)"
        await _refuse(ws, 422, f"port: job {job.id} serves {shown}, not {port[:10]!r}")
        return
    await _relay(ws, point.node_ip, number, b"", _raw_up, _raw_down)


Pump = Callable[[WebSocket, asyncio.StreamReader, asyncio.StreamWriter],
                Coroutine[Any, Any, None]]


async def _relay(ws: WebSocket, host: str, port: int, first: bytes, up: Pump, down: Pump
                 ) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                CONNECT_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError) as e:
        await _refuse(ws, 502, f"cannot reach {host}:{port} on the job's node "
                      f"({type(e).__name__})")
        return
    if first:
        writer.write(first)
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(up(ws, reader, writer)),
             asyncio.create_task(down(ws, reader, writer))]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        for t in done:
            error = t.exception()
            if isinstance(error, wire.FrameError):
                with contextlib.suppress(OSError, RuntimeError):
                    await _refuse(ws, 422, str(error))
            elif error is not None and not isinstance(error, (WebSocketDisconnect, OSError)):
                log.warning("relay to %s:%s ended: %r", host, port, error)
    finally:
        writer.close()
        with contextlib.suppress(OSError, RuntimeError):
            if ws.application_state == WebSocketState.CONNECTED \
                    and ws.client_state == WebSocketState.CONNECTED:
                await ws.close()


async def _from_user_to_runner(ws: WebSocket, _: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return  # no hangup frame: the runner's grace period starts
        if message.get("bytes") is not None:
            for f in wire.input_frames(message["bytes"]):
                writer.write(f)
        elif message.get("text") is not None:
            writer.write(wire.from_user(message["text"]))
        await writer.drain()


async def _from_runner_to_user(ws: WebSocket, reader: asyncio.StreamReader,
                               _: asyncio.StreamWriter) -> None:
    frames = wire.FrameReader()
    while data := await reader.read(1 << 16):
        for kind, payload in frames.feed(data):
            if kind == wire.OUTPUT:
                await ws.send_bytes(payload)
            elif kind == wire.EXIT:
                await ws.send_text(payload.decode())
            elif kind == wire.ERROR:
                await ws.send_text(json.dumps({"error": payload.decode(errors="replace"),
                                               "status": 409}))


async def _raw_up(ws: WebSocket, _: asyncio.StreamReader, writer: asyncio.StreamWriter
                  ) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes"):
            writer.write(message["bytes"])
            await writer.drain()


async def _raw_down(ws: WebSocket, reader: asyncio.StreamReader, _: asyncio.StreamWriter
                    ) -> None:
    while data := await reader.read(1 << 16):
        await ws.send_bytes(data)
