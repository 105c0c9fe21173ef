"""Attempts whose runner does not answer (#37): counted per attempt, logged once with a count,
settled after a bound; the causes read as a person looks for them."""

from __future__ import annotations

import logging

import pytest

from clusterctl.controller.unanswered import PollFailures, cause_of

OOM = RuntimeError("OutOfMemoryError: 1 worker(s) were killed due to the node running low on "
                   "memory. Memory on the node (IP: 10.0.0.1, ID: 3e2a) ...")


def test_causes_name_the_memory_monitor_and_keep_other_errors_to_one_line() -> None:
    assert cause_of(OOM) == "runner killed by Ray: node out of memory"
    other = cause_of(ValueError("boom\n  at line 3\n" + "x" * 500))
    assert other.startswith("runner does not answer: boom at line 3") and "\n" not in other
    assert len(other) < 250
    assert cause_of(KeyError()) == "runner does not answer: KeyError"


def test_a_start_that_never_answers_is_settled_at_the_start_timeout() -> None:
    f = PollFailures(max_failures=20, min_window_s=30)
    rec = f.failed(7, 1, OOM, now=100.0)
    assert not f.settle(rec, 100.0, launched_at=90.0, started=False, start_timeout_s=120)
    for t in range(110, 211, 10):  # a slow pass: fewer failures than the bound
        rec = f.failed(7, 1, OOM, now=float(t))
    assert rec.count == 12
    assert not f.settle(rec, 209.0, launched_at=90.0, started=False, start_timeout_s=120)
    assert f.settle(rec, 211.0, launched_at=90.0, started=False, start_timeout_s=120)


def test_a_running_attempt_needs_many_failures_over_a_window_and_an_answer_resets() -> None:
    f = PollFailures(max_failures=5, min_window_s=30)
    for t in range(5):  # five in five seconds: a hiccup, not a lost runner
        rec = f.failed(3, 2, RuntimeError("x"), now=1000.0 + t)
    assert not f.settle(rec, 1004.0, launched_at=0.0, started=True, start_timeout_s=120)
    f.answered(3, 2)
    rec = f.failed(3, 2, RuntimeError("x"), now=1040.0)
    assert rec.count == 1  # counted again from the answer
    for t in range(1, 40):
        rec = f.failed(3, 2, RuntimeError("x"), now=1040.0 + t)
    assert f.settle(rec, 1079.0, launched_at=0.0, started=True, start_timeout_s=120)
    f.forget(3)
    assert f.current == {}


def test_the_same_error_is_logged_once_then_once_a_minute_with_its_count(
        caplog: pytest.LogCaptureFixture) -> None:
    f = PollFailures(log_every_s=60)
    with caplog.at_level(logging.WARNING, logger="clusterctl.controller.unanswered"):
        for t in range(0, 130):  # a poll every second for a bit over two minutes
            f.failed(1280, 1, OOM, now=float(t))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0] == ("job 1280 attempt 1: runner killed by Ray: node out of memory "
                        "(repeats are counted, not logged)")
    assert lines[1].endswith("(61 polls failed in 60s)") and lines[2].endswith("in 120s)")


def test_a_repeated_loop_error_is_one_line_a_minute_whatever_the_jobs(
        caplog: pytest.LogCaptureFixture) -> None:
    """#31 item 9: a full disk failed every running job's log write every pass, and each
    logged a traceback: 478 in 2.5 minutes."""
    from clusterctl.controller.repeats import RepeatedErrors

    now = [0.0]
    repeats = RepeatedErrors(clock=lambda: now[0])
    full = OSError(28, "No space left on device")
    with caplog.at_level("ERROR"):
        for pass_ in range(300):  # 150 s of passes, 4 jobs each
            now[0] = pass_ * 0.5
            for job in range(4):
                repeats.error(f"progress of job {job} failed", full)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # at 0 s, 60 s and 120 s
    assert "No space left on device" in lines[0] and caplog.records[0].exc_info
    assert "(480 times in the last 60s)" in lines[1], lines[1]
    repeats.error("scheduler pass failed", ValueError("another"))  # another cause: said
    assert len(caplog.records) == 4
