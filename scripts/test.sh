#!/usr/bin/env bash
# Lint, type-check and test lungspread. Run scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
# Fast suite first, then the slow checks (CI's time budget allows both).
.venv/bin/python -m pytest -m "not slow" -q "$@"
.venv/bin/python -m pytest -m "slow" -q "$@"
