"""This machine's memory, as the kernel counts it: shipped with each batch of samples, so
that ``clusterctl nodes`` shows a node near the point where Ray's memory monitor starts
killing workers (95 % used by default; a runner killed while starting left jobs STARTING for
8 minutes before #37)."""

from __future__ import annotations

from pathlib import Path


def host_memory(meminfo: Path = Path("/proc/meminfo")) -> dict[str, int] | None:
    """``{"mem_total_bytes", "mem_available_bytes"}``, or None where it cannot be read."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and rest.split():
            found[key] = int(rest.split()[0]) * 1024  # kB
    if len(found) < 2 or found["MemTotal"] <= 0:
        return None
    return {"mem_total_bytes": found["MemTotal"], "mem_available_bytes": found["MemAvailable"]}
