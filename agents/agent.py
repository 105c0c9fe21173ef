"""The agent loop: read every interval, spool, hand the read to the exporter, ship.

Reading and shipping run on separate threads so a slow or absent controller never delays a
read; the spool between them is what makes an outage lose nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.exporter import ExportView, Holder
from agents.host import host_memory
from agents.reader import GpuReader, Snapshot
from agents.samples import sample_rows
from agents.shipper import Shipper
from agents.spool import Spool

log = logging.getLogger(__name__)


def read_boot_id(proc: Path = Path("/proc")) -> str:
    """The kernel's id for this boot: GPU energy counters restart with it."""
    try:
        return (proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


class Agent:
    def __init__(
        self,
        reader: GpuReader,
        node: str,
        *,
        interval_s: float = 5.0,
        boot_id: str = "unknown",
        spool: Spool | None = None,
        shipper: Shipper | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.node = node
        self.interval_s = interval_s
        self.boot_id = boot_id
        self.spool = spool
        self.shipper = shipper
        self.monotonic = monotonic
        self.latest: Snapshot | None = None
        self.holders: dict[int, Holder] = {}
        self.samples_read = 0
        self.read_errors = 0
        self.xids: dict[tuple[int, int], int] = {}
        """XID events seen since the agent started, by (GPU index, XID)."""
        self._last_reads = spool.last_reads() if spool else {}
        self._seq = spool.next_seq() if spool else 1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if shipper is not None:
            shipper.on_allocations = self.set_allocations

    # -- one read -------------------------------------------------------------------------------

    def tick(self) -> Snapshot:
        snap = self.reader.read()
        self.latest = snap
        self.samples_read += len(snap.gpus)
        self.read_errors += len(snap.errors)
        for x in snap.xids:
            self.xids[(x.index, x.xid)] = self.xids.get((x.index, x.xid), 0) + 1
            log.error("XID %d on GPU %d of %s", x.xid, x.index, self.node)
        if self.spool is not None:
            rows, self._last_reads = sample_rows(snap, self._seq, self.boot_id, self.interval_s,
                                                 self._last_reads)
            self.spool.append([r.model_dump(warnings=False) for r in rows], self._seq,
                              self._last_reads)
            self._seq += 1
            if self.shipper is not None:
                self.shipper.host = host_memory()
                self.shipper.kick.set()
        return snap

    def set_allocations(self, allocations: list[dict[str, Any]]) -> None:
        self.holders = {int(a["gpu_index"]): Holder(int(a["job_id"]), str(a["user"]))
                        for a in allocations}

    def busy(self) -> set[int]:
        return set(self.holders)

    def view(self) -> ExportView:
        return ExportView(
            node=self.node, snapshot=self.latest, holders=dict(self.holders),
            samples_read=self.samples_read,
            samples_shipped=self.shipper.shipped if self.shipper else 0,
            samples_spooled=self.spool.pending() if self.spool else 0,
            samples_dropped=self.spool.dropped() if self.spool else 0,
            samples_refused=self.shipper.refused if self.shipper else 0,
            read_errors=self.read_errors, xids=dict(self.xids),
            last_ship=self.shipper.last_ship if self.shipper else None,
        )

    # -- running --------------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._read_loop, name="reader", daemon=True)]
        if self.shipper is not None:
            self._threads.append(threading.Thread(
                target=self.shipper.run, args=(max(self.interval_s, 1.0),), name="shipper",
                daemon=True))
        for t in self._threads:
            t.start()

    def _read_loop(self) -> None:
        next_at = self.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("GPU read failed")
                self.read_errors += 1
            next_at += self.interval_s
            delay = next_at - self.monotonic()
            if delay < 0:  # fell behind (suspended, overloaded): skip, do not burst
                next_at = self.monotonic()
                delay = 0
            self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()
        if self.shipper is not None:
            self.shipper.stop()
        for t in self._threads:
            t.join(timeout=15)
        self.reader.close()
        if self.spool is not None:
            self.spool.close()
