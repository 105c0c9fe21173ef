"""Parsing of what people type: durations, GPU counts, environment pairs, job ids.

Pure functions. Each raises :class:`BadInput` with the field it is about and a sentence that says
what is allowed, so the CLI and the API can both print one line and exit 2 / answer 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

MAX_GPUS_PER_NODE = 1024
MAX_NODES = 4096
MAX_TIME_LIMIT_S = 365 * 86400
MAX_JOB_ID = 2**31 - 1
"""Job ids are the database's 32-bit integer keys (SQLite and PostgreSQL alike)."""


MAX_MESSAGE = 300


@dataclass
class BadInput(ValueError):
    field: str
    message: str

    def __post_init__(self) -> None:
        # Messages quote what was typed: a 50 MB value still makes a one-line answer.
        if len(self.message) > MAX_MESSAGE:
            half = MAX_MESSAGE // 2
            self.message = f"{self.message[:half]}…{self.message[-half:]}"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Bounded digit counts: a number past them is longer than any limit, and 400 nines would
# overflow the arithmetic.
_UNIT_RE = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,9})?)\s*([smhd]?)\s*$", re.IGNORECASE)
_SLURM_CLOCK = re.compile(r"^\s*(?:(\d{1,6})-(\d{1,9})(?::(\d{1,2}))?(?::(\d{1,2}))?"
                          r"|(\d{1,9}):(\d{1,2})(?::(\d{1,2}))?)\s*$")

DURATION_HELP = "a positive duration such as 90m, 2h, 1d, 45s or 1:30:00"


def parse_duration(text: str, field: str = "--time-limit") -> int:
    """Seconds in ``text``: ``90m``, ``2h``, ``1.5h``, ``1d``, ``3600`` (seconds), ``1:30:00``
    (H:MM:SS), ``90:00`` (M:SS) or Slurm's ``2-12:00:00`` (D-H:MM:SS)."""
    m = _UNIT_RE.match(text)
    if m:
        seconds: float = float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
    else:
        try:
            clock = slurm_clock_s(text)
        except ValueError:
            clock = None
        if clock is None:
            raise BadInput(field, f"{text!r} is not {DURATION_HELP}")
        seconds = clock
    seconds_int = round(seconds)
    if seconds_int <= 0:
        raise BadInput(field, f"{text!r} is not {DURATION_HELP}")
    if seconds_int > MAX_TIME_LIMIT_S:
        raise BadInput(field, f"{text!r} is longer than the maximum of 365d")
    return seconds_int


def slurm_clock_s(text: str) -> int | None:
    """Seconds in Slurm's clock forms: ``[D-]HH:MM:SS``, ``MM:SS``, ``D-HH`` and ``D-HH:MM``
    (a leading count of minutes may pass 59: ``90:00``); None for text of another form, and
    ``ValueError`` for minutes or seconds past 59 after hours. Slurm's bare ``MM`` is not
    here: ``--time-limit 90`` is seconds, sacct's ``Timelimit`` 90 minutes."""
    m = _SLURM_CLOCK.match(text)
    if not m:
        return None
    days, day_hours, day_minutes, day_seconds, a, b, c = m.groups()
    if days is not None:
        d, h, mi, sec = int(days), int(day_hours), int(day_minutes or 0), int(day_seconds or 0)
        hours_given = True
    elif c is not None:
        d, h, mi, sec, hours_given = 0, int(a), int(b), int(c), True
    else:
        d, h, mi, sec, hours_given = 0, 0, int(a), int(b), False
    if sec > 59 or (hours_given and mi > 59):
        raise ValueError(f"{text!r}: minutes and seconds run to 59")
    return d * 86400 + h * 3600 + mi * 60 + sec


def format_duration(seconds: float | None) -> str:
    """Short human form, e.g. ``1h02m``, ``45s``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def parse_count(text: str | int, field: str, maximum: int) -> int:
    """A whole number from 1 to ``maximum``; ``1.5``, ``abc``, ``0`` and ``-1`` are refused."""
    raw = str(text).strip()
    if not re.fullmatch(r"\+?[0-9]{1,18}", raw):
        raise BadInput(field, f"{text!r} is not a whole number from 1 to {maximum}")
    value = int(raw)
    if not 1 <= value <= maximum:
        raise BadInput(field, f"{value} is not a whole number from 1 to {maximum}")
    return value


def parse_gpus(text: str | int) -> int:
    return parse_count(text, "--gpus", MAX_GPUS_PER_NODE)


def parse_nodes(text: str | int) -> int:
    return parse_count(text, "--nodes", MAX_NODES)


def parse_retries(text: str | int) -> int:
    raw = str(text).strip()
    if not re.fullmatch(r"\d+", raw) or int(raw) > 100:
        raise BadInput("--retries", f"{text!r} is not a whole number from 0 to 100")
    return int(raw)


def parse_priority(text: str | int) -> int:
    raw = str(text).strip()
    if not re.fullmatch(r"[+-]?\d+", raw) or abs(int(raw)) > 1_000_000:
        raise BadInput("--priority", f"{text!r} is not a whole number from -1000000 to 1000000")
    return int(raw)


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
RESERVED_ENV = frozenset(
    {"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "CLUSTERCTL_JOB_ID", "MASTER_ADDR",
     "MASTER_PORT", "NODE_RANK", "NNODES", "WORLD_SIZE", "CLUSTERCTL_NODE"}
)


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs; the variables the runner sets itself cannot be overridden."""
    items = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BadInput("--env", f"{pair!r} is not KEY=VALUE")
        items.append((key, value))
    return parse_env_items(items)


def parse_env_items(items: list[tuple[str, str]]) -> dict[str, str]:
    """Variables as (name, value): a name is letters, digits and '_' (at most 128), so a
    name holding '=' is refused, never cut at it."""
    env: dict[str, str] = {}
    for key, value in items:
        if not _ENV_KEY.match(key):
            raise BadInput("--env", f"{key!r} is not a variable name (1-128 letters, digits, "
                           "_, not starting with a digit)")
        if key in RESERVED_ENV:
            raise BadInput("--env", f"{key} is set by clusterctl and cannot be overridden")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_ENV_VALUE_BYTES:
            raise BadInput("--env", f"{key}'s value is longer than "
                           f"{MAX_ENV_VALUE_BYTES // 1024} KiB")
        env[key] = value
    if len(env) > MAX_ENV_VARS:
        raise BadInput("--env", f"sets {len(env)} variables; at most {MAX_ENV_VARS} are allowed")
    return env


def parse_job_id(text: str | int) -> int:
    """Job ids are positive integers; anything else (``1 OR 1=1``, ``../x``, ``''``) is refused
    before it reaches a URL or a query."""
    raw = str(text).strip()
    if not re.fullmatch(r"\d{1,10}", raw) or not 1 <= int(raw) <= MAX_JOB_ID:
        raise BadInput("JOB", f"{text!r} is not a job id (a positive whole number)")
    return int(raw)


def parse_idle_timeouts(values: list[str]) -> dict[str, int]:
    """``TEAM=DURATION`` pairs (``*`` for every team without its own): how long a batch job's
    GPUs may stay idle before it is ended."""
    out: dict[str, int] = {}
    for v in values:
        team, sep, text = v.partition("=")
        team = team.strip()
        if not sep or not (team == "*" or _NAME_RE.match(team)):
            raise BadInput("idle_timeouts", f"{v!r} must be TEAM=DURATION, such as vision=2h "
                           "or *=4h")
        out[team] = parse_duration(text.strip(), "idle_timeouts")
    return out


MAX_RANGE = 10_000


MAX_PORTS = 8


def parse_ports(values: list[Any]) -> list[int]:
    """``--port 8888``, repeatable: the TCP ports an interactive job serves."""
    ports: list[int] = []
    for v in values:
        text = str(v).strip()
        if not _ASCII_NUMBER.fullmatch(text) or not 1 <= int(text) <= 65535:
            raise BadInput("--port", f"{str(v)[:20]!r} is not a TCP port (1 to 65535)")
        if int(text) not in ports:
            ports.append(int(text))
    if len(ports) > MAX_PORTS:
        raise BadInput("--port", f"at most {MAX_PORTS} ports per job")
    return ports


def parse_job_ids(texts: list[str]) -> list[int]:
    """``12 14 20-25``: ids and ranges, in the order given, each once."""
    out: dict[int, None] = {}
    for text in texts:
        for part in str(text).split(","):
            lo, sep, hi = part.strip().partition("-")
            if not sep:
                out[parse_job_id(lo)] = None
                continue
            a, b = parse_job_id(lo), parse_job_id(hi)
            if b < a or b - a >= MAX_RANGE:
                raise BadInput("JOB", f"{part!r} must be FIRST-LAST with FIRST ≤ LAST, at most "
                               f"{MAX_RANGE} jobs")
            out.update(dict.fromkeys(range(a, b + 1)))
    if not out:
        raise BadInput("JOB", "give at least one job id")
    return list(out)


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def parse_name(text: str, field: str) -> str:
    """User, team and job names: 1-64 of letters, digits, '.', '_', '-'. They appear in tables,
    Prometheus labels and file names, so free text is not allowed."""
    if not _NAME_RE.match(text):
        raise BadInput(field, f"{text!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return text


_UNIX_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}\$?\Z")


def parse_unix_user(text: str, field: str) -> str:
    """A Unix account name as ``useradd`` accepts it by default (a job runs as that account)."""
    if not _UNIX_USER_RE.match(text):
        raise BadInput(field, f"{text!r} must be a Unix account name: 1-32 lower-case letters, "
                       "digits, '_' or '-', starting with a letter or '_'")
    return text


_NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}\Z")


def parse_node_name(text: str, field: str = "NODE") -> str:
    """Node names are host names: 1-255 letters, digits, '.', '_', '-'."""
    if not _NODE_RE.match(text):
        raise BadInput(field, f"{text!r} must be a host name: 1-255 letters, digits, '.', "
                       "'_' or '-'")
    return text


MAX_ARGS = 4096
MAX_ARG_BYTES = 128 * 1024
"""Linux's limit on one argument (MAX_ARG_STRLEN)."""
MAX_COMMAND_BYTES = 256 * 1024
MAX_ENV_VARS = 256
MAX_ENV_VALUE_BYTES = 32 * 1024


def parse_command(args: list[str]) -> list[str]:
    if not args or not args[0].strip():
        raise BadInput("COMMAND", "is empty: give the command after '--'")
    if len(args) > MAX_ARGS:
        raise BadInput("COMMAND", f"has {len(args)} arguments; at most {MAX_ARGS} are allowed")
    sizes = [len(a.encode("utf-8", "surrogatepass")) for a in args]
    if max(sizes) > MAX_ARG_BYTES or sum(sizes) > MAX_COMMAND_BYTES:
        raise BadInput("COMMAND", f"is too long: at most {MAX_ARG_BYTES // 1024} KiB an "
                       f"argument and {MAX_COMMAND_BYTES // 1024} KiB in all")
    return list(args)


_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,255}")


def parse_idempotency_key(text: str) -> str:
    """A submit's ``Idempotency-Key`` header: the CLI sends a UUID; any client may send 1-255
    letters, digits, '.', '_', ':' or '-'."""
    if not _IDEMPOTENCY_KEY.fullmatch(text):
        raise BadInput("Idempotency-Key", "must be 1-255 letters, digits, '.', '_', ':' or '-'")
    return text


_ASCII_NUMBER = re.compile(r"[0-9]{1,18}")
MAX_OFFSET = 2**62


def parse_natural(text: str, field: str, most: int = MAX_OFFSET) -> int:
    """A whole number from 0 to ``most`` in ASCII digits: ``str.isdigit`` also takes "²" and
    "٣", which ``int`` then refuses or reads, and a number past 64 bits no database holds."""
    if not _ASCII_NUMBER.fullmatch(text) or int(text) > most:
        raise BadInput(field, f"{text[:20]!r} is not a whole number from 0 to {most}")
    return int(text)


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
"""The instants a request may name: a time zone at an extreme (``0001-01-01T00:00+14:00``,
``9999-12-31T23:59-12:00``) would otherwise overflow the calendar once turned to UTC."""


def parse_instant(text: str, field: str) -> datetime:
    """An ISO 8601 date or time (UTC when no zone is given), as an aware UTC datetime."""
    try:
        t = datetime.fromisoformat(text.strip())
        t = (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise BadInput(field, f"{text!r} is not a date (YYYY-MM-DD) or ISO time from "
                       f"{EARLIEST.year} to {LATEST.year - 1}") from None
    if not EARLIEST <= t < LATEST:
        raise BadInput(field, f"{text!r} is not from {EARLIEST.year} to {LATEST.year - 1}")
    return t


MAX_ARRAY_TASKS = 10_000
MAX_ARRAY_INDEX = 4_000_000
"""Slurm's largest MaxArraySize less one."""
_ARRAY_ITEM_RE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?\Z", re.ASCII)
ARRAY_HELP = "indices such as 0-31, 0-31%4 (at most 4 at once), 0-30:2 or 1,5,9"


def parse_array(text: str) -> tuple[list[int], int | None]:
    """Slurm's ``--array`` syntax: comma-separated indices and ``A-B[:STEP]`` ranges, then an
    optional ``%LIMIT`` on how many tasks run at once. Returns the sorted distinct indices."""
    spec, pct, limit_text = text.strip().partition("%")
    indices: set[int] = set()
    for item in spec.split(","):
        m = _ARRAY_ITEM_RE.match(item.strip())
        if not m:
            raise BadInput("--array", f"{text!r} is not {ARRAY_HELP}")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3)) if m.group(3) is not None else 1
        if last < first or step < 1:
            raise BadInput("--array", f"{item.strip()!r} must be A-B with A ≤ B and a step ≥ 1")
        if last > MAX_ARRAY_INDEX:
            raise BadInput("--array", f"indices go up to {MAX_ARRAY_INDEX}")
        if (last - first) // step + 1 + len(indices) > MAX_ARRAY_TASKS:
            raise BadInput("--array", f"{text!r} has more than {MAX_ARRAY_TASKS} tasks")
        indices.update(range(first, last + 1, step))
    limit = None
    if pct:
        if not re.fullmatch(r"\d{1,6}", limit_text) or int(limit_text) < 1:
            raise BadInput("--array", f"%{limit_text} must be a whole number of tasks ≥ 1")
        limit = int(limit_text)
    return sorted(indices), limit


def parse_after(values: list[str]) -> list[dict[str, int | bool]]:
    """``JOB`` (start once JOB has ended, however) or ``JOB:ok`` (only if it succeeded; the
    job is cancelled if it did not), repeatable or comma-separated."""
    out: dict[int, bool] = {}
    for value in values:
        for item in str(value).split(","):
            job, colon, cond = item.strip().partition(":")
            if not re.fullmatch(r"\d{1,10}", job) or not 1 <= int(job) <= MAX_JOB_ID or (
                    colon and cond.lower() != "ok"):
                raise BadInput("--after", f"{item.strip()!r} must be JOB or JOB:ok, "
                               "such as 12:ok")
            out[int(job)] = out.get(int(job), False) or bool(colon)
    return [{"job": j, "ok": ok} for j, ok in out.items()]
