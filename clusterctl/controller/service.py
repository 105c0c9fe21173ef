"""The controller: store, scheduler loop, Ray executor and HTTP API, started and stopped as one.

Start order matters: migrate the database, connect to Ray and reconcile with what runs there,
and only then accept requests, so the first answer already reflects the cluster.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from clusterctl.api.app import Services, create_app
from clusterctl.controller.files import LogStore, PackageStore
from clusterctl.controller.reports import ReportService
from clusterctl.controller.telemetry import Housekeeper
from clusterctl.executor.local_ray import ray_env
from clusterctl.scheduler.loop import Scheduler
from clusterctl.scheduler.state import PolicyConfig
from clusterctl.settings import Settings
from clusterctl.store import (
    AllocationUsageStore,
    CostStore,
    JobStore,
    NodeStore,
    ReportStore,
    SampleStore,
    UserStore,
    installation_id,
    make_engine,
    migrate,
)

log = logging.getLogger(__name__)


def local_user_name() -> str:
    raw = getpass.getuser()
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", raw).strip("-.") or "admin"
    return cleaned[:64]


@dataclass
class Bootstrap:
    user: str
    token: str | None
    """A new token when one was made (write it to the CLI config), else None."""


class Controller:
    def __init__(self, settings: Settings, ray_address: str,
                 ray_token_file: str | None = None) -> None:
        self.settings = settings
        self.ray_address = ray_address
        self.ray_token_file = ray_token_file
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def prepare(self, connect_timeout_s: float = 90) -> None:
        data = Path(self.settings.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        migrate(self.settings.db_url)
        self.engine = make_engine(self.settings.db_url)
        self.jobs = JobStore(self.engine)
        self.users = UserStore(self.engine)
        self.samples = SampleStore(self.engine)
        self.costs = CostStore(self.engine)
        self.node_store = NodeStore(self.engine)
        namespace = f"clusterctl-{installation_id(self.engine)}"
        # Ray reads its auth settings when it is imported: set them first, import it after.
        os.environ.update(ray_env(self.ray_token_file, base={}))
        from clusterctl.executor.ray_executor import RayExecutor

        self.executor = RayExecutor(self.ray_address, namespace)
        self._connect(connect_timeout_s)
        self.scheduler = Scheduler(
            self.jobs, self.executor, LogStore(data / "logs"), PackageStore(data / "packages"),
            kill_grace_s=self.settings.kill_grace_s,
            policy_config=PolicyConfig(
                quotas=dict(self.settings.quotas), user_gpu_limit=self.settings.user_gpu_limit,
                preempt=self.settings.preempt, preempt_grace_s=self.settings.preempt_grace_s),
            drained=lambda: set(self.node_store.drained()),
        )
        self.scheduler.start()
        self.housekeeper = Housekeeper(
            self.samples, AllocationUsageStore(self.engine),
            raw_keep_s=self.settings.sample_retention_s,
            minute_keep_s=self.settings.minute_rollup_retention_s,
            idle_threshold=self.settings.waste_threshold)
        self.housekeeper.start()
        self.app = create_app(Services(
            jobs=self.jobs, users=self.users, scheduler=self.scheduler,
            logs=self.scheduler.logs, packages=self.scheduler.packages,
            max_package_bytes=int(self.settings.max_package_mb * (1 << 20)),
            samples=self.samples, costs=self.costs, nodes=self.node_store,
            reports=ReportService(ReportStore(self.engine), self.costs, self.samples,
                                  self.settings.waste_threshold),
            raw_retention_s=self.settings.sample_retention_s,
        ))

    def _connect(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.executor.connect()
                if self.executor.nodes():
                    return
            except Exception as e:  # Ray not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot connect to Ray at {self.ray_address}: {e}") from e
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray at {self.ray_address} reports no nodes")
            time.sleep(0.5)

    def bootstrap_admin(self, existing_token: str | None) -> Bootstrap:
        """Make sure the local OS user is an admin whose token the CLI holds."""
        name = local_user_name()
        if existing_token:
            user = self.users.by_token(existing_token)
            if user is not None and user.is_admin:
                return Bootstrap(user.name, None)
        if self.users.by_name(name) is None:
            _, token = self.users.add(name, "default", is_admin=True)
        else:
            rotated = self.users.rotate(name)
            assert rotated is not None
            token = rotated
        return Bootstrap(name, token)

    def _server(self) -> uvicorn.Server:
        config = uvicorn.Config(self.app, host=self.settings.host, port=self.settings.port,
                                log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        return self.server

    def serve(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM, then stop the scheduler."""
        try:
            self._server().run()
        finally:
            self.close()

    def serve_in_thread(self) -> None:
        server = self._server()
        self._thread = threading.Thread(target=server.run, name="api", daemon=True)
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the API could not listen on port {self.settings.port}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if hasattr(self, "housekeeper"):
            self.housekeeper.stop()
        if hasattr(self, "scheduler"):
            self.scheduler.stop()
        if hasattr(self, "executor"):
            self.executor.shutdown()
