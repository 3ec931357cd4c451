"""What a sandbox's processes start with: resource limits (getrlimit(2), /proc/PID/limits)
and the kernel's identity (uname(2), /proc/version). Kept in the kernel so that the syscall
handlers and /proc read the same values."""

from __future__ import annotations

__all__ = ["DEFAULT_RLIMITS", "RELEASE", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_NLIMITS", "RLIMIT_NOFILE",
           "RLIMIT_STACK", "RLIM_INFINITY", "VERSION"]

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_CPU, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NOFILE, RLIMIT_NLIMITS = 0, 3, 4, 7, 16
DEFAULT_RLIMITS = {
    0: (RLIM_INFINITY, RLIM_INFINITY),  # CPU
    1: (RLIM_INFINITY, RLIM_INFINITY),  # FSIZE
    2: (RLIM_INFINITY, RLIM_INFINITY),  # DATA
    3: (8 << 20, RLIM_INFINITY),  # STACK
    4: (0, RLIM_INFINITY),  # CORE
    5: (RLIM_INFINITY, RLIM_INFINITY),  # RSS
    6: (63704, 63704),  # NPROC
    7: (1024, 1 << 20),  # NOFILE
    8: (8 << 20, 8 << 20),  # MEMLOCK
    9: (RLIM_INFINITY, RLIM_INFINITY),  # AS
    10: (RLIM_INFINITY, RLIM_INFINITY),  # LOCKS
    11: (63704, 63704),  # SIGPENDING
    12: (819200, 819200),  # MSGQUEUE
    13: (0, 0),  # NICE
    14: (0, 0),  # RTPRIO
    15: (RLIM_INFINITY, RLIM_INFINITY),  # RTTIME
}

#: uname's release and version: runpsc's own, never the host's.
RELEASE = b"6.1.0-runpsc"
VERSION = b"#1 SMP PREEMPT_DYNAMIC runpsc"
