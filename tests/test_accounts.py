"""Which account a job runs as on a node (executor/accounts.py): the rules that decide it,
with the node's accounts and the runner's rights as they are on this machine, except where a
test says it plays a runner without the right to switch."""

from __future__ import annotations

import os
import pwd

import pytest

from clusterctl.executor import accounts
from clusterctl.executor.accounts import Account, AccountError

ME = pwd.getpwuid(os.geteuid()).pw_name


def test_no_account_asked_for_means_no_switch() -> None:
    assert accounts.resolve(None, None) is None
    if os.geteuid() == 0 or not accounts.can_switch():
        assert accounts.resolve(ME, None) is None  # root's jobs on root's Ray; one machine
    else:  # pragma: no cover - a service account with CAP_SETUID
        with pytest.raises(AccountError, match="jobs never run as"):
            accounts.resolve(ME, None)


def test_a_runner_that_may_not_switch_refuses_another_account(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "can_switch", lambda: False)
    assert accounts.resolve(ME, None) is None  # one person's machine: their own jobs run
    with pytest.raises(AccountError, match="without the right to switch accounts"):
        accounts.resolve("someone-else", None, "gpu-07")


@pytest.mark.skipif(not accounts.can_switch(), reason="needs a runner that may switch")
def test_a_missing_account_is_refused_or_replaced_by_job_account() -> None:
    with pytest.raises(AccountError, match="no Unix account nosuchuser1 on gpu-07"):
        accounts.resolve("nosuchuser1", None, "gpu-07")
    nobody = accounts.resolve("nosuchuser1", "nobody")
    assert nobody is not None and nobody.name == "nobody" and nobody.uid != 0
    # Never root, never the runner's own account, whatever job_account says.
    for bad in ("root", ME):
        with pytest.raises(AccountError, match="must be an unprivileged account"):
            accounts.resolve("nosuchuser1", bad)
    with pytest.raises(AccountError, match="neither nosuchuser1 nor job_account nosuchuser2"):
        accounts.resolve("nosuchuser1", "nosuchuser2")


def test_an_account_crosses_to_the_shim_intact() -> None:
    a = Account("alice", 1001, 1001, (1001, 27), "/home/alice", "/bin/bash")
    assert Account.decode(a.encode()) == a
