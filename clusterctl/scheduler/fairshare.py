"""Fair share from decayed recent usage.

Usage decays with a half-life, as in Slurm's multifactor priority: GPU-seconds used ``a``
seconds ago count ``2^(-a/h)``. A team's factor is Slurm's classic ``2^(-U/S)``: U its share of
everyone's decayed usage, S its share of the quotas. A team that used exactly its share gets 0.5,
one that used nothing gets 1, one that used twice its share 0.25. Users within a team get the same
treatment with equal shares among the team's users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from clusterctl.scheduler.records import FairShareUsage

K = TypeVar("K")


class DecayingUsage(Generic[K]):
    """Decayed usage per key over a long run, at a cost per instant of the keys holding GPUs
    only (a replay has every user of a year in it, and an instant every few minutes).

    ``values`` are held scaled by ``2^((t - t0)/h)``, a factor common to every key, so decay
    costs nothing and only what is held accrues; the fair-share factors read only shares of
    totals (:func:`team_factors`, :func:`user_factors`), which the common factor leaves as they
    are. :meth:`at` gives the true values. Rescaled to the present before the factor could
    overflow (about every 500 half-lives)."""

    def __init__(self, half_life_s: float, t0: float) -> None:
        self.values: dict[K, float] = {}
        self._h = half_life_s
        self._t0 = t0
        self._t = t0
        self._scale = 1.0

    def accrue(self, held: Mapping[K, float], t: float) -> None:
        """Move to ``t`` with ``held`` GPUs per key held since the last instant."""
        if t <= self._t:
            return
        gain = self._h / math.log(2) * self._scale * math.expm1(
            math.log(2) * (t - self._t) / self._h)
        values = self.values
        for k, gpus in held.items():
            if gpus:
                values[k] = values.get(k, 0.0) + gpus * gain
        self._t = t
        self._scale = 2.0 ** ((t - self._t0) / self._h)
        if self._scale > 2.0 ** 500:
            for k in values:
                values[k] /= self._scale
            self._t0, self._scale = t, 1.0

    def at(self) -> dict[K, float]:
        """The true decayed values at the last instant."""
        return {k: v / self._scale for k, v in self.values.items()}


def interval_usage(gpus: float, start: float, end: float, now: float, half_life_s: float) -> float:
    """Decayed GPU-seconds, seen at ``now``, of ``gpus`` held from ``start`` to ``end``."""
    if end <= start:
        return 0.0
    return gpus * half_life_s / math.log(2) * (
        2.0 ** (-(now - end) / half_life_s) - 2.0 ** (-(now - start) / half_life_s))


def factor(usage_share: float, fair_share: float) -> float:
    if fair_share <= 0:
        return 0.0
    return float(2.0 ** (-usage_share / fair_share))


def team_factors(usage: Mapping[str, float], quotas: Mapping[str, float]) -> dict[str, float]:
    total_usage = sum(max(0.0, u) for u in usage.values())
    total_quota = sum(quotas.values())
    out: dict[str, float] = {}
    for team, quota in quotas.items():
        share = quota / total_quota if total_quota > 0 else 0.0
        used = max(0.0, usage.get(team, 0.0)) / total_usage if total_usage > 0 else 0.0
        out[team] = factor(used, share)
    return out


def user_factors(
    usage: Mapping[tuple[str, str], float], users: Iterable[tuple[str, str]],
    teams: tuple[Mapping[str, float], Mapping[str, int]] | None = None,
) -> dict[tuple[str, str], float]:
    """The factors of ``users`` (those with pending jobs): equal shares among each team's
    users, counting those with jobs or recent usage. Only the users asked about are computed:
    a year of replay keeps every user it has seen in ``usage``, and a pass orders only the
    queue. ``teams``: each team's total usage and number of users in ``usage``, where the
    caller keeps them (else counted here)."""
    wanted = list(users)
    totals: Mapping[str, float]
    counts: dict[str, int]
    if teams is None:
        summed: dict[str, float] = {}
        counts = {}
        for (team, _), u in usage.items():
            counts[team] = counts.get(team, 0) + 1
            summed[team] = summed.get(team, 0.0) + max(0.0, u)
        totals = summed
    else:
        totals, counts = teams[0], dict(teams[1])  # the counts grow by users with no usage
    for who in dict.fromkeys(wanted):
        if who not in usage:
            counts[who[0]] = counts.get(who[0], 0) + 1
    out: dict[tuple[str, str], float] = {}
    for who in wanted:
        total = totals.get(who[0], 0.0)
        used = max(0.0, usage.get(who, 0.0)) / total if total > 0 else 0.0
        out[who] = factor(used, 1.0 / counts[who[0]])
    return out


def rate_weights(gpu_hour_costs: Mapping[str, float]) -> dict[str, float]:
    """Each priced node's GPU-hour cost over the mean of them all: what one of its GPU-hours
    counts for in fair share when usage is weighed by rate (an H100-hour for more than a
    4090-hour). A node not priced counts 1."""
    priced = {n: c for n, c in gpu_hour_costs.items() if c > 0}
    if not priced:
        return {}
    mean = sum(priced.values()) / len(priced)
    return {n: c / mean for n, c in priced.items()}


def usage_from_intervals(
    intervals: Iterable[tuple[str, str, str, float, float | None]], now: float,
    half_life_s: float, weights: Mapping[str, float] | None = None,
) -> FairShareUsage:
    """Decayed GPU-seconds per team and per (team, user) from (team, user, node, start, end)
    rows of one GPU each, an open row (``end`` None) counting up to ``now``; with ``weights``
    (by node, :func:`rate_weights`) each GPU-second counts its node's weight."""
    team: dict[str, float] = {}
    user: dict[tuple[str, str], float] = {}
    for t, u, node, start, end in intervals:
        weight = weights.get(node, 1.0) if weights else 1.0
        value = interval_usage(weight, start, now if end is None else min(end, now), now,
                               half_life_s)
        team[t] = team.get(t, 0.0) + value
        user[(t, u)] = user.get((t, u), 0.0) + value
    return FairShareUsage(team, user)
