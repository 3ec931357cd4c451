#!/usr/bin/env bash
# The whole test suite: set up, lint, then every test. Under CI=true a test whose peer or
# privilege is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
