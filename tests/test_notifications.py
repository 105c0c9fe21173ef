"""What a notification says and where it goes (#19 item 5), without a network."""

from __future__ import annotations

import pytest

from clusterctl.notifications import JobEnd, destinations, node_drained, parse_webhook
from clusterctl.parsing import BadInput


def test_a_job_end_is_one_readable_line_plus_its_fields() -> None:
    body = JobEnd(42, "train", "ann", "vision", "TIMEOUT", "time limit 2h", 12.5).body()
    assert body["text"] == ("clusterctl: job 42 train of ann (vision) TIMEOUT: time limit 2h "
                            "($12.50)")
    assert {k: body[k] for k in ("event", "job_id", "name", "user", "team", "state", "reason",
                                 "cost")} == {
        "event": "job_timeout", "job_id": 42, "name": "train", "user": "ann", "team": "vision",
        "state": "TIMEOUT", "reason": "time limit 2h", "cost": 12.5}
    assert JobEnd(1, "x", "u", "t", "SUCCEEDED", None, None).text().endswith("SUCCEEDED")
    assert node_drained("n1", None, "bob")["text"] == "clusterctl: node n1 drained by bob"


def test_who_hears_what() -> None:
    urls = ("http://j", "http://u", "http://t", "http://c")
    assert destinations("SUCCEEDED", *urls) == ["http://j"]  # the job's own hook: any end
    assert destinations("CANCELLED", *urls) == ["http://j"]
    assert destinations("FAILED", *urls) == list(urls)  # a failure: every owner's hook
    assert destinations("LOST", None, "http://u", None, "http://u") == ["http://u"]  # once
    assert destinations("RUNNING", *urls) == []
    assert destinations("TIMEOUT", None, None, None, None) == []


@pytest.mark.parametrize("bad", ["ftp://x", "x", "http://", "http:// spaces.example/",
                                 "https://h/" + "a" * 3000, "javascript:alert(1)"])
def test_only_http_webhooks_are_taken(bad: str) -> None:
    with pytest.raises(BadInput) as e:
        parse_webhook(bad, "--notify")
    assert e.value.field == "--notify"
    assert parse_webhook(" https://hooks.slack.com/services/T/B/x ", "--notify") == \
        "https://hooks.slack.com/services/T/B/x"
