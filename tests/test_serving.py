"""The pure part of model services (#35): a service request parsed once, naming the flag of a
bad value; and the autoscaling rule."""

from __future__ import annotations

from typing import Any

import pytest

from clusterctl.parsing import BadInput
from clusterctl.serving.autoscale import DOWN_AFTER_S, Load, Shape, decide, wanted
from clusterctl.serving.request import ServiceRequest

REPLICA = {"command": ["python", "serve.py"], "gpus": "H100:1"}


def parse(**fields: Any) -> ServiceRequest:
    return ServiceRequest.parse({"name": "chat", "replica": REPLICA, **fields})


def test_people_s_words_and_typed_values_make_the_same_request() -> None:
    words = parse(replicas="0:4", scale_to_zero_after="15m", target_rps="2.5",
                  price_per_1k="1.5")
    assert (words.replicas_min, words.replicas_max) == (0, 4)
    assert words.scale_to_zero_after_s == 900 and words.target_rps == 2.5
    assert words.replica.gpus == 1 and words.replica.gpu_types == ["H100"]
    assert ServiceRequest.parse(words.wire()) == words  # what the CLI sends parses the same
    assert parse(replicas="3").replicas_min == 3 == parse(replicas="3").replicas_max
    for replicas in ("0:1", "1:1", "2:5"):  # defaults or not, the wire reads back the same
        request = parse(replicas=replicas)
        assert ServiceRequest.parse(request.wire()) == request
    assert parse(replicas_min=0).replicas_max == 1


@pytest.mark.parametrize(("fields", "flag"), [
    ({"replicas": "3:1"}, "--replicas"),
    ({"replicas": "0:0"}, "--replicas"),
    ({"replicas": "1:65"}, "--replicas"),
    ({"replicas": "a:b"}, "--replicas"),
    ({"target_rps": 0}, "--target-rps"),
    ({"target_rps": "nan"}, "--target-rps"),
    ({"target_rps": True}, "--target-rps"),
    ({"price_per_1k": -1}, "--price-per-1k"),
    ({"health": "healthz"}, "--health"),
    ({"health": "/a b"}, "--health"),
    ({"scale_to_zero_after": "10m"}, "--scale-to-zero-after"),  # MIN is 1
    ({"name": "Chat"}, "NAME"),
    ({"name": "stop"}, "NAME"),
    ({"name": "-x"}, "NAME"),
    ({"replica": {"command": []}}, "COMMAND"),
    ({"replica": {"command": ["x"], "gpus": "H100:0"}}, "--gpus"),
    ({"replica": {"command": ["x"], "array": "0-3"}}, "array"),
    ({"replica": {"command": ["x"], "time_limit": "1h"}}, "time_limit"),
    ({"replica": "python serve.py"}, "replica"),
    ({"replicsa": "1:2"}, "replicsa"),
])
def test_a_bad_value_is_refused_naming_its_flag(fields: dict[str, Any], flag: str) -> None:
    with pytest.raises(BadInput) as e:
        parse(**fields)
    assert e.value.field == flag, str(e.value)


SHAPE = Shape(replicas_min=1, replicas_max=4, target_rps=10.0)


def load(rps: float = 0.0, waiting: int = 0, last: float | None = None) -> Load:
    return Load(rps=rps, waiting=waiting, last_request_at=last)


def test_load_asks_for_replicas_by_the_target_between_min_and_max() -> None:
    assert wanted(SHAPE, load(0.0), now=0) == 1  # MIN
    assert wanted(SHAPE, load(10.0), now=0) == 1  # exactly one replica's worth
    assert wanted(SHAPE, load(10.5), now=0) == 2
    assert wanted(SHAPE, load(35.0), now=0) == 4
    assert wanted(SHAPE, load(500.0), now=0) == 4  # MAX


def test_up_is_at_once_and_down_only_after_wanting_fewer_for_a_while() -> None:
    up = decide(SHAPE, load(35.0), current=1, wants_fewer_since=None, now=100.0)
    assert up.replicas == 4 and up.wants_fewer_since is None
    quiet = decide(SHAPE, load(5.0), current=4, wants_fewer_since=None, now=200.0)
    assert quiet.replicas == 4 and quiet.wants_fewer_since == 200.0  # the clock starts
    still = decide(SHAPE, load(5.0), current=4, wants_fewer_since=200.0,
                   now=200.0 + DOWN_AFTER_S - 1)
    assert still.replicas == 4
    down = decide(SHAPE, load(5.0), current=4, wants_fewer_since=200.0,
                  now=200.0 + DOWN_AFTER_S)
    assert down.replicas == 1 and down.wants_fewer_since is None
    burst = decide(SHAPE, load(45.0), current=4, wants_fewer_since=200.0, now=230.0)
    assert burst.replicas == 4 and burst.wants_fewer_since is None  # the clock resets


def test_min_zero_goes_to_zero_after_the_quiet_time_and_back_on_a_request() -> None:
    shape = Shape(replicas_min=0, replicas_max=2, scale_to_zero_after_s=600)
    assert wanted(shape, load(last=None), now=1000.0) == 0  # never called: nothing runs
    assert wanted(shape, load(waiting=1, last=1000.0), now=1000.0) == 1  # a cold start
    assert wanted(shape, load(last=1000.0), now=1599.0) == 1
    assert decide(shape, load(last=1000.0), current=1, wants_fewer_since=None,
                  now=1600.0).replicas == 0
    assert wanted(Shape(0, 2), load(last=0.0), now=899.0) == 1  # the default: 15 minutes
    assert wanted(Shape(0, 2), load(last=0.0), now=900.0) == 0


def test_a_request_s_cost_keeps_fractions_of_a_cent() -> None:
    from clusterctl.serving.pricing import request_cost

    c = request_cost(0.0123, requests=40_000, tokens=2_000_000, price_per_1k=0.5,
                     replica_s=3600, idle_replica_s=900)
    assert c.cost_per_1k_requests == 0.0003  # 0.0123 / 40
    assert c.cost_per_1m_tokens == 0.0062 and c.api_equivalent == 20.0
    assert c.saving == 19.9877 and c.idle_share == 0.25 and c.waste_cost == 0.0031
    none = request_cost(1.0, requests=0, tokens=0, price_per_1k=None, replica_s=0,
                        idle_replica_s=0)
    assert (none.cost_per_1k_requests, none.cost_per_1m_tokens, none.api_equivalent,
            none.saving, none.idle_share, none.waste_cost) == (None, None, None, None, None, 0)
