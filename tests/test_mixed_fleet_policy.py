"""Mixed fleets in the scheduling policy (#18): typed, any-of and untyped jobs land on the
models they accept, a gang is one model, backfill reserves per model, preemption reclaims the
model the waiting job needs, and submit-time refusals name what the fleet holds."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterctl.gpu_types import GIB, matches
from clusterctl.scheduler.gpu_groups import why_never
from clusterctl.scheduler.policy import schedule
from clusterctl.scheduler.records import (
    Blocking,
    NodeCapacity,
    PolicyConfig,
    QueuedJob,
    RunningJob,
    WaitReason,
)

NOW = 1_000_000.0
H = 3600.0
H100, A100, RTX = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090"
MEM = {H100: 80 * GIB, A100: 80 * GIB, RTX: 24 * GIB, "H100-80GB": 80 * GIB, "RTX-4090": 24 * GIB}


def node(id: str, model: str, total: int = 2, free: int | None = None) -> NodeCapacity:
    return NodeCapacity(id, total, total if free is None else free, gpu_model=model,
                        gpu_mem=MEM[model])


def job(id: int, gpus: int = 1, *, types: tuple[str, ...] = (), mem: int | None = None,
        nodes: int = 1, team: str = "a", limit: float = H, **kw: object) -> QueuedJob:
    return QueuedJob(id, 0, NOW - 1000 + id, gpus, nodes, team, "u", limit,
                     gpu_types=types, gpu_mem=mem, **kw)  # type: ignore[arg-type]


FLEET = [node("h", H100), node("r", RTX)]


def where(decision: object) -> dict[int, tuple[str, ...]]:
    return {p.job_id: p.node_ids for p in decision.starts}  # type: ignore[attr-defined]


def test_a_typed_job_lands_on_its_type_and_any_of_takes_the_first_that_fits() -> None:
    d = schedule([job(1, 2, types=("4090",))], [], FLEET, now=NOW)
    assert where(d) == {1: ("r",)}
    h_busy = [node("h", H100, free=0), node("r", RTX)]
    d = schedule([job(2, 2, types=("H100", "4090"))], [], h_busy, now=NOW)
    assert where(d) == {2: ("r",)}  # H100 preferred, but none free: the next type asked for
    d = schedule([job(3, 2, types=("H100", "4090"))], [], FLEET, now=NOW)
    assert where(d) == {3: ("h",)}


def test_memory_per_gpu_is_a_floor() -> None:
    d = schedule([job(1, 1, mem=40 * GIB)], [], [node("r", RTX), node("h", H100)], now=NOW)
    assert where(d) == {1: ("h",)}
    d = schedule([job(2, 1, mem=40 * GIB)], [], [node("r", RTX)], now=NOW, explain=True)
    assert not d.starts and "with 40 GiB" in d.waiting[2].detail


def test_an_untyped_job_leaves_the_gpus_typed_jobs_wait_for() -> None:
    # Both fit either node; the H100 job behind it needs the H100 node.
    d = schedule([job(1, 2), job(2, 2, types=("H100",))], [], FLEET, now=NOW)
    assert where(d) == {1: ("r",), 2: ("h",)}


def test_a_gang_is_one_model() -> None:
    mixed = [node("h", H100), node("r", RTX)]
    d = schedule([job(1, 2, nodes=2)], [], mixed, now=NOW, explain=True)
    assert not d.starts  # 2 nodes x 2 GPUs exist, but of two models
    assert "GPUs of one model" in d.waiting[1].detail
    d = schedule([job(1, 2, nodes=2)], [], [*mixed, node("h2", H100)], now=NOW)
    assert sorted(where(d)[1]) == ["h", "h2"]


def test_the_wait_reason_names_the_type() -> None:
    busy = [node("h", H100, free=0), node("r", RTX)]
    d = schedule([job(1, 2, types=("H100",))], [], busy, now=NOW, explain=True)
    assert d.waiting[1].reason is WaitReason.RESOURCES
    assert d.waiting[1].detail == "needs 2 H100; 0 of 2 free"


def test_a_wait_on_a_drained_model_names_the_drain() -> None:
    """#31 item 10: jobs waiting on a drained node's model said "needs 2 H100; 0 of 0 free"."""
    drained = [replace(node("h", H100), schedulable=False, drained=True), node("r", RTX)]
    d = schedule([job(1, 2, types=("H100",)), job(2, 1)], [], drained, now=NOW, explain=True)
    assert d.waiting[1].detail == "needs 2 H100; 0 of 0 free, 2 on drained nodes"
    assert where(d) == {2: ("r",)}  # nothing of the drained node is handed out


def test_backfill_reserves_per_model() -> None:
    # The H100 node is busy for an hour; job 1 (H100) waits with a reservation there. A long
    # job that fits the RTX node does not delay it, so it starts; a long H100 job would.
    busy = [node("h", H100, free=0), node("r", RTX)]
    running = [RunningJob(9, "b", "v", ("h",), 2, NOW - 60, H)]
    queue = [job(1, 2, types=("H100",)), job(2, 2, limit=10 * H)]
    d = schedule(queue, running, busy, now=NOW, config=PolicyConfig(fair_share=False))
    assert d.reserved is not None and d.reserved[0] == 1
    assert where(d) == {2: ("r",)}
    # Textbook FIFO: nothing passes the first blocked job, whatever its type.
    d = schedule(queue, running, busy, now=NOW,
                 config=PolicyConfig(fair_share=False, blocking=Blocking.STRICT))
    assert not d.starts


def test_each_model_has_its_own_reservation() -> None:
    # Both nodes are busy: the H100s for an hour, one of the 4090s for three. Job 1 holds the
    # H100s' reservation and job 2 the 4090s' (at three hours, estimated so): a long 1-GPU
    # 4090 job would delay job 2 and waits; a short one ends before and starts. With one
    # reservation for the whole fleet, job 2 had none and the long job took its GPU.
    busy = [node("h", H100, free=0), node("r", RTX, free=1)]
    running = [RunningJob(8, "b", "v", ("h",), 2, NOW - 60, H),
               RunningJob(9, "b", "v", ("r",), 1, NOW - 60, 3 * H)]
    queue = [job(1, 2, types=("H100",)), job(2, 2, types=("4090",)),
             job(3, 1, types=("4090",), limit=10 * H), job(4, 1, types=("4090",), limit=H)]
    d = schedule(queue, running, busy, now=NOW, config=PolicyConfig(fair_share=False),
                 explain=True)
    assert d.reserved is not None and d.reserved[0] == 1
    assert where(d) == {4: ("r",)}
    assert d.waiting[2].estimated_start == NOW + 3 * H - 60
    assert d.waiting[3].detail == "would delay job 2, next in line"


def test_preemption_reclaims_only_the_model_the_waiting_job_needs() -> None:
    fleet = [node("h", H100, free=0), node("r", RTX, free=0)]
    running = [RunningJob(10, "b", "v", ("h",), 2, NOW - 60, H),
               RunningJob(11, "b", "v", ("r",), 2, NOW - 30, H)]  # newer: preempted first
    cfg = PolicyConfig(quotas={"a": 2, "b": 0}, preempt_min_run_s=0)
    d = schedule([job(1, 2, types=("H100",))], running, fleet, now=NOW, config=cfg)
    assert [p.job_id for p in d.preemptions] == [10]
    d = schedule([job(2, 2)], running, fleet, now=NOW, config=cfg)
    assert [p.job_id for p in d.preemptions] == [11]  # untyped: the newest, either model


def test_refusals_at_submit_name_what_exists() -> None:
    fleet = [node("h", "H100-80GB"), node("r", "RTX-4090")]
    assert why_never(2, 1, (("H100",), None), fleet) is None
    assert why_never(3, 1, (("H100",), None), fleet) == (
        "--gpus", "no node has 3 H100 GPUs; here: H100-80GB (2 per node, 1 node), "
                  "RTX-4090 (2 per node, 1 node)")
    field, why = why_never(1, 1, (("B200",), None), fleet) or ("", "")
    assert field == "--gpu-type" and why.startswith("no node has B200 GPUs; here: H100-80GB")
    field, why = why_never(1, 1, ((), 100 * GIB), fleet) or ("", "")
    assert field == "--gpu-mem" and "100 GiB" in why
    field, why = why_never(2, 2, ((), None), fleet) or ("", "")
    assert field == "--nodes" and "all of one model" in why
    assert why_never(2, 2, ((), None), [*fleet, node("h2", "H100-80GB")]) is None
    assert why_never(99, 1, (("H100",), None), []) is None  # nothing reported yet


MODELS = [H100, A100, RTX, "unknown"]


@st.composite
def fleets_and_queues(draw: st.DrawFn) -> tuple[list[NodeCapacity], list[QueuedJob]]:
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        model = draw(st.sampled_from(MODELS))
        total = draw(st.sampled_from([1, 2, 4, 8]))
        nodes.append(NodeCapacity(f"n{i}", total, draw(st.integers(0, total)),
                                  gpu_model=None if model == "unknown" else model,
                                  gpu_mem=MEM.get(model)))
    queue = []
    for i in range(draw(st.integers(1, 12))):
        types = tuple(draw(st.lists(st.sampled_from(["H100", "A100", "4090", "B200"]),
                                    max_size=2, unique=True)))
        mem = draw(st.sampled_from([None, None, 40 * GIB]))
        queue.append(job(i + 1, draw(st.sampled_from([1, 2, 4])), types=types, mem=mem,
                         nodes=draw(st.integers(1, 2)), team=draw(st.sampled_from("ab"))))
    return nodes, queue


@settings(max_examples=300, deadline=None)
@given(fleets_and_queues(), st.sampled_from(list(Blocking)))
def test_no_job_on_a_type_it_did_not_accept_no_gang_across_models_no_gpu_twice(
        case: tuple[list[NodeCapacity], list[QueuedJob]], blocking: Blocking) -> None:
    nodes, queue = case
    by_id = {n.id: n for n in nodes}
    d = schedule(queue, [], nodes, now=NOW, explain=True,
                 config=PolicyConfig(blocking=blocking, quotas={"a": 4, "b": 4}))
    left = {n.id: n.free_gpus for n in nodes}
    jobs = {j.id: j for j in queue}
    for p in d.starts:
        j = jobs[p.job_id]
        models = {by_id[n].gpu_model for n in p.node_ids}
        assert len(models) == 1, (j, models)  # one model per gang
        assert len(set(p.node_ids)) == j.nodes
        model = models.pop()
        if j.gpu_types:
            assert model is not None and any(matches(t, model) for t in j.gpu_types)
        if j.gpu_mem is not None:
            assert all((by_id[n].gpu_mem or 0) >= j.gpu_mem for n in p.node_ids)
        for n in p.node_ids:
            left[n] -= j.gpus
    assert all(v >= 0 for v in left.values()), left  # every start fits, no GPU twice
    for j in queue:  # every job either starts or says why it waits
        assert j.id in where(d) or j.id in d.waiting


def test_one_model_fleets_take_the_plain_path() -> None:
    plain = [NodeCapacity("n0", 8, 8), NodeCapacity("n1", 8, 8)]
    typed = [replace(n, gpu_model=A100) for n in plain]
    queue = [job(1, 8), job(2, 4, nodes=2)]
    assert where(schedule(queue, [], plain, now=NOW)) == where(schedule(queue, [], typed,
                                                                         now=NOW))


def test_where_no_typed_job_wants_either_an_untyped_job_takes_the_cheaper_gpu_hour() -> None:
    # The A100 box is the newer, dearer one here (models sort A100 first: the price decides).
    dear = replace(node("a", A100), gpu_hour_cost=3.5)
    cheap = replace(node("h", H100), gpu_hour_cost=1.2)
    assert where(schedule([job(1, 2)], [], [dear, cheap], now=NOW)) == {1: ("h",)}
    # ... unless the queue's typed jobs want the cheaper one more
    queue = [job(1, 2), job(2, 2, types=("H100",))]
    assert where(schedule(queue, [], [dear, cheap], now=NOW)) == {1: ("a",), 2: ("h",)}
