"""The chaos test's checks catch what they are there to catch (tests/chaos.py): a GPU used by
two attempts at once, in the jobs' own timeline and in the allocation records."""

from __future__ import annotations

from pathlib import Path

from chaos import _overlaps_in_allocations, _read_timeline


def test_a_gpu_used_twice_at_once_is_a_violation(tmp_path: Path) -> None:
    timeline = tmp_path / "timeline"
    timeline.write_text("\n".join([
        "B 1 1 gpu-1 0,1 100.0", "H 1 1 gpu-1 0,1 100.2", "H 1 1 gpu-1 0,1 109.0",  # killed
        "B 2 1 gpu-1 1 105.0", "E 2 1 gpu-1 1 106.0 0",  # GPU 1 while job 1 still ran
        "B 3 1 gpu-1 0 110.0", "E 3 1 gpu-1 0 111.0 0",  # after: fine
        "B 4 1 gpu-2 0 100.0", "H 4 1 gpu-2 0",  # a line cut short by a kill is skipped
    ]) + "\n")
    t = _read_timeline(timeline)
    (overlap,) = t.overlaps()
    assert "GPU 1 of gpu-1" in overlap and "job 1 attempt 1" in overlap and "job 2" in overlap
    assert t.ends[(2, 1)] == (0, 106.0) and (1, 1) not in t.ends
    assert t.start_counts == {(1, 1): 1, (2, 1): 1, (3, 1): 1, (4, 1): 1}


def test_overlapping_allocations_on_one_ray_node_are_a_violation() -> None:
    def alloc(attempt: int, start: str, end: str, node_id: str = "n1") -> dict:  # type: ignore[type-arg]
        return {"attempt": attempt, "node_id": node_id, "gpu_index": 0,
                "started_at": f"2026-12-01T10:00:{start}+00:00",
                "ended_at": f"2026-12-01T10:00:{end}+00:00"}

    jobs = [{"id": 1, "allocations": [alloc(1, "00", "30")]},
            {"id": 2, "allocations": [alloc(1, "10", "20")]},  # inside job 1's window
            {"id": 3, "allocations": [alloc(1, "40", "50"), alloc(2, "05", "15", "n2")]}]
    (overlap,) = _overlaps_in_allocations(jobs)
    assert "job 1 attempt 1" in overlap and "job 2 attempt 1" in overlap
