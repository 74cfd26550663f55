#!/usr/bin/env bash
# Create .venv and install lungspread with everything its tests and demo need (CPU build of torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints/cpu.txt torch==2.13.0
.venv/bin/python -m pip install --quiet -c constraints/cpu.txt -e ".[all,dev]"
echo "lungspread is installed in .venv ($(.venv/bin/lungspread --version))"
