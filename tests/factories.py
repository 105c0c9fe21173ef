"""Small builders for rows used across tests."""

from __future__ import annotations

from clusterctl.store import NewJob


def new_job(**overrides: object) -> NewJob:
    values: dict[str, object] = {"name": "train", "user": "alice", "team": "vision",
                                 "command": ["python", "train.py"], "gpus": 1}
    values.update(overrides)
    return NewJob(**values)  # type: ignore[arg-type]
