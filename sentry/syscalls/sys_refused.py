"""Calls refused by design: each answers the errno Linux gives a program in an unprivileged
container (EPERM where a capability the sandbox never grants is needed, ENOSYS where the
call is gone from Linux or a kernel may be built without it and programs fall back), with
the reason in the table's note. None of them reaches the host. kexec_load and
kexec_file_load stay unimplemented: the tests use them as the example of an unsupported
call (ENOSYS with the user-visible event).
"""

from __future__ import annotations

import errno

from sentry.kernel.table import fixed_errno

_NEW_MOUNT_API = "the file-descriptor mount API is not offered, as Linux before 5.2: " \
    "libmount falls back to mount(2), which is"
_REMOVED = "removed from Linux (sys_ni_syscall)"
_NEVER = "never implemented by Linux (a reserved number)"

#: (name, errno, reason) of every call refused by design.
REFUSED: tuple[tuple[str, int, str], ...] = (
    # the machine, not the sandbox
    ("reboot", errno.EPERM, "needs CAP_SYS_BOOT: the sandbox cannot restart the host"),
    ("init_module", errno.EPERM, "needs CAP_SYS_MODULE: kernel modules are the host's"),
    ("finit_module", errno.EPERM, "needs CAP_SYS_MODULE: kernel modules are the host's"),
    ("delete_module", errno.EPERM, "needs CAP_SYS_MODULE: kernel modules are the host's"),
    ("swapon", errno.EPERM, "needs CAP_SYS_ADMIN: swap is the host's"),
    ("swapoff", errno.EPERM, "needs CAP_SYS_ADMIN: swap is the host's"),
    ("iopl", errno.EPERM, "needs CAP_SYS_RAWIO: no port I/O from a sandbox"),
    ("ioperm", errno.EPERM, "needs CAP_SYS_RAWIO: no port I/O from a sandbox"),
    ("acct", errno.EPERM, "needs CAP_SYS_PACCT: process accounting is the host's"),
    ("settimeofday", errno.EPERM, "needs CAP_SYS_TIME: the clock is the host's"),
    ("clock_settime", errno.EPERM, "needs CAP_SYS_TIME: the clock is the host's"),
    ("adjtimex", errno.EPERM, "needs CAP_SYS_TIME to adjust; reading the host's clock "
     "discipline is not offered either"),
    ("clock_adjtime", errno.EPERM, "needs CAP_SYS_TIME to adjust; reading the host's "
     "clock discipline is not offered either"),
    ("syslog", errno.EPERM, "the host's kernel log (dmesg_restrict=1 answers EPERM)"),
    ("vhangup", errno.EPERM, "needs CAP_SYS_TTY_CONFIG"),
    ("quotactl", errno.EPERM, "disk quotas are not modelled; refused as to an "
     "unprivileged caller"),
    ("quotactl_fd", errno.EPERM, "disk quotas are not modelled; refused as to an "
     "unprivileged caller"),
    ("open_by_handle_at", errno.EPERM, "needs CAP_DAC_READ_SEARCH"),
    ("name_to_handle_at", errno.EOPNOTSUPP, "no filesystem of the sandbox exports file "
     "handles"),
    # mounts
    ("open_tree", errno.ENOSYS, _NEW_MOUNT_API),
    ("open_tree_attr", errno.ENOSYS, _NEW_MOUNT_API),
    ("move_mount", errno.ENOSYS, _NEW_MOUNT_API),
    ("fsopen", errno.ENOSYS, _NEW_MOUNT_API),
    ("fsconfig", errno.ENOSYS, _NEW_MOUNT_API),
    ("fsmount", errno.ENOSYS, _NEW_MOUNT_API),
    ("fspick", errno.ENOSYS, _NEW_MOUNT_API),
    ("mount_setattr", errno.ENOSYS, _NEW_MOUNT_API),
    ("statmount", errno.ENOSYS, "mount ids of the 64-bit kind are not kept (as Linux before "
     "6.8); /proc/self/mountinfo answers"),
    ("listmount", errno.ENOSYS, "mount ids of the 64-bit kind are not kept (as Linux before "
     "6.8); /proc/self/mountinfo answers"),
    # kernel facilities the sandbox does not offer
    ("bpf", errno.EPERM, "unprivileged BPF is off (kernel.unprivileged_bpf_disabled)"),
    ("perf_event_open", errno.EPERM, "no performance counters in the sandbox (as a "
     "container's seccomp profile answers)"),
    ("userfaultfd", errno.EPERM, "vm.unprivileged_userfaultfd=0 answers EPERM"),
    ("io_uring_setup", errno.ENOSYS, "as a kernel without io_uring: programs fall back to "
     "epoll and threads"),
    ("io_uring_enter", errno.ENOSYS, "as a kernel without io_uring (no ring can exist)"),
    ("io_uring_register", errno.ENOSYS, "as a kernel without io_uring (no ring can exist)"),
    ("add_key", errno.ENOSYS, "no kernel keyring (as a kernel without CONFIG_KEYS)"),
    ("request_key", errno.ENOSYS, "no kernel keyring (as a kernel without CONFIG_KEYS)"),
    ("keyctl", errno.ENOSYS, "no kernel keyring (as a kernel without CONFIG_KEYS)"),
    ("landlock_create_ruleset", errno.ENOSYS, "no Landlock (as a kernel without "
     "CONFIG_SECURITY_LANDLOCK): the sandbox is the confinement"),
    ("landlock_add_rule", errno.ENOSYS, "no Landlock (as a kernel without it)"),
    ("landlock_restrict_self", errno.ENOSYS, "no Landlock (as a kernel without it)"),
    ("lsm_get_self_attr", errno.EOPNOTSUPP, "no security module provides attributes"),
    ("lsm_set_self_attr", errno.EOPNOTSUPP, "no security module provides attributes"),
    ("lsm_list_modules", errno.EOPNOTSUPP, "no security module is listed"),
    ("memfd_secret", errno.ENOSYS, "secret memory is off (secretmem.enable=0 answers "
     "ENOSYS)"),
    ("map_shadow_stack", errno.EOPNOTSUPP, "no user shadow stacks (as a CPU without CET)"),
    ("mseal", errno.ENOSYS, "sealing is not modelled; glibc treats ENOSYS as absent"),
    ("seccomp", errno.ENOSYS, "no seccomp filters inside the sandbox (as a kernel "
     "without CONFIG_SECCOMP)"),
    ("kcmp", errno.ENOSYS, "as a kernel without CONFIG_KCMP"),
    ("process_madvise", errno.EPERM, "advice to another process's memory is not offered"),
    ("process_mrelease", errno.EPERM, "reaping another process's memory is not offered"),
    ("modify_ldt", errno.ENOSYS, "no LDT (as a kernel without CONFIG_MODIFY_LDT_SYSCALL)"),
    ("set_thread_area", errno.ENOSYS, "32-bit TLS entries; 64-bit programs use arch_prctl"),
    ("get_thread_area", errno.ENOSYS, "32-bit TLS entries; 64-bit programs use arch_prctl"),
    ("uselib", errno.ENOSYS, "a.out libraries (as a kernel without CONFIG_USELIB)"),
    ("ustat", errno.ENOSYS, "obsolete; glibc no longer offers it"),
    ("sysfs", errno.ENOSYS, "obsolete (as a kernel without CONFIG_SYSFS_SYSCALL); "
     "/proc/filesystems answers the same"),
    ("remap_file_pages", errno.ENOSYS, "deprecated non-linear mappings"),
    ("cachestat", errno.ENOSYS, "page-cache statistics are the host's"),
    # gone from Linux, or never there
    ("_sysctl", errno.ENOSYS, _REMOVED + " in 5.5; /proc/sys answers the same"),
    ("create_module", errno.ENOSYS, _REMOVED),
    ("get_kernel_syms", errno.ENOSYS, _REMOVED),
    ("query_module", errno.ENOSYS, _REMOVED),
    ("nfsservctl", errno.ENOSYS, _REMOVED + " in 3.1"),
    ("lookup_dcookie", errno.ENOSYS, _REMOVED + " in 6.8"),
    ("getpmsg", errno.ENOSYS, _NEVER),
    ("putpmsg", errno.ENOSYS, _NEVER),
    ("afs_syscall", errno.ENOSYS, _NEVER),
    ("tuxcall", errno.ENOSYS, _NEVER),
    ("security", errno.ENOSYS, _NEVER),
    ("vserver", errno.ENOSYS, _NEVER),
    ("epoll_ctl_old", errno.ENOSYS, _NEVER),
    ("epoll_wait_old", errno.ENOSYS, _NEVER),
)

for _name, _err, _why in REFUSED:
    fixed_errno(_name, _err, _why)
