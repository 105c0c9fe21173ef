"""The scheduling policy, directly: one rule per test, then its invariants under hypothesis."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterctl.scheduler import fairshare
from clusterctl.scheduler.pending import PendingQueue
from clusterctl.scheduler.placement import fits_ever
from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.records import (
    Blocking,
    FairShareUsage,
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
    WaitReason,
    guarded,
)
from clusterctl.scheduler.reservation import reserve
from clusterctl.scheduler.running import RunningSet

NOW = 1_000_000.0
H = 3600.0


def nodes_(*free: int, total: int = 8) -> list[NodeCapacity]:
    return [NodeCapacity(f"n{i}", total, f) for i, f in enumerate(free)]


def job(id: int, gpus: int = 1, *, nodes: int = 1, team: str = "a", user: str = "u",
        prio: int = 0, at: float | None = None, limit: float | None = H, **kw: object) -> QueuedJob:
    return QueuedJob(id, prio, NOW - 1000 + id if at is None else at, gpus, nodes, team, user,
                     limit, **kw)  # type: ignore[arg-type]


def run_(id: int, node: str | tuple[str, ...], gpus: int, *, team: str = "b", user: str = "v",
         started: float = NOW - 60, limit: float | None = H, **kw: object) -> RunningJob:
    node_ids = (node,) if isinstance(node, str) else node
    return RunningJob(id, team, user, node_ids, gpus, started, limit, **kw)  # type: ignore[arg-type]


def free_after(nodes: list[NodeCapacity], running: list[RunningJob]) -> list[NodeCapacity]:
    held = {n.id: 0 for n in nodes}
    for r in running:
        for node in r.node_ids:
            held[node] += r.gpus
    return [replace(n, free_gpus=n.total_gpus - held[n.id]) for n in nodes]


QUOTAS = PolicyConfig(quotas={"a": 8, "b": 8}, preempt_min_run_s=0)
"""Who is reclaimed, not when: the minimum run time has tests of its own."""


def started(decision: object) -> list[int]:
    return [p.job_id for p in decision.starts]  # type: ignore[attr-defined]


# -- order and placement ----------------------------------------------------------------------


def test_priority_then_submit_order_within_a_team() -> None:
    jobs = [job(1, 3), job(2, 3), job(3, 3, prio=5)]
    d = schedule(jobs, [], nodes_(4, total=4), now=NOW, config=QUOTAS)
    assert started(d) == [3]


def test_best_fit_keeps_whole_nodes_free() -> None:
    d = schedule([job(1, 2)], [], nodes_(8, 3, 8), now=NOW)
    assert d.starts[0].node_ids == ("n1",)


def test_gang_gets_distinct_nodes_all_or_nothing() -> None:
    d = schedule([job(1, 4, nodes=2)], [], nodes_(8, 2, 4), now=NOW)
    assert len(set(d.starts[0].node_ids)) == 2 and "n1" not in d.starts[0].node_ids
    assert schedule([job(1, 4, nodes=3)], [], nodes_(8, 2, 4), now=NOW).starts == []


def test_unschedulable_nodes_are_skipped() -> None:
    caps = [NodeCapacity("a", 8, 8, schedulable=False), NodeCapacity("b", 8, 2)]
    assert schedule([job(1, 4)], [], caps, now=NOW).starts == []


def test_requests_that_can_never_fit() -> None:
    caps = nodes_(8, 8)
    assert fits_ever(8, 2, caps) is None
    assert "more than any node has" in (fits_ever(9, 1, caps) or "")
    assert "more than the cluster has" in (fits_ever(4, 3, caps) or "")
    assert fits_ever(100, 1, []) is None  # nothing reported yet: do not refuse


def test_shorter_time_limit_goes_first_among_equals() -> None:
    jobs = [job(1, 8, limit=3 * 86400), job(2, 8, limit=H / 2)]
    d = schedule(jobs, [], nodes_(8), now=NOW, config=QUOTAS)
    assert started(d) == [2]


def test_team_that_used_less_goes_first() -> None:
    cfg = PolicyConfig(quotas={"a": 4, "b": 4}, preempt=False)
    running = [run_(9, "n0", 4, team="a")]
    jobs = [job(1, 4, team="a", at=NOW - 500), job(2, 4, team="b", at=NOW - 10)]
    # both are tier 1 for a (at quota) / tier 0 for b: b first regardless of submit time
    d = schedule(jobs, running, free_after(nodes_(8), running), now=NOW, config=cfg)
    assert started(d) == [2]
    # two borrowing teams: the one with less recent usage goes first
    cfg = PolicyConfig(quotas={"a": 1, "b": 1, "c": 6}, preempt=False)
    usage = FairShareUsage(team={"a": 100 * H, "b": 1 * H})
    jobs = [job(1, 4, team="a", at=NOW - 500), job(2, 4, team="b", at=NOW - 10)]
    d = schedule(jobs, [], nodes_(4, total=4), now=NOW, config=cfg, usage=usage)
    assert started(d) == [2]


def test_starving_job_goes_first_with_a_reservation() -> None:
    cfg = replace(QUOTAS, starve_after_s=86400)
    old = job(1, 8, team="a", at=NOW - 2 * 86400, limit=10 * 86400)
    young = job(2, 1, team="b", limit=60)
    running = [run_(9, "n0", 4, team="b", limit=H)]
    d = schedule([old, young], running, free_after(nodes_(8), running), now=NOW, config=cfg)
    assert d.reserved is not None and d.reserved[0] == 1
    assert started(d) == [2]  # ends before the reservation: backfilled


def test_by_default_short_jobs_go_first_and_the_guarded_policy_serves_the_oldest() -> None:
    """The default orders a team's jobs shortest limit first, with an age factor that saturates
    after 1.5 days: a long job that has waited two days still ranks below a fresh one-hour job
    (in a long overload, serving the oldest first made every job wait as long as the oldest).
    The former default (``guarded``) serves a job pending over a day first."""
    old = job(1, 1, at=NOW - 2 * 86400, limit=3 * 86400)
    fresh = job(2, 1, at=NOW - 60, limit=H)
    twelve = job(3, 1, at=NOW, limit=12 * H)
    config = PolicyConfig(quotas={"a": 8})
    d = schedule([old, fresh], [], nodes_(1, total=1), now=NOW, config=config)
    assert started(d) == [2]
    d = schedule([old, fresh], [], nodes_(1, total=1), now=NOW, config=guarded(config))
    assert started(d) == [1]
    # its full age factor: it ranks with a job of a 12-hour limit just submitted, and is older
    d = schedule([old, twelve], [], nodes_(1, total=1), now=NOW, config=config)
    assert started(d) == [1]


def test_a_job_without_a_time_limit_is_told_that_a_limit_would_move_it_up() -> None:
    running = [run_(9, "n0", 8, team="b", limit=H)]
    queued = [job(1, 4, limit=H), job(2, 4, limit=2 * H), job(3, 4, limit=None),
              job(4, 4, limit=3 * H)]
    config = replace(QUOTAS, demote_after_gpu_s=())  # without attained service
    d = schedule(queued, running, free_after(nodes_(8), running), now=NOW, config=config,
                 explain=True)
    assert started(d) == []
    told = {i: d.waiting[i].detail for i in (2, 3, 4)}
    assert "--time-limit" in told[3] and "no time limit" in told[3]
    assert not any("time limit" in told[i] for i in (2, 4))


# -- quotas and preemption --------------------------------------------------------------------


def test_idle_gpus_are_lent_beyond_quota() -> None:
    d = schedule([job(i, 4, team="a") for i in range(1, 5)], [], nodes_(8, 8), now=NOW,
                 config=QUOTAS)
    assert sorted(started(d)) == [1, 2, 3, 4]


def test_team_under_quota_reclaims_borrowed_gpus_newest_first() -> None:
    running = [run_(10 + i, "n0" if i < 4 else "n1", 2, team="b", started=NOW - 100 + i)
               for i in range(8)]
    caps = free_after(nodes_(8, 8), running)
    d = schedule([job(1, 4, team="a")], running, caps, now=NOW, config=QUOTAS, explain=True)
    assert d.starts == []
    victims = sorted(p.job_id for p in d.preemptions)
    assert victims in ([16, 17], [12, 13])  # two newest on one node: exactly 4 GPUs, nothing more
    assert d.waiting[1].reason is WaitReason.PREEMPTING
    # next pass: the victims are terminating; nothing more is preempted, the job waits for them
    running2 = [replace(r, terminating=r.id in victims) for r in running]
    d2 = schedule([job(1, 4, team="a")], running2, caps, now=NOW + 1, config=QUOTAS)
    assert d2.preemptions == [] and d2.starts == []
    # once they exit, it starts on their node
    running3 = [r for r in running if r.id not in victims]
    d3 = schedule([job(1, 4, team="a")], running3, free_after(nodes_(8, 8), running3),
                  now=NOW + 30, config=QUOTAS)
    assert started(d3) == [1]


def test_a_borrower_is_not_preempted_before_its_minimum_run_time() -> None:
    """Kueue's and KAI's minimum run time (#36), 10 minutes by default: b's borrower that
    started 5 minutes ago is kept and the older one's GPUs are reclaimed, though the newest
    goes first otherwise; where only young ones would do, the claim waits, told when a pass
    may reclaim them, and that pass does."""
    cfg = PolicyConfig(quotas={"a": 8, "b": 8})
    running = [run_(10, "n0", 4, team="b", started=NOW - 3600),
               run_(11, "n0", 4, team="b", started=NOW - 300),
               run_(12, "n1", 8, team="b", started=NOW - 240)]  # b holds 16 GPUs, quota 8
    caps = free_after(nodes_(8, 8), running)
    d = schedule([job(1, 4, team="a")], running, caps, now=NOW, config=cfg)
    assert [p.job_id for p in d.preemptions] == [10]
    d = schedule([job(1, 8, team="a")], running, caps, now=NOW, config=cfg, explain=True)
    assert d.preemptions == [] and d.starts == []
    assert d.recheck_at == NOW + 300  # job 11 has run 10 minutes then
    assert "reclaimed from jobs that have run 10m00s, the first in 5m00s" in d.waiting[1].detail
    assert d.waiting[1].estimated_start == NOW + 300 + cfg.preempt_grace_s
    d = schedule([job(1, 8, team="a")], running, caps, now=NOW + 300, config=cfg)
    assert sorted(p.job_id for p in d.preemptions) == [10, 11]
    assert schedule([job(1, 8, team="a")], running, caps, now=NOW, config=replace(
        cfg, preempt_min_run_s=0)).preemptions  # off: at once


def test_no_reclaim_from_a_team_within_its_quota_or_from_no_preempt_jobs() -> None:
    within = [run_(10, "n0", 8, team="b"), run_(11, "n1", 8, team="a")]
    d = schedule([job(1, 1, team="a")], within, free_after(nodes_(8, 8), within), now=NOW,
                 config=QUOTAS)
    assert d.preemptions == []  # a is at its quota: its job borrows, and nothing is idle
    guarded = [run_(10, "n0", 8, team="b"), run_(11, "n1", 8, team="b", preemptible=False)]
    d = schedule([job(1, 8, team="a")], guarded, free_after(nodes_(8, 8), guarded), now=NOW,
                 config=QUOTAS)
    assert [p.job_id for p in d.preemptions] == [10]


def test_no_preempt_job_does_not_borrow() -> None:
    running = [run_(10, "n0", 8, team="a")]
    d = schedule([job(1, 1, team="a", preemptible=False)], running,
                 free_after(nodes_(8, 8), running), now=NOW, config=QUOTAS, explain=True)
    assert d.starts == [] and d.waiting[1].reason is WaitReason.QUOTA


# -- backfill and the baselines ---------------------------------------------------------------


def backfill_case() -> tuple[list[QueuedJob], list[RunningJob], list[NodeCapacity]]:
    running = [run_(10, "n0", 4, limit=2 * H, started=NOW), run_(11, "n1", 6, limit=5 * H,
                                                                     started=NOW)]
    head = job(1, 8, team="b", at=NOW - 900)
    short = job(2, 2, team="b", limit=H, at=NOW - 800)
    long_ = job(3, 4, team="b", limit=10 * H, at=NOW - 700)
    return [head, short, long_], running, free_after(nodes_(8, 8), running)


def test_easy_backfill_starts_what_does_not_delay_the_head() -> None:
    jobs, running, caps = backfill_case()
    d = schedule(jobs, running, caps, now=NOW, config=PolicyConfig(quotas={"b": 16}),
                 explain=True)
    assert d.reserved == (1, NOW + 2 * H)  # n0 comes free when job 10 reaches its limit
    assert started(d) == [2]  # ends within the hour, before the reservation
    assert d.waiting[3].reason is WaitReason.PRIORITY  # fits now, but would hold n0 past 2 h


def test_baselines() -> None:
    jobs, running, caps = backfill_case()
    plain = PolicyConfig(fair_share=False, preempt=False)
    assert started(schedule(jobs, running, caps, now=NOW,
                            config=replace(plain, blocking=Blocking.STRICT))) == []
    assert started(schedule(jobs, running, caps, now=NOW,
                            config=replace(plain, blocking=Blocking.SKIP))) == [2, 3]
    assert started(schedule(jobs, running, caps, now=NOW, config=plain)) == [2]


def test_user_and_array_limits() -> None:
    cfg = replace(QUOTAS, user_gpu_limit=4)
    running = [run_(10, "n0", 3, team="a", user="u")]
    jobs = [job(1, 2, team="a", user="u"), job(2, 2, team="a", user="w")]
    d = schedule(jobs, running, free_after(nodes_(8, 8), running), now=NOW, config=cfg,
                 explain=True)
    assert started(d) == [2] and d.waiting[1].reason is WaitReason.USER_LIMIT
    tasks = [job(i, 1, array_id=1, array_limit=2) for i in range(1, 6)]
    d = schedule(tasks, [], nodes_(8), now=NOW, config=QUOTAS, explain=True)
    assert started(d) == [1, 2]
    assert {d.waiting[i].reason for i in (3, 4, 5)} == {WaitReason.ARRAY_LIMIT}


def test_every_pending_job_gets_a_reason_when_explained() -> None:
    running = [run_(10, "n0", 8, team="a"), run_(11, "n1", 8, team="b")]
    jobs = [job(i, 1 + i % 4, team="ab"[i % 2]) for i in range(1, 30)]
    d = schedule(jobs, running, free_after(nodes_(8, 8), running), now=NOW, config=QUOTAS,
                 explain=True)
    assert set(d.waiting) == {j.id for j in jobs} - set(started(d))


def test_pending_queue_add_remove_keep_order() -> None:
    q = PendingQueue([job(3), job(1), job(2, prio=1)])
    q.add(job(0, at=0.0))
    assert [j.id for j in q.merged()] == [2, 0, 1, 3]
    q.remove(1)
    assert [j.id for j in q.merged()] == [2, 0, 3] and 1 not in q and len(q) == 3
    assert [j.id for j in q.submitted_before(NOW)] == [0, 2, 3]



@pytest.mark.parametrize("size", [40, 600])  # below and above pending.SORT_BELOW
def test_pending_queue_order_is_the_same_sorted_whole_or_merged(size: int) -> None:
    """A small queue is sorted whole, a large one merged lazily from its groups: the policy's
    order must come out the same either way (for the whole queue and for each team)."""
    import random

    rng = random.Random(size)
    jobs = [job(i, team=rng.choice("abc"), user=rng.choice("uvw"), prio=rng.choice([0, 0, 1]),
                limit=rng.choice([None, 600.0, 7200.0, 86400.0]), at=rng.uniform(0, NOW))
            for i in range(size)]
    q = PendingQueue(jobs)
    usage = {("a", "u"): 5e5, ("b", "v"): 1e5}
    shares = fairshare.user_factors(usage, q.users())

    def key(j: QueuedJob) -> tuple[int, float, float, int]:
        age = min(1.0, (NOW - j.submitted_at) / 86400)
        short = 0.0 if j.time_limit_s is None else 1.0 / (1 + j.time_limit_s)
        return (-j.priority, -(shares[(j.team, j.user)] + age + short), j.submitted_at, j.id)

    assert [j.id for j in q.merged(key)] == [j.id for j in sorted(jobs, key=key)]
    for team in "abc":
        assert [j.id for j in q.team_order(team, key)] == [
            j.id for j in sorted((j for j in jobs if j.team == team), key=key)]

@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "end"]), st.integers(0, 7),
                          st.sampled_from("ab"), st.sampled_from("uv"),
                          st.sampled_from([("n0",), ("n1",), ("n0", "n1")]),
                          st.integers(1, 4), st.sampled_from([None, 1, 2])), max_size=40))
def test_running_set_keeps_the_tallies_a_pass_would_count(
        steps: list[tuple[str, int, str, str, tuple[str, ...], int, int | None]]) -> None:
    """The replay keeps one RunningSet for a year of passes: its tallies, kept as jobs start,
    end and are signalled, must equal a count over the jobs running at every step (the
    policy starts each pass from them)."""
    rs = RunningSet()
    jobs: dict[int, RunningJob] = {}
    for op, i, team, user, nodes, gpus, array in steps:
        if op == "add" and i not in jobs:
            jobs[i] = run_(i, nodes, gpus, team=team, user=user, array_id=array)
            rs.add(jobs[i])
        elif op == "remove" and i in jobs:
            assert rs.remove(i) == jobs.pop(i)
        elif op == "end" and i in jobs:
            jobs[i] = replace(jobs[i], terminating=True)
            rs.replace(jobs[i])
        team_used: Counter[str] = Counter()
        user_used: Counter[tuple[str, str]] = Counter()
        first: Counter[tuple[str, str]] = Counter()
        for r in jobs.values():
            team_used[r.team] += r.total_gpus
            user_used[(r.team, r.user)] += r.total_gpus
            first[(r.team, r.node_ids[0])] += r.total_gpus
        assert rs.team_used == team_used and rs.user_used == user_used
        assert rs.first_node_used == first
        assert rs.arrays == Counter(r.array_id for r in jobs.values() if r.array_id is not None)
        assert set(rs.terminating) == {r.id for r in jobs.values() if r.terminating}
        assert sorted(r.id for r in rs) == sorted(jobs) and len(rs) == len(jobs)


# -- invariants -------------------------------------------------------------------------------

TEAMS = ("a", "b", "c")


@st.composite
def states(draw: st.DrawFn) -> tuple[list[QueuedJob], list[RunningJob], list[NodeCapacity],
                                     PolicyConfig]:
    n_nodes = draw(st.integers(1, 6))
    per_node = draw(st.sampled_from([4, 8]))
    caps = nodes_(*([per_node] * n_nodes), total=per_node)
    room = {c.id: per_node for c in caps}
    running: list[RunningJob] = []
    for i in range(draw(st.integers(0, 12))):
        gpus = draw(st.integers(1, per_node))
        span = draw(st.integers(1, 2))
        fits = [n for n, r in room.items() if r >= gpus]
        if len(fits) < span:
            continue
        chosen = tuple(draw(st.permutations(fits))[:span])
        for n in chosen:
            room[n] -= gpus
        running.append(run_(
            1000 + i, chosen, gpus, team=draw(st.sampled_from(TEAMS)),
            started=NOW - draw(st.integers(0, 20_000)),
            limit=draw(st.sampled_from([None, 600.0, H, 8 * H])),
            preemptible=draw(st.booleans()), terminating=draw(st.booleans())))
    jobs = [
        job(i, draw(st.integers(1, per_node)), nodes=draw(st.integers(1, 2)),
            team=draw(st.sampled_from(TEAMS)), user=draw(st.sampled_from("xy")),
            prio=draw(st.integers(-1, 1)), at=NOW - draw(st.integers(0, 5 * 86400)),
            limit=draw(st.sampled_from([None, 300.0, H, 30 * H])),
            preemptible=draw(st.booleans()))
        for i in range(1, draw(st.integers(0, 25)) + 1)
    ]
    total = n_nodes * per_node
    quotas = dict(zip(TEAMS, draw(st.permutations([total / 2, total / 4, total / 4])),
                      strict=True))
    cfg = PolicyConfig(quotas=quotas, blocking=draw(st.sampled_from(list(Blocking))),
                       fair_share=draw(st.booleans()),
                       user_gpu_limit=draw(st.sampled_from([None, 4, 8])))
    return jobs, running, free_after(caps, running), cfg


@settings(max_examples=400, deadline=None)
@given(states())
def test_no_gpu_is_given_twice_and_every_start_fits(
        state: tuple[list[QueuedJob], list[RunningJob], list[NodeCapacity], PolicyConfig]) -> None:
    jobs, running, caps, cfg = state
    d = schedule(jobs, running, caps, now=NOW, config=cfg, explain=True)
    by_id = {j.id: j for j in jobs}
    used = {c.id: 0 for c in caps}
    for p in d.starts:
        j = by_id[p.job_id]
        assert len(p.node_ids) == j.nodes == len(set(p.node_ids))
        for node in p.node_ids:
            used[node] += j.gpus
    for c in caps:
        assert used[c.id] <= c.free_gpus, "a GPU given twice, or one that was not free"
        assert c.schedulable or used[c.id] == 0
    assert len({p.job_id for p in d.starts}) == len(d.starts)
    victims = {p.job_id for p in d.preemptions}
    terminating = {r.id for r in running if r.terminating}
    guarded = {r.id for r in running if not r.preemptible}
    assert not victims & (terminating | guarded)
    assert set(d.waiting) | {p.job_id for p in d.starts} == set(by_id)


@settings(max_examples=400, deadline=None)
@given(states())
def test_backfill_never_delays_the_reserved_start(
        state: tuple[list[QueuedJob], list[RunningJob], list[NodeCapacity], PolicyConfig]) -> None:
    jobs, running, caps, cfg = state
    cfg = replace(cfg, blocking=Blocking.RESERVE)
    d = schedule(jobs, running, caps, now=NOW, config=cfg)
    if d.reserved is None:
        return
    head_id, at = d.reserved
    head = next(j for j in jobs if j.id == head_id)
    # the world after this pass: its starts run to their limits, its victims exit in the grace
    by_id = {j.id: j for j in jobs}
    victims = {p.job_id for p in d.preemptions}
    now_running = [replace(r, terminating=r.terminating or r.id in victims) for r in running]
    for p in d.starts:
        j = by_id[p.job_id]
        now_running.append(run_(j.id, p.node_ids, j.gpus, team=j.team, started=NOW,
                                limit=j.time_limit_s))
    free = {c.id: c.free_gpus for c in free_after(caps, now_running) if c.schedulable}
    # GPUs promised to jobs waiting on preemption are theirs from now on: free ones at once,
    # the victims' as they exit (a node may go below zero until then)
    promised = {w for w, wait in d.waiting.items() if wait.reason is WaitReason.PREEMPTING}
    assert {p.job_id for p in d.promised} == promised
    for p in d.promised:
        for node in p.node_ids:
            free[node] -= by_id[p.job_id].gpus
    releases = [
        (NOW + cfg.preempt_grace_s if r.terminating
         else max(NOW, r.started_at + (r.time_limit_s or cfg.default_time_limit_s)),
         r.node_ids, r.gpus)
        for r in now_running
    ]
    again = reserve(head, free, releases, NOW)
    assert again is not None and again.start <= at


def test_usage_from_allocation_intervals_decays_by_half_life() -> None:
    half = 7 * 86400.0
    rows = [("a", "ann", "n1", NOW - 2 * half - 3600, NOW - 2 * half),  # two half-lives ago
            ("a", "al", "n1", NOW - 3600, None),  # open: counts up to now, nearly undecayed
            ("b", "bo", "n2", NOW - 3600, NOW)]
    u = fairshare.usage_from_intervals(rows, NOW, half)
    assert u.user[("a", "ann")] == pytest.approx(3600 / 4, rel=1e-2)  # just over 2 half-lives
    assert u.user[("a", "al")] == pytest.approx(u.team["b"])
    assert u.team["b"] == pytest.approx(3600, rel=1e-2)
    assert u.team["a"] == pytest.approx(u.user[("a", "ann")] + u.user[("a", "al")])


def test_decaying_usage_matches_the_decay_of_each_interval_and_leaves_the_factors() -> None:
    """The replay keeps usage scaled by a common factor (decay then costs nothing): the true
    values must be those of each interval decayed to now, over a span long enough to rescale,
    and the fair-share factors must read the same from the scaled values."""
    half = 3600.0
    intervals = [("a", 0.0, 5000.0, 2), ("b", 1000.0, 2000.0, 4), ("a", 300000.0, 1.9e6, 1),
                 ("b", 1.8e6, 1.8e6 + 7200.0, 8), ("c", 1.85e6, 1.9e6, 3)]  # 500+ half-lives
    times = sorted({0.0, 1.9e6, *(t for _, s, e, _ in intervals for t in (s, e))})
    usage: fairshare.DecayingUsage[str] = fairshare.DecayingUsage(half, 0.0)
    for before, t in itertools.pairwise(times):
        held = Counter[str]()
        for team, s, e, gpus in intervals:
            if s <= before and t <= e:
                held[team] += gpus
        usage.accrue(held, t)
    now = times[-1]
    exact: dict[str, float] = {}
    for team, s, e, gpus in intervals:
        exact[team] = exact.get(team, 0.0) + fairshare.interval_usage(gpus, s, e, now, half)
    assert usage.at() == pytest.approx(exact, rel=1e-9)
    quotas = {"a": 4.0, "b": 2.0, "c": 2.0}
    assert fairshare.team_factors(usage.values, quotas) == pytest.approx(
        fairshare.team_factors(exact, quotas), rel=1e-9)


def test_user_factors_from_kept_team_totals_equal_those_counted() -> None:
    """The replay hands the pass each team's total and number of users instead of every
    user's usage to walk: the factors must be the ones counted from the users, a user with
    jobs but no usage yet counting as one more member of its team."""
    usage = {("a", "u"): 300.0, ("a", "v"): 100.0, ("b", "w"): 50.0, ("c", "x"): 0.0}
    asked = [("a", "u"), ("a", "new"), ("b", "w"), ("c", "x"), ("d", "y")]
    counted = fairshare.user_factors(usage, asked)
    kept = fairshare.user_factors(usage, asked, ({"a": 400.0, "b": 50.0, "c": 0.0},
                                                 {"a": 2, "b": 1, "c": 1}))
    assert kept == pytest.approx(counted)
    assert counted[("a", "new")] == 1.0 and counted[("d", "y")] == 1.0
    assert counted[("a", "u")] == pytest.approx(2 ** (-(300 / 400) / (1 / 3)))


def test_a_job_that_reclaimed_gpus_and_starves_starts_once() -> None:
    """A job that reclaimed its GPUs goes first; if it is also the oldest starving job, the
    starvation rule must not take it a second time (the pass started it on two nodes, and the
    replay failed removing it from the queue twice)."""
    old = job(1, 4, at=NOW - 3 * 86400, reclaiming=True)
    d = schedule([old, job(2, 4)], [], nodes_(8, 8), now=NOW, config=QUOTAS)
    assert started(d).count(1) == 1 and sorted(started(d)) == [1, 2]
