"""Guaranteed GPUs per team, over all types or per GPU type, and the policy's tier 0.

A team's quota is either one number over every GPU it may use (``nlp=24``) or a number per
type (``vision=H100:8+A100:16``; ``[quotas.vision] H100 = 8`` in ``config.toml``). GPUs are
counted in *pools*: ``(team, None)`` for a quota over all types, ``(team, TYPE)`` for one of a
team's typed quotas, and ``(team, "")`` for what a typed team holds of types it has no quota
for (all of it borrowed). A team borrows idle GPUs beyond a pool's quota, and only GPUs of that
pool's type are reclaimed for it, so the guarantee of 8 H100s is 8 H100s, not 8 of anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from clusterctl.gpu_types import matches, parse_type
from clusterctl.parsing import BadInput
from clusterctl.scheduler.pending import PendingQueue
from clusterctl.scheduler.records import QueuedJob

Pool = tuple[str, str | None]
TypeQuotas = dict[str, dict[str, float]]
"""Per team, its guaranteed GPUs per type, in the order written."""

_HELP = "must be TEAM=GPUS or TEAM=TYPE:GPUS+TYPE:GPUS, such as vision=32 or vision=H100:8+A100:16"


def _gpus(text: str, value: str) -> float:
    try:
        gpus = float(text)
    except ValueError:
        gpus = -1.0
    if not 0 <= gpus < 1e9:
        raise BadInput("--quota", f"{value!r} {_HELP}")
    return gpus


def parse_quotas(values: Iterable[str]) -> tuple[dict[str, float], TypeQuotas]:
    """``TEAM=GPUS`` and ``TEAM=TYPE:GPUS+TYPE:GPUS`` pairs: (quotas over all types, quotas
    per type). A team named twice keeps the last."""
    bare: dict[str, float] = {}
    typed: TypeQuotas = {}
    for v in values:
        team, _, rest = v.partition("=")
        team, rest = team.strip(), rest.strip()
        if not team or not rest:
            raise BadInput("--quota", f"{v!r} {_HELP}")
        bare.pop(team, None)
        typed.pop(team, None)
        if ":" not in rest:
            bare[team] = _gpus(rest, v)
            continue
        per: dict[str, float] = {}
        for part in rest.split("+"):
            kind, sep, n = part.rpartition(":")
            if not sep:
                raise BadInput("--quota", f"{v!r} {_HELP}")
            per[parse_type(kind, "--quota")] = _gpus(n.strip(), v)
        typed[team] = per
    return bare, typed


def as_pairs(value: Mapping[str, Any]) -> list[str]:
    """A ``[quotas]`` table (``nlp = 24``, ``[quotas.vision] H100 = 8``) as the pairs
    :func:`parse_quotas` reads."""
    out = []
    for team, v in value.items():
        if isinstance(v, Mapping):
            out.append(f"{team}=" + "+".join(f"{k}:{n}" for k, n in v.items()))
        else:
            out.append(f"{team}={v}")
    return out


def totals(bare: Mapping[str, float], typed: Mapping[str, Mapping[str, float]]
           ) -> dict[str, float]:
    """Each team's quota over all types: a typed team's is the sum of its types' (what its
    fair share is measured against)."""
    return {**bare, **{t: float(sum(per.values())) for t, per in typed.items()}}


def resolve_quotas(
    explicit: Mapping[str, float], teams: Iterable[str], total_gpus: float
) -> dict[str, float]:
    """Every team's quota: the configured ones as given, and the GPUs they leave shared equally
    among the teams without one. A team's guaranteed share is this quota; beyond it a team
    borrows idle GPUs."""
    quotas = {t: float(q) for t, q in explicit.items()}
    rest = sorted(set(teams) - set(quotas))
    if rest:
        left = max(0.0, total_gpus - sum(quotas.values()))
        for team in rest:
            quotas[team] = left / len(rest)
    return quotas


def unknown_types(typed: Mapping[str, Mapping[str, float]], models: Iterable[str | None]
                  ) -> list[str]:
    """``team: TYPE`` for each typed quota that no node's model matches (a warning, not an
    error: the machines may be on their way)."""
    have = [m for m in models if m]
    return [f"{team}: {kind}" for team, per in typed.items() for kind in per
            if not any(matches(kind, m) for m in have)]


def pool_type(kinds: Sequence[str], model: str | None) -> str:
    """Which of a typed team's quota types a GPU of ``model`` counts against ("": none)."""
    if model:
        for kind in kinds:
            if matches(kind, model):
                return kind
    return ""


def within_quota(queue: PendingQueue, quotas: Mapping[str, float], used: Mapping[Pool, float],
                 key: Callable[[QueuedJob], Any], held_back: Callable[[QueuedJob], bool],
                 typed: Mapping[str, Mapping[str, float]] | None = None,
                 kinds_of: Callable[[QueuedJob], list[str]] | None = None,
                 ) -> dict[int, str | None]:
    """The policy's tier 0: per team, its jobs in the policy's order (``key``) while they fit
    its unused quota, each with the quota type it runs in (None: a quota over all types). A
    job larger than the whole quota is passed over (it can only ever borrow); the first that
    does not fit what is left ends the team's tier 0 (for a typed team, that of the types it
    could use), so its large jobs are not starved by its own small ones. ``kinds_of`` gives
    the quota types of its team a job could run on, in the job's order of preference."""
    ids: dict[int, str | None] = {}
    typed = typed or {}
    for team in queue.teams():
        per = typed.get(team)
        if per is not None and kinds_of is not None:
            _typed_tier0(queue, team, per, used, key, held_back, kinds_of, ids)
            continue
        quota = quotas.get(team, 0.0)
        room = quota - used.get((team, None), 0)
        if room < 1:
            continue
        for job in queue.team_order(team, key):
            if job.total_gpus > quota or held_back(job):
                continue
            if job.total_gpus > room:
                break
            ids[job.id] = None
            room -= job.total_gpus
    return ids


def _typed_tier0(queue: PendingQueue, team: str, per: Mapping[str, float],
                 used: Mapping[Pool, float], key: Callable[[QueuedJob], Any],
                 held_back: Callable[[QueuedJob], bool],
                 kinds_of: Callable[[QueuedJob], list[str]], ids: dict[int, str | None]
                 ) -> None:
    room = {k: q - used.get((team, k), 0) for k, q in per.items()}
    closed = {k for k, r in room.items() if r < 1}
    if len(closed) == len(room):
        return
    for job in queue.team_order(team, key):
        if held_back(job):
            continue
        open_ = [k for k in kinds_of(job) if k not in closed and job.total_gpus <= per[k]]
        if not open_:
            continue
        kind = next((k for k in open_ if job.total_gpus <= room[k]), None)
        if kind is None:
            closed.update(open_)
            if len(closed) == len(room):
                return
            continue
        ids[job.id] = kind
        room[kind] -= job.total_gpus
