"""Shared fixtures: databases (SQLite, and PostgreSQL when CLUSTERCTL_TEST_PG_URL is set), a
real Ray head started with `ray start`, and controllers run as the real `clusterctl` command."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clusterctl.executor.local_ray import ensure_token

PG_URL = os.environ.get("CLUSTERCTL_TEST_PG_URL")

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
    if not PG_URL:
        pytest.skip("CLUSTERCTL_TEST_PG_URL is not set")
    yield from _pg_database(PG_URL)


def _pg_database(base: str) -> Iterator[str]:
    from clusterctl.store import normalize_url

    url = make_url(normalize_url(base))
    name = f"cct_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- Ray and controllers ----------------------------------------------------------------------

from harness import Controller  # noqa: E402
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
def controller(ray_head: LocalRay, tmp_path: Path) -> Iterator[Controller]:
    """A controller of its own (database, data directory, config) on the shared Ray head."""
    c = Controller(tmp_path / "ctl", ray_head.address, ray_head.token_file)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A local webhook receiver (``webhook.Hook``), shut down after the test."""
    h = Hook()
    yield h
    h.server.shutdown()
