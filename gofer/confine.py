"""Confine the gofer process after it has opened its exports and bound its listeners.

Three walls, applied in this order by `confine()`:

1. Mount namespace: a new, private mount namespace whose root is an empty, read-only tmpfs
   (pivot_root, the old root detached). The exports stay reachable only through the O_PATH
   descriptors opened before; the only other thing in the new root is `/fd`, a bind mount of
   this process's own /proc/<pid>/fd, so descriptors can be reopened (no other process,
   and no /proc/<pid>/root, is reachable from there).
2. Capabilities: the bounding, permitted and effective sets are reduced to CAP_CHOWN,
   CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, plus CAP_SETUID and
   CAP_SETGID when the gofer switches to attaching users' credentials (setfsuid(2) needs
   them), plus CAP_MKNOD when an export allows creating device nodes (`mknod`).
   CAP_SYS_ADMIN and the rest are gone; no_new_privs is set and the process is made
   non-dumpable.
3. seccomp: an allow-list filter (`ALLOWED_SYSCALLS`, built in BPF here) applied to every
   thread (TSYNC). Any other syscall fails with EPERM; a non-x86_64 syscall kills the
   process.

Why hand-built BPF rather than libseccomp: the Debian python3-seccomp binding is for the
system interpreter only and there is no maintained PyPI wheel; an allow-list without
argument filtering is ~2 BPF instructions per syscall and easy to audit here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterable, Mapping

from ptrace.syscall.linux.x86_64 import SYSCALL_NAMES

__all__ = ["ALLOWED_SYSCALLS", "ALLOWED_IOCTLS", "KEPT_CAPS", "build_filter", "confine", "drop_capabilities",
           "enter_user_namespace", "install_filter", "install_seccomp", "pivot_to_empty_root", "syscall_numbers"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID = 0, 1, 2, 3, 4
CAP_SETGID, CAP_SETUID = 6, 7
CAP_MKNOD = 27
KEPT_CAPS = (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID)

# Syscalls the confined gofer makes: CPython and glibc housekeeping, trio's event loop,
# socket serving, and every file operation of gofer.host. No clone: the gofer starts no
# thread or process once confined (FIFOs are waited on with trio, not on worker threads).
ALLOWED_SYSCALLS: tuple[str, ...] = (
    # memory, threads, signals, time
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "futex", "set_robust_list",
    "get_robust_list", "rseq", "exit", "exit_group", "set_tid_address",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "tgkill", "gettid",
    "getpid", "getppid", "sched_yield", "sched_getaffinity", "clock_gettime", "clock_getres",
    "gettimeofday", "nanosleep", "clock_nanosleep", "getrandom", "restart_syscall",
    "membarrier", "prlimit64", "getrlimit", "uname", "sysinfo", "getcwd",
    # credentials (read, and the per-thread fs credentials of gofer.ident)
    "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid",
    "setfsuid", "setfsgid", "setgroups", "capget",
    # descriptors and the event loop
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "lseek",
    "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "pipe2", "eventfd2",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll",
    "ppoll", "select", "pselect6",
    # sockets already bound: accept and talk, nothing new
    "socketpair", "accept", "accept4", "recvfrom", "recvmsg", "sendto", "sendmsg", "shutdown",
    "getsockopt", "setsockopt", "getsockname", "getpeername",
    # files, always relative to descriptors the gofer holds
    "openat", "openat2", "newfstatat", "fstat", "statx", "readlinkat", "getdents64",
    "mkdirat", "mknodat", "symlinkat", "linkat", "renameat", "renameat2", "unlinkat",
    "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "utimensat", "ftruncate",
    "fallocate", "fsync", "fdatasync", "fstatfs", "statfs", "faccessat", "faccessat2",
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
    "getxattrat", "setxattrat", "listxattrat", "removexattrat",
)

_EXTRA_NUMBERS = {
    "rseq": 334, "statx": 332, "getrandom": 318, "membarrier": 324, "clone3": 435,
    "close_range": 436, "openat2": 437, "faccessat2": 439, "epoll_pwait2": 441,
    "fchmodat2": 452, "setxattrat": 463, "getxattrat": 464, "listxattrat": 465,
    "removexattrat": 466, "copy_file_range": 326, "preadv2": 327, "pwritev2": 328,
}


def syscall_numbers(names: Iterable[str]) -> list[int]:
    """x86_64 numbers for syscall names (python-ptrace's table plus newer calls)."""
    by_name = {v: k for k, v in SYSCALL_NAMES.items() if k < 512}
    by_name.update(_EXTRA_NUMBERS)
    out = []
    for n in names:
        if n not in by_name:
            raise ValueError(f"unknown syscall {n!r}")
        out.append(by_name[n])
    return sorted(set(out))


def _check(r: int, what: str) -> int:
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return r


# --- user namespace (not root) ------------------------------------------------------------

_CLONE_NEWUSER = 0x10000000


def enter_user_namespace() -> None:
    """Enter a new user namespace in which we are still ourselves (our uid and gid mapped to
    themselves, nothing else mapped), holding its capabilities, so that an unprivileged
    process may build the mount namespace and drop what it holds like root does.

    Why ourselves rather than root inside: files the gofer creates are the caller's either
    way (the host sees the outside uid); mapped to itself, the owners and permission checks
    the gofer reports are the caller's too. Owners outside the map (root's files) read as
    the overflow id 65534, as in any rootless container. Needs a single-threaded process
    and unprivileged user namespaces (kernel.unprivileged_userns_clone, user.max_user_namespaces).
    """
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(_CLONE_NEWUSER) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"unshare(CLONE_NEWUSER): {os.strerror(e)} (a non-root gofer confines "
                         "itself in a user namespace; use --no-confine where there are none)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


# --- mount namespace ---------------------------------------------------------------------

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = 155


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), f"mount {dst}")


#: What of /proc stays read-only when a confined process keeps /proc (`proc=True`): the
#: host's kernel settings, which root's uid could write without any capability.
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")


def pivot_to_empty_root(*, mountpoint: str = "/tmp", proc: bool = False,
                        name: str = "gofer-root", proc_options: str | None = None) -> str:
    """Enter a new mount namespace rooted at an empty read-only tmpfs; return the /fd path.

    `mountpoint` is any existing directory to mount the tmpfs on (only inside the new, private
    namespace; the host sees nothing). Returns the path under which our own fds are visible.
    `proc`: the host's /proc is kept at /proc (the Sentry reads and writes its stubs' through
    it), with `PROC_READONLY` bound read-only; `name` is the tmpfs's source in mountinfo.
    `proc_options`: a procfs of its own with these options instead of a bind of the host's
    (needs CAP_SYS_ADMIN over the pid namespace: root only).
    """
    pid = os.getpid()
    _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount(name, mountpoint, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "size=64k,mode=0755")
    os.mkdir(f"{mountpoint}/fd", 0o500)
    _copy_user_db(f"{mountpoint}/etc")
    os.mkdir(f"{mountpoint}/old", 0o500)
    _mount(f"/proc/{pid}/fd", f"{mountpoint}/fd", None, _MS_BIND)
    if proc:
        os.mkdir(f"{mountpoint}/proc", 0o555)
        if proc_options is None:
            _mount("/proc", f"{mountpoint}/proc", None, _MS_BIND | _MS_REC)
        else:
            _mount("proc", f"{mountpoint}/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                   proc_options)
        for sub in PROC_READONLY:
            path = f"{mountpoint}/proc/{sub}"
            if os.path.exists(path):
                _mount(path, path, None, _MS_BIND | _MS_REC)
                _mount(None, path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID
                       | _MS_NODEV | _MS_NOEXEC)
    _check(_libc.syscall(_SYS_PIVOT_ROOT, mountpoint.encode(), f"{mountpoint}/old".encode()), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/old", _MNT_DETACH), "umount old root")
    os.rmdir("/old")
    _mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    return "/fd"


def _copy_user_db(etc: str) -> None:
    """Copies of passwd and group (and an nsswitch.conf naming only files), so name lookups
    (p9's attach maps a uname to a uid) keep working inside the empty root."""
    os.mkdir(etc, 0o755)
    for name in ("passwd", "group"):
        try:
            with open(f"/etc/{name}", "rb") as src:
                data = src.read()
        except OSError:
            data = b""
        with open(f"{etc}/{name}", "wb") as dst:
            dst.write(data)
    with open(f"{etc}/nsswitch.conf", "w") as f:
        f.write("passwd: files\ngroup: files\n")


# --- capabilities ------------------------------------------------------------------------

_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_CAPSET = 126
_CAP_LAST = 63


def drop_capabilities(keep: Iterable[int]) -> None:
    """Reduce bounding, ambient, permitted, effective and inheritable sets to `keep`."""
    keep = set(keep)
    for cap in range(_CAP_LAST + 1):
        if cap not in keep:
            r = _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
            if r < 0 and ctypes.get_errno() != errno.EINVAL:  # EINVAL: cap beyond the kernel's
                _check(r, f"PR_CAPBSET_DROP {cap}")
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    mask = sum(1 << c for c in keep)
    header = struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    lo, hi = mask & 0xFFFFFFFF, mask >> 32
    data = struct.pack("IIIIII", lo, lo, 0, hi, hi, 0)  # effective, permitted, inheritable x2
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(data, len(data))
    _check(_libc.syscall(_SYS_CAPSET, hbuf, dbuf), "capset")


# --- seccomp -----------------------------------------------------------------------------

_SYS_SECCOMP = 317
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


# ioctl is allowed only for these requests (what CPython and trio use): TCGETS (isatty),
# FIONBIO, FIONREAD, FIOCLEX, FIONCLEX. Never TIOCSTI, which could type into a terminal.
ALLOWED_IOCTLS = (0x5401, 0x5421, 0x541B, 0x5451, 0x5450)
_NR_IOCTL = 16


def build_filter(
    allowed: Iterable[int], *, ioctls: Iterable[int] = ALLOWED_IOCTLS, deny_errno: int = errno.EPERM,
    arg_values: Mapping[int, tuple[int, Iterable[int]]] | None = None,
    arg_flags: Mapping[int, tuple[int, int]] | None = None,
    errnos: Mapping[int, int] | None = None, deny: int | None = None,
) -> bytes:
    """A seccomp BPF program: x86_64 only; `allowed` syscalls pass, ioctl only with a request
    in `ioctls`; everything else fails with `deny_errno` (or gets the action `deny`).

    Argument rules, checked before the plain list: `arg_values` {nr: (i, values)} allows
    nr only if argument i is one of `values`, `arg_flags` {nr: (i, bits)} only if it has
    one of `bits` set; `errnos` {nr: e} fails nr with errno e. Only an argument's low
    32 bits are compared: every rule here is on an int (ioctl's request, socket's domain,
    clone's flags) or on a value the kernel compares whole (ptrace's request), which no
    value with high bits set can equal.
    """
    deny_ret = _insn(_BPF_RET_K, 0, 0, _RET_ERRNO | (deny_errno & 0xFFFF) if deny is None else deny)
    allow = _insn(_BPF_RET_K, 0, 0, _RET_ALLOW)
    values = dict(arg_values or {})
    values[_NR_IOCTL] = (1, ioctls)
    blocks: list[bytes] = []
    for nr, (arg, vals) in sorted(values.items()):
        vs = sorted(set(vals))
        block = [_insn(_BPF_LD_W_ABS, 0, 0, 16 + 8 * arg)]  # low word of args[arg]
        for j, v in enumerate(vs):
            block.append(_insn(_BPF_JEQ_K, len(vs) - j, 0, v))
        block += [deny_ret, allow]
        blocks += [_insn(_BPF_JEQ_K, 0, len(block), nr), *block]
    for nr, (arg, bits) in sorted((arg_flags or {}).items()):
        blocks += [_insn(_BPF_JEQ_K, 0, 4, nr), _insn(_BPF_LD_W_ABS, 0, 0, 16 + 8 * arg),
                   _insn(_BPF_JSET_K, 1, 0, bits), deny_ret, allow]
    for nr, e in sorted((errnos or {}).items()):
        blocks += [_insn(_BPF_JEQ_K, 0, 1, nr), _insn(_BPF_RET_K, 0, 0, _RET_ERRNO | (e & 0xFFFF))]
    prog = [
        _insn(_BPF_LD_W_ABS, 0, 0, 4),  # arch
        _insn(_BPF_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        _insn(_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_BPF_LD_W_ABS, 0, 0, 0),  # nr
        _insn(_BPF_JGE_K, 0, 1, 0x40000000),  # x32 ABI
        _insn(_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
        *blocks,
    ]
    for nr in sorted(set(allowed) - set(values) - set(arg_flags or {}) - set(errnos or {})):
        prog.append(_insn(_BPF_JEQ_K, 0, 1, nr))
        prog.append(allow)
    prog.append(deny_ret)
    return b"".join(prog)


def install_seccomp(allowed_names: Iterable[str] = ALLOWED_SYSCALLS) -> None:
    """Install the allow-list filter on every thread of the process (needs no_new_privs)."""
    install_filter(build_filter(syscall_numbers(allowed_names)))


def install_filter(code: bytes) -> None:
    """Install BPF program `code` (`build_filter`) on every thread; sets no_new_privs."""
    n = len(code) // 8
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxQ", n, ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    _check(
        _libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC, fbuf),
        "seccomp",
    )


def confine(*, switch_identity: bool, seccomp: bool = True, mountpoint: str = "/tmp",
            mknod: bool = False) -> str:
    """Apply all three walls; return the path prefix of our own fds ("/fd").

    `mknod`: keep CAP_MKNOD (an export lets root clients create device nodes; the kernel
    drops it from requests run as any other user, whose fsuid is not 0).

    Call after every export is opened and every listener bound: afterwards no host path can
    be opened, no socket created, and no privilege regained. Not root: the walls are built
    inside a user namespace of our own (`enter_user_namespace`), and every capability goes.
    """
    rootless = os.geteuid() != 0
    if rootless:
        enter_user_namespace()
    prefix = pivot_to_empty_root(mountpoint=mountpoint)
    if rootless:
        keep: set[int] = set()  # no DAC override even over our own files: as the user would be
    else:
        keep = set(KEPT_CAPS) | ({CAP_SETUID, CAP_SETGID} if switch_identity else set())
        if mknod:
            keep.add(CAP_MKNOD)
    drop_capabilities(keep)
    _check(_libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")
    if seccomp:
        install_seccomp()
    return prefix
