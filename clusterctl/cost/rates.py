"""What the same GPU-hours would cost in the cloud: the default on-demand rate per GPU model.

Each default names its source, because a rent-versus-buy ledger is only as honest as its
comparison. Figures are on-demand list prices (AWS us-east-1 unless said), per instance divided
by its GPUs; admins override them with ``clusterctl hardware rate MODEL RATE --source ...``.
Prices change: check them before you rely on the ledger.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class CloudRate:
    gpu_model: str
    per_gpu_hour: Decimal
    source: str


DEFAULT_RATES: tuple[CloudRate, ...] = (
    CloudRate("A100", Decimal("4.10"),
              "AWS p4d.24xlarge (8x A100 40GB) on demand $32.77/h / 8"),
    CloudRate("A100-40GB", Decimal("4.10"),
              "AWS p4d.24xlarge (8x A100 40GB) on demand $32.77/h / 8"),
    CloudRate("A100-80GB", Decimal("5.12"),
              "AWS p4de.24xlarge (8x A100 80GB) on demand $40.97/h / 8"),
    CloudRate("H100", Decimal("12.29"),
              "AWS p5.48xlarge (8x H100 80GB) on demand $98.32/h / 8, list price at launch "
              "(2023); AWS announced lower P5 prices in 2025, so check and override"),
    CloudRate("V100", Decimal("3.06"), "AWS p3.2xlarge (1x V100 16GB) on demand $3.06/h"),
    CloudRate("A10G", Decimal("1.01"), "AWS g5.xlarge (1x A10G) on demand $1.006/h"),
    CloudRate("L4", Decimal("0.80"), "AWS g6.xlarge (1x L4) on demand $0.805/h"),
    CloudRate("L40S", Decimal("1.86"), "AWS g6e.xlarge (1x L40S) on demand $1.861/h"),
    CloudRate("T4", Decimal("0.53"), "AWS g4dn.xlarge (1x T4) on demand $0.526/h"),
    CloudRate("RTX 4090", Decimal("0.69"),
              "RunPod community cloud RTX 4090, $0.69/h (2024); no hyperscaler rents it"),
)


def model_key(name: str) -> str:
    """``A100-80GB``, ``a100 80gb`` and ``A100_80GB`` are one model: letters and digits only,
    upper case, without a leading ``NVIDIA``/``GeForce``."""
    key = re.sub(r"[^A-Z0-9]", "", name.upper())
    for prefix in ("NVIDIA", "GEFORCE"):
        key = key.removeprefix(prefix)
    return key


def effective_rates(overrides: Mapping[str, CloudRate]) -> dict[str, CloudRate]:
    """The defaults with the admins' overrides on top, keyed by :func:`model_key`."""
    table = {model_key(r.gpu_model): r for r in DEFAULT_RATES}
    table.update({model_key(r.gpu_model): r for r in overrides.values()})
    return table


def by_model(table: Mapping[str, T], gpu_model: str | None) -> T | None:
    """A table's entry for a model (keyed by :func:`model_key`): its own, else the longest
    model name it starts with (``A100-SXM4-40GB`` → ``A100``); None when nothing matches."""
    if not gpu_model:
        return None
    key = model_key(gpu_model)
    if key in table:
        return table[key]
    prefixes = [k for k in table if key.startswith(k)]
    return table[max(prefixes, key=len)] if prefixes else None


def rate_for(gpu_model: str, table: Mapping[str, CloudRate]) -> CloudRate | None:
    """The rate for a model (:func:`by_model`); None when nothing matches, and the ledger
    says so."""
    return by_model(table, gpu_model)
