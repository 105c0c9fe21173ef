"""The HTTP client the CLI uses. It turns every failure into :class:`ApiError` with the exit
code the CLI should use: 2 for bad input, 1 for everything else. While the controller answers
503 (its database is down), it waits and tries again, with backoff, saying what it waits for."""

from __future__ import annotations

import ssl
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

# httpx's own command line (``httpx._main``: click, pygments, rich's syntax colouring) is
# imported by ``import httpx`` when those are installed, as they are here (typer and rich
# bring them): 40 ms of every CLI start for a tool the CLI never runs. httpx falls back
# without it when that import fails, which a None in ``sys.modules`` makes it do.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx  # noqa: E402

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


def verifier(ca_file: str | None) -> ssl.SSLContext | bool:
    """Verify the controller's certificate against ``ca_file`` (the cluster's own CA), else
    the system's CAs."""
    if not ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ApiError(f"ca_file: cannot read the CA file {ca_file}: {e}", 2) from None


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0,
                 wait_for_s: float = 120.0,
                 say: Callable[[str], None] = _to_stderr, ca_file: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.ca_file = ca_file
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # A plain-HTTP controller has no certificate to check (and redirects are not
        # followed): no context to build. Loading the system's CAs for one costs each command
        # about 30 ms of CPU, a tenth of its whole run.
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                 verify=verifier(ca_file) if self.secure else False)
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
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
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

    def _request_once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise ApiError(self._untrusted(str(e))) from e
            sent = not isinstance(e, httpx.ConnectError | httpx.ConnectTimeout)
            raise ApiError(f"cannot reach the controller at {self.url} ({type(e).__name__}); "
                           "is `clusterctl up` running?", unreachable=True, sent=sent) from e
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
                              ssl=context if isinstance(context, ssl.SSLContext) else None,
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
