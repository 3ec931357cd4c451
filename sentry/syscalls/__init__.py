"""The Sentry's syscall handlers, one module per family (x86_64 Linux's set).

Importing this package registers every handler in the kernel's table
(`sentry.kernel.table.TABLE`), which a `Kernel` serves from by default. The kernel never
imports its handlers: whoever builds a Kernel (the runtime, the tests, the benchmarks)
imports `sentry.syscalls` first, or passes a table of its own (`Kernel(table=...)`);
`Kernel.run` refuses an empty table. Each family module is imported explicitly below.
"""

from . import (  # noqa: F401  (each registers its handlers)
    sys_clone,
    sys_exec,
    sys_file,
    sys_fs,
    sys_futex,
    sys_identity,
    sys_mmap,
    sys_pgrp,
    sys_poll,
    sys_prctl,
    sys_rlimit,
    sys_rusage,
    sys_sched,
    sys_signal,
    sys_signalfd,
    sys_socket,
    sys_sysinfo,
    sys_thread,
    sys_time,
    sys_wait,
    sys_xattr,
)
