"""The values #31 found answering 500 or taken though wrong, at the pure parsers every edge
uses (the API's own answers to them are in test_api_fuzz.py), and what a job's and Ray's
environment keep of the environment they start in."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from clusterctl import parsing
from clusterctl.executor import environment
from clusterctl.notifications import parse_webhook
from clusterctl.parsing import BadInput
from clusterctl.reports.period import parse_report_period

NOW = datetime(2026, 12, 6, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                                  "0001-01-02", "1969-12-31", "9000-01-01", "²", "x"])
def test_instants_past_the_calendars_ends_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(BadInput) as e:
        parsing.parse_instant(text, "--since")
    assert e.value.field == "--since"


def test_an_instant_is_utc_whatever_zone_it_was_given_in() -> None:
    assert parsing.parse_instant("2026-01-01T14:00:00+14:00", "--to") == \
        datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parsing.parse_instant("2026-01-01", "--to") == \
        datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_report_period_is_bounded() -> None:
    start, end = parse_report_period(None, "2026-01-01", "2026-12-01", NOW)
    assert (end - start).days == 334
    with pytest.raises(BadInput, match="the period is 3652 days; at most 400 days"):
        parse_report_period(None, "2016-12-06", None, NOW)
    assert parse_report_period(None, "2016-12-06", None, NOW, max_days=4000)[0].year == 2016
    assert parse_report_period("365d", None, None, NOW)[0].year == 2025


@pytest.mark.parametrize("text", ["²", "٣", "-1", "", " 1", "1" * 19, str(2**62 + 1)])
def test_whole_numbers_are_ascii_digits_within_64_bits(text: str) -> None:
    with pytest.raises(BadInput):
        parsing.parse_natural(text, "offset")


def test_ports_and_counts_take_ascii_digits_only() -> None:
    assert parsing.parse_natural("8080", "port", 65535) == 8080
    for bad in (["²"], ["٣"], ["70000"]):
        with pytest.raises(BadInput, match="--port"):
            parsing.parse_ports(bad)
    with pytest.raises(BadInput, match="--gpus"):
        parsing.parse_gpus("9" * 5000)  # int() of it raises, past 4300 digits


@pytest.mark.parametrize(("items", "why"), [
    ([("A=B", "x")], "'A=B' is not a variable name"),
    ([("K" * 200_000, "x")], "is not a variable name"),
    ([("A\n", "x")], "is not a variable name"),
])
def test_environment_names_are_refused_never_cut(items: list[tuple[str, str]], why: str
                                                 ) -> None:
    with pytest.raises(BadInput, match=why):
        parsing.parse_env_items(items)


@pytest.mark.parametrize("name", ["fz\n", "a" * 65, "", "-x"])
def test_names_with_a_trailing_newline_or_too_long_are_refused(name: str) -> None:
    with pytest.raises(BadInput):
        parsing.parse_name(name, "--name")


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/x", "http://127.1/x",
    "http://2130706433/", "http://0x7f000001/", "http://[::1]/x", "http://[::ffff:127.0.0.1]/",
    "http://localhost:8080/", "http://api.localhost/", "http://metadata.google.internal/",
    "http://[fe80::1]/", "http://0.0.0.0/", "http://[fd00:ec2::254]/"])
def test_webhooks_to_this_machine_or_a_metadata_service_are_refused(url: str) -> None:
    with pytest.raises(BadInput, match="loopback, link-local or metadata"):
        parse_webhook(url, "--notify", private_ok=False)
    assert parse_webhook(url, "--notify", private_ok=True) == url  # an admin allowed it


@pytest.mark.parametrize("url", ["http://[::1/x", "http://h:99999/", "http://h:x/"])
def test_malformed_webhooks_are_refused_not_crashed_on(url: str) -> None:
    with pytest.raises(BadInput, match="must be an http"):
        parse_webhook(url, "--notify", private_ok=False)


def test_webhooks_to_the_internet_and_the_private_network_are_taken() -> None:
    for url in ("https://hooks.slack.com/services/T/B/x", "http://10.0.0.5:8065/hooks/x",
                "http://mattermost.internal/hooks/x"):
        assert parse_webhook(url, "--notify", private_ok=False) == url


def test_idempotency_keys() -> None:
    assert parsing.parse_idempotency_key("6f1c2a0e-uuid") == "6f1c2a0e-uuid"
    for bad in ("", "a b", "k" * 256, "é"):
        with pytest.raises(BadInput, match="Idempotency-Key"):
            parsing.parse_idempotency_key(bad)


ADMIN = {"PATH": "/root/.pyenv/shims:/usr/bin:/bin", "HOME": "/root", "USER": "root",
         "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "AWS_SECRET_ACCESS_KEY": "s1",
         "HF_TOKEN": "s2", "PGPASSWORD": "s3", "CLUSTERCTL_DB_URL": "postgresql://u:pw@h/db",
         "RAY_AUTH_TOKEN_PATH": "/t", "PYTHONPATH": "/src", "SSH_AUTH_SOCK": "/tmp/ssh-x",
         "LD_LIBRARY_PATH": "/usr/local/cuda/lib64", "CUDA_VISIBLE_DEVICES": "0,1",
         "XDG_RUNTIME_DIR": "/run/user/0"}
SECRETS = {"AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "PGPASSWORD", "CLUSTERCTL_DB_URL",
           "SSH_AUTH_SOCK"}


def test_a_job_gets_the_nodes_basics_its_accounts_own_and_what_its_submitter_gave() -> None:
    alice = {"HOME": "/home/alice", "USER": "alice", "LOGNAME": "alice", "SHELL": "/bin/sh"}
    env = environment.for_job(ADMIN, alice, {"SEED": "1", "LANG": "de_DE.UTF-8"})
    assert env == {"PATH": environment.ACCOUNT_PATH, "LANG": "de_DE.UTF-8", "LC_ALL": "C.UTF-8",
                   "TZ": "UTC", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64", **alice,
                   "SEED": "1"}
    own = environment.for_job(ADMIN, None, {})  # the runner's own account: its PATH and HOME
    assert own["PATH"] == ADMIN["PATH"] and own["HOME"] == "/root"
    assert not SECRETS & own.keys() and "RAY_AUTH_TOKEN_PATH" not in own


def test_rays_processes_keep_what_ray_and_python_need_and_no_secret() -> None:
    env = environment.for_ray(ADMIN)
    assert not SECRETS & env.keys()
    for kept in ("PATH", "HOME", "LANG", "RAY_AUTH_TOKEN_PATH", "PYTHONPATH",
                 "CUDA_VISIBLE_DEVICES", "XDG_RUNTIME_DIR", "LD_LIBRARY_PATH"):
        assert env[kept] == ADMIN[kept]
