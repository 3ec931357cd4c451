#!/usr/bin/env bash
# The whole test suite: set up, check (lint, import layers, types), then every test; then
# three more runs of parts of it (no cffi, under load, and tests/sentry plus tests/runtime
# on the ptrace platform). Under CI=true a test whose peer or privilege is missing
# fails instead of skipping. Arguments go to the main pytest run, and then the extra
# runs are left out (`scripts/test.sh tests/p9 -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy
main=0
.venv/bin/python -m pytest "$@" || main=$?
[ "$#" -eq 0 ] || exit "$main"
# Again with RUNPSC_NO_CFFI=1: p9's server and the Sentry's platform on their pure-Python
# paths (the cffi extensions not loaded; tests/test_no_cffi.py checks that). Left out: the
# tests of the C loops themselves (they compare C with Python, or count what C answered),
# and the QEMU guest's (15 s; the gofer's Python paths are the other tests' business).
no_cffi=0
RUNPSC_NO_CFFI=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_no_cffi.py \
    tests/p9 tests/gofer tests/sentry/test_platform.py tests/sentry/test_platform_fork.py \
    tests/sentry/test_platform_process.py tests/sentry/test_platform_threads.py \
    --ignore=tests/gofer/test_cmeta.py --ignore=tests/gofer/test_v9fs_guest.py \
    -k "not c-loop" || no_cffi=$?
# Users' and CI's machines are busy: the timing-sensitive tests (signals, job control,
# forwarding, timers, polls, /proc, thread and fork races) once more with every CPU kept
# busy by the load generator (tests/load.py).
loaded=0
RUNPSC_TEST_LOAD=1 .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/sentry/test_signals*.py tests/sentry/test_signalfd.py \
    tests/sentry/test_jobcontrol*.py tests/sentry/test_itimer.py \
    tests/sentry/test_poll*.py tests/sentry/test_procfs*.py \
    tests/sentry/test_files_locks.py tests/sentry/test_platform_threads.py \
    tests/sentry/test_platform_fork.py tests/sentry/test_platform.py \
    tests/runtime/test_signal_forwarding.py || loaded=$?
# The ptrace platform (sentry/README.md, "The platform"; seccomp is the default the main run
# used): the whole of tests/sentry and tests/runtime again with RUNPSC_PLATFORM=ptrace for
# every Kernel and `runpsc` (issue 22: both platforms pass what a sandbox does). The few
# files there that run no sandbox (test_table, test_files_strace_format, test_ptrace_names,
# test_help_syscalls) take about 2 s together on a busy machine: not worth a list to keep up.
# Left out: the two files that name each platform themselves (every test runs on both in the
# main run already; test_ptrace_tools alone is 20 s on a busy machine).
ptrace=0
RUNPSC_PLATFORM=ptrace .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/sentry tests/runtime --ignore=tests/sentry/test_platform_seccomp.py \
    --ignore=tests/runtime/test_ptrace_tools.py || ptrace=$?
echo "test.sh: main run exit $main; RUNPSC_NO_CFFI=1 run exit $no_cffi; under load exit $loaded;" \
     "ptrace platform exit $ptrace"
[ "$main" -eq 0 ] && [ "$no_cffi" -eq 0 ] && [ "$loaded" -eq 0 ] && [ "$ptrace" -eq 0 ]
