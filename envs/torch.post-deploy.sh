#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the new env, from this file's own path: installs the lood
# package of this repository (editable) with the lock's versions of what the pip list lacks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python -m pip install -c "$root/constraints.txt" -e "$root[torch]"
