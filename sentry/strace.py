"""`--strace`: one line per syscall, in strace's familiar shape.

    openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3 <0.000021>
    read(3, "root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 1520 <0.000015>
    openat(AT_FDCWD, "/nope", O_RDONLY)     = -1 ENOENT (No such file or directory) <0.000012>

Why here and not in the dispatcher: decoding is table data (an argument kind per syscall
argument, like strace's own syscallent tables) plus small formatters, and it has to read
application memory twice: input arguments (paths, write buffers) when the call *enters*, and
output arguments (read buffers, struct stat, pipe fds) when it *leaves*. The dispatcher
calls `Strace.enter` before the handler and `Strace.exit` after it; everything else is here.

Reading application memory for a trace never fails the syscall: an unreadable pointer is
printed as its address, as strace does.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ptrace.syscall.prototypes import SYSCALL_PROTOTYPES

from sentry.errors import SyscallError
from sentry.kernel.table import Entry, Level, name_of

__all__ = [
    "Strace",
    "escape",
    "format_result",
    "open_flags",
    "at_flags",
    "mode_string",
    "stat_mode",
    "SPECS",
    "traced_table",
]

AT_FDCWD = -100

# -- pure formatters -------------------------------------------------------------------------


def escape(data: bytes, limit: int | None = 32, *, truncated: bool = False) -> str:
    """Quote `data` the way strace does (C escapes, \\ooo octal), `...` when cut at `limit`.

    `truncated` says the caller already cut the data (a NUL-less string read up to a limit).
    """
    cut = truncated
    if limit is not None and len(data) > limit:
        data, cut = data[:limit], True
    out = ['"']
    simple = {
        0x22: '\\"',
        0x5C: "\\\\",
        0x0C: "\\f",
        0x0A: "\\n",
        0x0D: "\\r",
        0x09: "\\t",
        0x0B: "\\v",
    }
    n = len(data)
    for i, c in enumerate(data):
        if c in simple:
            out.append(simple[c])
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif i + 1 < n and 0x30 <= data[i + 1] <= 0x37:
            out.append(f"\\{c:03o}")
        else:
            out.append(f"\\{c:o}")
    out.append('"')
    if cut:
        out.append("...")
    return "".join(out)


def _flags(value: int, names: list[tuple[int, str]], *, zero: str = "0") -> str:
    """`A|B|0x40` for the bits of `value` named in `names` (largest composite first)."""
    parts = []
    for bit, name in names:
        if bit and value & bit == bit:
            parts.append(name)
            value &= ~bit
    if value:
        parts.append(hex(value))
    return "|".join(parts) if parts else zero


_O_NAMES = [
    (0o20200000, "O_TMPFILE"),
    (0o4010000, "O_SYNC"),
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o200000, "O_DIRECTORY"),
]


def open_flags(flags: int) -> str:
    """open(2) flags: access mode first, then the other bits, e.g. ``O_RDONLY|O_CLOEXEC``."""
    flags &= 0xFFFFFFFF
    acc = ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[flags & 3]
    rest = _flags(flags & ~3, _O_NAMES, zero="")
    return f"{acc}|{rest}" if rest else acc


_AT_NAMES = [
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_REMOVEDIR"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x800, "AT_NO_AUTOMOUNT"),
    (0x1000, "AT_EMPTY_PATH"),
    (0x2000, "AT_STATX_FORCE_SYNC"),
    (0x4000, "AT_STATX_DONT_SYNC"),
    (0x8000, "AT_RECURSIVE"),
]
_AT_EACCESS_NAMES = [(0x200, "AT_EACCESS")] + [p for p in _AT_NAMES if p[0] != 0x200]


def at_flags(flags: int, *, eaccess: bool = False) -> str:
    """*at(2) flags; 0x200 is AT_EACCESS for faccessat2, AT_REMOVEDIR elsewhere."""
    return _flags(flags & 0xFFFFFFFF, _AT_EACCESS_NAMES if eaccess else _AT_NAMES)


_S_IFMT = {
    0o140000: "S_IFSOCK",
    0o120000: "S_IFLNK",
    0o100000: "S_IFREG",
    0o060000: "S_IFBLK",
    0o040000: "S_IFDIR",
    0o020000: "S_IFCHR",
    0o010000: "S_IFIFO",
}


def mode_string(mode: int) -> str:
    """A permission mode as strace prints it: ``0644``, with S_ISUID|… names if set."""
    mode &= 0o7777
    parts = []
    for bit, name in ((0o4000, "S_ISUID"), (0o2000, "S_ISGID"), (0o1000, "S_ISVTX")):
        if mode & bit:
            parts.append(name)
            mode &= ~bit
    parts.append(f"0{mode:o}" if mode else "000")
    return "|".join(parts)


def stat_mode(mode: int) -> str:
    """st_mode as strace prints it: ``S_IFREG|0644``."""
    kind = _S_IFMT.get(mode & 0o170000)
    perm = mode_string(mode)
    return f"{kind}|{perm}" if kind else perm


def _signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def format_result(name: str, ret: int) -> str:
    """The right-hand side: ``3``, ``0x7f…`` for addresses, or ``-1 ENOENT (No such …)``."""
    ret = _signed(ret)
    if -4096 < ret < 0:
        err = -ret
        ename = _errno.errorcode.get(err, f"E{err}")
        # strace names the kernel-internal restart codes; the application never sees them.
        return f"-1 {ename} ({os.strerror(err)})"
    if name in _HEX_RESULT:
        return hex(ret & 0xFFFFFFFFFFFFFFFF)
    return str(ret)


_HEX_RESULT = {"mmap", "mremap", "brk", "shmat"}
_FCNTL_NOARG = {1, 3, 9, 11, 1025, 1032, 1034}  # F_GETFD, F_GETFL, F_GETOWN ...

_SEEK = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
_FCNTL = {
    0: "F_DUPFD",
    1: "F_GETFD",
    2: "F_SETFD",
    3: "F_GETFL",
    4: "F_SETFL",
    5: "F_GETLK",
    6: "F_SETLK",
    7: "F_SETLKW",
    8: "F_SETOWN",
    9: "F_GETOWN",
    36: "F_OFD_GETLK",
    37: "F_OFD_SETLK",
    38: "F_OFD_SETLKW",
    1024: "F_SETLEASE",
    1025: "F_GETLEASE",
    1030: "F_DUPFD_CLOEXEC",
    1031: "F_SETPIPE_SZ",
    1032: "F_GETPIPE_SZ",
    1033: "F_ADD_SEALS",
    1034: "F_GET_SEALS",
}
_IOCTL = {
    0x5401: "TCGETS",
    0x5402: "TCSETS",
    0x5403: "TCSETSW",
    0x5404: "TCSETSF",
    0x540F: "TIOCGPGRP",
    0x5410: "TIOCSPGRP",
    0x5413: "TIOCGWINSZ",
    0x5414: "TIOCSWINSZ",
    0x541B: "FIONREAD",
    0x5421: "FIONBIO",
    0x5450: "FIONCLEX",
    0x5451: "FIOCLEX",
    0x5429: "TIOCGSID",
}
_PROT = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (0x1000000, "PROT_GROWSDOWN")]
_MAP = [
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
]
_MAP_TYPE = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
_ACCESS = [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")]
_FLOCK = [(1, "LOCK_SH"), (2, "LOCK_EX"), (4, "LOCK_NB"), (8, "LOCK_UN")]
_CLOCKS = {
    0: "CLOCK_REALTIME",
    1: "CLOCK_MONOTONIC",
    2: "CLOCK_PROCESS_CPUTIME_ID",
    3: "CLOCK_THREAD_CPUTIME_ID",
    4: "CLOCK_MONOTONIC_RAW",
    5: "CLOCK_REALTIME_COARSE",
    6: "CLOCK_MONOTONIC_COARSE",
    7: "CLOCK_BOOTTIME",
}
_RLIMITS = ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
            "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
            "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
            "RLIMIT_RTPRIO", "RLIMIT_RTTIME"]
_PRCTL = {15: "PR_SET_NAME", 16: "PR_GET_NAME", 1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG",
          3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE", 38: "PR_SET_NO_NEW_PRIVS",
          39: "PR_GET_NO_NEW_PRIVS", 22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP",
          36: "PR_SET_CHILD_SUBREAPER", 23: "PR_CAPBSET_READ"}
_GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
_ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
               0x1004: "ARCH_GET_GS", 0x3001: "ARCH_CET_STATUS"}


def map_flags(flags: int) -> str:
    """mmap(2) flags: the mapping type, then the modifier bits."""
    kind = _MAP_TYPE.get(flags & 3, hex(flags & 3))
    rest = _flags(flags & ~3 & 0xFFFFFFFF, _MAP, zero="")
    return f"{kind}|{rest}" if rest else kind


# -- struct stat (x86_64) --------------------------------------------------------------------

#: struct stat on x86_64: dev, ino, nlink, mode, uid, gid, pad, rdev, size, blksize, blocks,
#: atime, atime_nsec, mtime, mtime_nsec, ctime, ctime_nsec, 3 reserved longs.
STAT = struct.Struct("<QQQIIIiQqqq6q24x")


def _dev(d: int) -> str:
    major = ((d >> 8) & 0xFFF) | ((d >> 32) & ~0xFFF)
    minor = (d & 0xFF) | ((d >> 12) & ~0xFF)
    return f"makedev(0x{major:x}, 0x{minor:x})"


def format_stat(raw: bytes) -> str:
    """Abbreviated struct stat as strace prints it by default."""
    f = STAT.unpack(raw)
    mode, size, rdev = f[3], f[8], f[7]
    kind = mode & 0o170000
    if kind in (0o020000, 0o060000):
        return f"{{st_mode={stat_mode(mode)}, st_rdev={_dev(rdev)}, ...}}"
    return f"{{st_mode={stat_mode(mode)}, st_size={size}, ...}}"


def format_statx(raw: bytes) -> str:
    """Abbreviated struct statx."""
    mask, _blksize, _attrs, _nlink, _uid, _gid, mode = struct.unpack_from("<IIQIIIH", raw)
    size = struct.unpack_from("<Q", raw, 40)[0]
    return f"{{stx_mask=0x{mask:x}, stx_mode={stat_mode(mode)}, stx_size={size}, ...}}"


# -- argument kinds --------------------------------------------------------------------------
# A kind names how to print one argument. Kinds ending in "<" are outputs, printed at exit
# (strace prints them only on success; on failure their address).

SPECS: dict[str, tuple[str, ...]] = {
    "read": ("fd", "buf<:ret", "u"),
    "write": ("fd", "buf:2", "u"),
    "pread64": ("fd", "buf<:ret", "u", "d"),
    "pwrite64": ("fd", "buf:2", "u", "d"),
    "readv": ("fd", "iov<", "u"),
    "writev": ("fd", "iov:2", "u"),
    "preadv": ("fd", "iov<", "u", "d"),
    "pwritev": ("fd", "iov:2", "u", "d"),
    "open": ("path", "oflags", "omode"),
    "openat": ("dirfd", "path", "oflags", "omode"),
    "creat": ("path", "mode"),
    "close": ("fd",),
    "close_range": ("u", "u", "x"),
    "lseek": ("fd", "d", "whence"),
    "stat": ("path", "stat<"),
    "lstat": ("path", "stat<"),
    "fstat": ("fd", "stat<"),
    "newfstatat": ("dirfd", "path", "stat<", "atflags"),
    "statx": ("dirfd", "path", "atflags", "x", "statx<"),
    "getdents64": ("fd", "dirents<", "u"),
    "getdents": ("fd", "dirents<", "u"),
    "mkdir": ("path", "mode"),
    "mkdirat": ("dirfd", "path", "mode"),
    "rmdir": ("path",),
    "unlink": ("path",),
    "unlinkat": ("dirfd", "path", "atflags"),
    "rename": ("path", "path"),
    "renameat": ("dirfd", "path", "dirfd", "path"),
    "renameat2": ("dirfd", "path", "dirfd", "path", "x"),
    "link": ("path", "path"),
    "linkat": ("dirfd", "path", "dirfd", "path", "atflags"),
    "symlink": ("path", "path"),
    "symlinkat": ("path", "dirfd", "path"),
    "readlink": ("path", "buf<:ret", "u"),
    "readlinkat": ("dirfd", "path", "buf<:ret", "u"),
    "chmod": ("path", "mode"),
    "fchmod": ("fd", "mode"),
    "fchmodat": ("dirfd", "path", "mode"),
    "fchmodat2": ("dirfd", "path", "mode", "atflags"),
    "chown": ("path", "d", "d"),
    "lchown": ("path", "d", "d"),
    "fchown": ("fd", "d", "d"),
    "fchownat": ("dirfd", "path", "d", "d", "atflags"),
    "utimensat": ("dirfd", "path", "p", "atflags"),
    "truncate": ("path", "d"),
    "ftruncate": ("fd", "d"),
    "fallocate": ("fd", "x", "d", "d"),
    "fsync": ("fd",),
    "fdatasync": ("fd",),
    "syncfs": ("fd",),
    "access": ("path", "amode"),
    "faccessat": ("dirfd", "path", "amode"),
    "faccessat2": ("dirfd", "path", "amode", "ateaccess"),
    "getcwd": ("str<", "u"),
    "chdir": ("path",),
    "fchdir": ("fd",),
    "umask": ("omode4",),
    "statfs": ("path", "p"),
    "fstatfs": ("fd", "p"),
    "dup": ("fd",),
    "dup2": ("fd", "fd"),
    "dup3": ("fd", "fd", "fdflags"),
    "fcntl": ("fd", "fcntl", "fcntlarg"),
    "flock": ("fd", "flock"),
    "ioctl": ("fd", "ioctl", "x"),
    "pipe": ("fds<",),
    "pipe2": ("fds<", "fdflags"),
    "sendfile": ("fd", "fd", "p", "u"),
    "copy_file_range": ("fd", "p", "fd", "p", "u", "u"),
    "setxattr": ("path", "str", "p", "u", "x"),
    "lsetxattr": ("path", "str", "p", "u", "x"),
    "fsetxattr": ("fd", "str", "p", "u", "x"),
    "getxattr": ("path", "str", "p", "u"),
    "lgetxattr": ("path", "str", "p", "u"),
    "fgetxattr": ("fd", "str", "p", "u"),
    "listxattr": ("path", "p", "u"),
    "llistxattr": ("path", "p", "u"),
    "flistxattr": ("fd", "p", "u"),
    "removexattr": ("path", "str"),
    "lremovexattr": ("path", "str"),
    "fremovexattr": ("fd", "str"),
    "execve": ("path", "argv", "envp"),
    "mmap": ("p", "u", "prot", "mapflags", "fd", "x"),
    "mprotect": ("p", "u", "prot"),
    "munmap": ("p", "u"),
    "brk": ("p",),
    "arch_prctl": ("archprctl", "p"),
    "clock_gettime": ("clock", "p"),
    "getrandom": ("buf<:ret", "u", "grnd"),
    "rseq": ("p", "x", "d", "x"),
    "set_robust_list": ("p", "u"),
    "set_tid_address": ("p",),
    "prlimit64": ("d", "rlimres", "p", "p"),
    "getrlimit": ("rlimres", "p"),
    "prctl": ("prctl", "x", "x", "x", "x"),
    "uname": ("p",),
    "madvise": ("p", "u", "d"),
    "mremap": ("p", "u", "u", "x", "p"),
    "kill": ("pid", "signal"),
    "tgkill": ("pid", "pid", "signal"),
    "wait4": ("pid", "wstatus<", "waitopts", "p"),
    "clone": ("cloneflags", "p", "p", "p", "x"),
    "vfork": (),
    "fork": (),
    "exit": ("d32",),
    "exit_group": ("d32",),
    "getpid": (),
    "getppid": (),
    "gettid": (),
    "setpgid": ("pid", "pid"),
    "getpgid": ("pid",),
    "sched_getaffinity": ("d", "u", "p"),
    "clock_nanosleep": ("clock", "x", "p", "p"),
    "nanosleep": ("p", "p"),
}

#: Calls that never return to the caller: their line ends in `= ?` at entry.
_NORETURN = {"exit", "exit_group"}


def _nargs(name: str) -> int:
    spec = SPECS.get(name)
    if spec is not None:
        return len(spec)
    proto = SYSCALL_PROTOTYPES.get(name)
    return len(proto[1]) if proto else 6


@dataclass(slots=True)
class _Pending:
    name: str
    args: list[int]
    parts: list[str | None]  # None = output argument, decoded at exit
    start: float


class Strace:
    """Formats each syscall of a sandbox as one strace line and hands it to `write`.

    Args:
        write: where finished lines go (without the newline), e.g. a stderr writer.
        strsize: how many bytes of a buffer to print (strace's ``-s``, default 32).
        show_pid: prefix lines with ``[pid N]`` (strace's ``-f`` look); None (the default)
            does so while the sandbox has more than one process.
        clock: a monotonic clock in seconds, for the ``<duration>`` column.
    """

    def __init__(
        self,
        write: Callable[[str], Any],
        *,
        strsize: int = 32,
        show_pid: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.write = write
        self.strsize = strsize
        self.show_pid = show_pid
        self.clock = clock

    # The dispatcher's two hooks --------------------------------------------------------------

    def enter(self, t: Any, nr: int, args: list[int] | tuple[int, ...]) -> _Pending:
        """Decode the input arguments of syscall `nr` now, while they are in memory."""
        name = name_of(nr)
        args = list(args)
        spec = SPECS.get(name)
        parts: list[str | None] = []
        for i in range(_nargs(name)):
            kind = spec[i] if spec else "x"
            if "<" in kind:
                parts.append(None)
            else:
                parts.append(self._arg(t, name, kind, args, i))
        if name == "clone":
            parts = self._clone_args(args)
        pending = _Pending(name, args, parts, self.clock())
        if name in _NORETURN:
            self.write(self._line(t, pending, "?", None))
        return pending

    def exit(self, t: Any, pending: _Pending, ret: int) -> None:
        """Finish the line of `pending` with the raw result `ret` (``-errno`` on failure)."""
        if pending.name in _NORETURN:
            return
        duration = self.clock() - pending.start
        ok = not (-4096 < _signed(ret) < 0)
        spec = SPECS.get(pending.name)
        for i, part in enumerate(pending.parts):
            if part is None:
                kind = spec[i] if spec else "x"
                if ok:
                    pending.parts[i] = self._out(t, pending.name, kind, pending.args, i, ret)
                else:
                    pending.parts[i] = _ptr(pending.args[i])
        result = format_result(pending.name, ret)
        if pending.name == "fcntl" and ok:
            cmd = pending.args[1] & 0xFFFFFFFF
            if cmd == 1:  # F_GETFD
                result = f"{ret:#x} (flags FD_CLOEXEC)" if ret == 1 else str(ret)
            elif cmd == 3:  # F_GETFL
                result = f"{ret:#x} (flags {open_flags(ret)})"
        self.write(self._line(t, pending, result, duration))

    # Formatting ------------------------------------------------------------------------------

    def _line(self, t: Any, p: _Pending, result: str, duration: float | None) -> str:
        call = f"{p.name}({', '.join(x for x in p.parts if x)})"
        show = self.show_pid
        if show is None:  # like strace -f: from the moment a second process exists
            if len(getattr(getattr(t, "kernel", None), "procs", ())) > 1:
                self.show_pid = show = True
        prefix = f"[pid {getattr(t, 'tid', '?'):>5}] " if show else ""
        line = f"{prefix + call:<39} = {result}"
        if duration is not None:
            line += f" <{duration:.6f}>"
        return line

    def _arg(self, t: Any, name: str, kind: str, args: list[int], i: int) -> str:
        v = args[i]
        base, _, extra = kind.partition(":")
        if base == "fd":
            return str(_signed(v, 32))
        if base == "dirfd":
            fd = _signed(v, 32)
            return "AT_FDCWD" if fd == AT_FDCWD else str(fd)
        if base == "d":
            return str(_signed(v))
        if base == "u":
            return str(v & 0xFFFFFFFFFFFFFFFF)
        if base == "x":
            return hex(v & 0xFFFFFFFFFFFFFFFF)
        if base == "p":
            return _ptr(v)
        if base in ("path", "str"):
            return self._cstring(t, v, limit=None if base == "path" else self.strsize)
        if base == "buf":
            return self._buffer(t, v, args[int(extra)])
        if base == "iov":
            return self._iovec(t, v, args[int(extra)], None)
        if base == "oflags":
            return open_flags(v)
        if base == "fcntlarg":
            return self._fcntl_arg(t, args[i - 1] & 0xFFFFFFFF, v)
        if base == "fdflags":
            return _flags(v & 0xFFFFFFFF, _O_NAMES)
        if base == "omode":
            return mode_string(v) if args[i - 1] & 0o20000100 else ""  # "" = not printed
        if base == "omode4":
            return f"0{v & 0o777:03o}"
        if base == "mode":
            return mode_string(v)
        if base == "atflags":
            return at_flags(v)
        if base == "ateaccess":
            return at_flags(v, eaccess=True)
        if base == "amode":
            return _flags(v & 0xFFFFFFFF, _ACCESS, zero="F_OK")
        if base == "whence":
            return _SEEK.get(v & 0xFFFFFFFF, str(v))
        if base == "fcntl":
            return _FCNTL.get(v & 0xFFFFFFFF, hex(v))
        if base == "ioctl":
            return _IOCTL.get(v & 0xFFFFFFFF, hex(v))
        if base == "flock":
            return _flags(v & 0xFFFFFFFF, _FLOCK)
        if base == "prot":
            return _flags(v & 0xFFFFFFFF, _PROT, zero="PROT_NONE")
        if base == "mapflags":
            return map_flags(v)
        if base == "clock":
            return _CLOCKS.get(v & 0xFFFFFFFF, str(v))
        if base in ("pid", "d32"):
            return str(_signed(v, 32))
        if base == "signal":
            return _signame(v & 0xFFFFFFFF)
        if base == "waitopts":
            return _flags(v & 0xFFFFFFFF, _WAITOPTS)
        if base == "cloneflags":
            low = v & 0xFF
            flags = _flags(v & ~0xFF & 0xFFFFFFFFFFFFFFFF, _CLONE, zero="")
            sig = _signame(low) if low else ""
            return "flags=" + ("|".join(x for x in (flags, sig) if x) or "0")
        if base == "rlimres":
            r = v & 0xFFFFFFFF
            return _RLIMITS[r] if r < len(_RLIMITS) else str(r)
        if base == "prctl":
            return _PRCTL.get(v & 0xFFFFFFFF, str(v & 0xFFFFFFFF))
        if base == "grnd":
            return _flags(v & 0xFFFFFFFF, _GRND)
        if base == "archprctl":
            return _ARCH_PRCTL.get(v & 0xFFFFFFFF, hex(v))
        if base in ("argv", "envp"):
            return self._strarray(t, v, envp=base == "envp")
        return hex(v)

    def _clone_args(self, args: list[int]) -> list[str | None]:
        """clone's arguments as strace names them (x86_64 order: flags, stack, ptid, ctid,
        tls), showing the tid pointers and tls only when the flags use them."""
        flags = args[0]
        parts: list[str | None] = [f"child_stack={_ptr(args[1])}",
                                   self._arg(None, "clone", "cloneflags", args, 0)]
        if flags & 0x100000:
            parts.append(f"parent_tid={_ptr(args[2])}")
        if flags & 0x1200000:
            parts.append(f"child_tidptr={_ptr(args[3])}")
        if flags & 0x80000:
            parts.append(f"tls={_ptr(args[4])}")
        return parts

    def _fcntl_arg(self, t: Any, cmd: int, v: int) -> str:
        if cmd in _FCNTL_NOARG:
            return ""
        if cmd == 2:  # F_SETFD
            return "FD_CLOEXEC" if v & 0xFFFFFFFF == 1 else str(v & 0xFFFFFFFF)
        if cmd == 4:  # F_SETFL
            return open_flags(v)
        if cmd in (5, 6, 7, 36, 37, 38):  # struct flock
            try:
                typ, whence, start, length = struct.unpack("<hh4xqq", t.mem_read(v, 24))
            except OSError:
                return _ptr(v)
            tname = {0: "F_RDLCK", 1: "F_WRLCK", 2: "F_UNLCK"}.get(typ, str(typ))
            return (f"{{l_type={tname}, l_whence={_SEEK.get(whence, str(whence))}, "
                    f"l_start={start}, l_len={length}}}")
        return str(_signed(v, 32))

    def _out(self, t: Any, name: str, kind: str, args: list[int], i: int, ret: int) -> str:
        v = args[i]
        base, _, extra = kind.partition(":")
        try:
            if base == "buf<":
                return self._buffer(t, v, ret)
            if base == "iov<":
                return self._iovec(t, v, args[i + 1], ret)
            if base == "str<":
                return escape(t.mem_read(v, max(ret - 1, 0)), None)
            if base == "stat<":
                return format_stat(t.mem_read(v, STAT.size))
            if base == "statx<":
                return format_statx(t.mem_read(v, 256))
            if base == "wstatus<":
                if not v:
                    return "NULL"
                st = struct.unpack("<i", t.mem_read(v, 4))[0]
                return f"[{_wstatus(st)}]"
            if base == "fds<":
                a, b = struct.unpack("<ii", t.mem_read(v, 8))
                return f"[{a}, {b}]"
            if base == "dirents<":
                return f"{_ptr(v)} /* {_count_dirents(t.mem_read(v, ret), name)} entries */"
        except OSError:
            pass
        return _ptr(v)

    def _cstring(self, t: Any, addr: int, *, limit: int | None) -> str:
        if addr == 0:
            return "NULL"
        try:
            data = t.read_cstring(addr, 4096)
        except OSError:
            return _ptr(addr)
        return escape(data, limit)

    def _buffer(self, t: Any, addr: int, n: int) -> str:
        n = max(_signed(n), 0)
        try:
            data = t.mem_read(addr, min(n, self.strsize))
        except OSError:
            return _ptr(addr)
        return escape(data, None, truncated=n > self.strsize)

    def _iovec(self, t: Any, addr: int, count: int, total: int | None) -> str:
        try:
            iovs = t.read_iovecs(addr, count)
        except OSError:
            return _ptr(addr)
        parts = []
        left = total
        for base, length in iovs[:8]:
            n = length if left is None else min(length, max(left, 0))
            if left is not None:
                left -= n
            parts.append(f"{{iov_base={self._buffer(t, base, n)}, iov_len={length}}}")
        if len(iovs) > 8:
            parts.append("...")
        return "[" + ", ".join(parts) + "]"

    def _strarray(self, t: Any, addr: int, *, envp: bool) -> str:
        if addr == 0:
            return "NULL"
        try:
            ptrs = []
            for k in range(4097):
                p = struct.unpack("<Q", t.mem_read(addr + 8 * k, 8))[0]
                if p == 0:
                    break
                ptrs.append(p)
        except OSError:
            return _ptr(addr)
        if envp:
            return f"{_ptr(addr)} /* {len(ptrs)} vars */"
        shown = [self._cstring(t, p, limit=self.strsize) for p in ptrs[:32]]
        if len(ptrs) > 32:
            shown.append("...")
        return "[" + ", ".join(shown) + "]"


_WAITOPTS = [(1, "WNOHANG"), (2, "WUNTRACED"), (8, "WCONTINUED"), (0x40000000, "__WALL"),
             (0x80000000, "__WCLONE"), (0x20000000, "__WNOTHREAD")]
_CLONE = [(0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"),
          (0x800, "CLONE_SIGHAND"), (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"),
          (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"),
          (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"),
          (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"),
          (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"),
          (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
          (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"),
          (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO")]


def _signame(sig: int) -> str:
    import signal as _signal

    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"SIGRT_{sig - 32}" if 32 <= sig <= 64 else str(sig)


def _wstatus(st: int) -> str:
    """A wait status as strace shows it."""
    if st & 0x7F == 0:
        return f"{{WIFEXITED(s) && WEXITSTATUS(s) == {(st >> 8) & 0xFF}}}"
    if st & 0xFF == 0x7F:
        return f"{{WIFSTOPPED(s) && WSTOPSIG(s) == {_signame((st >> 8) & 0xFF)}}}"
    core = " && WCOREDUMP(s)" if st & 0x80 else ""
    return f"{{WIFSIGNALED(s) && WTERMSIG(s) == {_signame(st & 0x7F)}{core}}}"


def _ptr(v: int) -> str:
    v &= 0xFFFFFFFFFFFFFFFF
    return "NULL" if v == 0 else hex(v)


def _count_dirents(buf: bytes, name: str) -> int:
    """Count linux_dirent64 (or old linux_dirent) records in a getdents result."""
    off = n = 0
    reclen_at = 16  # d_ino u64, d_off u64, d_reclen u16 (same offset in both layouts)
    while off + reclen_at + 2 <= len(buf):
        reclen = struct.unpack_from("<H", buf, off + reclen_at)[0]
        if reclen == 0:
            break
        off += reclen
        n += 1
    return n


# -- wiring into the kernel ------------------------------------------------------------------


def traced_table(table: Mapping[int, Entry], strace: Strace, *,
                 last_nr: int = 511) -> dict[int, Entry]:
    """A copy of `table` whose every entry reports to `strace` (pass it as Kernel(table=)).

    Why a table and not a hook in the hot loop: tracing costs nothing when it is off, and the
    dispatcher stays unaware of it. Numbers the table lacks get an entry that does what the
    dispatcher does for them (an "unsupported-syscall" event and ENOSYS), so they are traced
    too.
    """
    out: dict[int, Entry] = {}
    for nr in range(last_nr + 1):
        entry = table.get(nr)
        out[nr] = Entry(
            nr,
            entry.name if entry else name_of(nr),
            _traced(nr, entry, strace),
            entry.level if entry else Level.UNIMPLEMENTED,
            entry.note if entry else "",
            True,
        )
    return out


def _traced(nr: int, entry: Entry | None, strace: Strace) -> Callable:
    handler = entry.handler if entry is not None else None
    is_async = entry.is_async if entry is not None else False

    async def traced(t: Any, *args: int) -> int:
        pending = strace.enter(t, nr, args)
        try:
            if handler is None:
                t.kernel.emit("unsupported-syscall", nr=nr, name=name_of(nr))
                raise SyscallError(_errno.ENOSYS)
            res = await handler(t, *args) if is_async else handler(t, *args)
        except OSError as e:
            if e.errno:
                strace.exit(t, pending, -e.errno)
            raise
        strace.exit(t, pending, res)
        return res

    traced.__name__ = getattr(handler, "__name__", f"sys_{name_of(nr)}")
    traced.__doc__ = getattr(handler, "__doc__", None)
    return traced
