"""The policies the simulator compares. ``default`` is what the controller runs; the baselines
are other settings of the same pass, so every figure comes from one piece of scheduling code.

- ``fifo``: priority then submit order, strictly: the head of the queue blocks everything behind
  it (head-of-line blocking);
- ``greedy``: first fit in submit order, skipping what does not fit: what jobs pending in plain
  Ray get (large jobs can starve);
- ``backfill``: EASY backfill on submit order;
- ``default``: quotas, fair share, age, EASY backfill and quota reclaim by preemption;
- ``guarded``: the former default (``records.guarded``), with its one-day starvation guard: not
  in the default comparison, named with ``--policy``.
"""

from __future__ import annotations

from dataclasses import replace

from clusterctl.scheduler.records import Blocking, PolicyConfig, guarded

POLICIES = ("fifo", "greedy", "backfill", "default")
KNOWN = (*POLICIES, "guarded")


def config(name: str, base: PolicyConfig) -> PolicyConfig:
    """The named policy, with the quotas and limits of ``base``."""
    if name == "default":
        return base
    if name == "guarded":
        return guarded(base)
    plain = replace(base, fair_share=False, preempt=False, demote_after_gpu_s=())
    if name == "fifo":
        return replace(plain, blocking=Blocking.STRICT)
    if name == "greedy":
        return replace(plain, blocking=Blocking.SKIP, backfill_depth=10**9)
    if name == "backfill":
        return replace(plain, blocking=Blocking.RESERVE)
    raise ValueError(f"unknown policy {name!r} (known: {', '.join(KNOWN)})")
