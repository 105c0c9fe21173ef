"""Shipping spooled samples to the controller, oldest first, with backoff while it is away.

The controller answers each batch with the allocations of this node (which GPU holds which job,
and whose it is): the exporter labels metrics with them and the simulated reader loads the GPUs
that hold a job. One request per interval does both.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, wait_exponential_jitter

from agents.spool import Spool

log = logging.getLogger(__name__)


def _worth_retrying(e: BaseException) -> bool:
    if isinstance(e, httpx.TransportError):
        return True
    # 401/403 too: an admin may fix the node token without restarting the agent.
    # 507: the controller's disk is full; the samples wait in the spool until it has room.
    return isinstance(e, httpx.HTTPStatusError) and e.response.status_code in (
        401, 403, 408, 429, 500, 502, 503, 504, 507)


class Shipper:
    def __init__(
        self,
        spool: Spool,
        http: httpx.Client,
        node: str,
        *,
        batch_size: int = 5000,
        on_allocations: Callable[[list[dict[str, Any]]], None] = lambda _: None,
        clock: Callable[[], float] = time.time,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.spool = spool
        self.http = http
        self.node = node
        self.batch_size = batch_size
        self.on_allocations = on_allocations
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.shipped = 0
        self.refused = 0
        """Samples the controller refused (stamped outside its clock window)."""
        self.last_ship: float | None = None
        self.host: dict[str, int] | None = None
        """The machine's memory as last read (``host.py``), sent with each batch."""
        self.kick = threading.Event()
        self.stopped = threading.Event()

    def ship_pending(self) -> int:
        """Ship everything in the spool; raises on the first batch the controller refuses."""
        sent = 0
        while not self.stopped.is_set():
            upto, rows = self.spool.oldest(self.batch_size)
            if not rows:
                break
            body: dict[str, Any] = {"node": self.node, "samples": rows}
            if self.host is not None:
                body["host"] = self.host
            r = self.http.post("/v1/agent/samples", json=body)
            if r.status_code == 422:  # refused for good (e.g. this node's clock is wrong):
                # sending it again would only hold back every sample behind it
                log.error("the controller refused %d samples and they are dropped: %s",
                          len(rows), r.text[:300])
                self.spool.ack(upto)
                self.refused += len(rows)
                continue
            r.raise_for_status()
            self.spool.ack(upto)
            answer = r.json()
            sent += len(rows)
            self.shipped += answer.get("inserted", 0) + answer.get("duplicates", 0)
            self.refused += answer.get("refused", 0)
            self.last_ship = self.clock()
            self.on_allocations(answer.get("allocations", []))
        return sent

    def run(self, every_s: float) -> None:
        """Ship after every read (``kick``) or every ``every_s``, until :meth:`stop`."""
        retrying = Retrying(
            retry=retry_if_exception(_worth_retrying),
            wait=wait_exponential_jitter(initial=1, max=self.max_backoff_s),
            stop=lambda _: self.stopped.is_set(),
            sleep=self._sleep,
            before_sleep=lambda rs: log.warning(
                "cannot ship samples (%s); %d waiting in the spool, retrying",
                rs.outcome.exception() if rs.outcome else "?", self.spool.pending()),
            reraise=True,
        )
        while not self.stopped.is_set():
            self.kick.wait(every_s)
            self.kick.clear()
            if self.stopped.is_set():
                break
            try:
                retrying(self.ship_pending)
            except Exception as e:
                if not self.stopped.is_set():
                    log.error("shipping samples failed: %s", e)

    def _sleep(self, seconds: float) -> None:
        self.stopped.wait(seconds)  # a stop cuts a backoff short

    def stop(self) -> None:
        self.stopped.set()
        self.kick.set()
