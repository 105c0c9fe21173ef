#!/usr/bin/env bash
# Install clusterctl with its test extras into .venv and run the whole test suite (all but the
# `gpu` marker, which needs a real NVIDIA driver), after ruff, mypy and import-linter's layers,
# in parallel workers (pytest-xdist; CLUSTERCTL_TEST_WORKERS, default 3: on a slow two-core
# machine four workers' controllers and Ray heads overran their timeouts in three runs of four,
# and a green run with four was no faster, 733 s against 740 s: the CPU is the limit). Where
# CLUSTERCTL_TEST_PG_URL is not set and PostgreSQL's server is installed, a throwaway
# PostgreSQL of its own runs the PostgreSQL tests.
#
#   bash scripts/test.sh             the whole suite, as CI runs it (.ci/run)
#   bash scripts/test.sh --quick     unit and property tests only: no Ray, no servers (~1 min)
#   bash scripts/test.sh ARGS...     pytest arguments, e.g. tests/test_policy.py -k fair
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
fi

if [[ $quick == 0 || ! -x .venv/bin/pytest ]]; then
    python3 -m venv .venv
    # uv installs the same pinned versions as pip would, in 7 s instead of 110 s (two cores):
    # pip byte-compiles every file of every package, most of which no test imports.
    .venv/bin/python -m pip install -q uv
    .venv/bin/python -m uv pip install -q --python .venv/bin/python -c requirements.lock \
        -e '.[test,plots]'
fi
# Byte code is written as modules are first imported (some machines set the variable off):
# else every controller, CLI and Ray worker the tests start compiles what it imports again.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/ruff check .
workers="${CLUSTERCTL_TEST_WORKERS:-3}"
if [[ $quick == 1 ]]; then
    exec .venv/bin/python -m pytest -m "not gpu and not ray and not postgres and not slow" \
        -n 2 --dist loadscope --no-loadscope-reorder "$@"
fi
echo "install and ruff: ${SECONDS}s"
.venv/bin/mypy
.venv/bin/lint-imports
echo "install and static checks: ${SECONDS}s"

# shellcheck source=scripts/throwaway-pg.sh
source scripts/throwaway-pg.sh
spread=(-n "$workers")
if [[ $(id -u) == 0 ]] && command -v unshare >/dev/null 2>&1; then
    # Each worker in a PID namespace of its own (scripts/ns-python): the simulated agents find
    # their GPUs' processes in /proc, and must not see another worker's "node-a" jobs.
    export CLUSTERCTL_TEST_PYTHON="$PWD/.venv/bin/python"
    spread=(--tx "$workers*popen//python=$PWD/scripts/ns-python")
fi
.venv/bin/python -m pytest -m "not gpu" "${spread[@]}" --dist loadscope --no-loadscope-reorder "$@"
