"""A machine of several GPU models (#18, item 1): the pass sees one node per model, the
controller picks the devices of the model the pass chose, and a running job's devices say
which part it holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterctl.gpu_types import GIB, matches, parse_models
from clusterctl.scheduler import mixed_nodes
from clusterctl.scheduler.mixed_nodes import Gpu
from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.records import NodeCapacity, PolicyConfig, QueuedJob

H100, RTX = "NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 4090"
DUO = [Gpu(0, H100, 80 * GIB), Gpu(1, H100, 80 * GIB), Gpu(2, RTX, 24 * GIB),
       Gpu(3, RTX, 24 * GIB)]
NOW = 1_000_000.0


def whole(free: int = 4) -> NodeCapacity:
    return NodeCapacity("abc", 4, free, gpu_model=H100, gpu_mem=24 * GIB, gpu_hour_cost=2.0)


def test_a_machine_of_two_models_is_a_node_per_model() -> None:
    assert mixed_nodes.is_mixed(DUO, 4)
    assert not mixed_nodes.is_mixed(DUO[:2], 2)
    assert not mixed_nodes.is_mixed(DUO, 8)  # the agent missed GPUs Ray counts: left whole
    h100, rtx = mixed_nodes.split(whole(1), DUO, held={1, 2, 3})
    assert (h100.id, h100.total_gpus, h100.free_gpus, h100.gpu_model, h100.gpu_mem) == (
        "abc#nvidia h100 80gb hbm3", 2, 1, H100, 80 * GIB)
    assert (rtx.id, rtx.total_gpus, rtx.free_gpus, rtx.gpu_model, rtx.gpu_mem) == (
        "abc#nvidia geforce rtx 4090", 2, 0, RTX, 24 * GIB)
    assert h100.gpu_hour_cost == 2.0 and mixed_nodes.node_of(rtx.id) == "abc"


def test_gpus_held_without_known_devices_come_off_the_first_free_parts() -> None:
    parts = mixed_nodes.split(whole(1), DUO, held={0}, held_elsewhere=2)
    assert [p.free_gpus for p in parts] == [0, 1]
    assert sum(p.free_gpus for p in parts) == 1


def test_pick_takes_free_devices_of_the_model_and_parts_of_reads_them_back() -> None:
    rtx = "abc#nvidia geforce rtx 4090"
    assert mixed_nodes.pick(DUO, rtx, held={2}, count=1) == (3,)
    assert mixed_nodes.pick(DUO, "abc#nvidia h100 80gb hbm3", held=set(), count=2) == (0, 1)
    with pytest.raises(ValueError):
        mixed_nodes.pick(DUO, rtx, held={2}, count=2)
    gpus_of = {"abc": DUO}
    assert mixed_nodes.parts_of(["abc", "other"], [[3], [0]], gpus_of) == (rtx, "other")
    assert mixed_nodes.parts_of(["abc"], None, gpus_of) == ("abc",)  # devices unknown


def test_the_simulated_agent_reads_models_with_counts() -> None:
    assert parse_models("H100-80GB", 2) == ["H100-80GB", "H100-80GB"]
    assert parse_models("A100-80GB (sim)", 1) == ["A100-80GB (sim)"]
    assert parse_models("H100-80GB:1+RTX-4090:2", 3) == ["H100-80GB", "RTX-4090", "RTX-4090"]
    for bad in ("H100:1+RTX-4090:1", "H100:0+RTX:3", ":2+RTX:1", "H100:x+RTX:2"):
        with pytest.raises(ValueError):
            parse_models(bad, 3)


MODELS = [(H100, 80 * GIB), (RTX, 24 * GIB), ("NVIDIA A100-SXM4-80GB", 80 * GIB)]


@st.composite
def machines_and_queue(draw: st.DrawFn) -> tuple[dict[str, list[Gpu]], dict[str, set[int]],
                                                list[QueuedJob]]:
    machines: dict[str, list[Gpu]] = {}
    held: dict[str, set[int]] = {}
    for m in range(draw(st.integers(1, 4))):
        kinds = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=3))
        gpus = [Gpu(i, *kinds[i % len(kinds)]) for i in range(draw(st.sampled_from([2, 4, 8])))]
        machines[f"m{m}"] = gpus
        held[f"m{m}"] = set(draw(st.lists(st.sampled_from([g.index for g in gpus]))))
    queue = [QueuedJob(i + 1, 0, NOW - 100 + i, draw(st.sampled_from([1, 2, 3, 4])),
                       draw(st.integers(1, 2)), "a", "u", 3600.0,
                       gpu_types=tuple(draw(st.lists(st.sampled_from(["H100", "4090", "A100"]),
                                                     max_size=2, unique=True))))
             for i in range(draw(st.integers(1, 10)))]
    return machines, held, queue


@settings(max_examples=200, deadline=None)
@given(machines_and_queue())
def test_starts_on_split_machines_get_free_devices_of_one_accepted_model(
        case: tuple[dict[str, list[Gpu]], dict[str, set[int]], list[QueuedJob]]) -> None:
    machines, held, queue = case
    capacity: list[NodeCapacity] = []
    for name, gpus in machines.items():
        node = NodeCapacity(name, len(gpus), len(gpus) - len(held[name]), gpu_model=gpus[0].model)
        capacity += (mixed_nodes.split(node, gpus, held[name])
                     if mixed_nodes.is_mixed(gpus, len(gpus)) else [node])
    d = schedule(queue, [], capacity, now=NOW, config=PolicyConfig(quotas={"a": 100}))
    jobs = {j.id: j for j in queue}
    taken = {name: set(h) for name, h in held.items()}
    for start in d.starts:
        job = jobs[start.job_id]
        machines_used = [mixed_nodes.node_of(n) for n in start.node_ids]
        assert len(set(machines_used)) == job.nodes  # never two parts of one machine
        models = set()
        for part, name in zip(start.node_ids, machines_used, strict=True):
            gpus = machines[name]
            if mixed_nodes.SEP not in part:  # a machine of one model: Ray picks
                free = [g.index for g in gpus if g.index not in taken[name]]
                devices = tuple(free[:job.gpus])
                assert len(devices) == job.gpus
            else:
                devices = mixed_nodes.pick(gpus, part, taken[name], job.gpus)
            assert not taken[name] & set(devices)  # no GPU given twice
            taken[name] |= set(devices)
            models |= {mixed_nodes.model_key(gpus[i].model) for i in devices}
        assert len(models) == 1  # a gang is one model
        model = models.pop()
        if job.gpu_types:
            assert any(matches(t, model) for t in job.gpu_types)


def test_a_request_is_refused_only_on_what_the_agents_have_reported_by_now() -> None:
    """A node that just joined: Ray counts its GPUs and its agent reports their models a
    moment later, which `clusterctl nodes` shows at once. A submit for one of them that
    arrives before the scheduler's next read of the facts must not be refused on the read
    before (a clean-clone run saw "no node has 4090 GPUs; here: GPUs of unknown model" right
    after `nodes` had shown the RTX 4090)."""
    from clusterctl.controller.node_facts import NodeFacts
    from clusterctl.executor.types import NodeInfo
    from clusterctl.scheduler.gpu_groups import why_never

    reported: dict[str, list[Gpu]] = {}
    facts = NodeFacts(gpu_facts=lambda: dict(reported), monotonic=lambda: NOW)
    facts.refresh([NodeInfo("abc", "duo", "10.0.0.1", 4, None, True)], every_s=30)
    reported["duo"] = DUO  # the agent's first report, the same instant

    def check(types: tuple[str, ...]) -> tuple[str, str] | None:
        return why_never(1, 1, (types, None), facts.capacity([], (), ()))

    assert check(("RTX-4090",)) is not None  # on the facts as last read
    assert facts.refused_after_reading(lambda: check(("RTX-4090",))) is None
    field, why = facts.refused_after_reading(lambda: check(("B200",))) or ("", "")
    assert field == "--gpu-type" and "no node has B200 GPUs" in why, why
