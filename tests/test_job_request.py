"""One job request (#32): people's words and the typed JSON the CLI sends parse to the same
request, the typed form survives a round trip, and a bad or unknown field is one BadInput
naming it."""

from __future__ import annotations

import json

import pytest

from clusterctl import job_words
from clusterctl.job_request import JobRequest
from clusterctl.parsing import BadInput

WORDS = {"command": ["python", "train.py"], "gpus": "H100:2", "gpu_mem": "40G", "nodes": "2",
         "time_limit": "1:30:00", "idle_timeout": "30m", "after": "3:ok,4", "array": "0-9%2",
         "env": {"SEED": "1"}, "priority": "5", "retries": 1, "name": "sweep", "team": "llm",
         "notify": "https://hooks.slack.com/services/T/B/x", "workdir": "/data/run"}


def test_people_s_words_and_the_typed_form_are_one_request() -> None:
    r = JobRequest.parse(WORDS)
    assert (r.gpus, r.gpu_types, r.gpu_mem_bytes, r.nodes) == (2, ["H100"], 40 << 30, 2)
    assert (r.time_limit_s, r.idle_timeout_s, r.priority) == (5400, 1800, 5)
    assert [(d.job, d.ok) for d in r.after] == [(3, True), (4, False)]
    assert r.array_tasks() == (list(range(10)), 2)
    sent = json.loads(json.dumps(job_words.wire(WORDS)))  # what the CLI sends, as JSON
    assert JobRequest.parse(sent) == r
    assert "gpu_mem" not in sent and sent["gpu_mem_bytes"] == 40 << 30


def test_interactive_from_run_s_flags_or_typed() -> None:
    raw = {"command": ["bash"], "interactive": True, "pty": True, "ports": ["8888", 8888, 6006]}
    words = JobRequest.parse(raw)
    assert words.interactive is not None and words.interactive.ports == [8888, 6006]
    assert JobRequest.parse(job_words.wire(raw)) == words
    assert JobRequest.parse({"command": ["bash"]}).interactive is None


@pytest.mark.parametrize(("change", "field"), [
    ({"gpus": "0"}, "--gpus"),
    ({"time_limit": "soon"}, "--time-limit"),
    ({"time-limit": "2h"}, "time-limit"),  # misspelt: refused, not dropped
    ({"gpu_mem_bytes": -1}, "--gpu-mem"),
    ({"after": "x"}, "--after"),
    ({"interactive": True}, "--array"),  # one job, not an array
    ({"pty": True}, "--pty"),
    ({"workdir": "relative/dir"}, "--workdir"),
    ({"command": "python train.py"}, "command"),
    ({"command": [1, 2]}, "command"),
    ({"env": ["A=1"]}, "--env"),
    ({"no_preempt": "maybe"}, "no_preempt"),
])
def test_a_bad_field_is_one_bad_input_naming_it(change: dict, field: str) -> None:
    with pytest.raises(BadInput) as e:
        JobRequest.parse({**WORDS, **change})
    assert e.value.field == field and "\n" not in str(e.value)
    if field not in ("time-limit", "no_preempt"):  # the model's own checks: names, types
        with pytest.raises(BadInput) as e:  # the CLI's submit, without the model
            job_words.wire({**WORDS, **change})
        assert e.value.field == field
