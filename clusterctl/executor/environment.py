"""What the processes clusterctl starts find in their environment: an allow-list, never the
whole environment of whoever started them.

An admin runs ``clusterctl up`` from a shell that holds their cloud keys, model-hub tokens
and database passwords. Before, the Ray head inherited all of it and every job inherited the
Ray worker's environment, so any user's job could print the admin's ``AWS_SECRET_ACCESS_KEY``.
Slurm's ``--export`` is the submitter's own environment; here a job gets the variables a
login on the node would have (PATH, locale, time zone, HOME of its account), its GPU and job
variables, and what its submitter gave with ``--env``. Ray's own processes get what Ray and
Python need to run, and nothing of the admin's.
"""

from __future__ import annotations

from collections.abc import Mapping

from clusterctl.executor.types import Rendezvous

JOB_NAMES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", "CUDA_HOME"})
"""Passed from the node to a job: where programs and CUDA live, and the locale."""
JOB_PREFIXES = ("LC_",)

ACCOUNT_PATH = "/usr/local/bin:/usr/bin:/bin"
"""A job that runs as its submitter's account gets the PATH a login of that account gets
(Debian's ``ENV_PATH``), not the service account's."""

ACCOUNT_NAMES = frozenset({"HOME", "USER", "LOGNAME", "SHELL"})
"""Of the account the job runs as: the runner's own where it does not switch accounts."""

RAY_NAMES = JOB_NAMES | ACCOUNT_NAMES | frozenset({"TMPDIR", "TERM", "VIRTUAL_ENV"})
"""What Ray's processes (and the runners in them) keep of the environment they start in."""
RAY_PREFIXES = (*JOB_PREFIXES, "RAY_", "PYTHON", "XDG_", "CUDA_", "NVIDIA_", "OMP_")


def _kept(environ: Mapping[str, str], names: frozenset[str],
          prefixes: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k in names or k.startswith(prefixes)}


def for_ray(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a Ray head or worker node starts with: ``RAY_*`` tunables, Python's
    and CUDA's variables, the locale; no ``CLUSTERCTL_*`` (the database URL lives there) and
    no secret of the admin's."""
    return _kept(environ, RAY_NAMES, RAY_PREFIXES)


def for_job(environ: Mapping[str, str], account: Mapping[str, str] | None,
            given: Mapping[str, str]) -> dict[str, str]:
    """The base of a job's environment, before its GPU and job variables: ``environ`` is the
    runner's; ``account`` the HOME, USER, LOGNAME and SHELL of the account the job runs as
    (None: the runner's own); ``given`` what the submitter set, which wins."""
    env = _kept(environ, JOB_NAMES, JOB_PREFIXES)
    if account is None:
        env.update(_kept(environ, ACCOUNT_NAMES, ()))
    else:
        env.update(account)
        env["PATH"] = ACCOUNT_PATH
    env.update(given)
    return env


def for_rank(rendezvous: Rendezvous, rank: int, nodes: int, gpus: int) -> dict[str, str]:
    """A multi-node job's rendezvous, in the names torchrun and its peers read."""
    return {
        "MASTER_ADDR": rendezvous.addr,
        "MASTER_PORT": str(rendezvous.port),
        "NODE_RANK": str(rank),
        "NNODES": str(nodes),
        "WORLD_SIZE": str(nodes * gpus),
        "LOCAL_WORLD_SIZE": str(gpus),
    }
