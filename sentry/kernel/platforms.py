"""Which platform runs application code (`Kernel(platform=...)`, `RUNPSC_PLATFORM`), and
the calls the seccomp platform takes as user notifications.

`seccomp` (the default where it can run: the C extension is built and the host is Linux
5.19 or later): the calls in NOTIFIED come as seccomp user notifications, answered
without a ptrace stop; every other call is a PTRACE_EVENT_SECCOMP stop
(sentry/platform/usernotif.py). `ptrace` (the default otherwise, and selectable): every
application call is a PTRACE_SYSEMU stop.

A call belongs in NOTIFIED only if its handler's whole effect is its return value, memory
the Sentry reads or writes (process_vm_readv/writev) and Sentry state: it must not read
or write registers beyond the number, the arguments and rip (the notification carries
only those), nor inject host calls into the stub (the thread is not at a ptrace stop),
nor change the thread (exec, clone, exit, sigreturn, arch_prctl). A signal it raises or
interrupts it with is delivered at a ptrace stop at the call's return (the Kernel kicks
the thread before answering), so blocking calls qualify. futex is not one: its PI
operations set FUTEX_WAITERS with a FUTEX_WAKE_OP injected into the caller's stub.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sentry.platform import usernotif
from sentry.platform.ptrace import PtraceStub
from sentry.platform.usernotif import SeccompStub
from sentry.platform.zygote import Zygote

from .table import number

PLATFORMS = ("ptrace", "seccomp")
ENV = "RUNPSC_PLATFORM"
#: The legacy vsyscall page (x86-64's fixed gettimeofday, time and getcpu entries). The
#: host emulates a call there outside the syscall entry: PTRACE_SYSEMU never stops it (the
#: ptrace platform's filter kills the stub), seccomp sees it (notified on this platform).
VSYSCALL_PAGE = 0xFFFF_FFFF_FF60_0000

NOTIFIED = frozenset(number(n) for n in (
    # files and fds
    "read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "close", "lseek", "stat", "fstat", "lstat",
    "newfstatat", "statx", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
    "getdents64", "fcntl", "dup", "dup2", "dup3", "pipe", "pipe2", "getcwd", "chdir",
    "fchdir", "umask", "fsync", "fdatasync", "ftruncate", "unlink", "unlinkat", "mkdir",
    "mkdirat", "rename", "renameat", "renameat2", "ioctl", "fchmod", "fchmodat", "chmod",
    "fchown", "fchownat", "chown", "lchown", "utimensat", "utime", "utimes", "futimesat",
    "link", "linkat", "symlink", "symlinkat", "mknod", "mknodat", "rmdir", "truncate",
    "statfs", "fstatfs", "flock", "sendfile", "splice", "tee", "copy_file_range",
    "fallocate", "fadvise64", "sync", "syncfs", "close_range", "memfd_create",
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    # sockets and event files
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "sendto",
    "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create", "timerfd_settime",
    "timerfd_gettime", "signalfd", "signalfd4", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch", "pidfd_open",
    # ids and time
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getpgrp",
    "getpgid", "getsid", "uname", "clock_gettime", "gettimeofday", "time", "getrandom",
    "sched_yield", "getrlimit", "prlimit64", "sysinfo", "getgroups", "getresuid", "getresgid",
    "getitimer", "setitimer", "alarm", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "clock_getres", "sched_getaffinity", "getcpu",
    "getrusage", "times", "set_tid_address", "set_robust_list", "get_robust_list",
    "setpgid", "setsid", "getpriority", "setpriority", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    # waiting (interrupted by a signal: EINTR and the restart are decided at the kick stop)
    "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "nanosleep",
    "clock_nanosleep", "wait4", "waitid", "pause", "rt_sigsuspend",
    "rt_sigtimedwait",
    # signals that go to another or, queued, to this thread at the call's return
    "rt_sigprocmask", "rt_sigaction", "rt_sigpending", "kill", "tgkill", "tkill",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal",
))


def default() -> str:
    """seccomp where it can run (faster: sentry/README.md, "The seccomp platform"), else
    ptrace (no C extension, as with RUNPSC_NO_CFFI=1; a host older than Linux 5.19)."""
    return "seccomp" if usernotif.available() and usernotif.host_supports() else "ptrace"


def choose(name: str | None) -> str:
    """The platform to use: `name`, else $RUNPSC_PLATFORM, else the default."""
    name = name or os.environ.get(ENV) or default()
    if name not in PLATFORMS:
        raise ValueError(f"unknown platform {name!r} (one of {', '.join(PLATFORMS)})")
    return name


def stub_starter(name: str, zygote: Zygote | None = None) -> Callable[[], PtraceStub]:
    """How the Kernel starts an address space on platform `name` (from `zygote`, for a
    Sentry under its own seccomp filter)."""
    if name == "seccomp":
        return lambda: SeccompStub.start(NOTIFIED, zygote=zygote)
    return lambda: PtraceStub.start(zygote=zygote)
