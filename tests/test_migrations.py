"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from harness import clusterctl_argv
from sqlmodel import SQLModel

from clusterctl.store import UserStore, make_engine, migrate, revision
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
    bad = run("node-token", "gpu 7", "--direct")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "NODE" in bad.stderr


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg
