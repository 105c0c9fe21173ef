"""Settings: command-line flags, then ``CLUSTERCTL_*`` environment variables, then the config
file (``~/.config/clusterctl/config.toml``, or the file ``CLUSTERCTL_CONFIG`` names).

pydantic-settings does the layering and the types; :func:`load` resolves them once per command
into a frozen value, so nothing reads the environment at import time. ``Settings(...)`` alone
is those values and the defaults, nothing else (the demo's isolated installation).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
import tomli_w
from pydantic import (
    NonNegativeFloat,
    PositiveFloat,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from clusterctl.client_settings import DEFAULT_PORT, PREFIX, api_url, default_config_path
from clusterctl.notifications import parse_webhook
from clusterctl.parsing import BadInput, parse_idle_timeouts, parse_unix_user
from clusterctl.scheduler.quotas import TypeQuotas, as_pairs, parse_quotas, totals

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


_WORLD: ContextVar[tuple[Mapping[str, str], Path] | None] = ContextVar("settings_world",
                                                                        default=None)
"""The environment and config file :func:`load` layers under the flags; None outside it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    url: str = f"http://127.0.0.1:{DEFAULT_PORT}"
    """Where the CLI finds the controller."""
    token: str | None = None
    data_dir: str = ""
    db_url: str = ""
    ray_address: str | None = None
    ray_token_file: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    metrics_host: str = "127.0.0.1"
    """Where the controller's Prometheus /metrics listens: its own listener, for the cluster
    network, apart from the API people use (the deployment binds it to the private address)."""
    metrics_port: int = DEFAULT_PORT + 1
    kill_grace_s: float = 30.0
    max_package_mb: float = 100.0
    max_report_days: int = 400
    """The longest period a report may cover: a report's work and answer grow with it."""
    sample_retention_s: float = 14 * 86400.0
    """How long raw GPU samples are kept (rollups keep the figures after that)."""
    minute_rollup_retention_s: float = 90 * 86400.0
    """How long 1-minute rollups are kept; hourly rollups are kept for good."""
    log_retention_s: float = 90 * 86400.0
    """How long a job's log is kept after it ended."""
    package_retention_s: float = 7 * 86400.0
    """How long a shipped working directory is kept once no job that may still run uses it."""
    waste_threshold: float = 0.10
    """A held GPU under this utilization counts as idle (waste report, flags in `jobs`)."""
    quotas: Annotated[dict[str, float | dict[str, float]], NoDecode] = {}
    """Guaranteed GPUs per team, over all types or per type (``vision=H100:8+A100:16,nlp=24``,
    or a ``[quotas]`` table with ``nlp = 24`` and ``[quotas.vision] H100 = 8``); teams
    without one share what is left equally."""
    idle_timeouts: Annotated[dict[str, int], NoDecode] = {}
    """How long a team's batch jobs' GPUs may all stay idle (under ``waste_threshold``) before
    the job is ended: ``vision=2h,*=4h`` or an ``[idle_timeouts]`` table (``*``: every team
    without its own). None by default; a job's ``--idle-timeout`` wins."""
    interactive_idle_timeout_s: float = 3600.0
    """The idle timeout of an interactive job (``clusterctl run``) whose team has none: a shell
    or notebook left open holds GPUs that nobody uses (0: none)."""
    attach_grace_s: float = 300.0
    """How long an interactive job waits for its user to come back (``clusterctl attach``)
    after the connection drops, before it is hung up and CANCELLED."""
    service_scale_down_s: float = 60.0
    """How long a model service must want fewer replicas before it gets fewer (load comes in
    bursts, and a replica started again pays a cold start)."""
    notify_url: str = ""
    """The cluster's webhook: every job failure, timeout and loss, and drained nodes (for the
    admins' channel). Users and teams set their own with ``clusterctl notify``."""
    notify_private_ok: bool = False
    """Whether users' and teams' webhooks may point at loopback, link-local and cloud metadata
    addresses (refused unless an admin allows them: the controller POSTs from inside)."""
    fair_share_by_rate: bool = False
    """Fair share counts a GPU-hour at its node's capacity rate from the hardware inventory,
    relative to the fleet's mean: on a mixed fleet an H100-hour weighs more than a 4090-hour.
    Off: every GPU-hour alike."""
    user_gpu_limit: int | None = None
    """Most GPUs one user's running jobs may hold (unset or 0: no limit)."""
    user_max_priority: int = 0
    """The highest ``--priority`` a user who is not an admin may give (lowering is free)."""
    preempt: bool = True
    """Reclaim borrowed GPUs by preemption for a team under its quota."""
    preempt_grace_s: float = 30.0
    """Between SIGTERM and SIGKILL for a preempted job (it sees ``CLUSTERCTL_PREEMPT_GRACE``)."""
    scheduling_policy: Literal["default", "guarded"] = "default"
    """``guarded``: the former default (until 2026-12), whose oldest job pending over a day goes
    first; shorter jobs wait longer under it (docs/scheduling.md)."""
    starve_after_s: PositiveFloat | None = None
    """The oldest job pending this long goes first, with a reservation, whatever its team's
    share and quota (``guarded``: a day). Unset: no such guard, so a job larger than its team's
    quota waits while the other teams use theirs."""
    preempt_min_run_s: NonNegativeFloat = 600.0
    """A job is not preempted (to give a team its quota back) before it has run this long in
    its attempt: its start and restore are not thrown away at once, and GPUs do not go back
    and forth. The quota's owner waits at most this long. 0: preempt at once."""
    demote_after_gpu_h: list[PositiveFloat] | None = None
    """Attained service for jobs without a time limit: such a job ranks as a short one until
    it has had the first of these GPU-hours over all its attempts, then as a four-hour one
    until the second, then as the longest; a team's job that does not fit preempts the team's
    own jobs without a limit that have had more (demotes them). Unset: ``[2, 16]`` (none
    under the ``guarded`` policy); ``[]``: off (docs/scheduling.md)."""
    promote_after_slowdown: NonNegativeFloat | None = None
    """With attained service: a job demoted past the last threshold ranks as one past only the
    first again once the time since its submission is this many times the time it has run, so
    that new short jobs do not overtake it forever. Unset or 0: never (the default; it cost
    more than it gave on most traces, docs/scheduling.md)."""
    tls_cert: str = ""
    """The controller's certificate (PEM, with its chain); with ``tls_key``, the API is HTTPS."""
    tls_key: str = ""
    ca_file: str = ""
    """The CA the CLI (and agents) verify the controller's certificate against (empty: the
    system's CAs)."""
    allow_plain_http: bool = False
    """Serve plain HTTP on an address other than loopback (tokens cross the network in clear
    text): for a private network an admin vouches for."""
    run_as_submitter: bool = True
    """Each job runs as the Unix account of its submitter (``admin user add --unix-user``; the
    user's own name by default) on nodes whose runner may switch accounts (Ray run by root, or
    with CAP_SETUID and CAP_SETGID). false: every job runs as the account that runs Ray (one
    person's machine; what ``up`` started by an ordinary user does anyway)."""
    job_account: str = ""
    """The account for jobs whose submitter has no Unix account on the node (one unprivileged
    account for everyone; never root or the account that runs Ray). Empty: such a job fails at
    start, saying so."""
    config_path: str = ""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        world = _WORLD.get()
        if world is None:
            return (init_settings,)
        env, path = world
        return (init_settings, _Environment(settings_cls, env),
                TomlConfigSettingsSource(settings_cls, toml_file=path))

    @field_validator("quotas", mode="before")
    @classmethod
    def _quotas(cls, value: Any) -> dict[str, float | dict[str, float]]:
        try:
            bare, typed = parse_quotas(_pairs(value))
        except BadInput as e:
            raise ValueError(e.message) from None
        return {**bare, **typed}

    @property
    def type_quotas(self) -> TypeQuotas:
        """The teams whose quota is per GPU type."""
        return {t: dict(q) for t, q in self.quotas.items() if isinstance(q, dict)}

    @property
    def team_quotas(self) -> dict[str, float]:
        """Each team's quota over all types (a typed team's: the sum of its types')."""
        bare = {t: q for t, q in self.quotas.items() if not isinstance(q, dict)}
        return totals(bare, self.type_quotas)

    @field_validator("idle_timeouts", mode="before")
    @classmethod
    def _idle_timeouts(cls, value: Any) -> dict[str, int]:
        try:
            return parse_idle_timeouts(_pairs(value))
        except BadInput as e:
            raise ValueError(e.message) from None

    @field_validator("starve_after_s", mode="before")
    @classmethod
    def _starve_after_s(cls, value: Any) -> Any:
        return None if value in (None, "", "none") else value

    @field_validator("demote_after_gpu_h")
    @classmethod
    def _demote_after_gpu_h(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"{value} must rise: GPU-hours from the first threshold to the "
                             "last, e.g. [2, 16] ([] turns attained service off)")
        return value

    @field_validator("user_gpu_limit", mode="before")
    @classmethod
    def _user_gpu_limit(cls, value: Any) -> int | None:
        if value in (None, "", 0, "0", "none"):
            return None
        if isinstance(value, bool) or not (str(value).isascii() and str(value).isdigit()):
            raise ValueError(f"{value!r} must be a whole number of GPUs (0: no limit)")
        return int(value)

    @field_validator("job_account", "notify_url", mode="before")
    @classmethod
    def _optional_text(cls, value: Any, info: ValidationInfo) -> str:
        """Empty, or what the field's parser accepts."""
        if value in (None, ""):
            return ""
        field = info.field_name or ""
        parse = {"job_account": parse_unix_user, "notify_url": parse_webhook}[field]
        try:
            return parse(str(value), field)
        except BadInput as e:
            raise ValueError(e.message) from None

    @field_validator("preempt", "run_as_submitter", "allow_plain_http", "fair_share_by_rate",
                     mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"{value!r} must be true or false")
        return text in ("1", "true", "yes", "on")

    @model_validator(mode="before")
    @classmethod
    def _derived(cls, data: Any) -> Any:
        """Where the data lives unless set, and the URL a local CLI uses for a ``--port``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data_dir = data.get("data_dir") or platformdirs.user_data_dir("clusterctl")
        data["data_dir"] = str(data_dir)
        if not data.get("db_url"):
            data["db_url"] = f"sqlite:///{Path(data_dir) / 'clusterctl.db'}"
        if "url" not in data and ("port" in data or "host" in data):
            data["url"] = api_url(data.get("host", "127.0.0.1"), data.get("port", DEFAULT_PORT),
                                  bool(data.get("tls_cert")))
        return data


def _pairs(value: Any) -> list[str]:
    """``KEY=VALUE`` items of a setting given as a TOML table or as ``a=1,b=2``."""
    if isinstance(value, dict):
        return as_pairs(value)
    return [p for p in str(value).replace(" ", "").split(",") if p]


class _Environment(EnvSettingsSource):
    """``CLUSTERCTL_*`` variables from the mapping :func:`load` was given (``os.environ``
    unless a caller injects another), as pydantic-settings' dotenv source reads its file."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


@contextmanager
def _layered(env: Mapping[str, str], path: Path) -> Iterator[None]:
    token = _WORLD.set((env, path))
    try:
        yield
    finally:
        _WORLD.reset(token)


def load(env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """The settings of this command: ``flags`` (None: not given) over the environment over the
    config file. A bad value is a :class:`BadInput` naming the setting."""
    env = os.environ if env is None else env
    path = default_config_path(env)
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        with _layered(env, path):
            return Settings(**given, config_path=str(path))
    except ValidationError as e:
        raise _bad_input(e) from None
    except tomllib.TOMLDecodeError as e:
        raise BadInput(str(path), f"is not valid TOML: {e}") from None


def _bad_input(e: ValidationError) -> BadInput:
    """The first problem as one line naming the setting, in the words the CLI always used."""
    first = e.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else "settings"
    value, kind = first.get("input"), first["type"]
    if kind.startswith("int"):
        return BadInput(key, f"{value!r} is not a whole number")
    if kind.startswith("float"):
        return BadInput(key, f"{value!r} is not a number")
    return BadInput(key, str(first["msg"]).removeprefix("Value error, "))


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_transport(s: Settings) -> None:
    """TLS needs both files, readable; plain HTTP stays on loopback unless an admin allows
    it. A :class:`BadInput` naming the flag otherwise."""
    if bool(s.tls_cert) != bool(s.tls_key):
        missing = "--tls-key" if s.tls_cert else "--tls-cert"
        raise BadInput(missing, "--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", s.tls_cert), ("--tls-key", s.tls_key)):
        if path and not os.access(path, os.R_OK):
            raise BadInput(flag, f"{path} is not a readable file")
    if not s.tls_cert and s.host not in LOOPBACK and not s.allow_plain_http:
        raise BadInput("--host", f"plain HTTP on {s.host} would send tokens in clear text: "
                       "give --tls-cert and --tls-key, or set allow_plain_http = true")


def write_client_config(path: Path, url: str, token: str, ca_file: str | None = None
                        ) -> None:
    """The CLI's config file: the controller URL and the user's token, readable by its owner
    only (mode 0600, set before the token is written); other settings in it are kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] = {}
    if path.exists():
        with open(path, "rb") as f:
            existing = tomllib.load(f)
    existing.update({"url": url, "token": token})
    if ca_file:
        existing["ca_file"] = ca_file
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(existing, f)
