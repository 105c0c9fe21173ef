"""Interactive jobs (#19 items 2 and 3) on a real Ray instance, through the real CLI and the
controller's WebSockets: stdin, `run --pty` in a real pseudo-terminal (pexpect), window size,
Ctrl-C, exit codes, `attach` after a dropped connection, the grace period, closing the
terminal, who may attach, hostile control messages, and `port-forward` to a job's port."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pexpect
import pytest
from harness import ControllerProcess, clusterctl_argv
from ports import free_port
from tcp_proxy import TcpProxy
from websockets.sync.client import connect

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.ray
PY = sys.executable
PROMPT = "READY> "
GRACE_S = 40  # long enough for a controller restart on a loaded CI machine (20 s was not)


@pytest.fixture(scope="module")
def controller(ray_head: LocalRay, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[ControllerProcess]:
    root = tmp_path_factory.mktemp("interactive")
    c = ControllerProcess(root / "ctl", ray_head.address, ray_head.token_file)
    c.env["CLUSTERCTL_ATTACH_GRACE_S"] = str(GRACE_S)
    c.cwd = root / "empty"
    c.cwd.mkdir()
    c.start()
    yield c
    c.stop()


def spawn(controller: ControllerProcess, *args: str, rows: int = 30, cols: int = 100
          ) -> pexpect.spawn:
    argv = [*clusterctl_argv(), *args]
    return pexpect.spawn(argv[0], argv[1:], env=controller.env, cwd=str(controller.cwd),
                         dimensions=(rows, cols), encoding="utf-8", timeout=60)


def shell(controller: ControllerProcess, name: str) -> pexpect.spawn:
    """`run --pty` of a bare bash, at its first prompt."""
    child = spawn(controller, "run", "--pty", "--name", name, "--env", f"PS1={PROMPT}",
                  "--", "bash", "--norc", "--noprofile")
    child.expect_exact(PROMPT)
    return child


def job_named(controller: ControllerProcess, name: str) -> dict:
    return next(j for j in controller.json("jobs", "--all") if j["name"] == name)


def test_stdin_reaches_the_job_and_its_exit_code_is_run_s(controller: ControllerProcess) -> None:
    script = "import sys\ndata = sys.stdin.read()\nprint(data.upper(), end='')\nsys.exit(4)"
    r = subprocess.run([*clusterctl_argv(), "run", "--name", "upper", "--", PY, "-c", script],
                       input="hello\nworld\n", env=controller.env, cwd=controller.cwd,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stderr
    assert r.stdout == "HELLO\nWORLD\n"  # all of stdin, then its end (the job's read ends)
    job = job_named(controller, "upper")
    assert (job["state"], job["exit_code"]) == ("FAILED", 4)
    assert controller.cli("logs", str(job["id"])).stdout == "HELLO\nWORLD\n"  # kept


def test_a_terminal_without_a_size_gets_80x24(controller: ControllerProcess) -> None:
    """#31 item 12: under `script` or a serial console the terminal is 0x0; `run --pty`
    exited 2 and left the job running unattended."""
    child = spawn(controller, "run", "--pty", "--name", "sizeless", "--", "sh", "-c",
                  "sleep 2; stty size; exit 7", rows=0, cols=0)
    child.expect_exact("24 80")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7
    assert controller.wait_done(job_named(controller, "sizeless")["id"])["exit_code"] == 7


def test_pty_window_size_ctrl_c_and_exit_code(controller: ControllerProcess) -> None:
    child = shell(controller, "pty")
    child.sendline("tty; stty size")
    child.expect(r"/dev/pts/\d+\s+30 100")  # a real terminal, of our window's size
    child.expect_exact(PROMPT)
    child.setwinsize(40, 120)  # SIGWINCH here: the job's terminal follows (through the relay)
    for _ in range(20):
        child.sendline("stty size")
        if child.expect_exact(["40 120\r\n", "30 100\r\n"]) == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the job's terminal never took the new window size")
    child.expect_exact(PROMPT)
    child.sendline("sleep 300; echo after-sleep-$?")
    time.sleep(1.5)
    child.sendcontrol("c")  # reaches the foreground job, not the run command
    child.expect_exact(PROMPT, timeout=20)
    assert not re.search(r"after-sleep-\d", child.before)  # SIGINT: bash skipped the rest
    child.sendline("echo still-$((40 + 2))")
    child.expect_exact("still-42")
    child.sendline("exit 3")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3
    job = controller.wait_done(job_named(controller, "pty")["id"])
    assert (job["state"], job["exit_code"]) == ("FAILED", 3)
    log = controller.cli("logs", str(job["id"])).stdout
    assert "still-42" in log and "40 120" in log  # the job's log keeps what it printed


def test_python_s_prompt_works_and_bad_input_writes_nothing(controller: ControllerProcess) -> None:
    child = spawn(controller, "run", "--pty", "--name", "repl", "--", PY, "-q")
    child.expect_exact(">>> ")
    child.sendline("import os; os.get_terminal_size().columns * 0 + 6 * 7")
    child.expect_exact("42")
    child.sendcontrol("d")  # Ctrl-D at the prompt: the interpreter exits 0
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    before = len(controller.json("jobs", "--all"))
    for flag, value in (("--port", "70000"), ("--port", "http"), ("--array", "0-3")):
        r = controller.cli("run", flag, value, "--", "true")
        assert r.returncode == 2 and flag in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert len(controller.json("jobs", "--all")) == before  # nothing was written
    answer = httpx.post(f"http://127.0.0.1:{controller.port}/v1/jobs", timeout=30,
                        json={"command": ["true"], "pty": True},
                        headers={"Authorization": f"Bearer {controller.token()}"})
    assert answer.status_code == 422 and "--pty" in answer.text


def test_a_dropped_connection_comes_back_with_attach(controller: ControllerProcess) -> None:
    child = shell(controller, "dropped")
    child.sendline("echo marker-$((6 * 7))")
    child.expect_exact("marker-42")
    child.kill(signal.SIGKILL)  # the connection drops; nothing said goodbye
    child.close(force=True)
    job_id = job_named(controller, "dropped")["id"]
    time.sleep(1)
    assert controller.show(job_id)["state"] == "RUNNING"
    again = spawn(controller, "attach", str(job_id))
    again.expect_exact("marker-42")  # the output so far is shown again
    again.sendline("echo back-$((50 + 1))")
    again.expect_exact("back-51")
    again.sendcontrol("d")  # Ctrl-D at the prompt: bash exits 0
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0
    assert controller.wait_done(job_id)["state"] == "SUCCEEDED"


def test_a_run_whose_end_is_lost_on_its_connection_still_exits_as_its_job(
        controller: ControllerProcess) -> None:
    """The job's last output and its exit code are lost on the terminal's connection, which
    stays open (seen under load over TLS: the job had ended, `run` waited on): the CLI asks
    the controller after a silence, shows the rest from the job's log and exits as it did."""
    proxy = TcpProxy("127.0.0.1", controller.port)
    proxy.start()
    script = "import sys\nprint('up', flush=True)\nsys.stdin.read()\nprint('bye')\nsys.exit(5)"
    p = subprocess.Popen([*clusterctl_argv(), "run", "--name", "muted", "--", PY, "-c", script],
                         env={**controller.env, "CLUSTERCTL_URL": f"http://127.0.0.1:{proxy.port}"},
                         cwd=controller.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline() == "up\n"
        proxy.mute_newest()  # the terminal's: opened after every request before the start
        p.stdin.close()  # the job reads the end of its input, says bye and exits 5
        p.wait(timeout=90)
    finally:
        p.kill()
        proxy.cut()
    assert p.stdout is not None and p.stderr is not None
    assert (p.returncode, p.stdout.read()) == (5, "bye\n"), p.stderr.read()
    # Through the controller's record, not a new connection once a keepalive gave up on it.
    assert sum(b"/attach" in line for line in proxy.first_lines) == 1, proxy.first_lines


def test_nobody_coming_back_within_the_grace_period_ends_the_job(
        controller: ControllerProcess) -> None:
    p = subprocess.Popen([*clusterctl_argv(), "run", "--name", "gone", "--", PY, "-c",
                          "print('up', flush=True)\nimport time\ntime.sleep(300)"],
                         env=controller.env, cwd=controller.cwd, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline() == "up\n"
    p.kill()
    p.wait()
    job_id = job_named(controller, "gone")["id"]
    job = controller.wait_done(job_id, timeout=GRACE_S + 60)
    assert job["state"] == "CANCELLED"
    assert job["reason"] == f"connection lost: nobody attached for {GRACE_S}s"


def test_closing_the_terminal_ends_the_job(controller: ControllerProcess) -> None:
    child = shell(controller, "closed")
    child.kill(signal.SIGHUP)  # the terminal window closed
    child.expect(pexpect.EOF)
    child.close()
    job = controller.wait_done(job_named(controller, "closed")["id"], timeout=60)
    assert (job["state"], job["reason"]) == ("CANCELLED", "terminal closed")


def test_only_the_owner_attaches_and_bad_messages_are_refused(
        controller: ControllerProcess) -> None:
    child = shell(controller, "private")
    job_id = job_named(controller, "private")["id"]
    other = controller.json("admin", "user", "add", "mallory", "--team", "t")["token"]
    r = controller.cli("attach", str(job_id), token=other)
    assert r.returncode == 1 and "belongs to" in r.stderr, r.stderr
    batch = controller.submit("--", "true")
    r = controller.cli("attach", str(batch))
    assert r.returncode == 2 and "batch job" in r.stderr, r.stderr
    url = f"ws://127.0.0.1:{controller.port}/v1/jobs/{job_id}/attach"
    with connect(url, additional_headers={"Authorization": "Bearer nope"}) as ws:
        refused = json.loads(ws.recv(timeout=10))
        assert refused["status"] == 401
    auth = {"Authorization": f"Bearer {controller.token()}"}
    for hostile in ('{"resize": "x"}', "not json", '{"signal": "KILL"}', '{"resize": [0, 5]}'):
        with connect(url, additional_headers=auth) as ws:  # takes the terminal over...
            ws.send(hostile)
            answers = []
            with pytest.raises(Exception):  # noqa: B017 (the server closes: any close)
                while True:
                    answers.append(ws.recv(timeout=10))
            errors = [json.loads(a) for a in answers if isinstance(a, str)]
            assert any(e.get("status") == 422 for e in errors), (hostile, answers)
    assert controller.show(job_id)["state"] == "RUNNING"  # ...and nothing broke
    assert controller.api("GET", "/healthz").status_code == 200
    child.kill(signal.SIGKILL)
    child.close(force=True)
    controller.cli("cancel", str(job_id))
    controller.wait_done(job_id)


def test_port_forward_reaches_a_job_s_server(controller: ControllerProcess) -> None:
    port, local = free_port(), free_port()
    server = subprocess.Popen(
        [*clusterctl_argv(), "run", "--name", "notebook", "--port", str(port), "--",
         PY, "-m", "http.server", str(port), "--bind", "0.0.0.0"],
        env=controller.env, cwd=controller.cwd, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stderr is not None
    where = ""
    while "port-forward" not in where:
        where = server.stderr.readline()
        assert where, "run ended without saying where the port is"
    assert f"serves port {port} at " in where and "(node node-a)" in where  # its address
    job_id = job_named(controller, "notebook")["id"]
    assert f"interactive, ports {port}: clusterctl attach {job_id}" in \
        controller.cli("show", str(job_id)).stdout
    bad = controller.cli("port-forward", str(job_id), "9")
    assert bad.returncode == 2 and "PORT" in bad.stderr
    fwd = subprocess.Popen([*clusterctl_argv(), "port-forward", str(job_id), str(port),
                            "--local-port", str(local), "--json"], env=controller.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert fwd.stdout is not None
        assert json.loads(fwd.stdout.readline()) == {"job": job_id, "port": port,
                                                     "local": f"127.0.0.1:{local}"}
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{local}/", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert answer.status_code == 200 and "Directory listing" in answer.text
        with socket.create_connection(("127.0.0.1", local)) as s:  # a second connection
            s.sendall(b"GET /nope HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.0 404")
    finally:
        fwd.send_signal(signal.SIGINT)
        fwd.wait(timeout=30)
        server.send_signal(signal.SIGINT)  # run's Ctrl-C: the job is cancelled
        server.wait(timeout=90)
    assert controller.show(job_id)["state"] == "CANCELLED"


def test_run_rides_through_a_controller_restart(controller: ControllerProcess) -> None:
    """Last in the module: it restarts the module's controller."""
    child = shell(controller, "restart")
    child.sendline("echo before-$((2 * 2))")
    child.expect_exact("before-4")
    controller.kill()  # SIGKILL: the WebSocket drops, the runner keeps the job and its terminal
    controller.start()
    time.sleep(0.5)
    child.sendline("echo after-$((3 * 3))")  # typed while run reconnects: sent once it has
    child.expect_exact("after-9", timeout=60)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert controller.wait_done(job_named(controller, "restart")["id"])["state"] == "SUCCEEDED"


def test_a_terminal_closed_while_the_controller_is_away_still_ends_the_job(
        controller: ControllerProcess) -> None:
    """The hangup reaches the job when the connection is dead at that moment (its controller
    just killed): the CLI tells it again on a connection of its own once the controller is
    back, and the job ends "terminal closed" at once, not after the attach grace (20 s)."""
    child = shell(controller, "away")
    controller.kill()
    child.kill(signal.SIGHUP)  # the terminal window closed
    controller.start()
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    job = controller.wait_done(job_named(controller, "away")["id"], timeout=60)
    assert (job["state"], job["reason"]) == ("CANCELLED", "terminal closed")
