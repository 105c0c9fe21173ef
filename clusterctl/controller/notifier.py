"""Sending webhook notifications, away from the scheduler's path.

A reader thread turns job ends in the history into deliveries (``notifications.py`` says which
go where) and moves the store's cursor on; a small pool posts them, each retried with backoff
(tenacity) and then given up with one line in the log. A webhook that is slow or down delays
only its own deliveries and is never fatal; the log names its host, never the URL, which may
hold a secret and is its owner's to see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from clusterctl.controller.background import Periodic
from clusterctl.notifications import ENDS, JobEnd, destinations
from clusterctl.store import Job
from clusterctl.store.notify import NotifyStore

log = logging.getLogger(__name__)
SETTLE_S = 3.0
"""How old a job event is before it is read: longer than any transaction that writes one."""


class Notifier(Periodic):
    name = "notifier"
    first_at_start = True  # the first start reads where the history is, before any new end

    def __init__(self, store: NotifyStore, cost: Callable[[int], float | None],
                 cluster_url: str | None = None, interval_s: float = 2.0, attempts: int = 5,
                 timeout_s: float = 10.0, max_wait_s: float = 30.0,
                 settle_s: float = SETTLE_S) -> None:
        super().__init__(interval_s)
        self.settle_s = settle_s
        self.store, self.cost, self.cluster_url = store, cost, cluster_url
        self.attempts, self.timeout_s, self.max_wait_s = attempts, timeout_s, max_wait_s
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="notify")
        self.last: int | None = None
        """The last job event read (None: not yet known; the store keeps it durably)."""
        self.sent = 0
        self.failed = 0

    def stop(self) -> None:
        super().stop()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def send(self, url: str | None, body: dict[str, Any]) -> None:
        """Post ``body`` to ``url`` in the background (nothing if there is no URL)."""
        if url:
            self.pool.submit(self._deliver, url, body)

    def announce(self, body: dict[str, Any]) -> None:
        """To the cluster's channel (``notify_url``), if it has one."""
        self.send(self.cluster_url, body)

    def tell_owner(self, job: Job, body: dict[str, Any]) -> None:
        """To the job's ``--notify`` address and its owner's, once each."""
        users, _ = self.store.urls({job.user}, set())
        for url in dict.fromkeys(u for u in (job.notify_url, users.get(job.user)) if u):
            self.send(url, body)

    def tell_team(self, team: str, body: dict[str, Any]) -> None:
        """To the team's channel and the cluster's."""
        self.send(self.store.team_url(team), body)
        self.announce(body)

    def tick(self) -> None:
        if self.last is None:
            self.last = self.store.cursor()
        self.last = self.poll(self.last)

    def poll(self, last: int) -> int:
        """Queue the deliveries for the ends after event ``last`` that are ``settle_s`` old
        (see ``NotifyStore.events_after``); the new cursor."""
        settled = datetime.now(timezone.utc) - timedelta(seconds=self.settle_s)
        rows = self.store.events_after(last, sorted(ENDS), before=settled)
        if not rows:
            return last
        users, teams = self.store.urls({j.user for _, j in rows}, {j.team for _, j in rows})
        for event, job in rows:
            assert job.id is not None and event.id is not None
            urls = destinations(event.state, job.notify_url, users.get(job.user),
                                teams.get(job.team), self.cluster_url)
            if urls:
                end = JobEnd(job.id, job.name, job.user, job.team, event.state, event.reason,
                             self._cost(job.id))
                for url in urls:
                    self.send(url, end.body())
            last = event.id
        self.store.advance(last)
        return last

    def _cost(self, job_id: int) -> float | None:
        try:
            return self.cost(job_id)
        except Exception:  # a price is a nicety here, never a reason to drop the message
            log.debug("notifications: no cost for job %s", job_id, exc_info=True)
            return None

    def _deliver(self, url: str, body: dict[str, Any]) -> None:
        host = urlsplit(url).hostname or "?"
        retrying = Retrying(
            retry=retry_if_exception_type(httpx.HTTPError), reraise=True,
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=1, min=1, max=self.max_wait_s),
            before_sleep=lambda s: log.info("webhook to %s: %s; trying again", host,
                                            s.outcome.exception() if s.outcome else "?"))
        try:
            retrying(self._post, url, body)
            self.sent += 1
        except Exception as e:
            self.failed += 1
            log.warning("webhook to %s gave up after %d tries (%s): %s", host, self.attempts,
                        type(e).__name__, body.get("text"))

    def _post(self, url: str, body: dict[str, Any]) -> None:
        if self.stopping:
            return
        r = httpx.post(url, json=body, timeout=self.timeout_s)
        r.raise_for_status()  # 4xx and 5xx are HTTPStatusError: retried like a refusal
