"""The runner: one per job rank, which owns the user's process on its node (run in a pooled Ray
worker by its node's host: ``runner_host.py``).

It is deliberately self-sufficient: it enforces the time limit and reaps the process group by
itself, and it keeps the outcome and the log until the controller has collected them, so a
controller restart neither kills the job nor loses what it printed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ray

from clusterctl.executor import accounts, cgroups, environment
from clusterctl.executor.accounts import Account, AccountError
from clusterctl.executor.job_input import JobInput, killpg
from clusterctl.executor.launch import COMMAND_ENV, ENDED_FILE, KILL_TREE, PTY_ENV
from clusterctl.executor.local_ray import free_port
from clusterctl.executor.run_dir import RunDir, RunDirError, default_run_root
from clusterctl.executor.terminal import Controls, Terminal, Window, set_window
from clusterctl.executor.types import (
    NODE_LABEL,
    Interactive,
    LaunchSpec,
    Outcome,
    Rendezvous,
    RunnerStatus,
    Started,
)

WITHDRAWN = "withdrawn before it started"


class RunnerError(RuntimeError):
    """A job that could not be started (bad working directory, unpacking failed…)."""


class JobRunner:
    def __init__(self, namespace: str, job_id: int, attempt: int, rank: int,
                 run_root: str | None = None) -> None:
        self.job_id, self.attempt, self.rank = job_id, attempt, rank
        self.namespace = namespace
        self.run = RunDir(Path(run_root) if run_root else default_run_root(), namespace,
                          job_id, attempt, rank)
        self.dir, self.log_path = self.run.path, self.run.log
        self.cgroup: Path | None = None
        """This rank's cgroup, where the node allows one (see ``cgroups.py``)."""
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._done = threading.Event()
        self._devices: list[str] | None = None
        self._start_info: Started | None = None
        self._start_error: str | None = None
        self._outcome: Outcome | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._terminating = False
        self._launched = self._withdrawn = False  # (under the lock) started; refused to start
        self._timed_out = False
        self._kill_grace_s = 30.0
        self._interactive: Interactive | None = None
        self._terminal: Terminal | None = None
        self._port: int | None = None
        self._input = JobInput()
        self._hangup_reason: str | None = None

    # -- called by the controller -------------------------------------------------------------

    def rendezvous(self) -> Rendezvous:
        """Rank 0's address and a free port on its node, for MASTER_ADDR / MASTER_PORT."""
        return Rendezvous(ray.util.get_node_ip_address(), free_port(""))

    def start(self, spec: LaunchSpec, rendezvous: Rendezvous | None,
              package: bytes | None) -> Started:
        """Start the command; idempotent, so a retried call never starts it twice."""
        with self._lock:
            if self._withdrawn:
                raise RunnerError(WITHDRAWN)
            if not self._launched:
                try:
                    account = accounts.resolve(spec.account, spec.fallback_account,
                                               self._node_name() or socket.gethostname())
                except AccountError as e:
                    raise RunnerError(str(e)) from None
                self.cgroup = self._make_cgroup()  # first: ends what is left of them
                self.run.remove_earlier()
                if spec.devices is not None:
                    self._devices = [str(i) for i in spec.devices[self.rank]]
                try:
                    cwd = self.run.working_directory(spec.workdir, package, account)
                except RunDirError as e:
                    raise RunnerError(str(e)) from None
                env = self._environment(spec, rendezvous, account)
                env["CLUSTERCTL_WORKDIR"] = cwd  # the shim enters it as the job's account
                self._kill_grace_s = spec.kill_grace_s
                if spec.interactive is not None and self.rank == 0:  # the user's rank
                    self._interactive = spec.interactive
                    self._terminal = Terminal(self.log_path, Controls(
                        write=self._input.write, resize=self._input.resize,
                        close_input=self._input.close_input, signal=self._input.signal,
                        hangup=self._hangup), secrets.token_urlsafe(24),
                        spec.interactive.grace_s, host=ray.util.get_node_ip_address())
                thread = threading.Thread(
                    target=self._run, name=f"job-{self.job_id}-rank-{self.rank}", daemon=True,
                    args=(list(spec.command), env, spec.time_limit_s, account),
                )
                thread.start()
                self._launched = True
        self._started.wait()
        if self._start_error is not None:
            raise RunnerError(self._start_error)
        assert self._start_info is not None
        return self._start_info

    def wait(self, timeout: float | None = None) -> Outcome | None:
        """Block until the process ends; its outcome (None if ``timeout`` passed first)."""
        self._done.wait(timeout)
        return self._outcome

    def status(self) -> RunnerStatus:
        return RunnerStatus(self._start_info, self._outcome, self._start_error)

    def terminate(self, grace_s: float | None = None) -> None:
        """SIGTERM to the process group, SIGKILL after the grace period. A command that has
        already exited is not marked terminated: it ended on its own, and its outcome says so
        (a cancel racing the job's own end does not turn its exit 0 into CANCELLED)."""
        proc = self._proc
        # The shim outlives the command by a moment (it reaps it, then ends what it left); it
        # marks the command's end in the run directory as soon as it has reaped it.
        if proc is None or proc.poll() is not None or (self.dir / ENDED_FILE).exists():
            return
        self._terminating = True
        self._signal_group(self._kill_grace_s if grace_s is None else grace_s)

    def withdraw(self, grace_s: float | None = None) -> bool:
        """A cancel or preemption that may come before the start: True if the command had
        not started, and now never will (a later start refuses); otherwise what started is
        ended as by :meth:`terminate`, so a command that already exited keeps its outcome."""
        with self._lock:
            if not self._launched:
                self._withdrawn = True
                return True
        self._started.wait()  # its thread is spawning it: the signal must find it
        self.terminate(grace_s)
        return False

    def read_log(self, offset: int, max_bytes: int = 1 << 20) -> bytes:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read(max_bytes)

    def cleanup(self) -> None:
        """End whatever is left of the job and remove the run directory once the controller
        has the log; the last call made."""
        self._end_everything()
        if self._terminal is not None:
            self._terminal.close()  # first: no input is written after the terminal closes
        self._input.close()
        self.run.remove()

    # -- inside the actor ---------------------------------------------------------------------

    def _node_name(self) -> str | None:
        node: Any = ray.get_runtime_context().get_node_labels().get(NODE_LABEL)
        if not node:
            return None
        return node if isinstance(node, str) else str(node[0])

    def _environment(self, spec: LaunchSpec, rendezvous: Rendezvous | None,
                     account: Account | None) -> dict[str, str]:
        own = None if account is None else {
            "HOME": account.home, "USER": account.name, "LOGNAME": account.name,
            "SHELL": account.shell}
        env = environment.for_job(os.environ, own, spec.env)
        env.setdefault("TMPDIR", self.run.job_tmp(account))
        if account is not None:
            env["CLUSTERCTL_ACCOUNT"] = account.encode()
        gpu_ids = self._gpu_ids()
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CLUSTERCTL_JOB_ID"] = str(self.job_id)
        env["CLUSTERCTL_ATTEMPT"] = str(self.attempt)
        env["CLUSTERCTL_RUNNER_PID"] = str(os.getpid())
        node = self._node_name()
        if node:  # which node's GPUs these are (an agent lists the processes on its own)
            env["CLUSTERCTL_NODE"] = node
        if self.cgroup is not None:
            env["CLUSTERCTL_CGROUP"] = str(self.cgroup)
        if self.run.package is not None:
            env["CLUSTERCTL_UNPACK"] = str(self.run.package)
        if spec.nodes > 1 and rendezvous is not None:
            env.update(environment.for_rank(rendezvous, self.rank, spec.nodes, spec.gpus))
        if spec.serves and self.rank == 0:  # a service's replica listens here
            self._port = free_port("")
            env["PORT"] = str(self._port)
        return env

    def _gpu_ids(self) -> list[str]:
        """The devices the controller picked (a machine of several models), else Ray's."""
        if self._devices is not None:
            return self._devices
        ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
        return [str(i) for i in ids]

    def _run(self, argv: list[str], env: dict[str, str], time_limit_s: float | None,
             account: Account | None) -> None:
        # This thread forks the child and lives exactly as long as it: PR_SET_PDEATHSIG fires
        # when the forking *thread* exits, so the fork must not happen on a pooled thread.
        try:
            env[COMMAND_ENV] = self.run.write_command(argv)
            proc, output = self._spawn([sys.executable, "-m", cgroups.SHIM_MODULE], env,
                                       account)
        except OSError as e:
            self._start_error = f"could not start the command: {e}"
            self._started.set()
            self._done.set()
            return
        self._proc = self._input.proc = proc
        copier = threading.Thread(target=self._copy_output, args=(output,),
                                  name=f"job-{self.job_id}-rank-{self.rank}-log", daemon=True)
        copier.start()
        node = ray.get_runtime_context()
        ip = ray.util.get_node_ip_address()
        terminal = self._terminal
        self._start_info = Started(
            rank=self.rank, pid=proc.pid, gpu_ids=tuple(self._gpu_ids()),
            node_id=node.get_node_id(), node_ip=ip, started_at=time.time(),
            terminal=(ip, terminal.port, terminal.key) if terminal is not None else None,
            port=self._port)
        self._started.set()
        try:
            proc.wait(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self._signal_group(self._kill_grace_s)
            proc.wait()
        self._end_everything()  # nothing of a finished job is left behind
        copier.join(timeout=10)  # the pipe ends with the last process of the job
        code = proc.returncode
        self._outcome = Outcome(
            rank=self.rank, exit_code=code if code >= 0 else 128 - code,
            signal=-code if code < 0 else None, timed_out=self._timed_out,
            terminated=self._terminating, ended_at=time.time(), hangup=self._hangup_reason)
        if self._terminal is not None:
            self._terminal.exited(self._outcome.exit_code)
        self._done.set()

    def _spawn(self, argv: list[str], env: dict[str, str], account: Account | None
               ) -> tuple[subprocess.Popen[bytes], int]:
        """The shim and the job under it; the descriptor its output comes out of. A batch job
        reads nothing; an interactive one reads its user's input from a pipe or, with a
        pseudo-terminal, from the terminal that becomes its controlling one."""
        common: dict[str, Any] = {"cwd": self.dir, "env": env, "start_new_session": True}
        it = self._interactive
        if it is None or not it.pty:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL if it is None else subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **common)
            self._input.stdin = proc.stdin
            assert proc.stdout is not None
            return proc, proc.stdout.fileno()
        master, slave = os.openpty()
        try:
            if account is not None:  # its own terminal, as sshd gives a session's
                with contextlib.suppress(OSError):
                    os.fchown(slave, account.uid, -1)
            set_window(master, Window(24, 80))
            env[PTY_ENV] = "1"
            proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, **common)
        except OSError:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._input.master = master
        return proc, master

    def _copy_output(self, fd: int) -> None:
        """The job's output into its log (and to its user, if attached), until the last of the
        job's processes closes it. A pseudo-terminal says so with EIO, not an end of file."""
        with open(self.log_path, "ab", buffering=0) as log:
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError as e:
                    if e.errno != errno.EIO:
                        log.write(f"clusterctl: output lost: {e}\n".encode())
                    break
                if not chunk:
                    break
                if self._terminal is not None:
                    self._terminal.output(chunk, log.write)
                else:
                    log.write(chunk)
        proc = self._proc
        if self._input.master is None and proc is not None and proc.stdout is not None:
            proc.stdout.close()

    def _hangup(self, reason: str) -> None:
        """The user is gone: SIGHUP, as a closed terminal sends it, then everything ends after
        the kill grace period. The job ends CANCELLED, with ``reason``."""
        proc = self._proc
        if proc is None or proc.poll() is not None or self._hangup_reason is not None:
            return  # the first reason is the job's: a later one is only its echo
        self._hangup_reason = reason
        if self._input.master is not None:  # the terminal's foreground job, and the shim's
            with contextlib.suppress(OSError):
                killpg(os.tcgetpgrp(self._input.master), signal.SIGHUP)
        killpg(proc.pid, signal.SIGHUP)
        self._kill_after(proc, self._kill_grace_s)

    def _signal_group(self, grace_s: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        killpg(proc.pid, signal.SIGTERM)
        self._kill_after(proc, grace_s)

    def _kill_after(self, proc: subprocess.Popen[bytes], grace_s: float) -> None:
        """Everything of the job is killed if it has not ended within ``grace_s``."""
        def _escalate() -> None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
                return
            self._end_everything()

        threading.Thread(target=_escalate, daemon=True).start()

    def _make_cgroup(self) -> Path | None:
        """This rank's cgroup, once nothing of an earlier attempt of the job is left on this
        node (a runner killed before it could clean up leaves its cgroup behind), nor of any
        job that lost its shim."""
        root = cgroups.job_root(self.namespace)
        if root is None:
            return None
        for old in cgroups.earlier_attempts(root, self.job_id, self.attempt):
            if not cgroups.kill(old):
                raise RunnerError(f"processes of an earlier attempt ({old.name}) would not end")
        for orphan in cgroups.orphans(root):  # another job's, its shim gone: end it now
            cgroups.kill(orphan)
        return cgroups.create(root, self.job_id, self.attempt, self.rank)

    def _end_everything(self) -> None:
        """SIGKILL every process of the job: the shim ends its whole tree (double forks and
        daemons included), the process group and the cgroup are the backstops."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, KILL_TREE)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if proc is not None:
            killpg(proc.pid, signal.SIGKILL)
        if self.cgroup is not None:
            cgroups.kill(self.cgroup)
