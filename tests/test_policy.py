from hypothesis import given, settings
from hypothesis import strategies as st

from clusterctl.scheduler.policy import NodeCapacity, QueuedJob, fits_ever, schedule


def nodes_(*free: int, total: int = 8) -> list[NodeCapacity]:
    return [NodeCapacity(f"n{i}", total, f) for i, f in enumerate(free)]


def test_priority_then_submit_order() -> None:
    jobs = [QueuedJob(1, 0, 1.0, 3, 1), QueuedJob(2, 0, 2.0, 3, 1), QueuedJob(3, 5, 3.0, 3, 1)]
    placed = schedule(jobs, nodes_(4, total=4))
    assert [p.job_id for p in placed] == [3]


def test_head_of_line_blocks_so_large_jobs_do_not_starve() -> None:
    jobs = [QueuedJob(1, 0, 1.0, 8, 1), QueuedJob(2, 0, 2.0, 1, 1)]
    assert schedule(jobs, nodes_(4)) == []


def test_best_fit_keeps_whole_nodes_free() -> None:
    placed = schedule([QueuedJob(1, 0, 1.0, 2, 1)], nodes_(8, 3, 8))
    assert placed[0].node_ids == ("n1",)


def test_multi_node_jobs_get_distinct_nodes() -> None:
    placed = schedule([QueuedJob(1, 0, 1.0, 4, 2)], nodes_(8, 2, 4))
    assert len(set(placed[0].node_ids)) == 2
    assert "n1" not in placed[0].node_ids


def test_unschedulable_nodes_are_skipped() -> None:
    nodes = [NodeCapacity("a", 8, 8, schedulable=False), NodeCapacity("b", 8, 2)]
    assert schedule([QueuedJob(1, 0, 1.0, 4, 1)], nodes) == []


def test_requests_that_can_never_fit() -> None:
    nodes = nodes_(8, 8, total=8)
    assert fits_ever(8, 2, nodes) is None
    assert "more than any node has" in (fits_ever(9, 1, nodes) or "")
    assert "more than the cluster has" in (fits_ever(4, 3, nodes) or "")
    assert fits_ever(100, 1, []) is None  # nothing reported yet: do not refuse


jobs_st = st.lists(
    st.builds(QueuedJob, id=st.integers(1, 10_000), priority=st.integers(-3, 3),
              submitted_at=st.floats(0, 1000), gpus=st.integers(1, 8), nodes=st.integers(1, 3)),
    max_size=40, unique_by=lambda j: j.id,
)
nodes_st = st.lists(
    st.integers(0, 8).flatmap(lambda free: st.builds(
        NodeCapacity, id=st.uuids().map(str), total_gpus=st.just(8), free_gpus=st.just(free))),
    min_size=1, max_size=8, unique_by=lambda n: n.id,
)


@settings(max_examples=300, deadline=None)
@given(jobs_st, nodes_st)
def test_no_gpu_is_given_twice_and_every_start_fits(jobs: list[QueuedJob],
                                                    nodes: list[NodeCapacity]) -> None:
    placed = schedule(jobs, nodes)
    by_id = {j.id: j for j in jobs}
    used = {n.id: 0 for n in nodes}
    for p in placed:
        job = by_id[p.job_id]
        assert len(p.node_ids) == job.nodes == len(set(p.node_ids))
        for node_id in p.node_ids:
            used[node_id] += job.gpus
    for n in nodes:
        assert used[n.id] <= n.free_gpus


@settings(max_examples=200, deadline=None)
@given(jobs_st, nodes_st)
def test_started_jobs_are_a_prefix_of_the_queue(jobs: list[QueuedJob],
                                                nodes: list[NodeCapacity]) -> None:
    order = sorted(jobs, key=lambda j: (-j.priority, j.submitted_at, j.id))
    placed = [p.job_id for p in schedule(jobs, nodes)]
    assert placed == [j.id for j in order[: len(placed)]]
