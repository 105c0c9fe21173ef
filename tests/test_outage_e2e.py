"""A PostgreSQL outage under a running controller (#17): the API answers 503 with Retry-After
instead of "Internal Server Error", /healthz says why, the CLI waits and says what for, the
scheduler holds off, and everything works again once the database is back, nothing lost."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import ControllerProcess, clusterctl_argv
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from clusterctl.executor.local_ray import LocalRay

pytestmark = [pytest.mark.ray, pytest.mark.postgres]


@pytest.fixture
def proxied_pg() -> Iterator[tuple[str, TcpProxy]]:
    from conftest import fresh_pg_database, pg_server

    gen = fresh_pg_database(pg_server())
    url = make_url(next(gen))
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False), proxy
    finally:
        proxy.cut()
        gen.close()


def test_a_database_outage_is_a_503_and_a_wait_not_a_500(
        proxied_pg: tuple[str, TcpProxy], ray_head: LocalRay, tmp_path: Path) -> None:
    db, proxy = proxied_pg
    c = ControllerProcess(tmp_path / "ctl", ray_head.address, ray_head.token_file, db_url=db)
    c.start()
    try:
        before = c.submit("--", "true")
        assert c.wait_done(before)["state"] == "SUCCEEDED"
        proxy.cut()
        r = c.api("GET", "/v1/jobs")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
        assert r.json()["detail"] == "database unavailable; try again shortly"
        health = httpx.get(f"http://127.0.0.1:{c.port}/healthz", timeout=10)
        assert health.status_code == 503 and "unavailable" in health.json()["database"]
        waiting = subprocess.Popen([*clusterctl_argv(), "jobs", "--all", "--json"], env=c.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert waiting.stderr is not None
        said = waiting.stderr.readline()  # blocks until the CLI says why it waits (or exits)
        assert "waiting for the controller: database unavailable" in said, said
        assert waiting.poll() is None  # said it waits, and waits: not failed
        # The scheduler finds the outage at its next pass: wait for it to say so before the
        # database comes back (a CLI that answered within one pass interval once left no
        # pass inside the outage, and so no line to find).
        deadline = time.monotonic() + 60
        while "the scheduler holds off" not in (c.root / "controller.log").read_text():
            assert time.monotonic() < deadline, c.log_tail()
            time.sleep(0.2)
        proxy.start()
        out, err = waiting.communicate(timeout=90)
        assert waiting.returncode == 0, said + err
        assert str(before) in out
        after = c.submit("--", "true")  # the scheduler took up its work again
        assert c.wait_done(after)["state"] == "SUCCEEDED"
        assert httpx.get(f"http://127.0.0.1:{c.port}/healthz", timeout=10).status_code == 200
        log = (c.root / "controller.log").read_text()
        assert log.count("the scheduler holds off") == 1 and "the database is back" in log
        assert "Traceback" not in log
    finally:
        if not proxy.serving:
            proxy.start()
        c.stop()
