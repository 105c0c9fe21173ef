"""Model services (#35), end to end on a real Ray and controller: `clusterctl serve` starts
replicas as jobs, the controller's endpoint answers through them (tests/model_server.py, a
stdlib HTTP server, stands in for the model), a killed replica loses no request and is started
again, another team's token is refused, bad specs store nothing."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import ControllerProcess
from prometheus_client.parser import text_string_to_metric_families

from clusterctl.executor.local_ray import LocalRay

pytestmark = pytest.mark.ray
MODEL = [sys.executable, str(Path(__file__).with_name("model_server.py"))]


@pytest.fixture(scope="module")
def controller(ray_head: LocalRay, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[ControllerProcess]:
    root = tmp_path_factory.mktemp("serve")
    c = ControllerProcess(root / "ctl", ray_head.address, ray_head.token_file)
    c.cwd = root / "empty"
    c.cwd.mkdir()
    c.env["CLUSTERCTL_SERVICE_SCALE_DOWN_S"] = "1"  # a service wanting fewer gets them at once
    c.start()
    yield c
    c.stop()


def serve(c: ControllerProcess, name: str, *flags: str) -> dict[str, Any]:
    r = c.cli("serve", name, *flags, "--json", "--", *MODEL)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["name"] == name
    return out  # type: ignore[no-any-return]


def call(c: ControllerProcess, name: str, path: str, token: str | None = None,
         **kwargs: Any) -> httpx.Response:
    return httpx.request(kwargs.pop("method", "POST"),
                         f"http://127.0.0.1:{c.port}/services/{name}/{path}",
                         headers={"Authorization": f"Bearer {token or c.token()}"},
                         timeout=120, **kwargs)


def shown(c: ControllerProcess, name: str) -> dict[str, Any]:
    r = c.api("GET", f"/v1/services/{name}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def wait_for(c: ControllerProcess, name: str, test: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        out = shown(c, name)
        if test(out):
            return out
        assert time.monotonic() < deadline, (out, c.log_tail())
        time.sleep(0.2)


def test_a_request_sent_at_once_is_held_until_a_replica_is_ready_and_counted(
        controller: ControllerProcess) -> None:
    serve(controller, "echo", "--gpus", "1", "--replicas", "1:1")
    r = call(controller, "echo", "v1/echo", content=b"hello")  # no replica is ready yet
    assert r.status_code == 200, r.text
    answer = r.json()
    out = shown(controller, "echo")
    assert answer["got"] == "hello" and int(answer["job"]) in out["replica_jobs"]
    assert "authorization" not in {k.lower() for k in r.request.headers} - {"authorization"}
    out = wait_for(controller, "echo", lambda s: s["requests"] == 1)
    assert (out["errors"], out["tokens"]) == (0, 5)  # usage.total_tokens of the answer
    assert call(controller, "echo", "fail", method="GET").status_code == 500  # passed on
    out = wait_for(controller, "echo", lambda s: s["requests"] == 2)
    assert out["errors"] == 1
    assert out["replicas"]["ready"] == 1 and out["latency_p50_ms"] > 0
    job = controller.show(out["replica_jobs"][0])
    assert job["state"] == "RUNNING" and job["name"] == "echo"
    listed = controller.json("serve", "list")
    assert [s["name"] for s in listed] == ["echo"]
    scraped = {(m.name, tuple(sorted(m.labels.items()))): m.value
               for f in text_string_to_metric_families(
                   httpx.get(f"{controller.metrics_url}/metrics").text) for m in f.samples}
    assert scraped[("clusterctl_service_requests_total",
                    (("code", "2xx"), ("service", "echo")))] == 1
    assert scraped[("clusterctl_service_requests_total",
                    (("code", "5xx"), ("service", "echo")))] == 1
    assert scraped[("clusterctl_service_request_duration_seconds_count",
                    (("service", "echo"),))] == 2
    assert scraped[("clusterctl_service_replicas", (("service", "echo"), ("state", "ready")))] == 1
    (log,) = controller.json("serve", "logs", "echo")
    assert log["job"] == out["replica_jobs"][0] and "listening on port" in log["log"]
    assert "listening on port" in controller.cli("serve", "logs", "echo").stdout
    text = controller.cli("serve", "show", "echo")
    assert text.returncode == 0 and "1 ready" in text.stdout and "requests: 2," in text.stdout
    assert "per 1,000 requests" in text.stdout, text.stdout
    stopped = controller.json("serve", "stop", "echo")
    assert stopped["stopped_at"] is not None
    controller.wait_state(out["replica_jobs"][0], {"CANCELLED"})
    assert call(controller, "echo", "v1/echo", content=b"x").status_code == 404
    assert controller.json("serve", "list") == []


def test_an_answer_is_passed_on_chunk_by_chunk(controller: ControllerProcess,
                                               tmp_path: Path) -> None:
    serve(controller, "streamer", "--gpus", "1")
    gate = tmp_path / "gate"
    url = f"http://127.0.0.1:{controller.port}/services/streamer/stream"
    with httpx.stream("GET", url, params={"gate": str(gate)}, timeout=120,
                      headers={"Authorization": f"Bearer {controller.token()}"}) as r:
        assert r.status_code == 200
        chunks = r.iter_text()
        first = next(chunks)  # the replica waits for the gate before its second event
        assert first.startswith("data: first")
        gate.touch()
        assert "data: second" in "".join(chunks)
    controller.json("serve", "stop", "streamer")


def test_another_team_s_token_is_refused(controller: ControllerProcess) -> None:
    serve(controller, "private", "--gpus", "1", "--team", "vision")
    other = controller.json("admin", "user", "add", "mallory", "--team", "nlp")["token"]
    member = controller.json("admin", "user", "add", "vic", "--team", "vision")["token"]
    assert call(controller, "private", "v1/echo", token=other, content=b"x").status_code == 403
    assert call(controller, "private", "v1/echo", token="nonsense").status_code == 401
    assert call(controller, "private", "v1/echo", token=member, content=b"ok").status_code == 200
    r = controller.cli("serve", "stop", "private", token=other)
    assert r.returncode != 0 and "vision" in r.stderr
    assert controller.cli("serve", "key", "private", token=other).returncode != 0
    key = controller.cli("serve", "key", "private", token=member).stdout.strip()
    assert call(controller, "private", "v1/echo", token=key, content=b"app").status_code == 200
    api = httpx.get(f"http://127.0.0.1:{controller.port}/v1/jobs",
                    headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 401  # a service key opens its service, not the API
    serve(controller, "elsewhere", "--gpus", "1", "--replicas", "0:1")
    assert call(controller, "elsewhere", "v1/echo", token=key).status_code == 403
    controller.json("serve", "stop", "elsewhere")
    controller.json("serve", "stop", "private")


def test_a_killed_replica_loses_no_request_and_is_started_again(
        controller: ControllerProcess) -> None:
    serve(controller, "sturdy", "--gpus", "1", "--replicas", "2:2")
    out = wait_for(controller, "sturdy", lambda s: s["replicas"]["ready"] == 2)
    first = out["replica_jobs"]
    victim = call(controller, "sturdy", "pid", method="GET").json()
    results: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            results.append(call(controller, "sturdy", "v1/echo", content=b"q").status_code)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    while len(results) < 20:
        time.sleep(0.05)
    os.kill(victim["pid"], signal.SIGKILL)
    killed = int(victim["job"])
    controller.wait_state(killed, {"FAILED", "SUCCEEDED", "LOST"})
    out = wait_for(controller, "sturdy", lambda s: s["replicas"]["ready"] == 2
                   and killed not in s["replica_jobs"])
    count = len(results)
    while len(results) < count + 20:  # requests go on after the restart
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    assert set(results) == {200}, sorted(set(results))
    assert set(out["replica_jobs"]) - set(first)  # a new replica job took the dead one's place
    controller.json("serve", "stop", "sturdy")


def test_load_adds_a_replica_and_its_end_takes_it_away(controller: ControllerProcess) -> None:
    serve(controller, "elastic", "--gpus", "1", "--replicas", "1:2", "--target-rps", "1")
    wait_for(controller, "elastic", lambda s: s["replicas"]["ready"] == 1)
    for _ in range(15):  # 1.5 requests a second over the 10 s window: two replicas' worth
        assert call(controller, "elastic", "v1/echo", content=b"q").status_code == 200
    out = wait_for(controller, "elastic", lambda s: s["replicas"]["ready"] == 2)
    assert out["replicas"]["desired"] == 2
    # No more requests: once the window has none, it wants one again and gets it.
    out = wait_for(controller, "elastic", lambda s: s["replicas"]["desired"] == 1
                   and s["replicas"]["running"] + s["replicas"]["pending"] == 1, timeout=60)
    assert call(controller, "elastic", "v1/echo", content=b"q").status_code == 200
    controller.json("serve", "stop", "elastic")


def test_min_zero_starts_for_a_request_and_stops_when_quiet(
        controller: ControllerProcess) -> None:
    serve(controller, "lazy", "--gpus", "1", "--replicas", "0:1",
          "--scale-to-zero-after", "2s")
    out = shown(controller, "lazy")
    assert out["replica_jobs"] == [] and out["replicas"]["desired"] == 0  # nothing runs
    r = call(controller, "lazy", "v1/echo", content=b"wake")  # held through a cold start
    assert r.status_code == 200, r.text
    first = int(r.json()["job"])
    controller.wait_state(first, {"CANCELLED"}, timeout=60)  # quiet for 2 s: back to zero
    assert shown(controller, "lazy")["replica_jobs"] == []
    r = call(controller, "lazy", "v1/echo", content=b"again")
    assert r.status_code == 200 and int(r.json()["job"]) != first
    controller.json("serve", "stop", "lazy")


def test_a_request_s_cost_is_the_replicas_gpu_cost_over_the_requests_and_is_kept(
        controller: ControllerProcess) -> None:
    # A machine priced so that seconds of a GPU cost dollars: the figures are not all 0.00.
    assert controller.cli("hardware", "add", "node-a", "--gpus", "4", "--gpu-model", "A100",
                          "--price", "100000000", "--purchased", "2026-01-01", "--life", "12mo",
                          "--resale", "0.2").returncode == 0
    serve(controller, "priced", "--gpus", "1", "--price-per-1k", "2.5")
    for _ in range(40):
        assert call(controller, "priced", "v1/echo", content=b"abcd").status_code == 200
    wait_for(controller, "priced", lambda s: s["requests"] == 40)  # counts reach the database
    replicas = shown(controller, "priced")["replica_jobs"]
    running = controller.json("plan", "--since", "1d")["history"]["jobs"]
    controller.json("serve", "stop", "priced")
    for job in replicas:
        controller.wait_state(job, {"CANCELLED"})
    # plan replays a running replica's hours as it does once the replica has ended
    assert controller.json("plan", "--since", "1d")["history"]["jobs"] == running
    controller.stop()  # what was counted outlives the controller
    controller.start()
    (out,) = [s for s in controller.api("GET", "/v1/services", params={"all": "true"}).json()
              if s["name"] == "priced"]
    assert (out["requests"], out["errors"], out["tokens"]) == (40, 0, 160)
    jobs_cost = sum(controller.show(j)["cost"]["total_cost"] for j in replicas)
    assert out["cost"] > 0.1 and out["cost"] == pytest.approx(jobs_cost, abs=0.01 * len(replicas))
    assert out["gpu_hours"] == pytest.approx(
        sum(controller.show(j)["cost"]["gpu_hours"] for j in replicas), rel=1e-6)
    assert out["cost_per_1k_requests"] == pytest.approx(out["cost"] / 40 * 1000, abs=0.01)
    # (the cost shown is to four decimals; the figures per request divide the exact one)
    assert out["cost_per_1m_tokens"] == pytest.approx(out["cost"] / 160 * 1e6,
                                                      abs=0.5e-4 / 160 * 1e6 + 1e-4)
    assert out["api_equivalent"] == 0.1
    assert out["saving"] == pytest.approx(0.1 - out["cost"], abs=0.0001)
    assert out["replica_hours"] > 0 and 0 <= out["idle_share"] <= 1
    assert out["waste_cost"] == pytest.approx(out["cost"] * out["idle_share"], abs=0.01)
    by_service = {r["key"]: r for r in controller.json(
        "report", "cost", "--since", "1h", "--by", "service")["rows"]}
    assert by_service["priced"]["total_cost"] == pytest.approx(out["cost"], abs=0.01)
    assert by_service["priced"]["gpu_hours"] == pytest.approx(out["gpu_hours"], rel=1e-6)
    page = controller.root / "report.html"
    assert controller.cli("report", "html", str(page), "--since", "1h").returncode == 0
    assert ">priced<" in page.read_text().split("Cost by service", 1)[1]
    listed = controller.cli("serve", "list", "--all")
    assert listed.returncode == 0 and "priced" in listed.stdout


@pytest.mark.parametrize(("flags", "field"), [
    (["--replicas", "3:1"], "--replicas"),
    (["--gpus", "H999:1"], "--gpu-type"),  # refused by the controller: no such type
    (["--target-rps", "-2"], "--target-rps"),
    (["--health", "healthz"], "--health"),
    (["--scale-to-zero-after", "5m"], "--scale-to-zero-after"),  # with MIN 1
])
def test_a_bad_spec_exits_2_naming_the_flag_and_stores_nothing(
        controller: ControllerProcess, flags: list[str], field: str) -> None:
    r = controller.cli("serve", "bad", *flags, "--", *MODEL)
    assert r.returncode == 2, r.stderr
    assert field in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert controller.api("GET", "/v1/services/bad").status_code == 404


def test_a_spec_without_a_command_or_with_a_reserved_name_exits_2(
        controller: ControllerProcess) -> None:
    r = controller.cli("serve", "nocmd", "--gpus", "1")
    assert r.returncode == 2 and "command" in r.stderr, r.stderr
    r = controller.cli("serve", "Bad_Name", "--", "true")
    assert r.returncode == 2 and "NAME" in r.stderr, r.stderr
    r = controller.api("POST", "/v1/services", json={"name": "x", "replica": {"command": []}})
    assert r.status_code == 422 and r.json()["field"] == "COMMAND", r.text
    r = controller.api("POST", "/v1/services", json={"name": "list",
                                                     "replica": {"command": ["true"]}})
    assert r.status_code == 422 and r.json()["field"] == "NAME", r.text  # serve's own verb
    nested: Any = 1
    for _ in range(30):
        nested = {"a": [nested]}
    r = controller.api("POST", "/v1/services", json={
        "name": "deep", "replica": {"command": ["true"], "gpus": nested}})
    assert r.status_code == 422 and r.json()["field"] == "body", r.text  # the edge refuses it
    r = controller.api("POST", "/v1/services", json={
        "name": "shallow", "replica": {"command": ["true"], "gpus": {"a": [1]}}})
    assert r.status_code == 422 and r.json()["field"] == "--gpus", r.text
    every = controller.api("GET", "/v1/services", params={"all": "true"}).json()
    assert not {s["name"] for s in every} & {"x", "list", "deep", "shallow", "nocmd", "Bad_Name"}
