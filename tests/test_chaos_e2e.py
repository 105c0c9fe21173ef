"""Chaos in CI (#17, item 11): about two minutes of jobs (1 to 4 GPUs, some failing, some
cancelled, some with retries) on a two-worker Ray cluster while the controller, a runner, an
agent, a worker node and the database are killed or cut at random; then every invariant of
tests/chaos.py. The seed is printed; CHAOS_SEED replays a run, CHAOS_SECONDS lengthens it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos import KINDS, Chaos
from conftest import RAY_TOKEN, fresh_pg_database, pg_server
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

pytestmark = [pytest.mark.ray, pytest.mark.postgres]


@pytest.fixture
def database() -> Iterator[tuple[str, str, TcpProxy]]:
    """PostgreSQL behind a proxy the chaos can cut: the database outage is one of the faults
    this test promises, so it runs on PostgreSQL or not at all (a failure under CI)."""
    gen = fresh_pg_database(pg_server())
    direct = next(gen)
    url = make_url(direct)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False), direct, proxy
    finally:
        proxy.cut()
        gen.close()


@pytest.mark.timeout(900)
def test_chaos_leaves_every_invariant_standing(
        database: tuple[str, str, TcpProxy], tmp_path: Path) -> None:
    db_url, direct, proxy = database
    seed = int(os.environ["CHAOS_SEED"]) if os.environ.get("CHAOS_SEED") else None
    chaos = Chaos(tmp_path, RAY_TOKEN, db_url, direct, proxy.cut, proxy.start, seed=seed)
    print(f"chaos seed {chaos.seed} (CHAOS_SEED={chaos.seed} replays it)")
    try:
        chaos.start()
        chaos.run(float(os.environ.get("CHAOS_SECONDS", "40")), fault_every_s=(2, 4),
                  min_jobs=20)
        report = chaos.check(chaos.settle())
    finally:
        chaos.stop()
    print(report.summary())
    assert report.violations == [], report.summary() + "\n" + "\n".join(report.violations)
    kinds = {k for _, k in report.events}
    assert kinds >= set(KINDS), report.summary()  # every kind of fault, the database's too
    assert report.jobs >= 20 and report.samples > 0, report.summary()
