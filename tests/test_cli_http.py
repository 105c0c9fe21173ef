"""The CLI's HTTP client on the standard library (#33): what httpx did for it and a command
relies on, against real sockets."""

from __future__ import annotations

import socket
import threading

from raw_http import Server, answer_json, read_request

from clusterctl.cli.client import Client, query


class AnswerThenHangUp(Server):
    """A real HTTP server that answers each request on a kept-alive connection (no
    ``Connection: close``) and then closes that connection, as uvicorn does to a connection
    idle past its keep-alive timeout (5 s) while a command such as ``wait`` sleeps between
    polls. It records each request's first line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.hung_up = threading.Event()
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.lines.append(read_request(conn)[0])
        answer_json(conn, "200 OK", {"n": len(self.lines)}, close=False)

    def served(self) -> None:
        self.hung_up.set()


def test_a_kept_alive_connection_the_controller_closed_is_opened_again() -> None:
    server = AnswerThenHangUp()
    client = Client(f"http://127.0.0.1:{server.port}", "t", say=lambda _: None)
    assert client.json("GET", "/v1/whoami") == {"n": 1}
    assert server.hung_up.wait(5)
    # The connection the client kept is closed at the other end: the next request must not
    # be lost on it ("cannot reach the controller" in the middle of a `wait`).
    assert client.json("GET", "/v1/jobs/1", params={"all": True}) == {"n": 2}
    assert server.lines == ["GET /v1/whoami HTTP/1.1", "GET /v1/jobs/1?all=true HTTP/1.1"]
    server.close()


def test_a_query_says_booleans_as_the_api_reads_them_and_leaves_out_none() -> None:
    assert query({"all": False, "owner": "ana b", "since": None, "limit": 5}) == (
        "?all=false&owner=ana+b&limit=5")
    assert query({"since": None}) == "" and query(None) == ""
