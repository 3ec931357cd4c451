#!/usr/bin/env bash
# The whole test suite: set up, lint, then every test. Under CI=true a test whose peer or
# privilege is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
main=0
.venv/bin/python -m pytest "$@" || main=$?
# Again with RUNPSC_NO_CFFI=1: p9's server and the Sentry's platform on their pure-Python
# paths (the cffi extensions not loaded; tests/test_no_cffi.py checks that). Left out: the
# tests of the C loops themselves (they compare C with Python, or count what C answered).
no_cffi=0
RUNPSC_NO_CFFI=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_no_cffi.py \
    tests/p9 tests/gofer tests/sentry/test_platform.py tests/sentry/test_platform_fork.py \
    tests/sentry/test_platform_process.py tests/sentry/test_platform_threads.py \
    --ignore=tests/gofer/test_cmeta.py -k "not c-loop" || no_cffi=$?
echo "test.sh: main run exit $main; RUNPSC_NO_CFFI=1 run exit $no_cffi"
[ "$main" -eq 0 ] && [ "$no_cffi" -eq 0 ]
