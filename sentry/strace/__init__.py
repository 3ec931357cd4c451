"""`--strace`: one line per syscall, in strace's familiar shape.

    openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3 <0.000021>
    read(3, "root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 1520 <0.000015>
    openat(AT_FDCWD, "/nope", O_RDONLY)     = -1 ENOENT (No such file or directory) <0.000012>

Why here and not in the dispatcher: decoding is table data (an argument kind per syscall
argument, like strace's own syscallent tables) plus small formatters, and it has to read
application memory twice: input arguments (paths, write buffers) when the call *enters*, and
output arguments (read buffers, struct stat, pipe fds) when it *leaves*. The dispatcher
calls `Strace.enter` before the handler and `Strace.exit` after it; everything else is here
(the argument kinds and the tracer; the formatters are `format.py`).

Reading application memory for a trace never fails the syscall: an unreadable pointer is
printed as its address, as strace does.
"""

from __future__ import annotations

import errno as _errno
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ptrace.syscall.prototypes import SYSCALL_PROTOTYPES

from sentry.errors import SyscallError
from sentry.kernel.table import Entry, Level, name_of

from .format import (
    ACCESS,
    ARCH_PRCTL,
    AT_FDCWD,
    CLOCKS,
    CLONE,
    FCNTL,
    FCNTL_NOARG,
    FLOCK,
    GRND,
    IOCTL,
    O_NAMES,
    PRCTL,
    PROT,
    RLIMITS,
    SEEK,
    STAT,
    WAITOPTS,
    as_signed,
    at_flags,
    count_dirents,
    escape,
    flag_names,
    format_result,
    format_stat,
    format_statx,
    map_flags,
    mode_string,
    open_flags,
    pointer_text,
    signame,
    wait_status,
)

__all__ = ["SPECS", "Strace", "traced_table"]

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
    "shmget": ("x", "u", "x"),
    "shmat": ("d", "p", "x"),
    "shmdt": ("p",),
    "shmctl": ("d", "d", "p"),
    "semget": ("x", "d", "x"),
    "semop": ("d", "p", "u"),
    "semtimedop": ("d", "p", "u", "p"),
    "semctl": ("d", "d", "d", "x"),
    "msgget": ("x", "x"),
    "msgsnd": ("d", "p", "u", "x"),
    "msgrcv": ("d", "p", "u", "d", "x"),
    "msgctl": ("d", "d", "p"),
    "mq_open": ("str", "x", "mode", "p"),
    "mq_unlink": ("str",),
    "mq_timedsend": ("fd", "p", "u", "u", "p"),
    "mq_timedreceive": ("fd", "p", "u", "p", "p"),
    "mq_notify": ("fd", "p"),
    "mq_getsetattr": ("fd", "p", "p"),
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
        ok = not (-4096 < as_signed(ret) < 0)
        spec = SPECS.get(pending.name)
        for i, part in enumerate(pending.parts):
            if part is None:
                kind = spec[i] if spec else "x"
                if ok:
                    pending.parts[i] = self._out(t, pending.name, kind, pending.args, i, ret)
                else:
                    pending.parts[i] = pointer_text(pending.args[i])
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
            return str(as_signed(v, 32))
        if base == "dirfd":
            fd = as_signed(v, 32)
            return "AT_FDCWD" if fd == AT_FDCWD else str(fd)
        if base == "d":
            return str(as_signed(v))
        if base == "u":
            return str(v & 0xFFFFFFFFFFFFFFFF)
        if base == "x":
            return hex(v & 0xFFFFFFFFFFFFFFFF)
        if base == "p":
            return pointer_text(v)
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
            return flag_names(v & 0xFFFFFFFF, O_NAMES)
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
            return flag_names(v & 0xFFFFFFFF, ACCESS, zero="F_OK")
        if base == "whence":
            return SEEK.get(v & 0xFFFFFFFF, str(v))
        if base == "fcntl":
            return FCNTL.get(v & 0xFFFFFFFF, hex(v))
        if base == "ioctl":
            return IOCTL.get(v & 0xFFFFFFFF, hex(v))
        if base == "flock":
            return flag_names(v & 0xFFFFFFFF, FLOCK)
        if base == "prot":
            return flag_names(v & 0xFFFFFFFF, PROT, zero="PROT_NONE")
        if base == "mapflags":
            return map_flags(v)
        if base == "clock":
            return CLOCKS.get(v & 0xFFFFFFFF, str(v))
        if base in ("pid", "d32"):
            return str(as_signed(v, 32))
        if base == "signal":
            return signame(v & 0xFFFFFFFF)
        if base == "waitopts":
            return flag_names(v & 0xFFFFFFFF, WAITOPTS)
        if base == "cloneflags":
            low = v & 0xFF
            flags = flag_names(v & ~0xFF & 0xFFFFFFFFFFFFFFFF, CLONE, zero="")
            sig = signame(low) if low else ""
            return "flags=" + ("|".join(x for x in (flags, sig) if x) or "0")
        if base == "rlimres":
            r = v & 0xFFFFFFFF
            return RLIMITS[r] if r < len(RLIMITS) else str(r)
        if base == "prctl":
            return PRCTL.get(v & 0xFFFFFFFF, str(v & 0xFFFFFFFF))
        if base == "grnd":
            return flag_names(v & 0xFFFFFFFF, GRND)
        if base == "archprctl":
            return ARCH_PRCTL.get(v & 0xFFFFFFFF, hex(v))
        if base in ("argv", "envp"):
            return self._strarray(t, v, envp=base == "envp")
        return hex(v)

    def _clone_args(self, args: list[int]) -> list[str | None]:
        """clone's arguments as strace names them (x86_64 order: flags, stack, ptid, ctid,
        tls), showing the tid pointers and tls only when the flags use them."""
        flags = args[0]
        parts: list[str | None] = [f"child_stack={pointer_text(args[1])}",
                                   self._arg(None, "clone", "cloneflags", args, 0)]
        if flags & 0x100000:
            parts.append(f"parent_tid={pointer_text(args[2])}")
        if flags & 0x1200000:
            parts.append(f"child_tidptr={pointer_text(args[3])}")
        if flags & 0x80000:
            parts.append(f"tls={pointer_text(args[4])}")
        return parts

    def _fcntl_arg(self, t: Any, cmd: int, v: int) -> str:
        if cmd in FCNTL_NOARG:
            return ""
        if cmd == 2:  # F_SETFD
            return "FD_CLOEXEC" if v & 0xFFFFFFFF == 1 else str(v & 0xFFFFFFFF)
        if cmd == 4:  # F_SETFL
            return open_flags(v)
        if cmd in (5, 6, 7, 36, 37, 38):  # struct flock
            try:
                typ, whence, start, length = struct.unpack("<hh4xqq", t.mem_read(v, 24))
            except OSError:
                return pointer_text(v)
            tname = {0: "F_RDLCK", 1: "F_WRLCK", 2: "F_UNLCK"}.get(typ, str(typ))
            return (f"{{l_type={tname}, l_whence={SEEK.get(whence, str(whence))}, "
                    f"l_start={start}, l_len={length}}}")
        return str(as_signed(v, 32))

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
                return f"[{wait_status(st)}]"
            if base == "fds<":
                a, b = struct.unpack("<ii", t.mem_read(v, 8))
                return f"[{a}, {b}]"
            if base == "dirents<":
                return f"{pointer_text(v)} /* {count_dirents(t.mem_read(v, ret), name)} entries */"
        except OSError:
            pass
        return pointer_text(v)

    def _cstring(self, t: Any, addr: int, *, limit: int | None) -> str:
        if addr == 0:
            return "NULL"
        try:
            data = t.read_cstring(addr, 4096)
        except OSError:
            return pointer_text(addr)
        return escape(data, limit)

    def _buffer(self, t: Any, addr: int, n: int) -> str:
        n = max(as_signed(n), 0)
        try:
            data = t.mem_read(addr, min(n, self.strsize))
        except OSError:
            return pointer_text(addr)
        return escape(data, None, truncated=n > self.strsize)

    def _iovec(self, t: Any, addr: int, count: int, total: int | None) -> str:
        try:
            iovs = t.read_iovecs(addr, count)
        except OSError:
            return pointer_text(addr)
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
            return pointer_text(addr)
        if envp:
            return f"{pointer_text(addr)} /* {len(ptrs)} vars */"
        shown = [self._cstring(t, p, limit=self.strsize) for p in ptrs[:32]]
        if len(ptrs) > 32:
            shown.append("...")
        return "[" + ", ".join(shown) + "]"


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
