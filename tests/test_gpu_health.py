"""Which GPU faults take a node out of service (clusterctl/controller/gpu_health.py)."""

from __future__ import annotations

from clusterctl.controller import gpu_health
from clusterctl.gpu_read import GpuRead


def row(index: int = 0, xids: list[int] | None = None, error: str | None = None) -> GpuRead:
    return GpuRead.model_construct(gpu_index=index, xids=xids or [], error=error)


def test_fatal_xids_and_lost_gpus_drain_application_faults_do_not() -> None:
    assert gpu_health.fatal([row(3, [79])]) == "XID 79 on GPU 3 (GPU has fallen off the bus)"
    assert gpu_health.fatal([row(0, [13, 31]), row(1, [48])]) == \
        "XID 48 on GPU 1 (double-bit ECC error)"
    assert gpu_health.fatal([row(2, error="GPU is lost")]) == "GPU 2 is lost (GPU is lost)"
    # An XID names the fault better than the lost read that follows it.
    assert gpu_health.fatal([row(2, error="GPU is lost"), row(2, [79])]).startswith("XID 79")
    for harmless in ([13], [31], [43], [45], [94]):  # the job's own faults
        assert gpu_health.fatal([row(0, harmless)]) is None
    assert gpu_health.fatal([row(0), GpuRead.model_construct(gpu_index=1)]) is None  # no fields
