"""#33 item 1: a CLI that starts fast. Each command imports only what it uses, and
``clusterctl --help`` lists every command without loading any (``cli/main.py``). Kept by
what ``python -X importtime`` says the command imported, not by a timing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ports import free_port
from typer.testing import CliRunner

from clusterctl.cli.main import build, listing

HEAVY = ("numpy", "matplotlib", "ray", "sqlalchemy", "sqlmodel", "fastapi", "uvicorn",
         "starlette", "psycopg", "alembic", "pynvml", "cryptography", "yaml")


def imported(*args: str, code: int = 0, cwd: Path | None = None, **env: str) -> set[str]:
    """The modules ``clusterctl ARGS`` imports, as ``-X importtime`` lists them."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "clusterctl", *args],
                       capture_output=True, text=True, timeout=60, cwd=cwd,
                       env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env})
    assert r.returncode == code, r.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2} - {"package"}


@pytest.mark.parametrize("args", [("--help",), ("jobs", "--help"), ("submit", "--help"),
                                  ("show", "--help"), ("nodes", "--help")])
def test_no_command_loads_a_heavy_library_to_start(args: tuple[str, ...]) -> None:
    modules = imported(*args)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"clusterctl {' '.join(args)} imported {heavy[:8]}"
    assert "websockets" not in {m.split(".")[0] for m in modules}  # run/attach only


def test_the_list_of_commands_loads_no_command_module() -> None:
    modules = imported("--help")
    loaded = sorted(m for m in modules if m.startswith("clusterctl.cli.") and m not in (
        "clusterctl.cli.main",))
    assert not loaded, loaded
    assert "pydantic_settings" not in modules and "httpx" not in modules


def test_the_list_says_what_each_command_says_of_itself() -> None:
    """SUMMARIES is a copy of each command's first help line: this fails when one drifts."""
    runner = CliRunner()
    env = {"COLUMNS": "300", "TERM": "dumb"}
    full = runner.invoke(build(None), ["--help"], env=env, prog_name="clusterctl")
    quick = runner.invoke(listing(), ["--help"], env=env, prog_name="clusterctl")
    assert full.exit_code == quick.exit_code == 0
    assert quick.output == full.output


@pytest.mark.parametrize("args", [("jobs",), ("show", "1"), ("whoami",),
                                  ("admin", "user", "list")])
def test_a_command_reads_its_settings_without_pydantic_settings(args: tuple[str, ...]) -> None:
    """A user's command reads the URL and token with ``client_settings`` (pydantic-settings
    is 50-100 ms of a start, and only the server's commands need it): here against a closed
    port, so it runs its whole path and fails to connect."""
    modules = imported(*args, code=1, CLUSTERCTL_URL=f"http://127.0.0.1:{free_port()}",
                       CLUSTERCTL_CONFIG="/nonexistent/config.toml")
    assert "clusterctl.client_settings" in modules and "http.client" in modules
    tops = {m.split(".")[0] for m in modules}
    assert "pydantic_settings" not in tops
    # The standard library's HTTP client: httpx and httpcore are 60 ms of a command's start,
    # and httpx's own command line (click, pygments) 40 ms more.
    assert not {"httpx", "httpcore", "pygments", "click"} & tops and "rich.syntax" not in modules


def test_listing_jobs_loads_no_pydantic() -> None:
    """typer from 0.29 on builds a pydantic adapter for each parameter (60-70 ms of every
    command): pyproject.toml keeps it below."""
    modules = imported("jobs", code=1, CLUSTERCTL_URL=f"http://127.0.0.1:{free_port()}",
                       CLUSTERCTL_CONFIG="/nonexistent/config.toml")
    assert "pydantic" not in {m.split(".")[0] for m in modules}


def test_a_submit_loads_no_pydantic_rich_or_tenacity(tmp_path: Path) -> None:
    """A submit is what scripts run hundreds of times in a loop (#33 item 4): it parses its
    flags with ``job_words`` (no pydantic model: 70-100 ms), prints an id (no rich: 20 ms)
    and retries only when the controller answers 503 (no tenacity: 10 ms). Its whole path,
    flags parsed and the directory's package made, against a closed port."""
    modules = imported("submit", "--gpus", "H100:2", "--time-limit", "2h", "--", "true",
                       code=1, cwd=tmp_path, CLUSTERCTL_URL=f"http://127.0.0.1:{free_port()}",
                       CLUSTERCTL_CONFIG="/nonexistent/config.toml")
    assert "clusterctl.job_words" in modules and "clusterctl.workdir" in modules
    assert not {"pydantic", "rich", "tenacity"} & {m.split(".")[0] for m in modules}
