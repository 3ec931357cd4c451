"""The Sentry locks itself in once its sandbox has booted (what gVisor's Sentry does).

Called by the process that is a sandbox's Sentry (`runpsc do`, the API's worker; the OCI
runtime's sandbox process only in part, see `confine_sentry`) after its gofers are connected, its network exists and before
its Kernel starts the first stub. Afterwards:

- network: the Sentry's own thread lives in the sandbox's network namespace (``none``: a
  fresh one with ``lo`` up, made here; ``sandbox``: slirp4netns's; ``host``: the host's;
  ``netns``: the one an OCI bundle names by path),
  so sockets are made there with no `setns` and no capability;
- IPC and UTS namespaces of its own;
- mount namespace: an empty read-only tmpfs as root (pivot_root; the host's root detached),
  holding only /etc's passwd and group copies, /fd (its own fds) and /proc, needed for
  the stubs' /proc/PID/mem, maps, stat and the namespace links, with /proc/sys,
  /proc/sysrq-trigger, /proc/irq, /proc/bus and /proc/fs read-only. For root a procfs of
  its own with hidepid=invisible (`_proc_options`): it shows only the processes the
  Sentry may ptrace (itself, its stubs), no other host process; rootless, the host's;
- identity (a root caller): the Sentry becomes a user and group of its own, no host user's
  (`sentry_id`: `SENTRY_ID_BASE` + its host pid, unique while it lives, no supplementary
  groups), so that kill, ptrace, process_vm_* and pidfd_* reach only its own zygote and
  stubs: not root's other processes (a root Sentry without capabilities could still signal
  and, where dumpable, read and write every uid-0 process by pid) and not another
  sandbox's stubs (each Sentry's id differs, so a stub that stays dumpable for its own
  Sentry's process_vm_* is nobody else's to read). Rootless, where the host has
  newuidmap/newgidmap and a subordinate range for the caller (/etc/subuid, /etc/subgid):
  its user namespace maps one subordinate uid and gid too (`subordinate_id`), which it
  becomes, so it cannot signal the caller's other processes. Without them it stays the
  caller (said on stderr under `runpsc --debug`);
- capabilities: every one dropped (bounding, permitted, effective, inheritable, ambient)
  but `KEPT_CAPS`, and no_new_privs, so nothing exec'd (the stubs) regains any;
- every module it will import is imported first (`preload`): the Python installation is
  not reachable afterwards.

- seccomp (`restrict_syscalls`, last): an allow-list of the host calls the Sentry makes
  while serving (`SENTRY_SYSCALLS`, measured), some only with the arguments it uses
  (`SENTRY_ARG_RULES`); any other call kills the process. Its stubs come from a zygote
  forked just before (sentry/platform/zygote.py), so they do not inherit it.

Not done (see sentry/README.md, "The Sentry confined"): a pid namespace (a rootless
Sentry without a subordinate id can still signal the caller's other processes by pid;
hidepid and the Sentry's own id stand in for it).

The pieces (`pivot_to_empty_root`, `drop_capabilities`, `enter_user_namespace`) are the
gofer's (`gofer/confine.py`), so both processes are confined one way.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import logging
import os
import pkgutil
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentry.platform.zygote import Zygote

#: CAP_NET_BIND_SERVICE: a sandboxed root may bind ports below 1024 of the sandbox's
#: network (the host socket is the Sentry's). Measured: every runtime test passes with
#: this alone (ptrace of the Sentry's own children, /proc/PID/mem of them, kill of stubs
#: and gofers and exec of the stub memfd need none).
CAP_NET_BIND_SERVICE = 10
KEPT_CAPS = (CAP_NET_BIND_SERVICE,)

_CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x04000000, 0x08000000, 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE = 4
_PR_SET_SECUREBITS = 28
#: SECBIT_NO_SETUID_FIXUP: leaving uid 0 keeps the capabilities, so that they are dropped
#: by `drop_capabilities` afterwards (which needs CAP_SETPCAP for the bounding set).
_SECBIT_NO_SETUID_FIXUP = 1 << 2
#: A root caller's Sentry runs as uid and gid SENTRY_ID_BASE + its host pid (`sentry_id`).
#: 0x70000000 and the 2**22 ids above it (pid_max's limit) are no user's on a usual host:
#: above systemd's container ranges (which end at 0x6FFF0000), below its "foreign" range
#: (0x7FFE0000) and the ids some tools read as negative (from 0x80000000).
SENTRY_ID_BASE = 0x70000000

#: Packages the Sentry imports lazily (inside functions) while serving.
_PACKAGES = ("p9", "vfs", "sentry")
#: Standard modules imported lazily by those packages or by the standard library itself
#: while serving (found by running the runtime tests confined).
_STDLIB = ("encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_16",
           "encodings.utf_32", "encodings.unicode_escape", "ipaddress", "json", "pwd", "grp",
           "shlex", "zlib", "hashlib", "random", "traceback", "linecache", "tokenize",
           "selectors", "subprocess", "logging", "locale", "unicodedata")


#: The host calls the confined Sentry makes while it serves (trio's loop, CPython and
#: glibc, 9P, the platform, the sandbox's sockets), measured by running the runtime and
#: platform tests with RUNPSC_SENTRY_SECCOMP=log and reading the kernel's audit lines
#: (sentry/README.md says how). Not in it, among others: execve, fork and vfork, mount,
#: pivot_root, chroot, setns, unshare, bpf, ptrace's attach, and every call that changes
#: a host file's owner, mode, extended attributes or locks (fchmod: EPERM, see
#: `sentry_filter`; fchown, fsetxattr, flock): the Sentry keeps these in memory or asks
#: its gofers, so a donated read-only host descriptor cannot be turned against the file.
SENTRY_SYSCALLS: tuple[str, ...] = (
    # memory, threads, signals, time
    "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "futex", "set_robust_list",
    "get_robust_list", "rseq", "exit", "exit_group", "set_tid_address", "clone",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
    "tgkill", "tkill", "kill", "gettid", "getpid", "getppid", "getpgrp", "getpgid", "getsid",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "clock_gettime",
    "clock_getres", "gettimeofday", "nanosleep", "clock_nanosleep", "getrandom",
    "restart_syscall", "membarrier", "prlimit64", "getrlimit", "getrusage", "times", "uname",
    "sysinfo", "getcwd", "timer_create", "timer_settime", "timer_gettime", "timer_delete",
    "umask",
    # credentials, read only
    "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid", "capget",
    # descriptors and the event loop
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl",
    "ioctl", "pipe2", "eventfd2", "signalfd4", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6", "memfd_create",
    "ftruncate", "fallocate", "fsync", "fdatasync", "sendfile", "splice", "tee",
    "copy_file_range",
    # paths: only its empty root, /fd and the host's /proc (stubs' mem, maps, stat)
    "openat", "openat2", "newfstatat", "fstat", "statx", "fstatfs", "statfs", "readlink",
    "readlinkat", "getdents64", "access", "faccessat", "faccessat2",
    "unlinkat",  # the OCI sandbox process's state marks (a directory fd it opened before)
    # sockets: the sandbox's network, 9P, the stubs', zygote's and dialer's pairs
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "sendto",
    "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname",
    "getpeername", "setsockopt", "getsockopt",
    # the platform: its stubs, their memory, the seccomp platform's listener
    "ptrace", "wait4", "waitid", "process_vm_readv", "process_vm_writev", "pidfd_open",
    "pidfd_getfd", "pidfd_send_signal",
)
_PTRACE_REQUESTS = (
    1, 2, 3, 4, 5, 6,  # PEEKTEXT, PEEKDATA, PEEKUSER, POKETEXT, POKEDATA, POKEUSER
    7, 8, 12, 13, 14, 15, 24, 31,  # CONT, KILL, GET/SETREGS, GET/SETFPREGS, SYSCALL, SYSEMU
    0x4200, 0x4201, 0x4202, 0x4204, 0x4205,  # SETOPTIONS, GETEVENTMSG, GETSIGINFO, GET/SETREGSET
    0x420E,  # GET_SYSCALL_INFO (the seccomp platform: which table a TRACEd call came by)
)
_CLONE_THREAD = 0x00010000
#: fcntl commands: descriptor flags, status flags, dup, pipe size, memfd seals; no locks,
#: leases or notifications on host files.
_FCNTL_CMDS = (0, 1, 2, 3, 4, 1030, 1031, 1032, 1033, 1034)
_SOCKET_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
#: What the seccomp platform's listener and the sandbox's network ask of ioctl, besides
#: what host stdio is allowed (vfs/fs/host.py SAFE_IOCTLS, FIONBIO, FIOCLEX, FIONCLEX).
_IOCTLS = (
    0xC0502100, 0xC0182101, 0x40082102, 0x40082104,  # SECCOMP_IOCTL_NOTIF_RECV/SEND/ID_VALID/SET_FLAGS
    0x5411, 0x8905, 0x8913, 0x8914, 0x8921, 0x8927,  # SIOCOUTQ, ATMARK, G/SIFFLAGS, MTU, HWADDR
    0x5421, 0x5450, 0x5451, 0x540F, 0x5410,  # FIONBIO, FIONCLEX, FIOCLEX, TIOCGPGRP, TIOCSPGRP
)
#: Calls allowed only with some arguments: {name: (argument, values)}. Besides, `clone`
#: only for a thread (CLONE_THREAD set): the Sentry makes no process once filtered.
SENTRY_ARG_RULES: dict[str, tuple[int, tuple[int, ...]]] = {
    "ptrace": (0, _PTRACE_REQUESTS),
    "socket": (0, _SOCKET_FAMILIES),
    "fcntl": (1, _FCNTL_CMDS),
}
_SECCOMP_RET_LOG = 0x7FFC0000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
#: RUNPSC_SENTRY_SECCOMP=log: what the filter would refuse is logged by the kernel
#: (audit type 1326, in dmesg) and allowed: how the list is measured and kept current.
AUDIT_ENV = "RUNPSC_SENTRY_SECCOMP"


def sentry_filter(*, audit: bool = False) -> bytes:
    """The confined Sentry's BPF program (`SENTRY_SYSCALLS`, `SENTRY_ARG_RULES`): any
    other call, or a listed one with other arguments, kills the process (as gVisor's
    Sentry is killed); `audit`: logged and allowed instead. clone3 fails with ENOSYS,
    so that glibc makes threads with clone, whose flags the filter can read. fchmod
    fails with EPERM: the Sentry makes it only for a program's fchmod of a host stdio
    file (vfs/fs/host.py), which then gets EPERM as for a host device, where a kill
    would let any program end its sandbox; a donated read-only descriptor (a root-owned
    host file: fchmod needs ownership only) cannot be made setuid or writable."""
    from gofer.confine import build_filter, syscall_numbers
    from vfs.fs.host import SAFE_IOCTLS

    def nr(name: str) -> int:
        return syscall_numbers([name])[0]

    return build_filter(
        syscall_numbers(SENTRY_SYSCALLS),
        ioctls=(*SAFE_IOCTLS, *_IOCTLS),
        arg_values={nr(name): rule for name, rule in SENTRY_ARG_RULES.items()},
        arg_flags={nr("clone"): (0, _CLONE_THREAD)},
        errnos={nr("clone3"): errno.ENOSYS, nr("fchmod"): errno.EPERM},
        deny=_SECCOMP_RET_LOG if audit else _SECCOMP_RET_KILL_PROCESS)


def restrict_syscalls() -> Zygote:
    """Fork the stub zygote, then put this process (every thread) under `sentry_filter`.
    Call it after `confine_sentry`, once every other process the Sentry needs (gofers,
    the host dialer) is started: it forks nothing afterwards."""
    from gofer.confine import install_filter
    from sentry.platform.zygote import Zygote

    zygote = Zygote.fork()
    try:
        install_filter(sentry_filter(audit=os.environ.get(AUDIT_ENV) == "log"))
    except BaseException:
        zygote.close()
        raise
    return zygote


def _proc_options() -> str:
    """The confined Sentry's own procfs (root only: a rootless one cannot mount procfs for
    the host's pid namespace, and keeps the host's): hidepid=invisible shows only the
    processes it may ptrace (itself, its stubs), not the host's others; its `gid=`, the
    group that sees everything (root's by default), is one this process is not in, and
    without CAP_SETGID it cannot join it."""
    mine = {os.getegid(), os.getgid(), *os.getgroups()}
    gid = next(g for g in range(65534, 0, -1) if g not in mine)
    return f"hidepid=invisible,gid={gid}"


def sentry_id(pid: int) -> int:
    """The host uid and gid of a root caller's confined Sentry whose host pid is `pid`."""
    return SENTRY_ID_BASE + pid


#: The id files that give users subordinate ranges (shadow's subuid(5), subgid(5)).
SUBUID_FILE, SUBGID_FILE = "/etc/subuid", "/etc/subgid"


def _subordinate_range(path: str, ident: int, name: str | None) -> tuple[int, int] | None:
    """The first range (start, count) `path` gives the user `ident` (by name or number)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (name, str(ident)):
            try:
                start, count = int(fields[1]), int(fields[2])
            except ValueError:
                continue
            if count > 0:
                return start, count
    return None


def subordinate_id(uid: int, pid: int) -> tuple[int, int] | None:
    """The host uid and gid a rootless confined Sentry of the caller `uid` whose host pid
    is `pid` becomes: one of the caller's subordinate ids (the range's start + pid modulo its size, so that two
    live Sentries differ unless their pids are a range's size apart), or None where the
    host has no newuidmap/newgidmap or no range for the caller (it then stays the caller)."""
    import pwd

    if shutil.which("newuidmap") is None or shutil.which("newgidmap") is None:
        return None
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return None  # newuidmap needs the caller's name: no range is usable
    uids = _subordinate_range(SUBUID_FILE, uid, name)
    gids = _subordinate_range(SUBGID_FILE, uid, name)
    if uids is None or gids is None:
        return None
    return uids[0] + pid % uids[1], gids[0] + pid % gids[1]


def _enter_mapped_user_namespace(sub: tuple[int, int], libc: Any) -> None:
    """`enter_user_namespace` with the subordinate uid and gid `sub` mapped to themselves
    besides the caller's own: the maps are written by newuidmap/newgidmap (setuid), run by
    a child forked before the unshare (a process inside the namespace could not gain their
    privilege)."""
    uid, gid = os.geteuid(), os.getegid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(w)
            if os.read(r, 1) == b"x":
                me = str(os.getppid())
                status = 0
                for tool, own, other in (("newuidmap", uid, sub[0]), ("newgidmap", gid, sub[1])):
                    done = subprocess.run([tool, me, str(own), str(own), "1", str(other), str(other), "1"],
                                          stdin=subprocess.DEVNULL, check=False)
                    status = status or done.returncode
        finally:
            os._exit(status)
    os.close(r)
    failed = libc.unshare(0x10000000) != 0  # CLONE_NEWUSER
    e = ctypes.get_errno()
    os.write(w, b"." if failed else b"x")
    os.close(w)
    _, status = os.waitpid(pid, 0)
    if failed:
        raise ConfineError(e, f"unshare(CLONE_NEWUSER): {os.strerror(e)}")
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        raise ConfineError(f"newuidmap/newgidmap could not map the subordinate id {sub[0]}:{sub[1]} "
                           "(their message above; /etc/subuid, /etc/subgid)")


def _become(uid: int, gid: int, libc: Any) -> None:
    """Leave root (or, rootless, the caller) for `uid` and `gid` (no supplementary groups),
    capabilities kept for `drop_capabilities`. Called after the pivot: nothing on the
    host's disk is opened as them afterwards."""
    if libc.prctl(_PR_SET_SECUREBITS, _SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise ConfineError(e, f"PR_SET_SECUREBITS: {os.strerror(e)}")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


class ConfineError(OSError):
    """The Sentry could not lock itself in (no privilege for it, or threads running)."""


def preload(*, strace: bool = True) -> None:
    """Import every module of the Sentry's packages (and the standard ones they import
    lazily): after the pivot nothing on the host's disk can be read. `strace`: also
    `sentry.strace` (only the runtime imports it, and only for --strace: with
    python-ptrace's syscall prototypes it is most of what is left to import)."""
    from runtime.startup import glibc_sonames

    with glibc_sonames():  # no `ldconfig -p` child for modules that find libc
        _import_all(() if strace else ("sentry.strace",))


def _import_all(skip: tuple[str, ...]) -> None:
    for name in _STDLIB:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for pkg in _PACKAGES:
        _import_tree(importlib.import_module(pkg), skip)


def _import_tree(pkg: Any, skip: tuple[str, ...]) -> None:
    for info in pkgutil.iter_modules(pkg.__path__, f"{pkg.__name__}."):
        if info.name.startswith(skip) or info.name.endswith("_build"):
            continue  # cffi build scripts are not run code
        mod = importlib.import_module(info.name)
        if info.ispkg:
            _import_tree(mod, skip)


def confine_sentry(network: Any, *, host_files: bool = False, strace: bool = True,
                   owned: tuple[int, ...] = ()) -> Any:
    """Lock this process in (see the module's docstring); returns the sandbox's Network
    (the one given, or for ``none`` (None given) the fresh namespace made here).

    `host_files`: only the namespaces and no_new_privs; the host's filesystem and the
    capabilities stay (the OCI runtime's sandbox process, which writes its state directory,
    binds its control socket and connects to console sockets by path while it serves).
    `strace`: whether the Sentry will trace (else `sentry.strace` is not imported).
    `owned`: directories (descriptors) the Sentry still writes in once locked in, given to
    its own id (`sentry_id`) first.

    The process must be single-threaded (unshare of the mount namespace and of the user
    namespace move only a whole process). Not root: the walls are built inside a user
    namespace of our own where we stay ourselves, as the gofer does.
    """
    from runtime.startup import glibc_sonames
    from sentry.kernel.network import Network

    with glibc_sonames():  # python-ptrace looks libc up at import: no `ldconfig -p` child
        from gofer.confine import drop_capabilities, enter_user_namespace, pivot_to_empty_root

    if len(os.listdir("/proc/self/task")) != 1:
        raise ConfineError("the Sentry confines itself single-threaded (threads are running)")
    libc = ctypes.CDLL(None, use_errno=True)
    rootless = os.geteuid() != 0
    sub = subordinate_id(os.geteuid(), os.getpid()) if rootless and not host_files else None
    if rootless and not host_files and sub is None:
        logging.getLogger(__name__).debug(
            "runpsc: no newuidmap/newgidmap or no subordinate id range for uid %d (/etc/subuid, "
            "/etc/subgid): the confined Sentry stays this user and can signal its other "
            "processes", os.geteuid())

    def enter() -> None:
        if sub is not None:
            _enter_mapped_user_namespace(sub, libc)
        else:
            enter_user_namespace()

    if network is None:  # ``none``: the Sentry's own fresh namespace is the sandbox's
        if rootless:
            enter()
        network = Network.isolated("none", stay=True)
    else:
        if network.mode != "host":
            network.join()
        if rootless:
            enter()
    if libc.unshare(_CLONE_NEWIPC | _CLONE_NEWUTS) != 0:
        e = ctypes.get_errno()
        raise ConfineError(e, f"unshare(CLONE_NEWIPC|CLONE_NEWUTS): {os.strerror(e)}")
    if not host_files:
        preload(strace=strace)
        pivot_to_empty_root(mountpoint="/tmp", proc=True, name="sentry-root",
                            proc_options=None if rootless else _proc_options())
        ident = (sentry_id(os.getpid()), sentry_id(os.getpid())) if not rootless else sub
        if ident is not None:
            for fd in owned:
                os.fchown(fd, *ident)
            _become(*ident, libc)
        drop_capabilities(KEPT_CAPS if not rootless else ())
        # Dumpable (changing ids made us not): our own /proc/self stays ours, and only
        # processes of our id (our stubs, which the program cannot make call ptrace) could
        # ptrace us.
        if ident is not None and libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
            e = ctypes.get_errno()
            raise ConfineError(e, f"PR_SET_DUMPABLE: {os.strerror(e)}")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise ConfineError(e, f"PR_SET_NO_NEW_PRIVS: {os.strerror(e)}")
    return network
