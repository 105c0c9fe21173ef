"""Services in the database (#35), on SQLite and PostgreSQL: a running service's name is its
own until it stops, its replicas are the jobs that name it, and its package is kept."""

from __future__ import annotations

import pytest

from clusterctl.job_request import JobRequest
from clusterctl.parsing import BadInput
from clusterctl.states import JobState
from clusterctl.store import JobStore, NewJob, ServiceStore, make_engine, migrate

REQUEST = {"name": "chat", "replica": {"command": ["serve"], "package": "ab" * 32}}


@pytest.fixture
def stores(db_url: str) -> tuple[ServiceStore, JobStore]:
    migrate(db_url)
    engine = make_engine(db_url)
    return ServiceStore(engine), JobStore(engine)


def test_a_running_name_is_taken_until_the_service_stops(
        stores: tuple[ServiceStore, JobStore], db_url: str) -> None:
    services, _ = stores
    first = services.create("chat", "alice", "nlp", REQUEST, 1, 2)
    with pytest.raises(BadInput) as e:
        services.create("chat", "bob", "vision", REQUEST, 1, 1)
    assert e.value.field == "NAME"
    assert services.stop(first.id or 0)
    assert not services.stop(first.id or 0)  # stopped once
    assert not services.scale(first.id or 0, 0, 4)  # a stopped service stays as it ended
    second = services.create("chat", "bob", "vision", REQUEST, 1, 1)
    again = ServiceStore(make_engine(db_url))  # what a restarted controller reads
    assert [s.id for s in again.listing()] == [second.id]
    assert [s.id for s in again.listing(include_stopped=True)] == [first.id, second.id]
    assert again.running("chat").team == "vision"  # type: ignore[union-attr]


def test_replicas_are_the_service_s_live_jobs_and_a_stopped_one_s_are_found(
        stores: tuple[ServiceStore, JobStore]) -> None:
    services, jobs = stores
    svc = services.create("chat", "alice", "nlp", REQUEST, 2, 2)
    replica = JobRequest.parse(REQUEST["replica"])
    made = [jobs.submit(NewJob(name="chat", user="alice", team="nlp", request=replica,
                               service_id=svc.id)) for _ in range(2)]
    jobs.submit(NewJob(name="chat", user="alice", team="nlp", request=replica))  # not a replica
    assert [j.id for j in services.replicas(svc.id or 0)] == [j.id for j in made]
    jobs.transition(made[0].id or 0, JobState.PENDING, JobState.CANCELLED, "test")
    assert [j.id for j in services.replicas(svc.id or 0)] == [made[1].id]
    assert len(services.replicas(svc.id or 0, live_only=False)) == 2
    assert services.packages_in_use() == {"ab" * 32}
    assert services.with_live_replicas() == []  # running services are not listed
    services.stop(svc.id or 0)
    assert [s.id for s in services.with_live_replicas()] == [svc.id]
    assert services.packages_in_use() == set()
