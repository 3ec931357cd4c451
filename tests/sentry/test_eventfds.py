"""Event and notification descriptors served by the Sentry, compared with Linux: eventfd
and timerfd, memfd_create with seals, pidfds (poll, waitid(P_PIDFD), signals, getfd),
inotify (and fanotify's refusal) and POSIX timers. Each C program prints what it sees,
errors included; the output must be the same natively and in the sandbox."""

import shutil
import tempfile
from pathlib import Path

import pytest

from .platform_helpers import build_c, native
from .test_procfs import run_with_proc

PROGS = Path(__file__).resolve().parent / "progs"
#: Programs that take a scratch directory on a tmpfs (natively one on /dev/shm).
SCRATCH = {"inotify"}


@pytest.mark.parametrize("name", ["eventfd", "memfd", "pidfd", "inotify", "posix_timer"])
async def test_matches_linux(tmp_path, name):
    prog = build_c(tmp_path, name, (PROGS / f"{name}.c").read_text(), "-static", "-w",
                   "-pthread")
    scratch = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    try:
        st, out = native([prog, scratch] if name in SCRATCH else [prog])
    finally:
        shutil.rmtree(scratch)
    assert st == 0, out
    argv = [f"/{name}", "/tmp"] if name in SCRATCH else [f"/{name}"]
    status, got, k = await run_with_proc(argv, {f"/{name}": prog})
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]


#: `tail -f` (GNU tail follows with inotify) sees lines another process appends: a reader
#: appends the next line only after reading the last, then closes the pipe and appends a
#: last line, on which tail dies of SIGPIPE. The long -s makes a fallback to polling hang
#: rather than pass. The file is on a tmpfs (/dev/shm) natively and in the sandbox: GNU tail
#: polls instead of watching on filesystems it counts as remote, overlayfs among them (the
#: sandbox's /tmp is part of its overlay root).
TAIL_F = """d=$(mktemp -d -p /dev/shm); cd "$d"; printf 'one\\n' > f
tail -s 600 -f f | { read a; echo "got $a"; echo two >> f; read b; echo "got $b"
                     exec 0<&-; echo three >> f; }
echo "status $?"; cd /; rm -rf "$d"
"""

#: inotifywait reports what another process does in the watched directory; it says when
#: its watches are set, and dies of SIGPIPE at the first event after the reader is gone.
INOTIFYWAIT = """d=$(mktemp -d); cd "$d"; mkdir w
inotifywait -m -e create,modify,delete,moved_from,moved_to,close_write,attrib \\
    --format '%e %f' w 2>&1 | {
  read l; echo "$l"; read l; echo "$l"
  touch w/a; echo x >> w/a; mv w/a w/b; chmod 600 w/b; rm w/b; mkdir w/sub
  i=0; while [ $i -lt 10 ]; do read l; echo "$l"; i=$((i+1)); done
  exec 0<&-; touch w/c; }
echo "status $?"; cd /; rm -rf "$d"
"""


def test_tail_follow_matches_linux():
    from tests.runtime.test_workloads import compare

    compare(["sh", "-c", TAIL_F])


def test_inotifywait_matches_linux():
    from tests.runtime.test_workloads import compare
    from tests.support import need_binary

    need_binary("inotifywait", "inotify-tools")
    compare(["sh", "-c", INOTIFYWAIT])


def test_python_event_fds_match_linux():
    from tests.runtime.test_workloads import compare

    compare(["python3", "-c", (PROGS / "event_fds.py").read_text()])


def test_cpython_event_fd_tests_match_linux():
    """CPython's own tests of these calls (test_os's memfd and eventfd classes,
    test_posix's pidfd_open, test_signal's pidfd_send_signal on a /proc/PID directory)
    pass natively and in the sandbox."""
    from tests.runtime.test_workloads import compare

    tests = ("test.test_os.MemfdCreateTests test.test_os.EventfdTests "
             "test.test_posix.PosixTester.test_pidfd_open test.test_signal.PidfdSignalTest")
    compare(["sh", "-c", f"python3 -m unittest {tests} >/dev/null 2>&1; echo status $?"])
