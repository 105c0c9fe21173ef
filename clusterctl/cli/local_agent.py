"""The node agent that ``clusterctl up`` and the demo run beside the controller on a single
machine: the real ``clusterctl-agent`` command as a child process, given its node token through
the environment (never the command line, which ``ps`` shows)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clusterctl.executor.local_ray import stop_process


def agent_command() -> list[str]:
    exe = Path(sys.executable).with_name("clusterctl-agent")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "agents.main"]


@dataclass
class LocalAgent:
    process: subprocess.Popen[bytes]
    port: int

    def stop(self, timeout: float = 20) -> None:
        stop_process(self.process, timeout)


def start_local_agent(data_dir: Path, *, controller_url: str, token: str, node: str,
                      simulate_gpus: int | None, port: int, interval: str = "5s",
                      ca_file: str | None = None, simulate_model: str | None = None,
                      directory: str = "agent") -> LocalAgent:
    agent_dir = data_dir / directory
    agent_dir.mkdir(parents=True, exist_ok=True)
    cmd = [*agent_command(), "--node", node, "--controller", controller_url,
           "--port", str(port), "--interval", interval, "--spool", str(agent_dir / "spool.db")]
    if simulate_gpus is not None:
        cmd += ["--simulate-gpus", str(simulate_gpus)]
    if simulate_model is not None:
        cmd += ["--simulate-model", simulate_model]
    if ca_file:
        cmd += ["--ca-file", ca_file]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERCTL_AGENT_")}
    env["CLUSTERCTL_AGENT_TOKEN"] = token
    log = open(agent_dir / "agent.log", "ab")  # noqa: SIM115 (owned by the child)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return LocalAgent(proc, port)
