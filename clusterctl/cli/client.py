"""The HTTP client the CLI uses. It turns every failure into :class:`ApiError` with the exit
code the CLI should use: 2 for bad input, 1 for everything else. While the controller answers
503 (its database is down), it waits and tries again, with backoff, saying what it waits for.

It speaks HTTP with the standard library's ``http.client``: a command makes a few requests on
one connection and exits, so a pooling client's start is all it would add (httpx and httpcore:
about 60 ms of every command's 100-170 ms, #33)."""

from __future__ import annotations

import http.client
import json as jsonlib
import select
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from tenacity import RetryCallState
    from websockets.sync.client import ClientConnection


class ApiError(Exception):
    def __init__(self, message: str, exit_code: int = 1, status: int | None = None,
                 unreachable: bool = False, sent: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status
        self.unreachable = unreachable
        """No answer at all (refused, reset, timed out): trying again later may work."""
        self.sent = sent
        """The request may have reached the controller before the answer was lost (a read
        timeout, a dropped connection), so what it did is not known."""


def _unavailable(e: BaseException) -> bool:
    return isinstance(e, ApiError) and e.status == 503


def verifier(ca_file: str | None) -> ssl.SSLContext:
    """Verify the controller's certificate against ``ca_file`` (the cluster's own CA), else
    the system's CAs."""
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as e:
        raise ApiError(f"ca_file: cannot read the CA file {ca_file}: {e}", 2) from None


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Response:
    """An answer, read whole: what the commands read of one."""

    def __init__(self, status_code: int, headers: Message, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        """Case-insensitive, as HTTP's are; ``get`` gives None for a missing one."""
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def query(params: Mapping[str, Any] | None) -> str:
    """The query string, as the API reads it: booleans as ``true``/``false``, None left out."""
    if not params:
        return ""
    pairs = [(k, str(v).lower() if isinstance(v, bool) else v)
             for k, v in params.items() if v is not None]
    return "?" + urlencode(pairs) if pairs else ""


def _stale(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection the controller has closed since (it reads as readable:
    the end of the stream): a request on it would be lost, so a new one is opened first."""
    return conn.sock is not None and bool(select.select([conn.sock], [], [], 0)[0])


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0,
                 wait_for_s: float = 120.0,
                 say: Callable[[str], None] = _to_stderr, ca_file: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.ca_file = ca_file
        self.timeout = timeout
        self.headers = {"User-Agent": "clusterctl", "Accept-Encoding": "identity",
                        **({"Authorization": f"Bearer {token}"} if token else {})}
        parts = urlsplit(self.url)
        self._host, self._port, self._prefix = parts.hostname or "", parts.port, parts.path
        self._conn: http.client.HTTPConnection | None = None
        self.wait_for_s = wait_for_s
        """How long to keep trying while the controller answers 503."""
        self.say = say
        self._warned = False
        self._warned_degraded = False
        self._warned_budget = False

    @property
    def secure(self) -> bool:
        return self.url.startswith("https://")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        try:
            return self._request_once(method, path, **kwargs)
        except ApiError as e:
            if not _unavailable(e):
                raise
            first = e
        # The controller answers 503: wait and try again. Imported here, on the rare path:
        # tenacity is a twentieth of the start of a command that never waits.
        from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

        self.say(f"waiting for the controller: {first}; trying again in 1s")

        def waiting(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            pause = state.next_action.sleep if state.next_action else 0
            self.say(f"waiting for the controller: {error}; trying again in {pause:.0f}s")

        retrying = Retrying(retry=retry_if_exception(_unavailable),
                            stop=stop_after_delay(self.wait_for_s),
                            wait=wait_exponential(multiplier=1, min=1, max=10),
                            before_sleep=waiting, reraise=True)
        time.sleep(1)
        return retrying(self._request_once, method, path, **kwargs)

    def _request_once(self, method: str, path: str, *, json: Any = None,
                      content: bytes | None = None, params: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None) -> Response:
        sending = {**self.headers, **(headers or {})}
        body = content
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sending["Content-Type"] = "application/json"
        response = self._exchange(method, self._prefix + path + query(params), body, sending)
        self._warn_degraded(response.headers.get("X-Clusterctl-Warning"))
        self._warn_budget(response.headers.get("X-Clusterctl-Budget"))
        if response.status_code < 400:
            self._warn_expiry(response.headers.get("X-Token-Expires"))
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code == 401:
            raise ApiError(f"not authorized ({detail}): set CLUSTERCTL_TOKEN or the token in "
                           "your config file", 1, 401)
        code = 2 if response.status_code in (400, 422) else 1
        raise ApiError(str(detail), code, response.status_code)

    def _exchange(self, method: str, target: str, body: bytes | None,
                  headers: dict[str, str]) -> Response:
        """One request and its whole answer on the command's connection, opened (or opened
        again) as needed. A failure before anything was sent is ``sent=False``: trying
        again cannot make a second job."""
        conn = self._conn
        if conn is None or _stale(conn):
            self.close()
            conn = self._conn = self._open()
        try:
            conn.request(method, target, body=body, headers=headers)
            answer = conn.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise self._unreachable(e, sent=True) from e
        if answer.will_close:
            self.close()
        return Response(answer.status, answer.headers, content)

    def _open(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.secure:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                               context=verifier(self.ca_file))
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            raise self._unreachable(e, sent=False) from e
        return conn

    def _unreachable(self, e: BaseException, sent: bool) -> ApiError:
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            return ApiError(self._untrusted(str(e)))
        return ApiError(f"cannot reach the controller at {self.url} ({type(e).__name__}); "
                        "is `clusterctl up` running?", unreachable=True, sent=sent)

    def _untrusted(self, error: str) -> str:
        """Why the controller's certificate was refused: its dates, or who vouches for it."""
        if "certificate has expired" in error or "certificate is not yet valid" in error:
            when = "has expired" if "expired" in error else "is not valid yet"
            return (f"the controller at {self.url} has a certificate that {when} (its CA is "
                    "not the problem): renew it, or check this machine's clock")
        return (f"the controller at {self.url} has a certificate this machine does not "
                "trust: set ca_file to the cluster's CA (in your config file or "
                "CLUSTERCTL_CA_FILE)")

    def _warn_degraded(self, text: str | None) -> None:
        """Once per command: the controller serves, but something it depends on is away."""
        if text and not self._warned_degraded:
            self._warned_degraded = True
            self.say(f"warning: {text}")

    def _warn_budget(self, text: str | None) -> None:
        """Once per command: a team of yours is at 80% of its budget or over it."""
        if text and not self._warned_budget:
            self._warned_budget = True
            self.say(f"budget: {text}")

    def _warn_expiry(self, expires: str | None) -> None:
        """Once per command, a week ahead: a token that stops working surprises no one."""
        if not expires or self._warned:
            return
        left = datetime.fromisoformat(expires) - datetime.now(timezone.utc)
        if left < timedelta(days=7):
            self._warned = True
            self.say(f"warning: your token expires in {left.days} day(s), on "
                     f"{expires[:16].replace('T', ' ')} UTC; ask an admin for a new one")

    def websocket(self, path: str) -> ClientConnection:
        """A WebSocket to the API (a job's terminal or port), with the same token and CA."""
        # Imported here: only `run`, `attach` and `port-forward` open one, and every other
        # command starts faster without the websockets package.
        from websockets.exceptions import ConnectionClosed, InvalidHandshake
        from websockets.sync.client import connect as ws_connect

        secure = self.secure
        url = ("wss://" if secure else "ws://") + self.url.split("://", 1)[1] + path
        context = verifier(self.ca_file) if secure else None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            return ws_connect(url, additional_headers=headers, open_timeout=10,
                              ssl=context,
                              max_size=None, compression=None)
        except ssl.SSLCertVerificationError as e:
            raise ApiError(self._untrusted(str(e))) from e
        except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as e:
            # ConnectionClosed: a controller that went (or was still starting) while the
            # handshake ran; as unreachable as a refused connection, and retried alike.
            raise ApiError(f"cannot reach the controller at {self.url} ({type(e).__name__}); "
                           "is `clusterctl up` running?", unreachable=True) from e

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- endpoints ----------------------------------------------------------------------------

    def submit(self, body: dict[str, Any], tries: int = 3) -> dict[str, Any]:
        """One submit, whatever the network does: each try carries the same
        ``Idempotency-Key``, so a try whose answer was lost and the next one make one job.
        When no try is answered and one may have arrived, the error says so."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        sent = False
        for attempt in range(tries):
            try:
                return self.json("POST", "/v1/jobs", json=body, headers=headers)
            except ApiError as e:
                sent = sent or e.sent
                if not e.unreachable or attempt == tries - 1:
                    if sent:
                        raise ApiError(f"{e}\nthe submit's outcome is unknown: the controller "
                                       "may have accepted it (`clusterctl jobs` shows); "
                                       f"Idempotency-Key {headers['Idempotency-Key']}",
                                       e.exit_code, e.status, True, True) from e
                    raise
                self.say(f"no answer from the controller ({e}); trying the submit again "
                         "(with the same Idempotency-Key: it makes one job)")
        raise AssertionError("unreachable")

    def upload_package(self, data: bytes) -> str:
        return self.json("POST", "/v1/packages", content=data,
                         headers={"Content-Type": "application/zip"})["sha256"]

    def jobs(self, *, all: bool = False, user: str | None = None,
             state: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        return self.jobs_page(all=all, user=user, state=state, **filters)[0]

    def jobs_page(self, *, all: bool = False, user: str | None = None,
                  state: str | None = None, **filters: Any) -> tuple[list[dict[str, Any]], int]:
        """The jobs that match (``team``, ``name``, ``since``, ``array``, ``limit``,
        ``before``) and how many match in all."""
        params: dict[str, Any] = {"all": all}
        if user:
            params["owner"] = user
        if state:
            params["state"] = state
        params.update({k: v for k, v in filters.items() if v is not None})
        r = self.request("GET", "/v1/jobs", params=params)
        rows = r.json()
        return rows, int(r.headers.get("X-Total-Count", len(rows)))

    def job(self, job_id: int) -> dict[str, Any]:
        return self.json("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: int) -> dict[str, Any]:
        return self.json("POST", f"/v1/jobs/{job_id}/cancel")

    def logs(self, job_id: int, offset: int, rank: int = 0) -> tuple[bytes, int, str]:
        data, offset, state, _ = self.log_chunk(job_id, offset, rank)
        return data, offset, state

    def log_chunk(self, job_id: int, offset: int, rank: int = 0, attempt: int | None = None
                  ) -> tuple[bytes, int, str, int]:
        """The log of ``attempt`` (None: the latest) from ``offset``: (data, next offset, the
        job's state, its latest attempt)."""
        params: dict[str, Any] = {"offset": offset, "rank": rank}
        if attempt is not None:
            params["attempt"] = attempt
        r = self.request("GET", f"/v1/jobs/{job_id}/logs", params=params)
        latest = int(r.headers.get("X-Latest-Attempt", r.headers.get("X-Attempt", "1")))
        return (r.content, int(r.headers["X-Next-Offset"]), r.headers["X-Job-State"], latest)

    def nodes(self) -> list[dict[str, Any]]:
        return self.json("GET", "/v1/nodes")

    def drain(self, node: str, reason: str | None) -> dict[str, Any]:
        return self.json("POST", f"/v1/nodes/{node}/drain", json={"reason": reason})

    def undrain(self, node: str) -> dict[str, Any]:
        return self.json("POST", f"/v1/nodes/{node}/undrain")

    def node_token(self, node: str) -> dict[str, Any]:
        return self.json("POST", f"/v1/nodes/{node}/token")

    def whoami(self) -> dict[str, Any]:
        return self.json("GET", "/v1/whoami")
