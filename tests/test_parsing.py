import pytest

from clusterctl.parsing import (
    BadInput,
    format_duration,
    parse_duration,
    parse_env,
    parse_gpus,
    parse_job_id,
    parse_nodes,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90m", 5400), ("2h", 7200), ("1d", 86400), ("45s", 45), ("3600", 3600),
     ("1:30:00", 5400), ("90:00", 5400), ("1.5h", 5400), ("2-00:00:00", 172800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


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
