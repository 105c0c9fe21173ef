"""The store on real SQLite and real PostgreSQL: submit, guarded transitions, history,
allocations, requeue of lost jobs, cancel races, users and tokens."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from factories import new_job

from clusterctl.states import IllegalTransition, JobState
from clusterctl.store import (
    HeldGpu,
    JobStore,
    NodeStore,
    UserExists,
    UserStore,
    installation_id,
    make_engine,
    migrate,
)


@pytest.fixture
def store(db_url: str) -> JobStore:
    migrate(db_url)
    return JobStore(make_engine(db_url))


def test_submit_is_durable_and_has_history(store: JobStore, db_url: str) -> None:
    job = store.submit(new_job(env={"A": "1"}, time_limit_s=60))
    again = JobStore(make_engine(db_url)).get(job.id)  # a new engine: what a restart sees
    assert again is not None
    assert again.state == "PENDING" and again.env == {"A": "1"} and again.time_limit_s == 60
    assert again.submitted_at.tzinfo is not None
    assert [(h.state, h.reason) for h in store.history(job.id)] == [("PENDING", "submitted")]


def test_full_lifecycle_records_allocations(store: JobStore) -> None:
    job = store.submit(new_job(gpus=2))
    attempt = store.start(job, ["node-1"])
    assert attempt == 1
    started = datetime.now(timezone.utc)
    held = [HeldGpu(0, "a", "node-1", 0), HeldGpu(0, "a", "node-1", 1)]
    assert store.mark_running(job.id, 1, held, started)
    running = store.get(job.id)
    assert store.finish(running, JobState.SUCCEEDED, "exit code 0", exit_code=0,
                        ended_at=started + timedelta(seconds=5))
    done = store.get(job.id)
    assert done.state == "SUCCEEDED" and done.exit_code == 0
    allocs = store.allocations(job.id)
    assert [(a.gpu_index, a.node) for a in allocs] == [(0, "a"), (1, "a")]
    assert all(a.ended_at - a.started_at == timedelta(seconds=5) for a in allocs)
    assert [h.state for h in store.history(job.id)] == [
        "PENDING", "STARTING", "RUNNING", "SUCCEEDED"]


def test_guard_refuses_stale_transitions(store: JobStore) -> None:
    job = store.submit(new_job())
    assert store.start(job, ["n"]) == 1
    assert store.start(job, ["n"]) is None  # the same decision applied twice: refused
    assert not store.transition(job.id, JobState.PENDING, JobState.CANCELLED)
    with pytest.raises(IllegalTransition):
        store.transition(job.id, JobState.PENDING, JobState.SUCCEEDED)


def test_lost_job_is_requeued_while_retries_remain(store: JobStore) -> None:
    job = store.submit(new_job(retries=1))
    for expected_state in ("PENDING", "LOST"):
        attempt = store.start(store.get(job.id), ["n"])
        store.mark_running(job.id, attempt, [HeldGpu(0, "a", "n", 0)],
                           datetime.now(timezone.utc))
        store.finish(store.get(job.id), JobState.LOST, "node died")
        assert store.get(job.id).state == expected_state
    final = store.get(job.id)
    assert final.requeues == 1 and final.attempt == 2
    assert all(a.ended_at is not None for a in store.allocations(job.id))


def test_cancel_pending_running_and_ended(store: JobStore) -> None:
    queued = store.submit(new_job())
    assert store.request_cancel(queued.id, "bob", False)[0] == "forbidden"
    assert store.get(queued.id).state == "PENDING"
    outcome, after = store.request_cancel(queued.id, "alice", False)
    assert outcome == "cancelled" and after.state == "CANCELLED"
    assert store.request_cancel(queued.id, "alice", False)[0] == "ended"
    running = store.submit(new_job())
    store.start(running, ["n"])
    outcome, after = store.request_cancel(running.id, "root", True)
    assert outcome == "requested" and after.cancel_requested
    assert store.request_cancel(999_999, "alice", False)[0] == "missing"


def test_a_cancel_outlives_every_way_back_to_the_queue(store: JobStore) -> None:
    """#37: a cancel asked while a job holds GPUs is stored with its time and reason, and
    whatever would put the attempt back in the queue (a restart before it started, a start
    that failed, a preemption, a lost runner within its retries) ends it CANCELLED instead;
    the pass cannot start it again."""
    def cancelled_while_active(running: bool, **ask: object) -> object:
        job = store.submit(new_job(**ask))
        store.start(job, ["n"])
        job = store.get(job.id)
        if running:
            store.mark_running(job.id, job.attempt, [], datetime.now(timezone.utc))
        stale = store.get(job.id)  # what the pass had read before the cancel came
        outcome, after = store.request_cancel(job.id, "alice", False)
        assert outcome == "requested" and after.cancel_requested
        assert after.cancel_asked_at is not None and after.cancel_reason == "cancelled by alice"
        return stale

    for back in (lambda j: store.requeue(j, "controller restarted before the job started"),
                 lambda j: store.preempted(j, "preempted")):
        stale = cancelled_while_active(running=False)
        assert back(stale)
        job = store.get(stale.id)
        assert (job.state, job.reason) == ("CANCELLED", "cancelled by alice"), job
        assert store.start(job, ["n"]) is None and store.get(job.id).state == "CANCELLED"

    stale = cancelled_while_active(running=True, retries=3)
    assert store.finish(stale, JobState.LOST, "runner gone while the controller was down")
    job = store.get(stale.id)
    assert job.state == "CANCELLED" and job.requeues == 0, job
    assert job.reason == "cancelled by alice (runner gone while the controller was down)"
    assert "PENDING" not in [h.state for h in store.history(job.id)][1:]

    first = store.request_cancel(stale.id, "root", True)  # ended: the first cancel stands
    assert first[0] == "ended" and store.get(stale.id).cancel_reason == "cancelled by alice"


def test_concurrent_starts_apply_once(store: JobStore) -> None:
    job = store.submit(new_job())
    results: list[int | None] = []
    threads = [threading.Thread(target=lambda: results.append(store.start(job, ["n"])))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=lambda r: r or 0) == [None] * 7 + [1]
    assert [h.state for h in store.history(job.id)].count("STARTING") == 1


def test_no_start_commits_after_a_drain_of_its_node(store: JobStore) -> None:
    """#31 item 10: the pass reads the drains, then places; a drain committed in between
    must still stop the start (one started 4.5 ms after a drain committed): the start reads
    the drains again in the transaction that places the job."""
    drains = NodeStore(store.engine)
    assert store.start(store.submit(new_job()), ["id-a"], node_names=["node-a"]) == 1
    drains.drain("node-a", "admin", "maintenance")
    late = store.submit(new_job())
    assert store.start(late, ["id-a"], node_names=["node-a"]) is None  # read at placement
    assert store.get(late.id).state == "PENDING"
    assert store.start(late, ["id-b"], node_names=["node-b"]) == 1  # another node: fine


def test_users_and_tokens(db_url: str) -> None:
    migrate(db_url)
    users = UserStore(make_engine(db_url))
    user, token = users.add("alice", "vision")
    assert users.by_token(token).name == "alice"
    assert users.by_token(token + "x") is None
    assert user.token_hash != token and token not in user.token_hash
    with pytest.raises(UserExists):
        users.add("alice", "other")
    new = users.rotate("alice")
    assert users.by_token(token) is None and users.by_token(new).name == "alice"


def test_installation_id_is_stable(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)  # idempotent
    assert installation_id(make_engine(db_url)) == installation_id(make_engine(db_url))


def test_array_is_one_transaction_with_a_shared_id(store: JobStore) -> None:
    tasks = store.submit_all(new_job(array="0-4:2%2",
                                     after=[{"job": 1, "ok": True}]))
    assert [t.array_index for t in tasks] == [0, 2, 4]
    assert {t.array_id for t in tasks} == {tasks[0].id}
    assert all(t.array_limit == 2 and t.after == [{"job": 1, "ok": True}] for t in tasks)
    assert store.states([t.id for t in tasks] + [999]) == {t.id: "PENDING" for t in tasks}


def test_preempted_job_goes_back_to_pending_with_its_history(store: JobStore) -> None:
    job = store.submit(new_job(gpus=2, retries=1))
    attempt = store.start(job, ["n1"])
    assert attempt == 1
    store.mark_running(job.id, 1, [HeldGpu(0, "node-a", "n1", 0), HeldGpu(0, "node-a", "n1", 1)],
                       datetime.now(timezone.utc))
    assert store.request_preempt(job.id, 1, "preempted for job 7")
    assert not store.request_preempt(job.id, 1, "again")  # already being preempted
    running = store.get(job.id)
    assert running.preempt_requested and running.state == "RUNNING"
    assert store.preempted(running, running.reason)
    back = store.get(job.id)
    assert (back.state, back.preemptions, back.requeues) == ("PENDING", 1, 0)
    assert not back.preempt_requested and back.placement is None
    assert all(a.ended_at is not None for a in store.allocations(job.id))
    assert [(h.state, h.reason) for h in store.history(job.id)][-2:] == [
        ("RUNNING", "all ranks started"), ("PENDING", "preempted for job 7")]
    assert store.start(back, ["n1"]) == 2  # it runs again as a new attempt


def test_no_preempt_and_cancelling_jobs_are_not_marked_for_preemption(store: JobStore) -> None:
    keep = store.submit(new_job(no_preempt=True))
    store.start(keep, ["n1"])
    assert not store.request_preempt(keep.id, 1, "x")
    going = store.submit(new_job())
    store.start(going, ["n1"])
    store.request_cancel(going.id, "alice", False)
    assert not store.request_preempt(going.id, 1, "x")
    assert not store.request_preempt(going.id, 2, "x")  # another attempt


def test_the_notifier_reads_an_end_once_it_has_settled(store: JobStore, db_url: str) -> None:
    """Job ends are read only once older than the longest transaction (on PostgreSQL a lower
    event id can commit after a higher one was read): a fresh end waits, a settled one is
    read, and the cursor does not pass it before."""
    from clusterctl.store.notify import NotifyStore

    notify = NotifyStore(make_engine(db_url))
    job = store.submit(new_job())
    store.start(job, ["node-1"])
    store.mark_running(job.id, 1, [HeldGpu(0, "a", "node-1", 0)], datetime.now(timezone.utc))
    assert store.finish(store.get(job.id), JobState.FAILED, "exit code 1", exit_code=1)
    now = datetime.now(timezone.utc)
    assert notify.events_after(0, ["FAILED"], before=now - timedelta(seconds=3)) == []
    [(event, ended)] = notify.events_after(0, ["FAILED"], before=now + timedelta(seconds=1))
    assert (event.state, ended.id) == ("FAILED", job.id)


LIFECYCLE_STEPS = ("start", "running", "cancel", "requeue", "preempted", "lost", "succeeded",
                   "preempt")


WHERE = {"start": {"PENDING"}, "running": {"STARTING"}, "requeue": {"STARTING"},
         "preempted": {"STARTING", "RUNNING"}, "lost": {"STARTING", "RUNNING"},
         "succeeded": {"RUNNING"}, "preempt": {"STARTING", "RUNNING"},
         "cancel": {s.value for s in JobState}}


def test_cancelled_is_final_whatever_follows(tmp_path: Path) -> None:
    """Property (#37): in any sequence of what the controller does to a job, each from a read
    that may be stale, once a cancel has been accepted the job never starts again, and once
    CANCELLED it stays so."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    url = f"sqlite:///{tmp_path / 'life.db'}"
    migrate(url)
    store = JobStore(make_engine(url))
    now = datetime.now(timezone.utc)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(steps=st.lists(st.tuples(st.sampled_from(LIFECYCLE_STEPS), st.booleans()),
                          max_size=14))
    def lifecycle(steps: list[tuple[str, bool]]) -> None:
        job = store.submit(new_job(retries=2))
        read = store.get(job.id)
        cancelled_at = None  # how many history rows there were when a cancel was accepted
        for step, fresh in steps:
            if fresh:
                read = store.get(job.id)
            if read.state not in WHERE[step]:
                continue  # the controller asks this only of a job it read in these states
            if step == "start":
                store.start(read, ["n"])
            elif step == "running":
                store.mark_running(job.id, read.attempt, [], now)
            elif step == "cancel":
                if store.request_cancel(job.id, "alice", False)[0] in ("cancelled", "requested"):
                    cancelled_at = cancelled_at or len(store.history(job.id))
            elif step == "requeue":
                store.requeue(read, "controller restarted before the job started")
            elif step == "preempted":
                store.preempted(read, "preempted")
            elif step == "lost":
                store.finish(read, JobState.LOST, "runner lost")
            elif step == "succeeded":
                store.finish(read, JobState.SUCCEEDED, "exit 0", exit_code=0)
            elif step == "preempt":
                store.request_preempt(job.id, read.attempt, "reclaim")
        states = [h.state for h in store.history(job.id)]
        if cancelled_at is not None:
            assert "STARTING" not in states[cancelled_at:], states
            assert "PENDING" not in states[cancelled_at:], states
        if "CANCELLED" in states:
            assert states[states.index("CANCELLED"):] == ["CANCELLED"], states

    lifecycle()
