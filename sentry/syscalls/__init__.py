"""The Sentry's syscall handlers, one module per family (x86_64 Linux's set).

Importing this package registers every handler in the kernel's table
(`sentry.kernel.table.TABLE`), which a `Kernel` serves from by default. The kernel never
imports its handlers: whoever builds a Kernel (the runtime, the tests, the benchmarks)
imports `sentry.syscalls` first, or passes a table of its own (`Kernel(table=...)`);
`Kernel.run` refuses an empty table. Each family module is imported explicitly below.
"""

from . import (  # noqa: F401  (each registers its handlers)
    sys_aio,
    sys_clone,
    sys_eventfd,
    sys_exec,
    sys_file,
    sys_fs,
    sys_futex,
    sys_identity,
    sys_inotify,
    sys_membarrier,
    sys_memfd,
    sys_mlock,
    sys_mmap,
    sys_mount,
    sys_mqueue,
    sys_msg,
    sys_ns,
    sys_numa,
    sys_pgrp,
    sys_pidfd,
    sys_poll,
    sys_prctl,
    sys_procvm,
    sys_ptrace,
    sys_refused,
    sys_rlimit,
    sys_rusage,
    sys_sched,
    sys_sem,
    sys_shm,
    sys_signal,
    sys_signalfd,
    sys_socket,
    sys_splice,
    sys_sysinfo,
    sys_thread,
    sys_time,
    sys_timer,
    sys_timerfd,
    sys_uts,
    sys_wait,
    sys_xattr,
)
