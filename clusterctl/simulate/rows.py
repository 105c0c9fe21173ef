"""Reading a history file that may be hostile, in bounded memory and time.

A trace from a year of sacct output always holds something odd, and a file given by mistake
can be anything: a binary, a 200 MB line, ``/dev/zero``. So a file must be a regular file;
it is read line by line, no line held past ``MAX_LINE_BYTES``, bytes that are not UTF-8
replaced; a row that does not parse or holds an absurd value (GPUs beyond any fleet,
durations beyond years, times outside 1990-2100) is counted and skipped, with its line
number; only when more than ``MAX_BAD_SHARE`` of the rows are bad is the file refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

MAX_LINE_BYTES = 1 << 20
MAX_GPUS = 100_000
"""GPUs one job may ask for: more than any fleet holds (a gang's shape search is linear)."""
MAX_DURATION_S = 10 * 365 * 86400.0
"""Ten years: a duration or time limit past it is a broken row, not a long job."""
MAX_BAD_SHARE = 0.2


class HistoryError(ValueError):
    """A file that cannot be a history; the message names the file or its line."""


@dataclass
class Rows:
    """How many rows were read, and which were bad."""

    total: int = 0
    bad: int = 0
    first_bad: str | None = None

    def refuse(self, why: str) -> None:
        self.bad += 1
        self.first_bad = self.first_bad or why

    def check(self, source: str) -> None:
        """Refuse the whole file when too many of its rows are bad."""
        if self.bad and self.bad > MAX_BAD_SHARE * max(self.total, 1):
            raise HistoryError(f"{source}: {self.bad} of {self.total} row(s) could not be "
                               f"read (more than {MAX_BAD_SHARE:.0%}), the first: "
                               f"{self.first_bad}")

    def note(self) -> list[str]:
        """What a report says of the rows left out."""
        return ([f"{self.bad} line(s) did not parse and were left out, the first: "
                 f"{self.first_bad}"] if self.bad else [])


def open_history(path: Path) -> TextIO:
    """A regular file, as text (bytes that are not UTF-8 replaced, newlines as written)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise HistoryError(f"{path} is not a regular file")
        return open(path, newline="", encoding="utf-8", errors="replace")
    except OSError as e:
        raise HistoryError(f"cannot read {path}: {e.strerror}") from None


def lines(f: TextIO, rows: Rows) -> Iterator[str]:
    """The file's lines; one longer than ``MAX_LINE_BYTES`` is read through in pieces,
    counted bad, and given as an empty line (so that line numbers stay right)."""
    number = 0
    while line := f.readline(MAX_LINE_BYTES):
        number += 1
        if len(line) >= MAX_LINE_BYTES and not line.endswith("\n"):
            while line and not line.endswith("\n"):
                line = f.readline(MAX_LINE_BYTES)
            rows.total += 1
            rows.refuse(f"line {number}: longer than {MAX_LINE_BYTES >> 20} MiB")
            yield "\n"
            continue
        yield line
