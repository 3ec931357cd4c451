#!/usr/bin/env bash
# The whole test suite: set up, check (lint, import layers, types), then every test; then
# four more runs of parts of it (no cffi, under load, tests/sentry plus tests/runtime on the
# ptrace platform, as an unprivileged user). Under CI=true a test whose peer or privilege is missing
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
# The runtime tests that run rootless, once more as an unprivileged user (uid 4321, as
# tests/runtime/test_rootless_do.py): `runpsc do` and the API with the Sentry and the gofers
# confined in user namespaces of their own (the Sentry as a subordinate id of the user's,
# whose range scripts/setup.sh gives), volumes, tmpfs, remote TLS mounts, the memory
# limit, each compared with the same program run natively as that user. Left out: the tests
# that need root, and those whose native run shows root-owned files' owners or writes
# where only root may (a rootless sandbox shows owners it cannot map as nobody, as a user
# namespace does). The user runs the venv's packages through a venv of its own made from
# the system's python3 when the venv's interpreter is out of its reach (pyenv's in /root).
unpriv=0
if [ "$(id -u)" -eq 0 ]; then
    as_user=(setpriv --reuid 4321 --regid 4321 --clear-groups env HOME=/tmp PYTHONDONTWRITEBYTECODE=1)
    py=$PWD/.venv/bin/python
    shim=
    if ! "${as_user[@]}" "$py" -c '' 2>/dev/null; then
        shim=$("${as_user[@]}" mktemp -d /tmp/runpsc-unpriv.XXXXXX)
        "${as_user[@]}" python3 -m venv --without-pip "$shim"
        "${as_user[@]}" "$shim/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'
        site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        pth=$("${as_user[@]}" "$shim/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/runpsc-venv.pth
        echo "import site; site.addsitedir('$site')" | "${as_user[@]}" tee "$pth" >/dev/null
        py=$shim/bin/python
    fi
    r=tests/runtime
    "${as_user[@]}" "$py" -m pytest -q -p no:cacheprovider $r/test_do.py \
        --deselect "$r/test_do.py::test_programs_match_native[argv1]" \
        --deselect "$r/test_do.py::test_programs_match_native[argv8]" \
        --deselect "$r/test_do.py::test_programs_match_native[argv12]" \
        --deselect $r/test_do.py::test_static_busybox_in_full_topology \
        --deselect $r/test_do.py::test_writes_stay_in_the_sandbox \
        --deselect $r/test_do.py::test_sentry_leaves_host_network_ipc_uts \
        $r/test_api.py::test_run_is_like_subprocess_run $r/test_api.py::test_run_errors \
        $r/test_api.py::test_two_sandboxes_at_once_from_threads \
        $r/test_api.py::test_asyncio_runs_sandboxes_in_threads \
        $r/test_api.py::test_a_killed_caller_leaves_nothing \
        $r/test_api.py::test_ctrl_c_during_an_exec_leaves_nothing \
        $r/test_remote_mounts.py::test_sandbox_writes_through_a_tls_mount \
        $r/test_remote_mounts.py::test_python_api_mounts_a_tls_gofer \
        $r/test_memlimit.py::test_every_tmpfs_and_the_root_share_the_limit \
        $r/test_memlimit.py::test_anonymous_memory_enomem_matches_native_rlimit \
        $r/test_memlimit.py::test_fork_past_the_limit_is_enomem || unpriv=$?
    [ -z "$shim" ] || rm -rf "$shim"
fi
echo "test.sh: main run exit $main; RUNPSC_NO_CFFI=1 run exit $no_cffi; under load exit $loaded;" \
     "ptrace platform exit $ptrace; unprivileged user exit $unpriv"
[ "$main" -eq 0 ] && [ "$no_cffi" -eq 0 ] && [ "$loaded" -eq 0 ] && [ "$ptrace" -eq 0 ] \
    && [ "$unpriv" -eq 0 ]
