"""Settings: command-line flags, then ``CLUSTERCTL_*`` environment variables, then the config
file (``~/.config/clusterctl/config.toml``, or the file ``CLUSTERCTL_CONFIG`` names).

Resolved once per command into a frozen value, so nothing reads the environment at import time.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from clusterctl.parsing import BadInput, parse_quotas

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PORT = 8765


@dataclass(frozen=True)
class Settings:
    url: str = f"http://127.0.0.1:{DEFAULT_PORT}"
    """Where the CLI finds the controller."""
    token: str | None = None
    data_dir: str = ""
    db_url: str = ""
    ray_address: str | None = None
    ray_token_file: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    kill_grace_s: float = 30.0
    max_package_mb: float = 100.0
    sample_retention_s: float = 14 * 86400.0
    """How long raw GPU samples are kept (rollups keep the figures after that)."""
    minute_rollup_retention_s: float = 90 * 86400.0
    """How long 1-minute rollups are kept; hourly rollups are kept for good."""
    waste_threshold: float = 0.10
    """A held GPU under this utilization counts as idle (waste report, flags in `jobs`)."""
    quotas: dict[str, float] = field(default_factory=dict)
    """Guaranteed GPUs per team (``vision=32,nlp=16`` or a ``[quotas]`` table); teams without
    one share what is left equally."""
    user_gpu_limit: int | None = None
    """Most GPUs one user's running jobs may hold (unset or 0: no limit)."""
    preempt: bool = True
    """Reclaim borrowed GPUs by preemption for a team under its quota."""
    preempt_grace_s: float = 30.0
    """Between SIGTERM and SIGKILL for a preempted job (it sees ``CLUSTERCTL_PREEMPT_GRACE``)."""
    config_path: str = ""

    def with_overrides(self, **values: Any) -> Settings:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


_INT = {"port"}
_FLOAT = {"kill_grace_s", "max_package_mb", "sample_retention_s", "minute_rollup_retention_s",
          "waste_threshold", "preempt_grace_s"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def default_config_path(env: Mapping[str, str]) -> Path:
    if env.get("CLUSTERCTL_CONFIG"):
        return Path(env["CLUSTERCTL_CONFIG"])
    return Path(platformdirs.user_config_dir("clusterctl")) / "config.toml"


def _coerce(key: str, value: Any) -> Any:
    try:
        if key in _INT:
            return int(value)
        if key in _FLOAT:
            return float(value)
    except ValueError:
        kind = "a whole number" if key in _INT else "a number"
        raise BadInput(key, f"{value!r} is not {kind}") from None
    if key == "quotas":
        return _quotas(value)
    if key == "user_gpu_limit":
        if value in (None, "", 0, "0", "none"):
            return None
        if isinstance(value, bool) or not str(value).isdigit():
            raise BadInput(key, f"{value!r} must be a whole number of GPUs (0: no limit)")
        return int(value)
    if key == "preempt":
        if isinstance(value, bool):
            return value
        if str(value).lower() not in _TRUE | _FALSE:
            raise BadInput(key, f"{value!r} must be true or false")
        return str(value).lower() in _TRUE
    return str(value)


def _quotas(value: Any) -> dict[str, float]:
    pairs = ([f"{k}={v}" for k, v in value.items()] if isinstance(value, dict)
             else [p for p in str(value).replace(" ", "").split(",") if p])
    try:
        return parse_quotas(pairs)
    except BadInput as e:
        raise BadInput("quotas", e.message) from None


def load(env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    env = os.environ if env is None else env
    config_path = default_config_path(env)
    values: dict[str, Any] = {}
    if config_path.exists():
        with open(config_path, "rb") as f:
            values.update(tomllib.load(f))
    known = {f.name for f in fields(Settings)}
    for name in known:
        if f"CLUSTERCTL_{name.upper()}" in env:
            values[name] = env[f"CLUSTERCTL_{name.upper()}"]
    values.update({k: v for k, v in flags.items() if v is not None})
    values = {k: _coerce(k, v) for k, v in values.items() if k in known}
    values["config_path"] = str(config_path)
    data_dir = values.get("data_dir") or platformdirs.user_data_dir("clusterctl")
    values["data_dir"] = str(data_dir)
    if not values.get("db_url"):
        values["db_url"] = f"sqlite:///{Path(data_dir) / 'clusterctl.db'}"
    if "url" not in values and ("port" in values or "host" in values):
        values["url"] = api_url(values.get("host", "127.0.0.1"), values.get("port", DEFAULT_PORT))
    return Settings(**values)


def api_url(host: str, port: int) -> str:
    """The URL a local client uses to reach a controller listening on ``host:port``."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{port}"


def write_client_config(path: Path, url: str, token: str) -> None:
    """The CLI's config file: the controller URL and the user's token, readable by its owner
    only (mode 0600, set before the token is written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] = {}
    if path.exists():
        with open(path, "rb") as f:
            existing = tomllib.load(f)
    existing.update({"url": url, "token": token})
    body = "".join(f"{k} = {_toml_value(v)}\n" for k, v in existing.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)


def _toml_value(v: Any) -> str:
    """Strings, numbers, booleans and flat tables (``quotas``), which is all settings hold."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}"
                               for k, x in v.items()) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)
