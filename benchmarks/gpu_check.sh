#!/bin/sh
# The prepared GPU check (benchmarks/gpu_check.py; BENCHMARKS.md, "GPU check"): .venv's Python when there is one.
cd "$(dirname "$0")/.." && exec "$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo "${PYTHON:-python3}")" benchmarks/gpu_check.py "$@"
