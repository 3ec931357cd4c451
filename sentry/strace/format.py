"""`--strace`'s formatters: flags, modes, strings, results and structs as strace prints them.

Pure functions and name tables, no kernel state: what `sentry.strace` decodes with.
"""

from __future__ import annotations

import errno as _errno
import os
import struct

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


def flag_names(value: int, names: list[tuple[int, str]], *, zero: str = "0") -> str:
    """`A|B|0x40` for the bits of `value` named in `names` (largest composite first)."""
    parts = []
    for bit, name in names:
        if bit and value & bit == bit:
            parts.append(name)
            value &= ~bit
    if value:
        parts.append(hex(value))
    return "|".join(parts) if parts else zero


O_NAMES = [
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
    rest = flag_names(flags & ~3, O_NAMES, zero="")
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
    return flag_names(flags & 0xFFFFFFFF, _AT_EACCESS_NAMES if eaccess else _AT_NAMES)


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


def as_signed(v: int, bits: int = 64) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def format_result(name: str, ret: int) -> str:
    """The right-hand side: ``3``, ``0x7f…`` for addresses, or ``-1 ENOENT (No such …)``."""
    ret = as_signed(ret)
    if -4096 < ret < 0:
        err = -ret
        ename = _errno.errorcode.get(err, f"E{err}")
        # strace names the kernel-internal restart codes; the application never sees them.
        return f"-1 {ename} ({os.strerror(err)})"
    if name in _HEX_RESULT:
        return hex(ret & 0xFFFFFFFFFFFFFFFF)
    return str(ret)


_HEX_RESULT = {"mmap", "mremap", "brk", "shmat"}
FCNTL_NOARG = {1, 3, 9, 11, 1025, 1032, 1034}  # F_GETFD, F_GETFL, F_GETOWN ...

SEEK = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
FCNTL = {
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
IOCTL = {
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
PROT = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (0x1000000, "PROT_GROWSDOWN")]
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
ACCESS = [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")]
FLOCK = [(1, "LOCK_SH"), (2, "LOCK_EX"), (4, "LOCK_NB"), (8, "LOCK_UN")]
CLOCKS = {
    0: "CLOCK_REALTIME",
    1: "CLOCK_MONOTONIC",
    2: "CLOCK_PROCESS_CPUTIME_ID",
    3: "CLOCK_THREAD_CPUTIME_ID",
    4: "CLOCK_MONOTONIC_RAW",
    5: "CLOCK_REALTIME_COARSE",
    6: "CLOCK_MONOTONIC_COARSE",
    7: "CLOCK_BOOTTIME",
}
RLIMITS = ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
            "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS",
            "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
            "RLIMIT_RTPRIO", "RLIMIT_RTTIME"]
PRCTL = {15: "PR_SET_NAME", 16: "PR_GET_NAME", 1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG",
          3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE", 38: "PR_SET_NO_NEW_PRIVS",
          39: "PR_GET_NO_NEW_PRIVS", 22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP",
          36: "PR_SET_CHILD_SUBREAPER", 23: "PR_CAPBSET_READ"}
GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
               0x1004: "ARCH_GET_GS", 0x3001: "ARCH_CET_STATUS"}


def map_flags(flags: int) -> str:
    """mmap(2) flags: the mapping type, then the modifier bits."""
    kind = _MAP_TYPE.get(flags & 3, hex(flags & 3))
    rest = flag_names(flags & ~3 & 0xFFFFFFFF, _MAP, zero="")
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


WAITOPTS = [(1, "WNOHANG"), (2, "WUNTRACED"), (8, "WCONTINUED"), (0x40000000, "__WALL"),
             (0x80000000, "__WCLONE"), (0x20000000, "__WNOTHREAD")]
CLONE = [(0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"),
          (0x800, "CLONE_SIGHAND"), (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"),
          (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"),
          (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"),
          (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"),
          (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"),
          (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
          (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"),
          (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO")]


def signame(sig: int) -> str:
    import signal as _signal

    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"SIGRT_{sig - 32}" if 32 <= sig <= 64 else str(sig)


def wait_status(st: int) -> str:
    """A wait status as strace shows it."""
    if st & 0x7F == 0:
        return f"{{WIFEXITED(s) && WEXITSTATUS(s) == {(st >> 8) & 0xFF}}}"
    if st & 0xFF == 0x7F:
        return f"{{WIFSTOPPED(s) && WSTOPSIG(s) == {signame((st >> 8) & 0xFF)}}}"
    core = " && WCOREDUMP(s)" if st & 0x80 else ""
    return f"{{WIFSIGNALED(s) && WTERMSIG(s) == {signame(st & 0x7F)}{core}}}"


def pointer_text(v: int) -> str:
    v &= 0xFFFFFFFFFFFFFFFF
    return "NULL" if v == 0 else hex(v)


def count_dirents(buf: bytes, name: str) -> int:
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
