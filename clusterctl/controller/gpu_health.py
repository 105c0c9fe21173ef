"""Which GPU faults make a node unfit for jobs (pure: the controller drains on the verdict).

The XIDs are those NVIDIA's XID catalogue says need the GPU reset or the node serviced
(https://docs.nvidia.com/deploy/xid-errors/): a job that lands there next would fail or, worse,
compute wrong numbers. Application faults (XID 13, 31, 43, 45) and contained ECC errors that
only end the process (XID 94) are the job's own and leave the node in service. A GPU that no
longer answers at all ("GPU is lost") is fatal too.
"""

from __future__ import annotations

from collections.abc import Sequence

from clusterctl.gpu_read import GpuRead

FATAL_XIDS: dict[int, str] = {
    48: "double-bit ECC error",
    62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping recording event",
    64: "ECC page retirement or row remapping failure",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
    140: "unrecovered ECC error",
}

ACTOR = "clusterctl:health"
"""Who a drain for a GPU fault is recorded as (jobs on such a node are ended, not left)."""


def fatal(rows: Sequence[GpuRead]) -> str | None:
    """Why the node that sent these samples must be drained, or None."""
    for r in rows:
        for xid in r.xids:
            if xid in FATAL_XIDS:
                return f"XID {xid} on GPU {r.gpu_index} ({FATAL_XIDS[xid]})"
    for r in rows:
        error = r.error or ""
        if "lost" in error.lower():
            return f"GPU {r.gpu_index} is lost ({error})"
    return None
