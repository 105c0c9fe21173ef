"""The cost basis: hardware inventory (add, set, import, retire), site settings, cloud rates.

Everyone may read them (reports show them); only admins write. Every write is checked whole by
``cost/inventory.py`` before the store is touched, so bad input answers 422 with one line and
nothing written.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from clusterctl.api.auth import CurrentUser
from clusterctl.api.deps import ControllerDep
from clusterctl.cost.inventory import (
    HardwareSpec,
    hardware_spec,
    parse_gpu_model,
    parse_inventory_toml,
    parse_rate,
    site_settings,
    updated_spec,
)
from clusterctl.cost.rates import CloudRate, effective_rates, model_key, rate_for
from clusterctl.parsing import BadInput, parse_node_name
from clusterctl.store import CostStore, HardwareExists, User


class ImportBody(BaseModel):
    name: str
    text: str


class RetireBody(BaseModel):
    sold_for: str | None = None
    sold_on: str | None = None
    undo: bool = False


class RateBody(BaseModel):
    per_gpu_hour: str
    source: str


def today() -> date:
    return datetime.now(timezone.utc).date()


def _require_admin(user: User, what: str) -> None:
    if not user.is_admin:
        raise HTTPException(403, f"only an admin can {what}")


def hardware_out(spec: HardwareSpec, table: dict[str, CloudRate]) -> dict[str, Any]:
    rate = rate_for(spec.gpu_model, table)
    return spec.as_json() | {
        "cloud_rate": None if rate is None else str(rate.per_gpu_hour),
        "cloud_rate_model": None if rate is None else rate.gpu_model,
    }


router = APIRouter()


def _known(costs: CostStore, node: str) -> HardwareSpec:
    current = costs.machine(parse_node_name(node))
    if current is None:
        raise BadInput("NODE", f"{node!r} is not in the inventory (see `clusterctl hardware "
                       "list`; add it with `clusterctl hardware add`)")
    return current


def rates(costs: CostStore) -> dict[str, CloudRate]:
    return effective_rates(costs.rate_overrides())


@router.get("/v1/hardware")
def list_hardware(user: CurrentUser, ctl: ControllerDep) -> list[dict[str, Any]]:
    costs = ctl.costs
    table = rates(costs)
    return [hardware_out(m, table) for m in costs.machines()]


@router.post("/v1/hardware", status_code=201)
def add_hardware(body: dict[str, Any], user: CurrentUser, ctl: ControllerDep) -> dict[str, Any]:
    costs = ctl.costs
    _require_admin(user, "change the hardware inventory")
    spec = hardware_spec(body, today())
    try:
        costs.add(spec)
    except HardwareExists:
        raise BadInput("NODE", f"{spec.node!r} is already in the inventory; change it with "
                       "`clusterctl hardware set`") from None
    ctl.audit.record(user.name, "hardware.add", spec.node, f"price {spec.price}")
    return hardware_out(spec, rates(costs))


@router.patch("/v1/hardware/{node}")
def set_hardware(node: str, body: dict[str, Any], user: CurrentUser,
                 ctl: ControllerDep) -> dict[str, Any]:
    costs = ctl.costs
    _require_admin(user, "change the hardware inventory")
    spec = updated_spec(_known(costs, node), body, today())
    costs.put([spec])
    ctl.audit.record(user.name, "hardware.set", spec.node, ", ".join(sorted(body))[:200])
    return hardware_out(spec, rates(costs))


@router.post("/v1/hardware/{node}/retire")
def retire_hardware(node: str, body: RetireBody, user: CurrentUser,
                    ctl: ControllerDep) -> dict[str, Any]:
    """Record the sale (ending the machine's costs at it) and drain the node, so that no new
    job lands on a machine on its way out; ``undo`` clears a sale recorded by mistake."""
    costs = ctl.costs
    _require_admin(user, "retire a machine")
    current = _known(costs, node)
    if body.undo:
        spec = replace(current, sold_on=None, sold_for=None)
    else:
        sale = {"sold_for": body.sold_for, "sold_on": body.sold_on or today().isoformat()}
        spec = hardware_spec(current.as_json() | sale, today())
    costs.put([spec])
    ctl.audit.record(user.name, "hardware.retire", spec.node,
                     "sale undone" if body.undo else f"sold {spec.sold_on} for {spec.sold_for}")
    if spec.sold_on is not None:
        ctl.drains.drain(
            spec.node, user.name, f"retired: sold on {spec.sold_on}")
    return hardware_out(spec, rates(costs))


@router.post("/v1/hardware/import")
def import_hardware(body: ImportBody, user: CurrentUser, ctl: ControllerDep) -> dict[str, Any]:
    costs = ctl.costs
    _require_admin(user, "change the hardware inventory")
    specs = parse_inventory_toml(body.text, body.name, today())
    added, updated = costs.put(specs)
    ctl.audit.record(user.name, "hardware.import", body.name[:255],
                     f"{added} added, {updated} updated")
    return {"added": added, "updated": updated,
            "machines": [hardware_out(s, rates(costs)) for s in specs]}


@router.get("/v1/cost/settings")
def get_settings(user: CurrentUser, ctl: ControllerDep) -> dict[str, Any]:
    costs = ctl.costs
    overrides = costs.rate_overrides()
    return costs.site().as_json() | {"rates": [
        {"gpu_model": r.gpu_model, "per_gpu_hour": str(r.per_gpu_hour), "source": r.source,
         "default": model_key(r.gpu_model) not in overrides}
        for r in sorted(rates(costs).values(), key=lambda r: model_key(r.gpu_model))]}


@router.patch("/v1/cost/settings")
def set_settings(body: dict[str, Any], user: CurrentUser, ctl: ControllerDep) -> dict[str, Any]:
    costs = ctl.costs
    _require_admin(user, "change the site's cost settings")
    unknown = sorted(set(body) - {"tariff_per_kwh", "pue", "currency"})
    if unknown:
        raise BadInput(unknown[0], "is not a site setting (allowed: tariff_per_kwh, pue, "
                       "currency)")
    updated = site_settings(body, costs.site())
    costs.set_site(updated)
    ctl.audit.record(user.name, "cost.settings", "site", ", ".join(sorted(body))[:200])
    return updated.as_json()


@router.put("/v1/cost/rates/{gpu_model}")
def set_rate(gpu_model: str, body: RateBody, user: CurrentUser, ctl: ControllerDep
             ) -> dict[str, Any]:
    costs = ctl.costs
    _require_admin(user, "change the cloud rates")
    model = parse_gpu_model(gpu_model, "MODEL")
    rate = parse_rate(body.per_gpu_hour)
    source = body.source.strip()
    if not 1 <= len(source) <= 300:
        raise BadInput("--source", "must say where the rate comes from (1-300 characters)")
    costs.set_rate(CloudRate(model, rate, source))
    ctl.audit.record(user.name, "cost.rate", model, f"{rate} per GPU-hour")
    return {"gpu_model": model, "per_gpu_hour": str(rate), "source": source}
