"""Attained service (#36): jobs without a time limit ranked by the GPU-time they have had, and a
team's longer-served jobs demoted for its shorter ones, in the pure pass and in the replay."""

from __future__ import annotations

from dataclasses import replace

from test_policy import NOW, H, free_after, job, nodes_, run_, started

from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.records import (
    PolicyConfig,
    QueuedJob,
    WaitReason,
    from_settings,
    guarded,
)
from clusterctl.simulate.engine import replay
from clusterctl.simulate.metrics import figures
from clusterctl.simulate.trace import TraceJob, uniform

CONFIG = PolicyConfig(quotas={"a": 8, "b": 8})
"""The defaults: thresholds at 2 and 16 GPU-hours, a 10-minute minimum run."""
PROMOTING = replace(CONFIG, promote_after_slowdown=4.0)
"""With the promotion of long jobs (off by default)."""


def served(id: int, hours: float, *, gpus: int = 8, team: str = "a", node: str = "n0",
           **kw: object):  # type: ignore[no-untyped-def]
    """A running job without a limit that has had ``hours`` GPU-hours in this attempt."""
    return run_(id, node, gpus, team=team, limit=None, started=NOW - hours * H / gpus, **kw)


def test_a_team_job_demotes_the_teams_longer_served_job_without_a_limit() -> None:
    running = [served(9, 3.0), served(8, 0.5, node="n1")]  # 3 GPU-h: past the 2 GPU-h class
    d = schedule([job(1, 8, limit=None)], running, free_after(nodes_(8, 8), running), now=NOW,
                 config=CONFIG, explain=True)
    assert started(d) == []
    assert [(p.job_id, p.for_job) for p in d.preemptions] == [(9, 1)]
    assert "demoted" in d.preemptions[0].reason and "3.0 GPU-hours" in d.preemptions[0].reason
    assert d.waiting[1].reason is WaitReason.PREEMPTING
    assert [(p.job_id, p.node_ids) for p in d.promised] == [(1, ("n0",))]


def test_jobs_with_a_limit_other_teams_jobs_and_services_are_never_demoted() -> None:
    for running in ([run_(9, "n0", 8, team="a", limit=72 * H, started=NOW - 10 * H)],
                    [served(9, 40.0, team="b")], [served(9, 40.0, demotable=False)]):
        d = schedule([job(1, 8, limit=H)], running, free_after(nodes_(8), running), now=NOW,
                     config=CONFIG, explain=True)
        assert d.preemptions == [] and d.waiting[1].reason is not WaitReason.PREEMPTING


def test_no_demotion_before_the_minimum_run_or_the_threshold_and_a_pass_when_it_is_due() -> None:
    young = run_(9, "n0", 8, team="a", limit=None, started=NOW - 300, attained_gpu_s=4800)
    d = schedule([job(1, 8, limit=None)], [young], free_after(nodes_(8), [young]), now=NOW,
                 config=CONFIG)
    assert d.preemptions == [] and d.recheck_at == young.started_at + 600
    fresh = served(9, 1.0)  # 1 of 2 GPU-hours: crosses in 7.5 more minutes on 8 GPUs
    d = schedule([job(1, 8, limit=None)], [fresh], free_after(nodes_(8), [fresh]), now=NOW,
                 config=CONFIG)
    assert d.preemptions == [] and d.recheck_at == NOW + 1.0 * H / 8
    d = schedule([job(1, 8, limit=None)], [fresh], free_after(nodes_(8), [fresh]),
                 now=NOW + 1.0 * H / 8, config=CONFIG)
    assert [p.job_id for p in d.preemptions] == [9]


def test_a_resumed_job_runs_as_long_as_its_earlier_attempts_before_it_is_demoted() -> None:
    """Resumed after a demotion (5 GPU-hours on 8 GPUs: 37.5 minutes before), it runs 37.5
    minutes more before it may be demoted again (at most 4 hours, however long before):
    demoted again at each resume, a long job would lose each attempt's work."""
    resumed = run_(9, "n0", 8, team="a", limit=None, started=NOW - 600, attained_gpu_s=5 * H)
    d = schedule([job(1, 8, limit=None)], [resumed], free_after(nodes_(8), [resumed]), now=NOW,
                 config=CONFIG)
    assert d.preemptions == [] and d.recheck_at == resumed.started_at + 5 * H / 8
    d = schedule([job(1, 8, limit=None)], [resumed], free_after(nodes_(8), [resumed]),
                 now=resumed.started_at + 5 * H / 8, config=CONFIG)
    assert [p.job_id for p in d.preemptions] == [9]
    long = replace(resumed, attained_gpu_s=100 * H)  # 12.5 hours before: 4 hours now
    d = schedule([job(1, 8, limit=None)], [long], free_after(nodes_(8), [long]), now=NOW,
                 config=CONFIG)
    assert d.preemptions == [] and d.recheck_at == long.started_at + 4 * H


def test_a_pending_job_ranks_by_what_it_has_had() -> None:
    demoted = job(1, 8, limit=None, attained_gpu_s=3 * H)  # older, but had 3 GPU-hours
    fresh = job(2, 8, limit=None)
    four = job(3, 8, limit=4 * H)
    d = schedule([demoted, fresh], [], nodes_(8), now=NOW, config=CONFIG)
    assert started(d) == [2]
    d = schedule([demoted, four], [], nodes_(8), now=NOW, config=CONFIG)
    assert started(d) == [1]  # same class as a four-hour limit, and older
    d = schedule([demoted, fresh], [], nodes_(8), now=NOW,
                 config=replace(CONFIG, demote_after_gpu_s=()))
    assert started(d) == [1]  # off: no limit is no limit, and the older goes first


def test_waiting_jobs_say_how_they_rank_and_that_they_were_demoted() -> None:
    running = [run_(9, "n0", 8, team="b", limit=H)]
    queued = [job(1, 8, limit=H), job(2, 8, limit=None, attained_gpu_s=3 * H),
              job(3, 8, limit=None, attained_gpu_s=20 * H), job(4, 8, limit=None, at=NOW)]
    d = schedule(queued, running, free_after(nodes_(8), running), now=NOW, config=CONFIG,
                 explain=True)
    told = {i: d.waiting[i].detail for i in (2, 3, 4)}
    assert "demoted: it has had 3.0 GPU-hours" in told[2] and "until 16" in told[2]
    assert "demoted: it has had 20.0 GPU-hours" in told[3] and "--time-limit" in told[3]
    assert "ranks as a short job until it has had 2 GPU-hours" in told[4]


def test_the_setting_in_gpu_hours_and_the_guarded_policy() -> None:
    assert from_settings({}).demote_after_gpu_s == (2 * H, 16 * H)
    assert from_settings({"demote_after_gpu_h": [1, 4]}).demote_after_gpu_s == (H, 4 * H)
    assert from_settings({"demote_after_gpu_h": []}).demote_after_gpu_s == ()
    assert from_settings({"scheduling_policy": "guarded"}).demote_after_gpu_s == ()
    assert guarded(CONFIG).demote_after_gpu_s == ()
    assert from_settings({}).promote_after_slowdown is None
    assert from_settings({"promote_after_slowdown": 8}).promote_after_slowdown == 8.0
    assert from_settings({"promote_after_slowdown": 0}).promote_after_slowdown is None


def _trace() -> list[TraceJob]:
    """One team: a 20-hour job on the whole node first, then an hour later twenty one-hour
    jobs, none with a limit."""
    long = TraceJob(0, 0.0, 20 * H, 8, 1, "a", "u", None)
    short = [TraceJob(i, H + i, H, 8, 1, "a", "u", None) for i in range(1, 21)]
    return [long, *short]


def test_in_the_replay_short_jobs_overtake_a_long_one_and_it_still_ends() -> None:
    fleet = uniform(1, 8)
    with_ = replay(_trace(), fleet, replace(CONFIG, quotas={"a": 8}))
    without = replay(_trace(), fleet, replace(CONFIG, quotas={"a": 8}, demote_after_gpu_s=()))
    on, off = figures("with", with_, {"a": 8}), figures("without", without, {"a": 8})
    assert all(r.end is not None for r in with_.records)
    long = next(r for r in with_.records if r.job.id == 0)
    assert long.preemptions >= 1 and without.preemptions == 0
    assert on.demotions == on.preemptions == with_.preemptions  # no quota in play: all demoted
    # without it, every short job waits out the 20-hour one; with it, they run as it is
    # demoted past 2 GPU-hours, and the long one runs last
    assert on.avg_jct_s < 0.5 * off.avg_jct_s
    assert long.end == max(r.end for r in with_.records if r.end is not None)


def test_a_long_demoted_job_is_promoted_once_it_has_waited_four_times_its_run() -> None:
    """20 GPU-hours on 8 GPUs is 2.5 hours of run: past the last threshold it ranks last, until
    10 hours after its submission; then it ranks as a job past only the first threshold (with
    a four-hour limit's class), and its age puts it ahead of a newer such job."""
    def long(submitted: float) -> QueuedJob:
        return job(1, 8, limit=None, attained_gpu_s=20 * H, at=submitted)

    four = job(2, 8, limit=4 * H, at=NOW - H)
    due = NOW - 4 * 2.5 * H
    d = schedule([long(due + 60), four], [], nodes_(8), now=NOW, config=PROMOTING,
                 explain=True)
    assert started(d) == [2] and "promoted" not in d.waiting[1].detail
    d = schedule([long(due), four], [], nodes_(8), now=NOW, config=PROMOTING, explain=True)
    assert started(d) == [1]
    d = schedule([long(due), four], [], nodes_(8), now=NOW, config=CONFIG)
    assert started(d) == [2]  # never promoted (the default): the longest class waits


def test_a_promoted_job_waits_saying_so_and_demotes_only_by_what_it_has_had() -> None:
    """Promoted, a job with 20 GPU-hours ranks higher, but does not demote the team's job with
    18 (that one has had less); nor does it take its team's turn from a short job behind it,
    which demotes that job."""
    promoted = job(1, 8, limit=None, attained_gpu_s=20 * H, at=NOW - 30 * H)
    running = [run_(9, "n0", 8, team="a", limit=None, started=NOW - 2 * H, attained_gpu_s=2 * H)]
    free = free_after(nodes_(8), running)
    d = schedule([promoted], running, free, now=NOW, config=PROMOTING, explain=True)
    assert d.preemptions == [] and started(d) == []
    assert ("promoted: it has had 20.0 GPU-hours without a time limit, and has waited 4 times "
            "as long as it ran, so it ranks as one that has had under 16") in d.waiting[1].detail
    short = job(2, 8, limit=None, at=NOW - 60)
    running.append(run_(8, "n1", 8, team="b"))  # ends within the hour: the promoted job's
    d = schedule([promoted, short], running, free_after(nodes_(8, 8), running), now=NOW,
                 config=PROMOTING, explain=True)
    assert d.reserved is not None and d.reserved[0] == 1
    assert [(p.job_id, p.for_job) for p in d.preemptions] == [(9, 2)]


def _stream() -> list[TraceJob]:
    """A 10-hour job on the whole node, then one-hour jobs every hour for three days: never a
    free hour without one of them waiting."""
    long = TraceJob(0, 0.0, 10 * H, 8, 1, "a", "u", None)
    return [long, *(TraceJob(i, i * H, H, 8, 1, "a", "u", None) for i in range(1, 73))]


def test_in_the_replay_a_long_job_overtaken_by_a_stream_of_short_ones_is_promoted() -> None:
    fleet, config = uniform(1, 8), replace(CONFIG, quotas={"a": 8})
    on = replay(_stream(), fleet, replace(config, promote_after_slowdown=4.0))
    off = replay(_stream(), fleet, config)
    end = {name: next(r.end for r in out.records if r.job.id == 0)
           for name, out in (("on", on), ("off", off))}
    assert all(r.end is not None for r in on.records)
    assert end["off"] is not None and end["off"] > 72 * H  # it waited out the whole stream
    assert end["on"] is not None and end["on"] < 0.6 * end["off"]
