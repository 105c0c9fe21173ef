import pytest

from clusterctl import parsing
from clusterctl.parsing import (
    BadInput,
    format_duration,
    parse_duration,
    parse_env,
    parse_gpus,
    parse_job_id,
    parse_nodes,
)
from clusterctl.plan.sacct import timelimit_s


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("2h", 7200), ("1d", 86400), ("45s", 45), ("3600", 3600),
     ("1:30:00", 5400), ("90:00", 5400), ("1.5h", 5400), ("2-00:00:00", 172800),
     ("2-12:00", 216000), ("2-12", 216000)],  # Slurm's D-HH:MM and D-HH, as sbatch reads them
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_sacct_time_limits_read_as_slurm_writes_them() -> None:
    """One reader of Slurm's clock (``slurm_clock_s``) for --time-limit and for sacct's
    Timelimit, where a bare number is minutes."""
    assert [timelimit_s(t) for t in ("90", "1:30", "2-12", "1-00:00:00", "UNLIMITED")] == [
        5400.0, 90.0, 216000.0, 86400.0, None]


@pytest.mark.parametrize("text", ["0", "-5m", "abc", "1:99:00", "", "0s", "5x", "1:00:99"])
def test_bad_durations_name_the_field(text: str) -> None:
    with pytest.raises(BadInput) as e:
        parse_duration(text)
    assert e.value.field == "--time-limit"
    assert "90m" in e.value.message


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "", "100000"])
def test_bad_gpu_counts(text: str) -> None:
    with pytest.raises(BadInput) as e:
        parse_gpus(text)
    assert e.value.field == "--gpus"


def test_counts() -> None:
    assert parse_gpus("8") == 8
    assert parse_nodes(2) == 2
    with pytest.raises(BadInput):
        parse_nodes("0")


def test_env_pairs() -> None:
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    for bad in (["NOEQUALS"], ["1X=2"], ["CUDA_VISIBLE_DEVICES=0"]):
        with pytest.raises(BadInput) as e:
            parse_env(bad)
        assert e.value.field == "--env"


@pytest.mark.parametrize("text", ["1 OR 1=1", "../x", "", "0", "-3", "1e3", " "])
def test_bad_job_ids(text: str) -> None:
    with pytest.raises(BadInput):
        parse_job_id(text)


def test_format_duration() -> None:
    assert format_duration(None) == "-"
    assert format_duration(5) == "5s"
    assert format_duration(3725) == "1h02m"


@pytest.mark.parametrize(("text", "indices", "limit"), [
    ("0-3", [0, 1, 2, 3], None),
    ("0-31%4", list(range(32)), 4),
    ("0-6:2", [0, 2, 4, 6], None),
    ("1,5,9", [1, 5, 9], None),
    ("7", [7], None),
    ("3-4,1,4", [1, 3, 4], None),
    ("0-1%1", [0, 1], 1),
])
def test_arrays(text: str, indices: list[int], limit: int | None) -> None:
    assert parsing.parse_array(text) == (indices, limit)


@pytest.mark.parametrize("text", ["", "a-b", "5-1", "0-3%0", "0-3%x", "0-3:0", "-1", "0-10000",
                                  "1,,2"])
def test_bad_arrays_name_the_flag(text: str) -> None:
    with pytest.raises(parsing.BadInput) as e:
        parsing.parse_array(text)
    assert e.value.field == "--array"


def test_dependencies() -> None:
    assert parsing.parse_after(["12", "13:ok,14:OK"]) == [
        {"job": 12, "ok": False}, {"job": 13, "ok": True}, {"job": 14, "ok": True}]
    assert parsing.parse_after(["12", "12:ok"]) == [{"job": 12, "ok": True}]  # the stricter
    for bad in ("x", "12:done", "0", "-3", "12:"):
        with pytest.raises(parsing.BadInput) as e:
            parsing.parse_after([bad])
        assert e.value.field == "--after"
