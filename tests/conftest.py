"""Shared fixtures: databases (SQLite, and PostgreSQL when CLUSTERCTL_TEST_PG_URL is set), a
real Ray head started with `ray start`, and controllers run as the real `clusterctl` command.

The suite runs in parallel workers (pytest-xdist; scripts/test.sh): tests that share a fixture
wider than one test (a module's controller) stay on one worker, every other test goes where
there is room, the longest modules first (the scheduler at the end of this file). Each worker
is its own process, in a PID namespace of its own where it runs as root, with its own Ray head
(the session fixture below), temporary directories, free ports and PostgreSQL databases;
nothing is shared between workers but the PostgreSQL server."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterctl.executor.local_ray import ensure_token

PG_URL = os.environ.get("CLUSTERCTL_TEST_PG_URL")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # xdist's workers set COLUMNS=80 and LINES=24 for themselves; the CLI processes the tests
    # start would inherit them and print tables cut to 80 columns, unlike under a plain run.
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)

# Ray reads its auth mode when first imported, and pytest may import it while collecting: give
# this test process (and the in-process ray.cluster_utils clusters) a token before that.
RAY_TOKEN = ensure_token(Path(tempfile.mkdtemp(prefix="clusterctl-test-ray-")) / "auth_token")
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN_PATH"] = str(RAY_TOKEN)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    yield from fresh_pg_database(pg_server())


def pg_server() -> str:
    """The PostgreSQL server the tests make their databases on. Without one a PostgreSQL test
    is skipped on a developer's machine, but fails under CI (``CI=true``): there `.ci/run`
    installs and starts PostgreSQL, so a missing server is a broken run, not a smaller one."""
    if PG_URL:
        return PG_URL
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CLUSTERCTL_TEST_PG_URL is not set, and under CI every PostgreSQL test "
                    "runs: .ci/run installs and starts PostgreSQL", pytrace=False)
    pytest.skip("CLUSTERCTL_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL of its "
                "own where its server is installed)")


def fresh_pg_database(base: str) -> Iterator[str]:
    from clusterctl.store.db import scratch_database

    with scratch_database(base, "cct") as url:
        yield url


# -- Ray and controllers ----------------------------------------------------------------------

from harness import ControllerProcess  # noqa: E402
from webhook import Hook  # noqa: E402

from clusterctl.executor.local_ray import LocalRay, start_local_ray  # noqa: E402


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRay]:
    """A single-node Ray cluster with 4 simulated GPUs, started with `ray start --head`."""
    head = start_local_ray(tmp_path_factory.mktemp("ray-head"), num_gpus=4, node_name="node-a",
                           gpu_model="simulated", num_cpus=2)
    yield head
    head.stop()


@pytest.fixture
def controller(ray_head: LocalRay, tmp_path: Path) -> Iterator[ControllerProcess]:
    """A controller of its own (database, data directory, config) on the shared Ray head."""
    c = ControllerProcess(tmp_path / "ctl", ray_head.address, ray_head.token_file)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A local webhook receiver (``webhook.Hook``), shut down after the test."""
    h = Hook()
    yield h
    h.server.shutdown()


# -- parallel workers: markers, groups and order -----------------------------------------------

LONGEST_FIRST = (
    "test_deploy.py", "test_compiled_build.py", "test_chaos_e2e.py", "test_api_fuzz.py",
    "test_ray_outage_e2e.py", "test_demo_e2e.py", "test_cancel_e2e.py", "test_agent_e2e.py",
    "test_jobs_e2e.py", "test_recovery_e2e.py", "test_up_crash_e2e.py",
    "test_multinode_e2e.py", "test_interactive_e2e.py", "test_scheduling_e2e.py",
    "test_mixed_machine_e2e.py", "test_notify_e2e.py", "test_production_e2e.py",
    "test_reports_e2e.py", "test_mixed_fleet_e2e.py", "test_services_e2e.py",
)
"""Modules whose tests take the longest (the suite's durations reports, 2026-12-06 and
2026-12-07: a single test of 60-95 s among them that started last trailed the run): handed out
to the workers first."""

SHARED_SCOPES = ("module", "class", "package")
GROUPS_DIR = "CLUSTERCTL_TEST_GROUPS"
"""Where the workers write which tests must share a worker, for the scheduler to read."""


def _shared_group(item: pytest.Item) -> str | None:
    """Tests that share a fixture instance wider than one test (a module's controller) must
    run on one worker: the module, and that fixture's parameter (the fuzz's SQLite controller
    and its PostgreSQL one are two groups). None: the test goes to any worker on its own."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    shared = sorted(name for name in info.names_closure
                    if (defs := info.name2fixturedefs.get(name)) and defs[-1].scope
                    in SHARED_SCOPES)
    if not shared:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    return item.path.name + "".join(f"[{params[n]}]" for n in shared if n in params)


def pytest_configure(config: pytest.Config) -> None:
    _terminal_signals()
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller, before it starts workers
        os.environ[GROUPS_DIR] = tempfile.mkdtemp(prefix="clusterctl-test-groups-")


def _terminal_signals() -> None:
    """SIGINT and SIGHUP as a terminal gives them. A suite started in the background (``cmd &``
    in a script ignores SIGINT) or under nohup (SIGHUP) passes the ignoring on to every
    command the tests start, and a CLI that ignores Ctrl-C fails the tests of Ctrl-C for a
    reason no user has. A signal set to a handler, not ignored, is back to its default in a
    child once it runs a program."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = {}
    for item in items:
        # Anything on the shared Ray head is a Ray test, marked or not: `--quick` leaves it out.
        if "ray_head" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        group = _shared_group(item)
        if group is not None:
            groups[item.nodeid] = group

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a module's tests keep their order
    worker, where = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get(GROUPS_DIR)
    if worker and where:  # every worker collects the same tests: any one's table will do
        out = Path(where) / f"{worker}.json"
        out.with_suffix(".tmp").write_text(json.dumps(groups))
        out.with_suffix(".tmp").replace(out)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scopes, but a scope is a group of tests that share a fixture (the workers'
    table), and every other test is a scope of its own. (xdist's own ``loadgroup`` marks no
    longer reach its scheduler under pytest 9: it renames items through ``_nodeid``.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        table: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.table is None:
                found = sorted(Path(os.environ[GROUPS_DIR]).glob("*.json"))
                self.table = json.loads(found[0].read_text()) if found else {}
            return self.table.get(nodeid, nodeid)

    return SharedFixtureScheduling(config, log)
