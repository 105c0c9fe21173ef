"""What a notification says and where it may go (pure).

A notification is one POST of JSON that Slack, Mattermost and Discord-style incoming webhooks
all accept: ``text`` is one readable line (what those show), and the event's own fields ride
along for anything that reads JSON (``event``, ``job_id``, ``name``, ``user``, ``team``,
``state``, ``reason``, ``cost``). Which events go where:

- a job's ``--notify`` URL: its end, however it ends;
- its user's and its team's URL, and the cluster's (the ``notify_url`` setting): the ends that
  need someone (FAILED, TIMEOUT, LOST);
- the cluster's URL: a node drained.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from clusterctl.parsing import BadInput

FAILURES = frozenset({"FAILED", "TIMEOUT", "LOST"})
ENDS = FAILURES | {"SUCCEEDED", "CANCELLED"}
EVENT_OF = {"SUCCEEDED": "job_succeeded", "FAILED": "job_failed", "TIMEOUT": "job_timeout",
            "LOST": "job_lost", "CANCELLED": "job_cancelled"}
MAX_URL = 2048


_LOCAL_NAMES = ("localhost", "metadata", "metadata.google.internal", "instance-data")


def parse_webhook(text: str, field: str, private_ok: bool = True) -> str:
    """An http(s) URL with a host, as incoming webhooks are. Unless ``private_ok`` (an admin's
    own setting, or the ``notify_private_ok`` setting), the host may not be a loopback,
    link-local or cloud metadata address: the controller would POST wherever a user's URL
    points, from inside the cluster's network (169.254.169.254 hands out cloud credentials)."""
    url = text.strip()
    try:
        parts = urlsplit(url) if len(url) <= MAX_URL else None
        host = parts.hostname if parts is not None else None
        if parts is not None:
            parts.port  # noqa: B018 (raises on a port that is not one)
    except ValueError:
        parts = host = None
    if parts is None or parts.scheme not in ("http", "https") or not host \
            or any(c.isspace() for c in url):
        raise BadInput(field, f"must be an http:// or https:// URL of at most {MAX_URL} "
                       "characters (a webhook)")
    if not private_ok and _local(host):
        raise BadInput(field, f"{host} is a loopback, link-local or metadata address; an "
                       "admin may allow such webhooks with the notify_private_ok setting")
    return url


def _local(host: str) -> bool:
    """A host that names this machine or a cloud's metadata service, however it is spelled
    (``127.1``, ``2130706433``, ``0x7f000001`` and ``::ffff:127.0.0.1`` are all loopback)."""
    name = host.lower().rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return True
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(name)
    except ValueError:
        try:  # the shorthand and integer forms inet_aton (and so every HTTP client) accepts
            ip = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast
            or ip == _AWS_METADATA_V6)


_AWS_METADATA_V6 = ipaddress.IPv6Address("fd00:ec2::254")


@dataclass(frozen=True)
class JobEnd:
    """The fields of a job's end, as a webhook receives them."""

    job_id: int
    name: str
    user: str
    team: str
    state: str
    reason: str | None
    cost: float | None
    """Dollars, capacity and energy, as ``show`` prices it (None: not priced)."""

    @property
    def event(self) -> str:
        return EVENT_OF.get(self.state, "job_ended")

    def text(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        cost = f" (${self.cost:,.2f})" if self.cost is not None else ""
        return (f"clusterctl: job {self.job_id} {self.name} of {self.user} ({self.team}) "
                f"{self.state}{why}{cost}")

    def body(self) -> dict[str, Any]:
        return {"text": self.text(), "event": self.event, **asdict(self)}


def node_drained(node: str, reason: str | None, by: str) -> dict[str, Any]:
    why = f": {reason}" if reason else ""
    return {"text": f"clusterctl: node {node} drained by {by}{why}", "event": "node_drained",
            "node": node, "reason": reason, "user": by}


def destinations(state: str, job_url: str | None, user_url: str | None, team_url: str | None,
                 cluster_url: str | None) -> list[str]:
    """Where the end of a job in ``state`` goes, each URL once."""
    urls = [job_url] if job_url and state in ENDS else []
    if state in FAILURES:
        urls += [u for u in (user_url, team_url, cluster_url) if u]
    return list(dict.fromkeys(urls))
