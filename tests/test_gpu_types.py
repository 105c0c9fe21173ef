"""GPU types as people write them against models as drivers report them (gpu_types.py)."""

from __future__ import annotations

import pytest

from clusterctl import gpu_types
from clusterctl.parsing import BadInput


@pytest.mark.parametrize(("wanted", "model"), [
    ("H100", "H100-80GB-HBM3"),
    ("H100", "NVIDIA H100 80GB HBM3"),
    ("h100", "NVIDIA H100 NVL"),
    ("H100", "NVIDIA H100NVL"),
    ("4090", "NVIDIA GeForce RTX 4090"),
    ("RTX-4090", "NVIDIA GeForce RTX 4090"),
    ("A100-80GB", "NVIDIA A100-SXM4-80GB"),
    ("A100", "A100-80GB (sim)"),
])
def test_a_type_names_the_models_it_should(wanted: str, model: str) -> None:
    assert gpu_types.matches(wanted, model)


@pytest.mark.parametrize(("wanted", "model"), [
    ("H10", "NVIDIA H100 80GB HBM3"),        # a word never stands for more digits
    ("H100", "NVIDIA H200"),
    ("A100-80GB", "NVIDIA A100-SXM4-40GB"),
    ("4090", "NVIDIA GeForce RTX 4080"),
    ("80GB-A100", "NVIDIA A100-SXM4-80GB"),  # words in order
    ("-", "NVIDIA A100"),
])
def test_and_not_the_others(wanted: str, model: str) -> None:
    assert not gpu_types.matches(wanted, model)


def test_requests_memory_and_fleets_parse_with_one_line_errors() -> None:
    assert gpu_types.parse_gpu_request("8") == (None, 8)
    assert gpu_types.parse_gpu_request("H100:8") == ("H100", 8)
    assert gpu_types.parse_gpu_types("A100, H100,a100") == ["A100", "H100"]
    assert gpu_types.parse_gpu_mem("40G") == 40 << 30
    assert gpu_types.parse_gpu_mem("24GiB") == gpu_types.parse_gpu_mem("24gb") == 24 << 30
    assert gpu_types.parse_gpu_mem("80000M") == 80000 << 20
    assert gpu_types.parse_fleet("2x8:H100,4x8:A100,4x4:RTX-4090") == [
        (2, 8, "H100"), (4, 8, "A100"), (4, 4, "RTX-4090")]
    assert gpu_types.parse_fleet("16x8") == [(16, 8, None)]
    for call, field in ((lambda: gpu_types.parse_gpu_request("H100:0"), "--gpus"),
                        (lambda: gpu_types.parse_gpu_request("H 1;00:2"), "--gpus"),
                        (lambda: gpu_types.parse_gpu_types(","), "--gpu-type"),
                        (lambda: gpu_types.parse_gpu_mem("lots"), "--gpu-mem"),
                        (lambda: gpu_types.parse_gpu_mem("0G"), "--gpu-mem"),
                        (lambda: gpu_types.parse_gpu_mem("9" * 400), "--gpu-mem"),
                        (lambda: gpu_types.parse_gpu_ask("H100:2", "A100"), "--gpus"),
                        (lambda: gpu_types.parse_fleet("2x0:H100"), "--cluster"),
                        (lambda: gpu_types.parse_fleet("two:H100"), "--cluster")):
        with pytest.raises(BadInput) as e:
            call()
        assert e.value.field == field


def test_a_submission_asks_for_a_count_types_and_memory() -> None:
    assert gpu_types.parse_gpu_ask("2") == (2, None, None)
    assert gpu_types.parse_gpu_ask("H100:8") == (8, ["H100"], None)
    assert gpu_types.parse_gpu_ask(1, ["A100", "H100"], 40) == (1, ["A100", "H100"], 40 << 30)
    assert gpu_types.parse_gpu_ask("h100:2", "H100") == (2, ["h100"], None)  # they agree
    assert gpu_types.describe_ask(["H100", "A100"], 40 << 30) == "H100 or A100, 40 GiB+"
    assert gpu_types.model_memory("NVIDIA A100-SXM4-80GB") == 80 << 30
    assert gpu_types.model_memory("NVIDIA H100 80GB HBM3") == 80 << 30
    assert gpu_types.model_memory("NVIDIA GeForce RTX 4090") == 24 << 30  # a known card
    assert gpu_types.model_memory("NVIDIA L40S") == 48 << 30
    assert gpu_types.model_memory("NVIDIA H200") == 140 << 30  # as a real one names itself
    assert gpu_types.model_memory("NVIDIA A100-PCIE") is None  # 40 or 80: it does not say
