#!/usr/bin/env bash
# The side-by-side benchmark, one run on one core: envtune's episode engine (in process) against
# BFCL's own Python executor and checker (bfcl-eval from PyPI, in the benchmark-only venv), same
# tasks, same work per turn. See side_by_side.py for what is measured.
#
# Usage: bench/bfcl/side_by_side.sh [BUILD_DIR (default build-notorch)] [tasks per category (200)]
#   CORE=N picks the core (default 0); VENV=DIR the venv (default .venv-bfcl, made if missing).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$repo/build-notorch}"
per_category="${2:-200}"
venv="${VENV:-$repo/.venv-bfcl}"
core="${CORE:-0}"
bench="$build/bench/bench_envserver_side_by_side"
if [[ ! -x "$bench" ]]; then
  echo "side_by_side: $bench not built (cmake --build $build --target bench_envserver_side_by_side)" >&2
  exit 2
fi
[[ -x "$venv/bin/python" ]] || "$repo/bench/bfcl/setup_venv.sh" "$venv"
exec taskset -c "$core" "$venv/bin/python" "$repo/bench/bfcl/side_by_side.py" \
  --envtune_bench "$bench" --data_dir "$repo/data" --tasks_per_category "$per_category"
