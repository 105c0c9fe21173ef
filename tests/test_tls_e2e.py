"""TLS end to end (#16): `clusterctl up --tls-cert --tls-key` with a CA made in the test
(trustme), the CLI and an agent verifying against it through `ca_file`, a CLI that does not
trust it refused in one line, and plain HTTP kept to loopback unless an admin allows it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from harness import Agent, ControllerProcess, clusterctl_argv

from clusterctl.executor.local_ray import LocalRay


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="clusterctl test CA")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": root / "ca.pem", "cert": root / "controller.pem",
             "key": root / "controller.key", "other_ca": root / "other-ca.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    with open(paths["cert"], "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    trustme.CA().cert_pem.write_to_path(str(paths["other_ca"]))
    return paths


@pytest.fixture(scope="module")
def tls_controller(ray_head: LocalRay, pki: dict[str, Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    c = ControllerProcess(tmp_path_factory.mktemp("tls") / "ctl", ray_head.address,
                          ray_head.token_file)
    c.up_args += ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])]
    c.env["CLUSTERCTL_CA_FILE"] = str(pki["ca"])
    c.scheme, c.verify = "https", str(pki["ca"])
    c.start()
    yield c
    c.stop()
    # Stopped by its SIGTERM, not killed: the harness's kept-alive connection must not hold
    # a TLS controller's exit (it did, for asyncio's 30 s wait on a TLS close).
    assert c.proc is not None and c.proc.returncode == 0, c.proc and c.proc.returncode


def test_the_cli_and_an_agent_talk_to_the_controller_over_verified_tls(
        tls_controller: ControllerProcess, pki: dict[str, Path], tmp_path: Path) -> None:
    c = tls_controller
    config = (c.root / "config.toml").read_text()
    assert f'url = "https://127.0.0.1:{c.port}"' in config and str(pki["ca"]) in config
    me = c.cli("whoami")
    assert me.returncode == 0, me.stderr
    job = c.submit("--gpus", "1", "--", "sh", "-c", "echo over-tls", cwd=tmp_path)
    assert c.cli("wait", str(job)).returncode == 0
    assert c.cli("logs", str(job)).stdout.strip() == "over-tls"
    interactive = c.cli("run", "--", "sh", "-c", "echo wss; exit 6")  # the WebSocket too
    assert (interactive.returncode, interactive.stdout) == (6, "wss\n"), interactive.stderr
    # An agent ships its samples over https, trusting the cluster's CA.
    token = c.cli("admin", "node-token", "tls-node").stdout.strip()
    agent = Agent(tmp_path / "agent", "tls-node", f"https://127.0.0.1:{c.port}", token,
                  gpus=1, extra=("--ca-file", str(pki["ca"])))
    agent.start()
    try:
        deadline = time.monotonic() + 60
        while agent.metrics().get("clusterctl_agent_samples_shipped_total", 0) < 2:
            assert time.monotonic() < deadline, agent.log_tail()
            time.sleep(0.5)
    finally:
        agent.stop()


def test_a_client_that_does_not_trust_the_ca_is_refused_and_plain_http_gets_nothing(
        tls_controller: ControllerProcess, pki: dict[str, Path]) -> None:
    c = tls_controller
    untrusted = subprocess.run([*clusterctl_argv(), "whoami"], capture_output=True, text=True,
                               env={**c.env, "CLUSTERCTL_CA_FILE": str(pki["other_ca"])},
                               timeout=60, cwd=c.root)
    assert untrusted.returncode == 1
    assert "certificate this machine does not trust" in untrusted.stderr
    assert len(untrusted.stderr.strip().splitlines()) == 1
    with pytest.raises(httpx.HTTPError):  # no clear-text answer, so no clear-text token
        httpx.get(f"http://127.0.0.1:{c.port}/v1/whoami", timeout=5,
                  headers={"Authorization": f"Bearer {c.token()}"})


def test_the_dashboards_session_cookie_is_secure_under_tls(
        tls_controller: ControllerProcess, pki: dict[str, Path]) -> None:
    c = tls_controller
    with httpx.Client(base_url=f"https://127.0.0.1:{c.port}", verify=str(pki["ca"])) as web:
        signed = web.post("/login", data={"token": c.token()})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert web.get("/").status_code == 200  # the cookie signs the next page in


@pytest.mark.parametrize(("args", "flag"), [
    (["--host", "0.0.0.0"], "--host"),
    (["--tls-cert", "/etc/hostname"], "--tls-key"),
    (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "--tls-cert"),
])
def test_up_refuses_clear_text_off_loopback_and_half_a_tls_setup(
        tmp_path: Path, args: list[str], flag: str) -> None:
    r = subprocess.run([*clusterctl_argv(), "up", "--data-dir", str(tmp_path / "data"), *args],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "CLUSTERCTL_CONFIG": str(tmp_path / "c")})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"error: {flag}:"), r.stderr
    assert not (tmp_path / "data").exists()  # nothing started, nothing written
