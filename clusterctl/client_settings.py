"""The few settings a CLI command needs to reach the controller (its URL, the user's token, the
CA it trusts, the largest directory it ships), read as ``settings.py`` reads them: a
``CLUSTERCTL_*`` variable over the config file (``~/.config/clusterctl/config.toml``, or the
file ``CLUSTERCTL_CONFIG`` names), and the URL of a ``port``/``host`` when no ``url`` is set.

Why not ``settings.load()``: importing pydantic-settings is about 50 ms of a command's 300 ms
start (#33), and ``jobs`` or ``show`` need four values, not the controller's fifty.
``tests/test_settings.py`` checks that both read the same values.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clusterctl.parsing import BadInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PORT = 8765
PREFIX = "CLUSTERCTL_"


@dataclass(frozen=True)
class ClientSettings:
    url: str
    token: str | None
    ca_file: str
    max_package_mb: float


def default_config_path(env: Mapping[str, str]) -> Path:
    if env.get("CLUSTERCTL_CONFIG"):
        return Path(env["CLUSTERCTL_CONFIG"])
    import platformdirs  # here: a config path given in the environment needs none of it

    return Path(platformdirs.user_config_dir("clusterctl")) / "config.toml"


def api_url(host: str, port: int, tls: bool = False) -> str:
    """The URL a local client uses to reach a controller listening on ``host:port``."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


def load_client(env: Mapping[str, str] | None = None) -> ClientSettings:
    """The CLI's settings from the environment over the config file."""
    env = os.environ if env is None else env
    path = default_config_path(env)
    try:
        with open(path, "rb") as f:
            file: dict[str, Any] = tomllib.load(f)
    except FileNotFoundError:
        file = {}
    except tomllib.TOMLDecodeError as e:
        raise BadInput(str(path), f"is not valid TOML: {e}") from None
    given = {k[len(PREFIX):].lower(): v for k, v in env.items()
             if k.upper().startswith(PREFIX)}

    def get(key: str) -> Any:
        return given[key] if key in given else file.get(key)

    url = get("url")
    if url is None and (get("port") is not None or get("host") is not None):
        url = api_url(str(get("host") or "127.0.0.1"), _number(get("port"), "port", int),
                      bool(get("tls_cert")))
    token = get("token")
    return ClientSettings(
        url=_url(url) if url is not None else f"http://127.0.0.1:{DEFAULT_PORT}",
        token=None if token is None else str(token), ca_file=str(get("ca_file") or ""),
        max_package_mb=_number(get("max_package_mb"), "max_package_mb", float, 100.0))


def _url(value: Any) -> str:
    """The controller's address: ``http://`` or ``https://``, a host, a port if any (a path
    too, behind a proxy). Said here, once: else ``localhost:8765`` fails as an unreachable
    host named ``localhost:8765``."""
    text = str(value)
    parts = urlsplit(text)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise BadInput("url", f"{text!r} is not an http:// or https:// address "
                              f"(e.g. http://HOST:{DEFAULT_PORT})")
    return text


def _number(value: Any, key: str, kind: type, default: float = DEFAULT_PORT) -> Any:
    if value is None:
        return kind(default)
    try:
        return kind(value)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise BadInput(key, f"{value!r} is not {what}") from None
