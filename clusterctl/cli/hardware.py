"""``clusterctl hardware``: the machines' cost basis (inventory), the site's energy settings
and the cloud rates the ledger compares against. Admins write; everyone reads.

Input is checked here with the same functions the controller uses, so a typo fails in one line
before anything is sent, and the controller checks again before it writes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clusterctl.cli.common import client, console, handles_errors, print_json
from clusterctl.cost.inventory import (
    hardware_spec,
    parse_gpu_model,
    parse_inventory_toml,
    parse_money,
    parse_past_date,
    parse_rate,
    site_settings,
)
from clusterctl.parsing import BadInput, parse_node_name

app = typer.Typer(help="Hardware inventory and cost settings.", no_args_is_help=True)

Gpus = Annotated[str | None, typer.Option("--gpus", help="GPUs in the machine.")]
Model = Annotated[str | None, typer.Option("--gpu-model", help="GPU model, e.g. A100-80GB.")]
Price = Annotated[str | None, typer.Option("--price", help="Purchase price.")]
Bought = Annotated[str | None, typer.Option("--purchased", help="Purchase date, YYYY-MM-DD.")]
Life = Annotated[str | None, typer.Option("--life", help="Depreciation life, e.g. 36mo or 3y.")]
Resale = Annotated[str | None, typer.Option(
    "--resale", help="Fraction of the price expected back at end of life, e.g. 0.2.")]
Fees = Annotated[str | None, typer.Option(
    "--monthly-fees", help="Fixed fees per month: colocation, support.")]
Json = Annotated[bool, typer.Option("--json")]


def _today() -> Any:
    return datetime.now(timezone.utc).date()


def _values(gpus: str | None, gpu_model: str | None, price: str | None,
            purchased: str | None, life: str | None, resale: str | None,
            monthly_fees: str | None) -> dict[str, Any]:
    return {"gpus": gpus, "gpu_model": gpu_model, "price": price, "purchased": purchased,
            "life_months": life, "resale": resale, "monthly_fees": monthly_fees}


def _money(value: str) -> str:
    return f"{float(value):,.2f}"


def _print_machines(rows: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("NODE", "GPUS", "MODEL", "PRICE", "PURCHASED", "LIFE", "RESALE", "FEES/MO",
                "CLOUD/GPU-H", "SOLD"):
        table.add_column(col, justify="right" if col in ("GPUS", "PRICE", "FEES/MO") else "left")
    for m in rows:
        rate = m["cloud_rate"]
        table.add_row(m["node"], str(m["gpus"]), m["gpu_model"], _money(m["price"]),
                      m["purchased"], f"{m['life_months']}mo", f"{float(m['resale']):.0%}",
                      _money(m["monthly_fees"]),
                      f"{float(rate):.2f}" if rate else "-",
                      f"{m['sold_on']} for {_money(m['sold_for'])}" if m.get("sold_on") else "-")
    console.print(table)


@app.command("add")
@handles_errors
def add(node: Annotated[str, typer.Argument(help="Node name, as Ray and its agent know it.")],
        gpus: Gpus = None, gpu_model: Model = None, price: Price = None,
        purchased: Bought = None, life: Life = None, resale: Resale = None,
        monthly_fees: Fees = None, json_: Json = False) -> None:
    """Add a machine to the inventory (admins only)."""
    values = {"node": node} | _values(gpus, gpu_model, price, purchased, life, resale,
                                      monthly_fees)
    hardware_spec(values, _today())
    out = client().json("POST", "/v1/hardware", json=values)
    if json_:
        print_json(out)
    else:
        _print_machines([out])


@app.command("set")
@handles_errors
def set_(node: Annotated[str, typer.Argument(help="A node in the inventory.")],
         gpus: Gpus = None, gpu_model: Model = None, price: Price = None,
         purchased: Bought = None, life: Life = None, resale: Resale = None,
         monthly_fees: Fees = None, json_: Json = False) -> None:
    """Change fields of a machine (admins only); the others keep their values."""
    parse_node_name(node)
    changes = {k: v for k, v in _values(gpus, gpu_model, price, purchased, life, resale,
                                        monthly_fees).items() if v is not None}
    if not changes:
        raise BadInput("hardware set", "give at least one field to change, e.g. --price")
    out = client().json("PATCH", f"/v1/hardware/{node}", json=changes)
    if json_:
        print_json(out)
    else:
        _print_machines([out])


@app.command("retire")
@handles_errors
def retire(
    node: Annotated[str, typer.Argument(help="A node in the inventory.")],
    sold_for: Annotated[str | None, typer.Option(
        "--sold-for", help="What the sale fetched (0 if scrapped).")] = None,
    sold_on: Annotated[str | None, typer.Option(
        "--sold-on", help="Sale date, YYYY-MM-DD; default today.")] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Clear a sale recorded by mistake.")] = False,
    json_: Json = False,
) -> None:
    """Record a machine's sale (admins only): its costs end on that day, the amortization
    report closes its ledger with the sale's gain or loss, and the node is drained."""
    parse_node_name(node)
    if undo and (sold_for is not None or sold_on is not None):
        raise BadInput("--undo", "takes no --sold-for or --sold-on")
    if not undo:
        if sold_for is None:
            raise BadInput("--sold-for", "is required: what the sale fetched (0 if scrapped)")
        values = {"sold_for": sold_for, "sold_on": sold_on or _today().isoformat()}
        _check_sale(values)
    body = {"undo": True} if undo else {"sold_for": sold_for, "sold_on": sold_on}
    out = client().json("POST", f"/v1/hardware/{node}/retire", json=body)
    if json_:
        print_json(out)
        return
    _print_machines([out])
    if undo:
        console.print(f"Sale cleared. If {node} should take jobs again: "
                      f"`clusterctl nodes undrain {node}`.")
    else:
        console.print(f"{node} drained; its costs stop on {out['sold_on']}. See `clusterctl "
                      "report amortization` for the sale against the book value.")


def _check_sale(values: dict[str, Any]) -> None:
    """The sale's own fields, checked before anything is sent (the purchase date, which the
    sale must not precede, is checked by the controller)."""
    parse_past_date(values["sold_on"], _today(), "--sold-on")
    parse_money(values["sold_for"], "--sold-for", positive=False)


@app.command("list")
@handles_errors
def list_(json_: Json = False) -> None:
    """The inventory, with the cloud rate each machine's GPUs are compared against."""
    rows = client().json("GET", "/v1/hardware")
    if json_:
        print_json(rows)
    elif not rows:
        console.print("No machines yet: add them with `clusterctl hardware add` or "
                      "`clusterctl hardware import FILE.toml`.")
    else:
        _print_machines(rows)


@app.command("import")
@handles_errors
def import_(file: Annotated[Path, typer.Argument(help="TOML file of [[machine]] tables.")],
            json_: Json = False) -> None:
    """Add or replace many machines at once (admins only): all of them, or none."""
    try:
        text = file.read_text()
    except OSError as e:
        raise BadInput("FILE", f"cannot read {str(file)!r}: {e.strerror}") from None
    parse_inventory_toml(text, file.name, _today())
    out = client().json("POST", "/v1/hardware/import", json={"name": file.name, "text": text})
    if json_:
        print_json(out)
    else:
        console.print(f"{out['added']} added, {out['updated']} updated.")
        _print_machines(out["machines"])


@app.command("settings")
@handles_errors
def settings(
    tariff: Annotated[str | None, typer.Option(help="Electricity price per kWh.")] = None,
    pue: Annotated[str | None, typer.Option(help="Power usage effectiveness, 1.0-5.0.")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency code, e.g. USD.")] = None,
    json_: Json = False,
) -> None:
    """Show the site's energy settings and cloud rates; with options, change them (admins)."""
    changes = {"tariff_per_kwh": tariff, "pue": pue, "currency": currency}
    changes = {k: v for k, v in changes.items() if v is not None}
    c = client()
    if changes:
        site_settings(changes)
        c.json("PATCH", "/v1/cost/settings", json=changes)
    out = c.json("GET", "/v1/cost/settings")
    if json_:
        print_json(out)
        return
    console.print(f"Electricity {out['tariff_per_kwh']} {out['currency']}/kWh, PUE {out['pue']}")
    table = Table(box=None, pad_edge=False, title="Cloud rates (on demand, per GPU-hour)",
                  title_justify="left")
    for col in ("MODEL", "RATE", "SOURCE"):
        table.add_column(col)
    for r in out["rates"]:
        source = r["source"] + ("" if r["default"] else " (set here)")
        table.add_row(r["gpu_model"], f"{float(r['per_gpu_hour']):.2f}", source)
    console.print(table)


@app.command("rate")
@handles_errors
def rate(
    model: Annotated[str, typer.Argument(help="GPU model, as in the inventory.")],
    per_gpu_hour: Annotated[str, typer.Argument(help="Cloud price per GPU-hour.")],
    source: Annotated[str, typer.Option(help="Where the figure comes from.")],
    json_: Json = False,
) -> None:
    """Set the cloud rate a GPU model is compared against (admins only)."""
    parse_gpu_model(model, "MODEL")
    parse_rate(per_gpu_hour)
    out = client().json("PUT", f"/v1/cost/rates/{model}",
                        json={"per_gpu_hour": per_gpu_hour, "source": source})
    if json_:
        print_json(out)
    else:
        console.print(f"{out['gpu_model']}: {out['per_gpu_hour']} per GPU-hour ({out['source']})")
