"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from harness import clusterctl_argv
from sqlalchemy import text
from sqlmodel import SQLModel

from clusterctl.store import AuditStore, CostStore, UserStore, make_engine, migrate, revision
from clusterctl.store.db import MIGRATIONS


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_admin_migrate_says_whether_it_changed_anything(db_url: str, tmp_path: Path) -> None:
    """What a deploy runs on every run: the first brings the schema up, the next changes
    nothing and says so (the playbook reports "changed" from it)."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*clusterctl_argv(), "admin", *args, "--db", db_url],
                              capture_output=True, text=True, env=env, timeout=120)

    env = {**os.environ, "CLUSTERCTL_CONFIG": str(tmp_path / "none.toml")}
    first = run("migrate")
    assert first.returncode == 0, first.stderr
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert first.stdout.strip() == f"database schema at {head} (was empty)"
    assert run("migrate").stdout.strip() == f"database schema at {head}, up to date"
    assert revision(db_url) == head

    issued = json.loads(run("node-token", "gpu-7", "--direct", "--json").stdout)
    users = UserStore(make_engine(db_url))
    assert users.node_for_token(issued["token"]) == "gpu-7"
    again = json.loads(run("node-token", "gpu-7", "--direct", "--json").stdout)
    assert users.node_for_token(issued["token"]) is None  # the older one stops working
    assert users.node_for_token(again["token"]) == "gpu-7"
    trail = AuditStore(make_engine(db_url)).since(datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert [(e.action, e.target) for e in trail] == [("node.token", "gpu-7")] * 2  # audited too
    bad = run("node-token", "gpu 7", "--direct")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "NODE" in bad.stderr


def test_an_upgrade_keeps_the_inventory(db_url: str) -> None:
    """A deploy of this release onto last release's database: the machines stay, unsold."""
    migrate(db_url, to="0005")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO hardware (node, gpus, gpu_model, price, purchased, life_months, resale,"
            " monthly_fees, updated_at) VALUES ('gpu-01', 8, 'A100', '300000', '2025-03-01', 36,"
            " '0.2', '1500', '2026-11-01 00:00:00')"))
    migrate(db_url)
    (machine,) = CostStore(engine).machines()
    assert (machine.node, machine.price, machine.purchased) == ("gpu-01", 300000,
                                                                date(2025, 3, 1))
    assert machine.sold_on is None and machine.sold_for is None


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def test_an_upgrade_dates_each_gpus_first_sample(db_url: str) -> None:
    """GPUs known before the first sample's time was kept: the upgrade takes it from the
    oldest sample or hour rollup left (else the latest read), so the reports' hours before it
    are "not tracked", not idle."""
    migrate(db_url, to="0016")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for index, last in ((0, 9_000_000), (1, 9_000_000), (2, 7_000_000)):
            conn.execute(text(
                "INSERT INTO gpu_device (node, gpu_index, gpu_uuid, last_ms) "
                "VALUES ('gpu-01', :i, :u, :last)"), {"i": index, "u": f"U{index}", "last": last})
        conn.execute(text(
            "INSERT INTO gpu_sample (node, ts_ms, gpu_index, gpu_uuid, boot_id, seq, interval_s,"
            " span_s) VALUES ('gpu-01', 5000000, 0, 'U0', 'b', 1, 5, 5)"))
        conn.execute(text(
            "INSERT INTO gpu_rollup (resolution_s, node, bucket_ms, gpu_uuid, gpu_index, "
            "samples, covered_s, util_n, power_n, errors) VALUES (3600, 'gpu-01', 3600000, 'U0', "
            "0, 1, 5, 0, 0, 0), (3600, 'gpu-01', 7200000, 'U1', 1, 1, 5, 0, 0, 0)"))
    migrate(db_url)
    with engine.connect() as conn:
        first = dict(conn.execute(text("SELECT gpu_index, first_ms FROM gpu_device")).all())
    assert first == {0: 3_600_000, 1: 7_200_000, 2: 7_000_000}
