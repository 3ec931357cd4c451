"""Which platform runs application code (`Kernel(platform=...)`, `RUNPSC_PLATFORM`), and
the calls the seccomp platform takes as user notifications.

`ptrace` (the default): every application call is a PTRACE_SYSEMU stop. `seccomp`: the
calls in NOTIFIED come as seccomp user notifications, answered without a ptrace stop;
every other call is a PTRACE_EVENT_SECCOMP stop (sentry/platform/usernotif.py).

A call belongs in NOTIFIED only if its handler's whole effect is its return value, memory
the Sentry reads or writes (process_vm_readv/writev) and Sentry state: it must not read
or write registers beyond the number, the arguments and rip (the notification carries
only those), nor inject host calls into the stub (the thread is not at a ptrace stop),
nor change the thread (exec, clone, exit, sigreturn, arch_prctl). A signal it raises or
interrupts it with is delivered at a ptrace stop at the call's return (the Kernel kicks
the thread before answering), so blocking calls qualify.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sentry.platform.ptrace import PtraceStub
from sentry.platform.usernotif import SeccompStub

from .table import number

PLATFORMS = ("ptrace", "seccomp")
DEFAULT = "ptrace"
ENV = "RUNPSC_PLATFORM"

NOTIFIED = frozenset(number(n) for n in (
    # files and fds
    "read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "close", "lseek", "stat", "fstat", "lstat",
    "newfstatat", "statx", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "getdents64", "fcntl", "dup", "dup2", "dup3", "pipe", "pipe2", "getcwd", "chdir",
    "fchdir", "umask", "fsync", "fdatasync", "ftruncate", "unlink", "unlinkat", "mkdir",
    "mkdirat", "rename", "renameat", "renameat2", "ioctl",
    # ids and time
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getpgrp",
    "getpgid", "getsid", "uname", "clock_gettime", "gettimeofday", "time", "getrandom",
    "sched_yield", "getrlimit", "prlimit64", "sysinfo",
    # waiting (interrupted by a signal: EINTR and the restart are decided at the kick stop)
    "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "nanosleep",
    "clock_nanosleep", "futex", "wait4",
    # signals that go to another or, queued, to this thread at the call's return
    "rt_sigprocmask", "rt_sigaction", "kill", "tgkill",
))


def choose(name: str | None) -> str:
    """The platform to use: `name`, else $RUNPSC_PLATFORM, else the default."""
    name = name or os.environ.get(ENV) or DEFAULT
    if name not in PLATFORMS:
        raise ValueError(f"unknown platform {name!r} (one of {', '.join(PLATFORMS)})")
    return name


def stub_starter(name: str) -> Callable[[], PtraceStub]:
    """How the Kernel starts an address space on platform `name`."""
    if name == "seccomp":
        return lambda: SeccompStub.start(NOTIFIED)
    return PtraceStub.start
