#!/usr/bin/env bash
# The real NVML path on a machine with an NVIDIA GPU and driver, in one short run: what
# nvidia-smi says, the agent's --once --json idle and under load, a raw NVML probe of ECC,
# retired pages/rows and the XID event set, and `pytest -m gpu`. Writes everything to DIR
# (default $OUT, else ./gpu-check). Needs only the agent's dependencies (no Ray, no database);
# the load is PyTorch matrix products where PyTorch is installed.
#   scripts/gpu-check.sh [DIR]
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
py=${PYTHON:-python3}
step() { echo "== $*"; }

step nvidia-smi
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
nvidia-smi -q -d ECC,PAGE_RETIREMENT,ROW_REMAPPER,POWER,CLOCK,PERFORMANCE >> "$out/nvidia-smi.txt" 2>&1
head -20 "$out/nvidia-smi.txt"

step agent --once idle
$py -m agents.main --once --json > "$out/agent-idle.json" 2> "$out/agent-idle.err"; echo "rc=$?"
$py -m agents.main --once 2>&1

step raw NVML probe
$py - > "$out/nvml-probe.txt" 2>&1 <<'PY'
import time
import pynvml as n
from agents.nvml import NvmlReader
n.nvmlInit()
print("driver", n.nvmlSystemGetDriverVersion(), "nvml", n.nvmlSystemGetNVMLVersion())
for i in range(n.nvmlDeviceGetCount()):
    h = n.nvmlDeviceGetHandleByIndex(i)
    def q(name, *a):
        try:
            return getattr(n, name)(h, *a)
        except Exception as e:  # noqa: BLE001 - a probe: print whatever NVML says
            return f"<{type(e).__name__}: {e}>"
    print(i, q("nvmlDeviceGetName"), q("nvmlDeviceGetUUID"))
    print("  ecc mode", q("nvmlDeviceGetEccMode"))
    for kind, label in ((n.NVML_MEMORY_ERROR_TYPE_CORRECTED, "corrected"),
                        (n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected")):
        print(f"  ecc {label} volatile", q("nvmlDeviceGetTotalEccErrors", kind, n.NVML_VOLATILE_ECC),
              "aggregate", q("nvmlDeviceGetTotalEccErrors", kind, n.NVML_AGGREGATE_ECC))
    print("  remapped rows (corr, uncorr, pending, failed)", q("nvmlDeviceGetRemappedRows"))
    print("  retired pages (dbe)", q("nvmlDeviceGetRetiredPages",
                                     n.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR))
    ev = q("nvmlDeviceGetSupportedEventTypes")
    print("  supported events", ev, "xid critical supported:",
          isinstance(ev, int) and bool(ev & n.nvmlEventTypeXidCriticalError))
    print("  mig mode", q("nvmlDeviceGetMigMode"))
    print("  power limit mW", q("nvmlDeviceGetEnforcedPowerLimit"),
          "energy mJ", q("nvmlDeviceGetTotalEnergyConsumption"))
    print("  clocks event reasons", q("nvmlDeviceGetCurrentClocksEventReasons"))
    print("  persistence", q("nvmlDeviceGetPersistenceMode"), "compute mode",
          q("nvmlDeviceGetComputeMode"))
n.nvmlShutdown()
r = NvmlReader()
r.read()
t = time.perf_counter()
for _ in range(20):
    s = r.read()
per = (time.perf_counter() - t) / 20
print(f"NvmlReader.read(): {per * 1000:.1f} ms per read of {len(s.gpus)} GPU(s); xids {s.xids}")
r.close()
PY
cat "$out/nvml-probe.txt"

step agent --once under load
$py - > "$out/load.txt" 2>&1 <<'PY' &
import time
import torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 25
n = 0
t = time.time()
while time.time() < end:
    for _ in range(20):
        a @ a
    torch.cuda.synchronize()
    n += 20
print(f"{n} products of 8192^3 bf16 in {time.time() - t:.1f} s: "
      f"{n * 2 * 8192**3 / (time.time() - t) / 1e12:.0f} TFLOP/s")
PY
load=$!
sleep 10
$py -m agents.main --once --json > "$out/agent-load.json" 2> "$out/agent-load.err"; echo "rc=$?"
$py -m agents.main --once 2>&1
wait $load; cat "$out/load.txt"
sleep 3
$py -m agents.main --once 2>&1 | sed 's/^/after load: /'

step pytest -m gpu
$py -m pytest -m gpu --noconftest -p no:cacheprovider -v tests/test_nvml_gpu.py 2>&1 \
  | tee "$out/pytest-gpu.txt" | tail -25
