"""``/v1/quotas``: the teams' GPU quotas the scheduler runs with, and the settings of its order
(read by ``plan``, so that a replay of the cluster's history keeps its guarantees and its
order). Everyone may read them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep

router = APIRouter()


@router.get("/v1/quotas")
def quotas(user: CurrentUser, ctl: ControllerDep) -> dict[str, Any]:
    """``quotas``: team → GPUs over all types; ``type_quotas``: team → GPU type → GPUs;
    ``policy``: the scheduler's order and preemption settings."""
    return ctl.quotas()
