#!/usr/bin/env bash
# The whole test suite: set up, lint, then every test. Under CI=true a test whose peer or
# privilege is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
# Users' and CI's machines are busy: the timing-sensitive tests (signals, job control,
# forwarding, timers, polls, /proc, thread and fork races) once more with every CPU kept
# busy by the load generator (tests/load.py).
if [ "$#" -eq 0 ]; then
    RUNPSC_TEST_LOAD=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
        tests/sentry/test_signals*.py tests/sentry/test_signalfd.py \
        tests/sentry/test_jobcontrol*.py tests/sentry/test_itimer.py \
        tests/sentry/test_poll*.py tests/sentry/test_procfs.py \
        tests/sentry/test_files_locks.py tests/sentry/test_platform_threads.py \
        tests/sentry/test_platform_fork.py tests/sentry/test_platform.py \
        tests/runtime/test_signal_forwarding.py
fi
