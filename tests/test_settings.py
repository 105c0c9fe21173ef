"""Settings resolution: flags, then CLUSTERCTL_* variables, then the config file; scheduling
settings parsed with one-line errors; the config file survives `up` rewriting it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterctl import settings
from clusterctl.client_settings import load_client
from clusterctl.parsing import BadInput


def test_scheduling_settings_from_file_then_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('user_gpu_limit = 8\npreempt = false\n[quotas]\nvision = 32\nnlp = 16\n')
    env = {"CLUSTERCTL_CONFIG": str(cfg)}
    s = settings.load(env)
    assert s.quotas == {"vision": 32.0, "nlp": 16.0}
    assert (s.user_gpu_limit, s.preempt, s.preempt_grace_s) == (8, False, 30.0)
    s = settings.load({**env, "CLUSTERCTL_QUOTAS": "vision=4, nlp=2.5",
                       "CLUSTERCTL_USER_GPU_LIMIT": "0", "CLUSTERCTL_PREEMPT": "yes",
                       "CLUSTERCTL_PREEMPT_GRACE_S": "5"})
    assert s.quotas == {"vision": 4.0, "nlp": 2.5}
    assert (s.user_gpu_limit, s.preempt, s.preempt_grace_s) == (None, True, 5.0)


def test_the_scheduling_policy_and_its_starvation_guard() -> None:
    """Shortest limit first and no starvation guard by default; ``guarded`` is the former
    default (weights and the one-day guard); an explicit ``starve_after_s`` wins over either."""
    from clusterctl.controller.scheduling import policy_config

    base = {"CLUSTERCTL_CONFIG": "/nonexistent/config.toml", "CLUSTERCTL_QUOTAS": "a=2"}
    default = policy_config(settings.load(base))
    assert (default.starve_after_s, default.weight_short, default.quotas) == (None, 5.0,
                                                                             {"a": 2.0})
    old = policy_config(settings.load({**base, "CLUSTERCTL_SCHEDULING_POLICY": "guarded"}))
    assert (old.starve_after_s, old.weight_short, old.max_age_s) == (86400.0, 1.0, 7 * 86400.0)
    guard = policy_config(settings.load({**base, "CLUSTERCTL_STARVE_AFTER_S": "7200"}))
    assert (guard.starve_after_s, guard.weight_short) == (7200.0, 5.0)
    both = {**base, "CLUSTERCTL_SCHEDULING_POLICY": "guarded", "CLUSTERCTL_STARVE_AFTER_S": "60"}
    assert policy_config(settings.load(both)).starve_after_s == 60.0
    # attained service: on by default, off under guarded, thresholds in GPU-hours
    assert (default.demote_after_gpu_s, old.demote_after_gpu_s) == ((7200.0, 57600.0), ())
    mine = policy_config(settings.load({**base, "CLUSTERCTL_DEMOTE_AFTER_GPU_H": "[1, 4.5]"}))
    assert mine.demote_after_gpu_s == (3600.0, 16200.0)
    off = policy_config(settings.load({**base, "CLUSTERCTL_DEMOTE_AFTER_GPU_H": "[]"}))
    assert off.demote_after_gpu_s == ()


def test_job_accounts_default_to_the_submitters_own() -> None:
    s = settings.load({"CLUSTERCTL_CONFIG": "/nonexistent/config.toml"})
    assert (s.run_as_submitter, s.job_account) == (True, "")
    s = settings.load({"CLUSTERCTL_CONFIG": "/nonexistent/config.toml",
                       "CLUSTERCTL_RUN_AS_SUBMITTER": "off", "CLUSTERCTL_JOB_ACCOUNT": "jobs"})
    assert (s.run_as_submitter, s.job_account) == (False, "jobs")


@pytest.mark.parametrize(("name", "value"), [
    ("QUOTAS", "vision"), ("QUOTAS", "vision=-1"), ("USER_GPU_LIMIT", "many"),
    ("PREEMPT", "maybe"), ("PREEMPT_GRACE_S", "soon"), ("PORT", "http"),
    ("RUN_AS_SUBMITTER", "perhaps"), ("JOB_ACCOUNT", "Bad Name"), ("JOB_ACCOUNT", "x;rm"),
    ("NOTIFY_URL", "ftp://x"), ("QUOTAS", "vision=H100:x"), ("FAIR_SHARE_BY_RATE", "maybe"),
    ("SCHEDULING_POLICY", "sjf"), ("STARVE_AFTER_S", "-1"), ("STARVE_AFTER_S", "0"),
    ("DEMOTE_AFTER_GPU_H", "[16, 2]"), ("DEMOTE_AFTER_GPU_H", "[0]"),
    ("DEMOTE_AFTER_GPU_H", "two"),
])
def test_bad_settings_name_the_setting(tmp_path: Path, name: str, value: str) -> None:
    env = {"CLUSTERCTL_CONFIG": str(tmp_path / "none.toml"), f"CLUSTERCTL_{name}": value}
    with pytest.raises(BadInput) as e:
        settings.load(env)
    assert e.value.field == name.lower()


def test_client_config_rewrite_keeps_tables(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('preempt = false\n[quotas]\nvision = 32\n')
    settings.write_client_config(cfg, "http://127.0.0.1:1", "tok")
    s = settings.load({"CLUSTERCTL_CONFIG": str(cfg)})
    assert (s.url, s.token, s.quotas, s.preempt) == ("http://127.0.0.1:1", "tok",
                                                      {"vision": 32.0}, False)
    assert cfg.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("file", "env"), [
    ("", {}),
    ('url = "https://ctl:9000"\ntoken = "t1"\nca_file = "/etc/ca.pem"\n', {}),
    ('url = "https://ctl:9000"\ntoken = "t1"\n', {"CLUSTERCTL_URL": "http://other:1",
                                                  "CLUSTERCTL_TOKEN": "t2"}),
    ('port = 9100\n', {}),
    ('host = "10.0.0.5"\ntls_cert = "/c.pem"\n', {"CLUSTERCTL_PORT": "9200"}),
    ('max_package_mb = 12.5\n', {"clusterctl_ca_file": "/lower.pem"}),
    ('token = ""\n', {"CLUSTERCTL_MAX_PACKAGE_MB": "7"}),
])
def test_the_cli_reads_its_settings_as_the_controller_does(
        tmp_path: Path, file: str, env: dict[str, str]) -> None:
    """``client_settings.load_client`` (no pydantic-settings: a faster start) reads the URL,
    token, CA file and package limit exactly as ``settings.load`` does."""
    config = tmp_path / "config.toml"
    config.write_text(file)
    world = {"CLUSTERCTL_CONFIG": str(config), **env}
    full, light = settings.load(env=world), load_client(world)
    assert (light.url, light.token, light.ca_file, light.max_package_mb) == (
        full.url, full.token, full.ca_file, full.max_package_mb)


def test_the_cli_names_a_bad_setting_it_reads(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("port = 'abc'\n")
    with pytest.raises(BadInput) as e:
        load_client({"CLUSTERCTL_CONFIG": str(config)})
    assert e.value.field == "port"
    config.write_text("url = [")
    with pytest.raises(BadInput):
        load_client({"CLUSTERCTL_CONFIG": str(config)})



@pytest.mark.parametrize("url", ["localhost:8765", "http://", "ftp://head:8765",
                                 "http://head:99999", "head"])
def test_a_controller_address_that_is_not_one_is_bad_input(url: str) -> None:
    """Said as the setting at fault (exit 2), not as an unreachable controller (exit 1)."""
    with pytest.raises(BadInput) as e:
        load_client({"CLUSTERCTL_CONFIG": "/nonexistent/config.toml", "CLUSTERCTL_URL": url})
    assert e.value.field == "url" and "http://" in str(e.value)
    good = "https://head.example:8765/clusterctl"
    assert load_client({"CLUSTERCTL_CONFIG": "/nonexistent", "CLUSTERCTL_URL": good}).url == good
