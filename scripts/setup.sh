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

# >>> export/report (issue 6): headless Chromium for tests/test_html_browser.py >>>
# Only as root on a system with apt-get; elsewhere those tests skip and say why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (headless browser tests of report.html)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
        echo "chromium could not be installed; the browser tests will be skipped"
    fi
fi
# <<< export/report (issue 6) <<<
