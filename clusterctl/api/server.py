"""Serving the API: uvicorn in the foreground (``clusterctl up``) or in a thread (the demo).

The controller is prepared before the server listens and closed after it stops, so the first
answer already reflects the cluster and no request reaches a stopped scheduler.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import uvicorn
from prometheus_client import start_http_server

from clusterctl.api.app import create_app
from clusterctl.controller.service import Controller

GRACE_S = 5
"""How long a stopping controller lets the requests in flight finish."""


class ApiServer:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        s = controller.settings
        self.port = s.port
        # A stop waits at most GRACE_S for the requests in flight: else, under TLS, every
        # kept-alive client connection holds the exit for asyncio's 30 s wait on the client's
        # close_notify (which an idle client never sends), and a follow stream for as long
        # as its job runs.
        config = uvicorn.Config(create_app(controller), host=s.host, port=s.port,
                                log_level="warning", access_log=False, lifespan="off",
                                ssl_certfile=s.tls_cert or None, ssl_keyfile=s.tls_key or None,
                                timeout_graceful_shutdown=GRACE_S)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._metrics: Any = None

    def _serve_metrics(self) -> None:
        """The controller's /metrics on a listener of its own (Prometheus' port, for the
        cluster network), not on the API port people use."""
        s = self.controller.settings
        self._metrics, _ = start_http_server(s.metrics_port, s.metrics_host,
                                             registry=self.controller.metrics.registry)

    def serve(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM, then close the controller.

        uvicorn raises the signal it caught again once it has stopped; SIGTERM's default
        action would end the process there, before anything is closed (and before ``up``
        stops the Ray head and agent it started), so it becomes an orderly exit instead."""
        signal.signal(signal.SIGTERM, _exit_in_order)
        try:
            self._serve_metrics()
            self.server.run()
        finally:
            self._stop_metrics()
            self.controller.close()

    def serve_in_thread(self) -> None:
        self._serve_metrics()
        self._thread = threading.Thread(target=self.server.run, name="api", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the API could not listen on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving, then close the controller."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._stop_metrics()
        self.controller.close()

    def _stop_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None


def _exit_in_order(signum: int, frame: Any) -> None:
    """SIGTERM is how systemd and people stop a service: exit 0 through every ``finally``."""
    raise SystemExit(0)
