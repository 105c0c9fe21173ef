"""What every command shares: settings, the client, error handling and output helpers."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from clusterctl.cli.client import ApiError, Client
from clusterctl.client_settings import load_client
from clusterctl.parsing import BadInput

if TYPE_CHECKING:
    from rich.console import Console

    console: Console
    err_console: Console


@functools.cache
def _consoles() -> dict[str, Console]:
    from rich.console import Console

    # Piped output (scripts, tests, `| less`) is not cut to 80 columns: tables keep every
    # column.
    return {"console": Console(highlight=False, width=None if sys.stdout.isatty()
                               or os.environ.get("COLUMNS") else 200),
            "err_console": Console(stderr=True, highlight=False)}


def __getattr__(name: str) -> Any:
    """``console`` and ``err_console``, made when a command first prints through one: rich
    is a fifth of the start of a command that never does (``submit`` prints an id)."""
    if name in ("console", "err_console"):
        return _consoles()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Bad input → one line and exit 2; a failed operation → one line and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BadInput as e:
            raise fail(str(e), 2) from None
        except ApiError as e:
            raise fail(str(e), e.exit_code) from None

    return wrapper  # type: ignore[return-value]


def client() -> Client:
    s = load_client()
    return Client(s.url, s.token, ca_file=s.ca_file or None)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def seconds_between(start: str | None, end: str | None) -> float | None:
    a = parse_time(start)
    if a is None:
        return None
    b = parse_time(end) or datetime.now(timezone.utc)
    return (b - a).total_seconds()


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / (1 << 30):.1f}"


def watts(w: float | None) -> str:
    return "-" if w is None else f"{w:.0f} W"


def local_time(value: str | None) -> str:
    t = parse_time(value)
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S") if t else "-"
