"""Quotas per GPU type (#18 item 4): parsed from the setting and the config table, a guarantee
of 8 H100s reclaims H100s (not the newest job of any model), borrowing stays within a type, a
quota for a type no node has is a warning, and fair share can weigh GPU-hours by their rate."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterctl import settings as config
from clusterctl.gpu_types import GIB, matches
from clusterctl.parsing import BadInput
from clusterctl.scheduler import fairshare
from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.quotas import parse_quotas, pool_type, totals, unknown_types
from clusterctl.scheduler.records import (
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
    WaitReason,
)

NOW = 1_000_000.0
H = 3600.0
H100, A100, RTX = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090"
MEM = {H100: 80 * GIB, A100: 80 * GIB, RTX: 24 * GIB}


def node(id: str, model: str, total: int = 2, free: int | None = None) -> NodeCapacity:
    return NodeCapacity(id, total, total if free is None else free, gpu_model=model,
                        gpu_mem=MEM[model])


def job(id: int, gpus: int = 1, *, team: str = "vision", types: tuple[str, ...] = (),
        nodes: int = 1, preemptible: bool = True) -> QueuedJob:
    return QueuedJob(id, 0, NOW - 1000 + id, gpus, nodes, team, "u", H,
                     preemptible=preemptible, gpu_types=types)


def running(id: int, team: str, node_id: str, gpus: int = 2, age: float = 60) -> RunningJob:
    return RunningJob(id, team, "v", (node_id,), gpus, NOW - age, H)


def config_of(bare: dict[str, float], typed: dict[str, dict[str, float]]) -> PolicyConfig:
    return PolicyConfig(quotas=totals(bare, typed), type_quotas=typed, preempt_min_run_s=0)


# -- the setting ------------------------------------------------------------------------------


def test_quotas_parse_per_type_and_over_all_types() -> None:
    bare, typed = parse_quotas(["vision=H100:8+A100:16", "nlp=24"])
    assert bare == {"nlp": 24.0}
    assert typed == {"vision": {"H100": 8.0, "A100": 16.0}}
    assert totals(bare, typed) == {"nlp": 24.0, "vision": 24.0}
    assert parse_quotas(["a=H100:2", "a=4"]) == ({"a": 4.0}, {})  # the last one wins
    for bad in ("vision", "vision=", "=8", "vision=H100:-1", "vision=H100:x", "vision=:8",
                "vision=H100:8+", "vision=H1 00!:8", "vision=1e99"):
        with pytest.raises(BadInput) as e:
            parse_quotas([bad])
        assert e.value.field == "--quota", bad


def test_quotas_from_the_config_table_and_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[quotas]\nnlp = 24\n[quotas.vision]\nH100 = 8\nA100 = 16\n")
    s = config.load({"CLUSTERCTL_CONFIG": str(cfg)})
    assert s.type_quotas == {"vision": {"H100": 8.0, "A100": 16.0}}
    assert s.team_quotas == {"nlp": 24.0, "vision": 24.0}
    s = config.load({"CLUSTERCTL_CONFIG": str(cfg),
                     "CLUSTERCTL_QUOTAS": "vision=H100:2+4090:4, nlp=3"})
    assert s.type_quotas == {"vision": {"H100": 2.0, "4090": 4.0}}
    assert s.team_quotas == {"nlp": 3.0, "vision": 6.0}
    with pytest.raises(BadInput) as e:
        config.load({"CLUSTERCTL_CONFIG": str(cfg), "CLUSTERCTL_QUOTAS": "vision=H100:lots"})
    assert e.value.field == "quotas"


def test_a_quota_for_a_type_no_node_has_is_named() -> None:
    typed = {"vision": {"H100": 8.0, "B200": 8.0}, "nlp": {"4090": 2.0}}
    assert unknown_types(typed, [H100, RTX, None]) == ["vision: B200"]
    assert pool_type(["A100", "H100"], H100) == "H100"
    assert pool_type(["A100"], RTX) == ""
    assert pool_type(["A100"], None) == ""


# -- the policy -------------------------------------------------------------------------------


def test_a_typed_guarantee_reclaims_its_own_type_not_the_newest_job() -> None:
    # nlp (no quota) borrows both nodes; its RTX job is the newer. vision is guaranteed 2 H100.
    fleet = [node("h", H100, free=0), node("r", RTX, free=0)]
    borrowers = [running(10, "nlp", "h", age=600), running(11, "nlp", "r", age=60)]
    typed = config_of({"nlp": 0}, {"vision": {"H100": 2}})
    d = schedule([job(1, 2)], borrowers, fleet, now=NOW, config=typed)
    assert [p.job_id for p in d.preemptions] == [10]
    assert [p.node_ids for p in d.promised] == [("h",)]
    # The same 2 GPUs over all types: the newest borrower goes, whatever its model.
    d = schedule([job(1, 2)], borrowers, fleet, now=NOW, config=config_of(
        {"nlp": 0, "vision": 2}, {}))
    assert [p.job_id for p in d.preemptions] == [11]


def test_a_team_at_its_type_quota_borrows_other_types_and_reclaims_nothing() -> None:
    fleet = [node("h", H100, free=0), node("h2", H100, free=0), node("r", RTX)]
    held = [running(10, "vision", "h", age=600), running(11, "nlp", "h2", age=60)]
    cfg = config_of({"nlp": 0}, {"vision": {"H100": 2}})
    d = schedule([job(1, 2)], held, fleet, now=NOW, config=cfg, explain=True)
    assert not d.preemptions  # its H100s are all in use by itself: nothing to reclaim
    assert {p.job_id: p.node_ids for p in d.starts} == {1: ("r",)}  # borrows the idle 4090s
    # With nothing idle to borrow, it waits, and says how much of its quota it holds.
    full = [*fleet[:2], node("r", RTX, free=0)]
    d = schedule([job(2, 2), job(3, 2)], [*held, running(12, "nlp", "r")], full, now=NOW,
                 config=cfg, explain=True)
    assert not d.starts and not d.preemptions  # the first holds the reservation
    assert d.waiting[3].reason is WaitReason.QUOTA
    assert d.waiting[3].detail == ("team vision holds 2 of 2 H100 of its quota; no idle "
                                   "GPUs to borrow")


def test_within_quota_first_on_its_type_then_borrowing_another() -> None:
    # vision's H100 quota has room, but the H100s are busy with a job that cannot be
    # preempted: the tier-0 job borrows the idle 4090s rather than wait.
    fleet = [node("h", H100, free=0), node("r", RTX)]
    pinned = [RunningJob(10, "nlp", "v", ("h",), 2, NOW - 60, H, preemptible=False)]
    cfg = config_of({"nlp": 0}, {"vision": {"H100": 2}})
    d = schedule([job(1, 2)], pinned, fleet, now=NOW, config=cfg)
    assert {p.job_id: p.node_ids for p in d.starts} == {1: ("r",)}
    # ... and with the H100s free, it takes them (its guarantee), not the 4090s.
    d = schedule([job(1, 2)], [], [node("h", H100), node("r", RTX)], now=NOW, config=cfg)
    assert {p.job_id: p.node_ids for p in d.starts} == {1: ("h",)}


def test_reclaiming_a_type_leaves_the_borrower_its_own_quota_of_it() -> None:
    # nlp is guaranteed 2 RTX and holds 4 (2 borrowed); vision is guaranteed 2 RTX.
    fleet = [node("r1", RTX, free=0), node("r2", RTX, free=0)]
    held = [running(10, "nlp", "r1", age=600), running(11, "nlp", "r2", age=60)]
    cfg = config_of({}, {"nlp": {"4090": 2}, "vision": {"4090": 2}})
    d = schedule([job(1, 2)], held, fleet, now=NOW, config=cfg)
    assert len(d.preemptions) == 1  # one job: nlp keeps its 2
    d = schedule([job(1, 2), job(2, 2)], held, fleet, now=NOW, config=cfg)
    assert len(d.preemptions) == 1  # the second vision job is beyond vision's quota
    # A typed team over its H100 quota is a borrower there, even under its total.
    fleet = [node("h1", H100, free=0), node("h2", H100, free=0)]
    held = [running(10, "nlp", "h1", age=600), running(11, "nlp", "h2", age=60)]
    cfg = config_of({"vision": 2}, {"nlp": {"H100": 2, "A100": 2}})
    d = schedule([job(1, 2)], held, fleet, now=NOW, config=cfg)
    assert len(d.preemptions) == 1


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[NodeCapacity], list[RunningJob], list[QueuedJob],
                                      dict[str, dict[str, float]], dict[str, float]]:
    nodes, held = [], []
    for i in range(draw(st.integers(1, 6))):
        model = draw(st.sampled_from([H100, A100, RTX]))
        total = draw(st.sampled_from([2, 4, 8]))
        used = 0
        for k in range(draw(st.integers(0, 3))):
            gpus = draw(st.sampled_from([1, 2]))
            if used + gpus > total:
                break
            held.append(RunningJob(100 * (i + 1) + k, draw(st.sampled_from("abc")), "v",
                                   (f"n{i}",), gpus, NOW - draw(st.integers(1, 5000)), H,
                                   preemptible=draw(st.booleans())))
            used += gpus
        nodes.append(NodeCapacity(f"n{i}", total, total - used, gpu_model=model,
                                  gpu_mem=MEM[model]))
    typed: dict[str, dict[str, float]] = {}
    bare: dict[str, float] = {}
    for team in "abc":
        if draw(st.booleans()):
            kinds = draw(st.lists(st.sampled_from(["H100", "A100", "4090"]), min_size=1,
                                  max_size=2, unique=True))
            typed[team] = {k: float(draw(st.integers(0, 8))) for k in kinds}
        else:
            bare[team] = float(draw(st.integers(0, 8)))
    queue = [job(i + 1, draw(st.sampled_from([1, 2, 4])), team=draw(st.sampled_from("abc")),
                 types=tuple(draw(st.lists(st.sampled_from(["H100", "A100", "4090"]),
                                           max_size=2, unique=True))),
                 nodes=draw(st.integers(1, 2)))
             for i in range(draw(st.integers(1, 10)))]
    return nodes, held, queue, typed, bare


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_type_quotas_are_never_exceeded_except_by_borrowing_idle_gpus_of_that_type(
        case: tuple[list[NodeCapacity], list[RunningJob], list[QueuedJob],
                    dict[str, dict[str, float]], dict[str, float]]) -> None:
    nodes, held, queue, typed, bare = case
    model = {n.id: n.gpu_model or "" for n in nodes}
    jobs = {j.id: j for j in queue}

    def pool(team: str, node_id: str) -> tuple[str, str | None]:
        return (team, pool_type(list(typed[team]), model[node_id])) if team in typed \
            else (team, None)

    def quota(p: tuple[str, str | None]) -> float:
        team, kind = p
        return bare.get(team, 0.0) if kind is None else typed[team].get(kind, 0.0)

    used: Counter[tuple[str, str | None]] = Counter()
    for r in held:
        used[pool(r.team, r.node_ids[0])] += r.total_gpus
    d = schedule(queue, held, nodes, now=NOW, explain=True,
                 config=PolicyConfig(quotas=totals(bare, typed), type_quotas=typed))

    left = {n.id: n.free_gpus for n in nodes}
    for p in d.starts:  # starts take idle GPUs only, of a type the job accepts
        j = jobs[p.job_id]
        assert len({model[n] for n in p.node_ids}) == 1
        if j.gpu_types:
            assert any(matches(t, model[p.node_ids[0]]) for t in j.gpu_types)
        for n in p.node_ids:
            left[n] -= j.gpus
    assert all(v >= 0 for v in left.values())

    taken: Counter[tuple[str, str | None]] = Counter()
    by_id = {r.id: r for r in held}
    for pre in d.preemptions:
        victim = by_id[pre.job_id]
        assert victim.preemptible
        taken[pool(victim.team, victim.node_ids[0])] += victim.total_gpus
    for p, gpus in taken.items():  # only borrowed GPUs are reclaimed, never a guarantee
        assert used[p] - gpus >= quota(p), (p, used[p], gpus)
    promised: Counter[tuple[str, str | None]] = Counter()
    for p in d.promised:  # a reclaim only ever fills a pool up to its quota
        j = jobs[p.job_id]
        promised[pool(j.team, p.node_ids[0])] += j.total_gpus
        if j.gpu_types:
            assert any(matches(t, model[p.node_ids[0]]) for t in j.gpu_types)
    for p, gpus in promised.items():
        assert used[p] + gpus <= quota(p), (p, used[p], gpus)
    for pre in d.preemptions:  # and only GPUs of the type the claimant runs within
        claimant = jobs[pre.for_job]
        spot = next(p.node_ids for p in d.promised if p.job_id == claimant.id)
        assert model[by_id[pre.job_id].node_ids[0]] in {model[n] for n in spot}


# -- fair share by rate ------------------------------------------------------------------------


def test_fair_share_can_weigh_a_gpu_hour_by_its_rate() -> None:
    weights = fairshare.rate_weights({"h100": 3.0, "rtx": 1.0, "free": 0.0})
    assert weights == {"h100": 1.5, "rtx": 0.5}
    rows = [("vision", "ann", "h100", NOW - H, NOW), ("nlp", "bo", "rtx", NOW - H, NOW),
            ("nlp", "bo", "unpriced", NOW - H, NOW)]
    plain = fairshare.usage_from_intervals(rows, NOW, 7 * 86400.0)
    assert plain.team["vision"] == pytest.approx(plain.team["nlp"] / 2)
    weighed = fairshare.usage_from_intervals(rows, NOW, 7 * 86400.0, weights)
    # one H100-hour (x1.5) against one 4090-hour (x0.5) and one unpriced GPU-hour (x1)
    assert weighed.team["vision"] == pytest.approx(weighed.team["nlp"])
    assert weighed.team["vision"] == pytest.approx(1.5 * plain.team["vision"])
