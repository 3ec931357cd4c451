"""Cases and the recording context they run in.

A case is a small async function of one argument, a `Ctx`. It performs operations through
the context, which forwards them to the target and appends one line per operation to the
case's *trace*: the call, and its result or errno name. Results that legitimately differ
between filesystems (handle numbers, inode numbers, times, directory sizes) are recorded in
comparable form. The runner compares a target's trace with the oracle's line by line, so
the first differing line is the first point where the target departed from Linux.

A case may also state expectations (`fails`, `check`); an expectation that does not hold
on the oracle means the case is wrong, not the kernel.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from .target_api import ROOT, Creds, Stat, Target

T = TypeVar("T")

#: The unprivileged identities cases use (numeric only, so no passwd entry is needed).
USER = Creds(1000, 1000, (1000, 1001))
OTHER = Creds(1002, 1002, (1002,))


class CaseFailed(Exception):
    """An expectation stated by a case did not hold."""


@dataclass(frozen=True, slots=True)
class Case:
    """One behaviour case: `id` is "topic/name"; `needs` lists target features it uses."""

    id: str
    doc: str
    fn: Callable[[Ctx], Awaitable[None]]
    needs: frozenset[str] = frozenset()

    @property
    def topic(self) -> str:
        return self.id.split("/", 1)[0]


REGISTRY: dict[str, Case] = {}


def register(topic: str, name: str, fn: Callable[[Ctx], Awaitable[None]], *, doc: str = "",
             needs: Iterable[str] = ()) -> Case:
    """Add a case to the registry; ids are unique."""
    cid = f"{topic}/{name}"
    if cid in REGISTRY:
        raise ValueError(f"duplicate case id {cid!r}")
    c = Case(cid, doc or (fn.__doc__ or "").strip().split("\n")[0], fn, frozenset(needs))
    REGISTRY[cid] = c
    return c


def case(topic: str, name: str, *, needs: Iterable[str] = ()) -> Callable[
        [Callable[[Ctx], Awaitable[None]]], Callable[[Ctx], Awaitable[None]]]:
    """Decorator form of `register`."""
    def deco(fn: Callable[[Ctx], Awaitable[None]]) -> Callable[[Ctx], Awaitable[None]]:
        register(topic, name, fn, needs=needs)
        return fn
    return deco


# -- rendering -------------------------------------------------------------------------------

_OFLAGS = [(getattr(os, n), n) for n in (
    "O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND",
    "O_NONBLOCK", "O_DIRECTORY", "O_NOFOLLOW", "O_PATH", "O_TMPFILE", "O_NOATIME")]


def oflags(flags: int) -> str:
    """Symbolic open flags, e.g. 'O_WRONLY|O_CREAT'."""
    names = []
    if flags & os.O_TMPFILE == os.O_TMPFILE:
        names.append("O_TMPFILE")
        flags &= ~os.O_TMPFILE
    for bit, name in _OFLAGS:
        if name != "O_TMPFILE" and flags & bit == bit and bit:
            names.append(name)
            flags &= ~bit
    if flags:
        names.append(hex(flags))
    return "|".join(names) or "O_RDONLY"


def errname(code: int) -> str:
    return errno.errorcode.get(code, f"E{code}")


def show(v: object) -> str:
    """A short, target-independent rendering of an argument or result."""
    if isinstance(v, bytes):
        if len(v) > 40:
            digest = hashlib.sha256(v).hexdigest()[:12]
            return f"{v[:12]!r}…(len={len(v)} sha256={digest})"
        return repr(v)
    if isinstance(v, Stat):
        return "{" + " ".join(f"{k}:{x}" for k, x in v.comparable().items()) + "}"
    if isinstance(v, list):
        if len(v) > 12:
            digest = hashlib.sha256(repr(v).encode()).hexdigest()[:12]
            return f"[{show(v[0])} … {show(v[-1])}](n={len(v)} sha256={digest})"
        return "[" + ", ".join(show(x) for x in v) + "]"
    return repr(v)


class Ctx:
    """What a case sees: recorded operations on one target as one identity."""

    def __init__(self, target: Target, trace: list[str], *, who: str = "") -> None:
        self.target = target
        self.trace = trace
        self.who = who
        self._users: dict[Creds, Ctx] = {}

    # -- bookkeeping -----------------------------------------------------------------------
    def as_user(self, creds: Creds = USER) -> Ctx:
        """The same case directory seen by another identity (shares the trace)."""
        if creds == self.target.creds:
            return self
        if creds not in self._users:
            who = "" if creds == ROOT else f"[{creds.uid}] "
            self._users[creds] = Ctx(self.target.derive(creds=creds), self.trace, who=who)
        return self._users[creds]

    async def aclose(self) -> None:
        for u in self._users.values():
            await u.target.aclose()

    def note(self, label: str, value: object) -> None:
        """Record an observation the case computed (a relation, a count …)."""
        self.trace.append(f"{self.who}{label} = {show(value)}")

    def check(self, cond: bool, message: str) -> None:
        """State an expectation about Linux behaviour."""
        if not cond:
            raise CaseFailed(message)

    async def _op(self, name: str, args: tuple[Any, ...], coro: Awaitable[T],
                  render: Callable[[T], str] | None = None) -> T:
        shown = ", ".join(a if isinstance(a, _Raw) else show(a) for a in args)
        try:
            res = await coro
        except OSError as e:
            self.trace.append(f"{self.who}{name}({shown}) -> {errname(e.errno or 0)}")
            raise
        out = render(res) if render else ("ok" if res is None else show(res))
        self.trace.append(f"{self.who}{name}({shown}) = {out}")
        return res

    async def fails(self, code: int, op: Awaitable[object]) -> None:
        """Expect `op` to fail with errno `code`."""
        try:
            res = await op
        except OSError as e:
            if e.errno != code:
                raise CaseFailed(f"expected {errname(code)}, got {errname(e.errno or 0)}") from e
            return
        raise CaseFailed(f"expected {errname(code)}, got success {show(res)}")

    async def attempt(self, op: Awaitable[T]) -> T | OSError:
        """Perform `op` recording whatever happens; return the result or the OSError."""
        try:
            return await op
        except OSError as e:
            return e

    # -- operations (each recorded) --------------------------------------------------------
    async def open(self, path: bytes, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        return await self._op("open", (path, _Raw(oflags(flags)), _Raw(f"0o{mode:o}")),
                              self.target.open(path, flags, mode), lambda h: "fd")

    async def close(self, h: int) -> None:
        await self._op("close", (), self.target.close(h))

    async def read(self, h: int, n: int) -> bytes:
        return await self._op("read", (n,), self.target.read(h, n))

    async def write(self, h: int, data: bytes) -> int:
        return await self._op("write", (data,), self.target.write(h, data))

    async def pread(self, h: int, n: int, off: int) -> bytes:
        return await self._op("pread", (n, off), self.target.pread(h, n, off))

    async def pwrite(self, h: int, data: bytes, off: int) -> int:
        return await self._op("pwrite", (data, off), self.target.pwrite(h, data, off))

    async def lseek(self, h: int, off: int, whence: int) -> int:
        return await self._op("lseek", (off, whence), self.target.lseek(h, off, whence))

    async def ftruncate(self, h: int, size: int) -> None:
        await self._op("ftruncate", (size,), self.target.ftruncate(h, size))

    async def truncate(self, path: bytes, size: int) -> None:
        await self._op("truncate", (path, size), self.target.truncate(path, size))

    async def fsync(self, h: int) -> None:
        await self._op("fsync", (), self.target.fsync(h))

    async def fstat(self, h: int) -> Stat:
        return await self._op("fstat", (), self.target.fstat(h))

    async def stat(self, path: bytes) -> Stat:
        return await self._op("stat", (path,), self.target.stat(path, True))

    async def lstat(self, path: bytes) -> Stat:
        return await self._op("lstat", (path,), self.target.stat(path, False))

    async def mkdir(self, path: bytes, mode: int = 0o755) -> None:
        await self._op("mkdir", (path, _Raw(f"0o{mode:o}")), self.target.mkdir(path, mode))

    async def rmdir(self, path: bytes) -> None:
        await self._op("rmdir", (path,), self.target.rmdir(path))

    async def unlink(self, path: bytes) -> None:
        await self._op("unlink", (path,), self.target.unlink(path))

    async def rename(self, old: bytes, new: bytes, flags: int = 0) -> None:
        await self._op("rename", (old, new, flags), self.target.rename(old, new, flags))

    async def link(self, old: bytes, new: bytes, follow: bool = False) -> None:
        await self._op("link", (old, new, *_flag(follow, "AT_SYMLINK_FOLLOW")),
                       self.target.link(old, new, follow))

    async def symlink(self, target: bytes, path: bytes) -> None:
        await self._op("symlink", (self._unabs(target), path),
                       self.target.symlink(target, path))

    async def readlink(self, path: bytes) -> bytes:
        return await self._op("readlink", (path,), self.target.readlink(path),
                              lambda v: show(self._unabs(v)))

    async def mknod(self, path: bytes, mode: int, dev: int = 0) -> None:
        await self._op("mknod", (path, _Raw(f"0o{mode:o}"), dev),
                       self.target.mknod(path, mode, dev))

    async def mkfifo(self, path: bytes, mode: int = 0o644) -> None:
        await self.mknod(path, 0o010000 | mode)

    async def listdir(self, path: bytes = b".") -> list[bytes]:
        """Names in the directory, recorded sorted (order is the filesystem's business)."""
        return await self._op("listdir", (path,), self.target.listdir(path),
                              lambda v: show(sorted(v)))

    async def opendir(self, path: bytes = b".") -> int:
        return await self._op("opendir", (path,), self.target.opendir(path), lambda h: "fd")

    async def getdents(self, h: int, count: int) -> list[bytes]:
        """Partial directory read; its exact batch is the filesystem's business, so only
        whether anything came back is recorded."""
        return await self._op("getdents", (count,), self.target.getdents(h, count),
                              lambda v: "more" if v else "end")

    async def chmod(self, path: bytes, mode: int, follow: bool = True) -> None:
        await self._op("chmod", (path, _Raw(f"0o{mode:o}"),
                                 *_flag(not follow, "AT_SYMLINK_NOFOLLOW")),
                       self.target.chmod(path, mode, follow))

    async def fchmod(self, h: int, mode: int) -> None:
        await self._op("fchmod", (_Raw(f"0o{mode:o}"),), self.target.fchmod(h, mode))

    async def chown(self, path: bytes, uid: int, gid: int, follow: bool = True) -> None:
        name = "chown" if follow else "lchown"
        await self._op(name, (path, uid, gid), self.target.chown(path, uid, gid, follow))

    async def utimens(self, path: bytes, atime_ns: int, mtime_ns: int,
                      follow: bool = True) -> None:
        await self._op("utimens", (path, atime_ns, mtime_ns, follow),
                       self.target.utimens(path, atime_ns, mtime_ns, follow))

    async def setxattr(self, path: bytes, name: bytes, value: bytes, flags: int = 0) -> None:
        await self._op("setxattr", (path, name, value, flags),
                       self.target.setxattr(path, name, value, flags))

    async def getxattr(self, path: bytes, name: bytes) -> bytes:
        return await self._op("getxattr", (path, name), self.target.getxattr(path, name))

    async def listxattr(self, path: bytes) -> list[bytes]:
        """Names recorded sorted, and only the user.* ones (others are the fs's business)."""
        return await self._op("listxattr", (path,), self.target.listxattr(path),
                              lambda v: show(sorted(n for n in v if n.startswith(b"user."))))

    async def removexattr(self, path: bytes, name: bytes) -> None:
        await self._op("removexattr", (path, name), self.target.removexattr(path, name))

    async def setlk(self, h: int, kind: int, start: int, length: int) -> None:
        await self._op("setlk", (kind, start, length), self.target.setlk(h, kind, start, length))

    async def getlk(self, h: int, kind: int, start: int,
                    length: int) -> tuple[int, int, int] | None:
        return await self._op("getlk", (kind, start, length),
                              self.target.getlk(h, kind, start, length))

    async def statat(self, h: int, path: bytes, follow: bool = True,
                     empty_path: bool = False) -> Stat:
        return await self._op("statat", (path, *_flag(not follow, "AT_SYMLINK_NOFOLLOW"),
                                         *_flag(empty_path, "AT_EMPTY_PATH")),
                              self.target.statat(h, path, follow, empty_path))

    async def mkdirat(self, h: int, path: bytes, mode: int = 0o755) -> None:
        await self._op("mkdirat", (path, _Raw(f"0o{mode:o}")),
                       self.target.mkdirat(h, path, mode))

    async def flink(self, h: int, new: bytes) -> None:
        await self._op("flink", (new,), self.target.flink(h, new))

    async def readdir_kinds(self, h: int) -> list[tuple[bytes, str]]:
        """The whole directory with each entry's d_type, recorded sorted."""
        return await self._op("readdir_kinds", (), self.target.readdir_kinds(h),
                              lambda v: show(sorted(v)))

    async def access(self, path: bytes, mode: int, follow: bool = True) -> None:
        await self._op("access", (path, mode, *_flag(not follow, "AT_SYMLINK_NOFOLLOW")),
                       self.target.access(path, mode, follow))

    async def fallocate(self, h: int, mode: int, off: int, length: int) -> None:
        await self._op("fallocate", (mode, off, length),
                       self.target.fallocate(h, mode, off, length))

    def umask(self, mask: int) -> int:
        old = self.target.umask(mask)
        self.trace.append(f"umask(0o{mask:o})")
        return old

    # -- helpers ---------------------------------------------------------------------------
    def _unabs(self, p: bytes) -> bytes:
        """Replace this target's absolute root spelling with '<root>' in recorded text."""
        root = self.target.abspath(b"")
        root = root.rstrip(b"/") or b"/"
        if p.startswith(root + b"/") or p == root:
            return b"<root>" + p[len(root):]
        return p

    async def create(self, path: bytes, data: bytes = b"", mode: int = 0o644) -> None:
        """Create (or truncate) a regular file holding `data`."""
        h = await self.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            if data:
                await self.write(h, data)
        finally:
            await self.close(h)

    async def slurp(self, path: bytes) -> bytes:
        """The whole content of `path`."""
        h = await self.open(path, os.O_RDONLY)
        try:
            out = b""
            while chunk := await self.read(h, 65536):
                out += chunk
            return out
        finally:
            await self.close(h)


class _Raw(str):
    """An argument already rendered (flag names, octal modes)."""


def _flag(on: bool, name: str) -> tuple[_Raw, ...]:
    """A flag argument shown only when set (so traces of the default calls stay short)."""
    return (_Raw(name),) if on else ()
