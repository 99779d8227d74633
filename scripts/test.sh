#!/usr/bin/env bash
# The whole test suite from a fresh machine: set-up, lint, types, engine tests, then tests in real Blender:
# the bpy module, then a stock Blender executable with its UI (scripts/real_blender.sh; root, cached).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy engine blender_addon build_addon.py
echo "== engine tests"
.venv/bin/python -m pytest -q -p no:cacheprovider -m "not blender" --timeout 900 tests "$@"
echo "== Blender tests (bpy module)"
.venv/bin/python -m pytest -q -p no:cacheprovider -m blender --timeout 900 tests "$@"
echo "== Blender tests (real executable and UI, scripts/real_blender.sh)"
if [ "${DUALFACE_REAL_BLENDER:-1}" = 0 ]; then
  echo "skipped: DUALFACE_REAL_BLENDER=0 (CI runs it; see docs/blender-testing.md)"
else
  bash scripts/real_blender.sh test "$@"
fi
