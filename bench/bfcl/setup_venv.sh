#!/usr/bin/env bash
# Creates the benchmark-only virtual environment that holds BFCL's own Python (bfcl-eval from
# PyPI, pinned to the release our reference data comes from: ../shared/bfcl/SOURCE.md, commit of
# 2026-03-23). Used by bench/bfcl/side_by_side.sh only; never a runtime dependency of envtune.
#
# bfcl-eval declares every model client it can drive (torch, vllm, openai, ...). The executor and
# checker of the multi-turn categories need only the standard library plus the few packages
# below, so the wheel is installed without its declared dependencies.
#
# Usage: bench/bfcl/setup_venv.sh [VENV_DIR (default: <repo>/.venv-bfcl)]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-$repo/.venv-bfcl}"
BFCL_EVAL_VERSION=2026.3.23
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "bfcl-eval==$BFCL_EVAL_VERSION"
# Imported by the multi-turn backends (math_api: mpmath; long_context: filelock) and by the
# package's constants modules on the import path of the checker.
# (pip then lists bfcl-eval's other declared dependencies as missing: expected, filtered out.)
"$venv/bin/pip" install --quiet --disable-pip-version-check "mpmath==1.3.0" "filelock==3.20.0" "python-dotenv>=1.0.1" \
  2> >(grep -v -e "^bfcl-eval .* requires " -e "dependency resolver does not currently" -e "dependency conflicts" >&2)
"$venv/bin/python" - <<'PY'
from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker, multi_turn_utils  # noqa: F401
import bfcl_eval
print("bfcl-eval ready:", bfcl_eval.__file__)
PY
