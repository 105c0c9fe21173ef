"""`clusterctl hardware` end to end: the real command against a real controller.

Admins write the inventory, settings and rates; bad input is one line, exit 2, and nothing is
written, whether the CLI or the controller catches it."""

from __future__ import annotations

from pathlib import Path

import httpx
from harness import ControllerProcess

ADD = ["hardware", "add", "gpu-01", "--gpus", "8", "--gpu-model", "A100-80GB",
       "--price", "300000", "--purchased", "2025-03-01", "--life", "36mo", "--resale", "0.2",
       "--monthly-fees", "1500"]


def test_inventory_settings_and_rates(controller: ControllerProcess, tmp_path: Path) -> None:
    assert controller.json("hardware", "list") == []
    added = controller.json(*ADD)
    assert added["price"] == "300000" and added["cloud_rate"] == "5.12"
    listed = controller.cli("hardware", "list")
    assert listed.returncode == 0 and "gpu-01" in listed.stdout and "300,000.00" in listed.stdout

    changed = controller.json("hardware", "set", "gpu-01", "--resale", "25%")
    assert changed["resale"] == "0.25" and changed["price"] == "300000"

    rack = tmp_path / "rack.toml"
    rack.write_text('[[machine]]\nnode = "gpu-01"\ngpus = 8\ngpu_model = "A100-80GB"\n'
                    'price = 310000\npurchased = 2025-03-01\nlife = "3y"\nresale = 0.2\n\n'
                    '[[machine]]\nnode = "box-4090"\ngpus = 4\ngpu_model = "RTX 4090"\n'
                    'price = 12000\npurchased = 2024-06-15\nlife = 24\nresale = 0.1\n')
    imported = controller.json("hardware", "import", str(rack))
    assert (imported["added"], imported["updated"]) == (1, 1)
    machines = {m["node"]: m for m in controller.json("hardware", "list")}
    assert machines["gpu-01"]["price"] == "310000" and machines["box-4090"]["gpus"] == 4

    settings = controller.json("hardware", "settings", "--tariff", "0.21", "--pue", "1.3")
    assert (settings["tariff_per_kwh"], settings["pue"]) == ("0.21", "1.3")
    controller.json("hardware", "rate", "A100-80GB", "3.40", "--source", "our reserved deal")
    rates = {r["gpu_model"]: r for r in controller.json("hardware", "settings")["rates"]}
    assert rates["A100-80GB"]["per_gpu_hour"] == "3.40" and not rates["A100-80GB"]["default"]
    assert rates["H100"]["default"] and "p5.48xlarge" in rates["H100"]["source"]


def test_bad_input_writes_nothing(controller: ControllerProcess, tmp_path: Path) -> None:
    controller.json(*ADD)
    before = controller.json("hardware", "list")

    def refused(*args: str, field: str) -> None:
        r = controller.cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and field in lines[0], (args, r.stderr)

    bad_add = {"--price": "0", "--life": "-3", "--gpus": "0", "--resale": "1.5",
               "--purchased": "2999-01-01"}
    for flag, value in bad_add.items():
        args = list(ADD)
        args[args.index("gpu-01")] = "gpu-09"
        args[args.index(flag) + 1] = value
        refused(*args, field=flag)
    refused(*ADD, field="already in the inventory")  # caught by the controller
    refused("hardware", "set", "gpu-77", "--price", "1", field="not in the inventory")
    refused("hardware", "set", "gpu-01", "--resale", "-1", field="--resale")
    refused("hardware", "set", "gpu-01", field="at least one field")
    rack = tmp_path / "rack.toml"
    rack.write_text('[[machine]]\nnode = "gpu-05"\ngpus = 8\ngpu_model = "H100"\n'
                    'price = 250000\npurchased = 2025-01-01\nlife = 36\nresale = 0.2\n\n'
                    '[[machine]]\nnode = "gpu-06"\ngpus = 8\ngpu_model = "H100"\n'
                    'price = = 1\n')
    refused("hardware", "import", str(rack), field="line 14")
    rack.write_text(rack.read_text().replace("price = = 1", "price = -1\npurchased = 2025-01-01"
                                             '\nlife = 36\nresale = 0.2'))
    refused("hardware", "import", str(rack), field="rack.toml line 10: price")
    refused("hardware", "import", str(tmp_path / "missing.toml"), field="FILE")
    refused("hardware", "settings", "--pue", "0.5", field="--pue")
    refused("hardware", "rate", "A100", "0", "--source", "x", field="RATE")
    assert controller.json("hardware", "list") == before
    assert controller.json("hardware", "settings")["pue"] == "1.4"

    # The controller checks too: a request that skips the CLI is refused the same way.
    token = controller.json("admin", "user", "add", "ops", "--team", "infra", "--admin")["token"]
    r = httpx.post(f"http://127.0.0.1:{controller.port}/v1/hardware",
                   headers={"Authorization": f"Bearer {token}"},
                   json={"node": "gpu-09", "gpus": 8, "gpu_model": "A100", "price": -1,
                         "purchased": "2025-01-01", "life_months": 36, "resale": 0.2})
    assert r.status_code == 422 and r.json()["field"] == "--price"
    assert controller.json("hardware", "list") == before


def test_only_admins_write(controller: ControllerProcess) -> None:
    user = controller.cli("admin", "user", "add", "bob", "--team", "nlp").stdout.strip()
    r = controller.cli(*ADD, token=user)
    assert r.returncode == 1 and "admin" in r.stderr
    assert controller.cli("hardware", "list", token=user).returncode == 0
    assert controller.json("hardware", "list") == []


def test_retire_records_the_sale_and_drains_the_node(controller: ControllerProcess) -> None:
    controller.json(*ADD)
    before = controller.json("hardware", "list")
    for args, field in [
        (("gpu-01",), "--sold-for"),
        (("gpu-01", "--sold-for", "-5"), "--sold-for"),
        (("gpu-01", "--sold-for", "1", "--sold-on", "2999-01-01"), "--sold-on"),
        (("gpu-01", "--sold-for", "1", "--undo"), "--undo"),
        (("gpu-01", "--sold-for", "1", "--sold-on", "2025-02-01"), "before the purchase"),
        (("gpu-77", "--sold-for", "1"), "not in the inventory"),
    ]:
        r = controller.cli("hardware", "retire", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and field in lines[0], (args, r.stderr)
    user = controller.cli("admin", "user", "add", "bob", "--team", "nlp").stdout.strip()
    r = controller.cli("hardware", "retire", "gpu-01", "--sold-for", "1", token=user)
    assert r.returncode == 1 and "admin" in r.stderr
    assert controller.json("hardware", "list") == before
    assert controller.cli("nodes", "undrain", "gpu-01").returncode == 2  # nothing drained
    cost_line = 'clusterctl_node_cost_dollars_per_hour{node="gpu-01"}'
    assert cost_line in _metrics(controller)

    out = controller.cli("hardware", "retire", "gpu-01", "--sold-for", "200,000",
                         "--sold-on", "2026-04-05")
    assert out.returncode == 0 and "2026-04-05 for 200,000.00" in out.stdout
    (m,) = controller.json("hardware", "list")
    assert (m["sold_on"], m["sold_for"]) == ("2026-04-05", "200000")
    ledger = controller.json("report", "amortization")["machines"][0]
    # 400 days after purchase: depreciation 240,000 / (36 x 730.5) x 9,600 h = 87,611.23.
    assert (ledger["sold_on"], ledger["net_price"]) == ("2026-04-05", 100_000.0)
    assert (ledger["book_value"], ledger["sale_gain"]) == (212_388.77, -12_388.77)
    assert ledger["fees_to_date"] == 19_712.53 and ledger["age_days"] == 400
    table = controller.cli("report", "amortization").stdout
    assert "gpu-01 sold 2026-04-05 for 200,000.00" in table and "loss 12,388.77" in table
    assert cost_line not in _metrics(controller)  # no longer a cost of the cluster
    # The node is drained (undrain answers for it), and the sale can be undone.
    assert controller.json("nodes", "undrain", "gpu-01")["drained"] is False
    cleared = controller.json("hardware", "retire", "gpu-01", "--undo")
    assert cleared["sold_on"] is None and cleared["sold_for"] is None


def _metrics(controller: ControllerProcess) -> str:
    return httpx.get(f"{controller.metrics_url}/metrics", timeout=10).text
