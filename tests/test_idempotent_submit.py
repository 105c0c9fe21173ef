"""#31 item 8: a submit whose answer was lost, tried again, makes one job. With the controller
stopped for 90 s, ``submit`` said "cannot reach the controller (ReadTimeout)", and the job
ran once the controller resumed: a user who retried got two.

The API keeps each submit's ``Idempotency-Key`` with the job it made (SQLite and PostgreSQL
through ``tests/test_store.py``'s migrations; here on a real controller); the CLI sends one
with every submit and reuses it when it tries again (against a real HTTP server that drops
the first answer)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from harness import ControllerProcess
from raw_http import Server, answer_json, read_request

from clusterctl.cli.client import ApiError, Client

BODY = {"command": ["true"], "gpus": 1}


def _post(c: ControllerProcess, key: str | None, token: str | None = None,
          body: dict[str, Any] = BODY) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token or c.token()}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"http://127.0.0.1:{c.port}/v1/jobs", json=body, headers=headers,
                      timeout=30)


@pytest.mark.ray
def test_a_repeated_key_returns_the_first_job_and_makes_none(controller: ControllerProcess) -> None:
    first = _post(controller, "key-1")
    assert first.status_code == 201, first.text
    again = _post(controller, "key-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    array = _post(controller, "key-2", body={**BODY, "array": "0-2"})
    replayed = _post(controller, "key-2", body={**BODY, "array": "0-2"})
    assert replayed.json()["array_job_ids"] == array.json()["array_job_ids"]
    assert len(array.json()["array_job_ids"]) == 3
    with ThreadPoolExecutor(8) as pool:  # eight tries at once: one job
        ids = {r.json()["id"] for r in pool.map(lambda _: _post(controller, "key-3"),
                                                range(8))}
    assert len(ids) == 1
    other = controller.cli("admin", "user", "add", "idem-other", "--team", "t").stdout.strip()
    theirs = _post(controller, "key-1", token=other)  # a key is its user's own
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    bad = _post(controller, "not a key")
    assert bad.status_code == 422 and bad.json()["field"] == "Idempotency-Key"
    jobs = controller.json("jobs", "--all")
    assert len(jobs) == 1 + 3 + 1 + 1, jobs  # key-1, key-2's array, key-3, the other's


class DropFirst(Server):
    """A real HTTP server that reads each request and drops the first without answering, as
    a controller stopped past the client's timeout looks to it; it answers the others 201."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.answer: dict[str, Any] = {"id": 7, "state": "PENDING"}
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        _, headers, _ = read_request(conn)
        self.keys.append(headers.get("idempotency-key", ""))
        if len(self.keys) > 1:  # the first answer is lost
            answer_json(conn, "201 Created", self.answer)


def test_the_cli_tries_a_lost_submit_again_with_the_same_key() -> None:
    server = DropFirst()
    said: list[str] = []
    client = Client(f"http://127.0.0.1:{server.port}", "t", say=said.append)
    assert client.submit(dict(BODY)) == server.answer
    assert len(server.keys) == 2 and server.keys[0] == server.keys[1] and server.keys[0]
    assert any("same Idempotency-Key" in s for s in said), said
    again = Client(f"http://127.0.0.1:{server.port}", "t", say=said.append)
    again.submit(dict(BODY))
    assert server.keys[2] != server.keys[0]  # a new submit, a new key
    server.close()


def test_a_submit_never_answered_says_its_outcome_is_unknown() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, reads, never answers
    client = Client(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", timeout=0.5,
                    say=lambda _: None)
    with pytest.raises(ApiError) as e:
        client.submit(dict(BODY))
    assert "outcome is unknown" in str(e.value) and "Idempotency-Key" in str(e.value)
    silent.close()
