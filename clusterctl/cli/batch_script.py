"""Batch scripts: ``clusterctl submit train.sh ARGS`` reads ``#CLUSTERCTL`` directives from the
script's leading comment lines, as sbatch reads ``#SBATCH`` ones, and runs the script.

The directives are the submit flags themselves (``#CLUSTERCTL --gpus 2 --time-limit 2h``), so
there is one set of names and one parser for both; flags on the command line win. Reading
stops at the first line that is neither a comment nor blank, as sbatch's does: a directive
further down is a comment like any other.
"""

from __future__ import annotations

import os
import shlex

from clusterctl.parsing import BadInput

PREFIX = "#CLUSTERCTL"
FIELD = "#CLUSTERCTL"
MAX_HEAD_BYTES = 64 * 1024
"""Only the head of a script is read: directives sit at its top."""


def directives(text: str) -> list[str]:
    """The flags the leading comment block gives, in order."""
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        head, _, rest = stripped.partition(" ")
        if head != PREFIX:
            continue
        try:
            out += shlex.split(rest, comments=True)
        except ValueError as e:
            raise BadInput(FIELD, f"line {number}: {e}") from None
    return out


def command_for(command: list[str], head: str | None, executable: bool) -> list[str]:
    """How the job runs ``command`` whose first word names a script in the submitter's
    directory (``head``: its first lines; None if it names no file here). A bare name runs
    from the job's directory (``./train.sh``, not a ``train.sh`` on the PATH); a script
    without its run bit runs through its ``#!`` interpreter, as sbatch runs any script."""
    if head is None or not head.startswith("#!"):
        return command
    first, rest = command[0], command[1:]
    path = first if "/" in first else f"./{first}"
    if executable:
        return [path, *rest]
    interpreter = shlex.split(head[2:].splitlines()[0]) if head[2:].strip() else []
    return [*(interpreter or ["/bin/sh"]), path, *rest]


def read_head(path: str) -> tuple[str, bool] | None:
    """The head of the script at ``path`` and whether it may be executed, or None when
    ``path`` is not a regular file."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        data = f.read(MAX_HEAD_BYTES)
    return data.decode("utf-8", "replace"), os.access(path, os.X_OK)
