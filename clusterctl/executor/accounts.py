"""Which Unix account a job runs as on this node, and whether the runner may switch to it.

Slurm's rule, kept here: a job runs as the person who submitted it, never as the account that
runs the scheduler (which can read the Ray token, the node token and the database password).
The runner switches accounts only where it may (root, or the capabilities a systemd unit can
grant without root: CAP_SETUID, CAP_SETGID, CAP_CHOWN, CAP_KILL); the switch itself happens in
the launch shim's child, just before exec.
"""

from __future__ import annotations

import json
import os
import pwd
from dataclasses import asdict, dataclass

CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID = 0, 5, 6, 7
_NEEDED = (CAP_CHOWN, CAP_KILL, CAP_SETGID, CAP_SETUID)


class AccountError(RuntimeError):
    """The job cannot run here as its submitter (no such account, or no right to switch)."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    """Supplementary groups, as ``initgroups`` would set them."""
    home: str
    shell: str

    def encode(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def decode(cls, text: str) -> Account:
        value = json.loads(text)
        return cls(**{**value, "groups": tuple(value["groups"])})


def lookup(name: str) -> Account | None:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid,
                   tuple(os.getgrouplist(pw.pw_name, pw.pw_gid)),
                   pw.pw_dir, pw.pw_shell or "/bin/sh")


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def can_switch() -> bool:
    """Whether this process may start a job as another account (and chown its directory,
    signal its processes)."""
    if os.geteuid() == 0:
        return True
    caps = _effective_caps()
    return all(caps >> c & 1 for c in _NEEDED)


def me() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def resolve(account: str | None, fallback: str | None, node: str = "this node"
            ) -> Account | None:
    """The account to switch to; None where the job runs as the runner's own account (no
    account asked for, or it is the runner's). Raises :class:`AccountError` with the reason
    the job cannot start."""
    if account is None:
        return None
    runner = me()
    if not can_switch():
        if account == runner:
            return None
        raise AccountError(
            f"the runner on {node} runs as {runner} without the right to switch accounts, so "
            f"it cannot start a job as {account}: run Ray there as root or with CAP_SETUID, "
            "CAP_SETGID, CAP_CHOWN and CAP_KILL (or set run_as_submitter = false for one "
            "trusted account)")
    found = lookup(account)
    if found is None and fallback:
        found = lookup(fallback)
        if found is None:
            raise AccountError(f"neither {account} nor job_account {fallback} is a Unix "
                               f"account on {node}")
        if found.uid == 0 or found.name == runner:
            raise AccountError(f"job_account {fallback} is root or the account that runs Ray "
                               f"on {node}; it must be an unprivileged account")
    if found is None:
        raise AccountError(
            f"no Unix account {account} on {node} (create it, map the user to one with "
            "`admin user set NAME --unix-user ACCOUNT`, or set job_account)")
    if found.uid == os.geteuid():
        if found.uid != 0:  # a service account with the right to switch: its secrets
            raise AccountError(f"jobs never run as {runner}, the account that runs Ray on "
                               f"{node} (it can read the cluster's secrets); map the user to "
                               "another account")
        return None  # root's own jobs, on a node where Ray runs as root
    return found
