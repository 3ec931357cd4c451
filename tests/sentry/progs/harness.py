"""Run host programs under the Sentry over an in-memory root, and natively, for comparison.

A `Session` is one sandbox namespace (a tmpfs root with devfs at /dev, pipes, and whatever
directories and host files a test copies in) in which programs run one after another, so
state carries over like a shell session. Programs are read from the host by the loader's
HostFiles source, so this runs *static* programs (a dynamic one needs its libraries inside
the root: runtime tests do that through `runpsc do`). stdin is a host file or /dev/null;
stdout and stderr are host files read back after each run.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import native_child_setup, need_binary

PROGS = Path(__file__).resolve().parent
#: A fixed timestamp given to copied-in trees, natively and in the sandbox alike.
FIXED_TIME = 1_700_000_000


@dataclass
class Result:
    status: int  # wait status
    stdout: bytes
    stderr: bytes
    events: list = field(default_factory=list)
    kernel: Any = None  # the Kernel that ran it (its state after the run)

    @property
    def code(self) -> int:
        """Exit code as a shell reports it (128 + signal)."""
        if self.status & 0x7F:
            return 128 + (self.status & 0x7F)
        return (self.status >> 8) & 0xFF


def build(tmp: Path, name: str, *, static: bool = True) -> str:
    """Compile tests/sentry/progs/NAME.c into `tmp` and return the binary's path."""
    gcc = need_binary("gcc")
    out = tmp / name
    cmd = [gcc, "-O1", "-w", "-o", str(out), str(PROGS / f"{name}.c")]
    if static:
        cmd.insert(1, "-static")
    subprocess.run(cmd, check=True, capture_output=True)
    return str(out)


def native(argv: list[str], *, stdin: bytes | None = None, **kw) -> Result:
    """Run natively (no core dumps); stdout/stderr captured."""
    p = subprocess.run(argv, capture_output=True, preexec_fn=native_child_setup,
                       input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                       **kw)
    status = (p.returncode & 0xFF) << 8 if p.returncode >= 0 else -p.returncode
    return Result(status, p.stdout, p.stderr)


def native_in_scratch(prog: str, *, prefix: tuple[str, ...] = (), **kw) -> Result:
    """Run `prog DIR` natively (after `prefix`, e.g. an `unshare` of namespaces), DIR a
    fresh directory on /dev/shm removed afterwards (the native twin of a sandbox run given
    a directory under its tmpfs /tmp)."""
    d = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    try:
        return native([*prefix, prog, d], **kw)
    finally:
        shutil.rmtree(d)


def fix_times(root: str) -> None:
    """Give every file under `root` (and root) FIXED_TIME as atime and mtime, natively."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (FIXED_TIME, FIXED_TIME),
                     follow_symlinks=False)
    os.utime(root, (FIXED_TIME, FIXED_TIME))


class Session:
    """One sandbox root in which programs run one after another.

    Use `await Session.start(dirs=...)`, then `await s.run(argv, cwd=...)`.
    """

    def __init__(self, vfs, ctx, creds) -> None:  # noqa: ANN001
        self.vfs, self.ctx, self.creds = vfs, ctx, creds

    @classmethod
    async def start(cls, *, dirs: tuple[str, ...] = ("/tmp",)) -> Session:
        from vfs import Credentials, Tmpfs, VirtualFilesystem
        from vfs.fs import devfs, pipefs

        vfs = VirtualFilesystem(Tmpfs(mode=0o755))
        creds = Credentials.root()
        ctx = vfs.new_context()
        await devfs.install(vfs, ctx, creds, b"/dev")
        pipefs.install(vfs)
        s = cls(vfs, ctx, creds)
        for d in dirs:
            await s.mkdir_p(d, 0o1777 if d == "/tmp" else 0o755)
        return s

    async def mkdir_p(self, path: str, mode: int = 0o755) -> None:
        cur = ""
        for comp in [c for c in path.split("/") if c]:
            cur += "/" + comp
            try:
                await self.vfs.mkdirat(self.ctx, self.creds, None, cur.encode(), mode)
            except FileExistsError:
                pass

    async def copy_in(self, host: str, target: str) -> None:
        """Copy the host tree `host` to `target` in the sandbox, with modes and times."""
        from vfs.abi import O_CREAT, O_WRONLY

        v, ctx, c = self.vfs, self.ctx, self.creds
        old_umask, ctx.umask = ctx.umask, 0
        try:
            dirs = []
            for dirpath, _dirs, _files in os.walk(host):
                rel = os.path.relpath(dirpath, host)
                tdir = target if rel == "." else f"{target}/{rel}"
                st = os.lstat(dirpath)
                await self.mkdir_p(tdir, st.st_mode & 0o7777)
                dirs.append((tdir, st))
                # Entries are made in the host directory's creation order (the reverse of a
                # tmpfs listing, which is newest first) so that listings, and what tar
                # archives in listing order, come out in the same order in the sandbox.
                for name in reversed(os.listdir(dirpath)):
                    src = os.path.join(dirpath, name)
                    dst = f"{tdir}/{name}".encode()
                    st = os.lstat(src)
                    if stat.S_ISDIR(st.st_mode):
                        await v.mkdirat(ctx, c, None, dst, st.st_mode & 0o7777)
                        continue
                    if os.path.islink(src):
                        await v.symlinkat(ctx, c, os.readlink(src).encode(), None, dst)
                    else:
                        f = await v.open(ctx, c, None, dst, O_CREAT | O_WRONLY, st.st_mode & 0o7777)
                        with open(src, "rb") as h:
                            await f.write(h.read())
                        await f.dec_ref()
                    t = ((st.st_atime_ns // 10**9, st.st_atime_ns % 10**9),
                         (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9))
                    await v.utimensat(ctx, c, None, dst, t, 0x100)
            for tdir, st in reversed(dirs):
                t = ((st.st_atime_ns // 10**9, st.st_atime_ns % 10**9),
                     (st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9))
                await v.utimensat(ctx, c, None, tdir.encode(), t, 0)
        finally:
            ctx.umask = old_umask

    async def read_file(self, path: str) -> bytes:
        from vfs.abi import O_RDONLY

        f = await self.vfs.open(self.ctx, self.creds, None, path.encode(), O_RDONLY)
        try:
            return await f.read(1 << 30)
        finally:
            await f.dec_ref()

    async def run(self, argv: list[str], *, cwd: str = "/", env: list[str] | None = None,
                  stdin: bytes | None = None, strace: list[str] | None = None) -> Result:
        """Run host program `argv[0]` (static) in this session; `strace` collects lines."""
        import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
        from sentry.kernel import Kernel
        from sentry.kernel.fdtable import FDTable
        from sentry.loader import HostFiles
        from vfs.fs.host import HostFD

        await self.vfs.chdir(self.ctx, self.creds, None, cwd.encode())
        table = None
        if strace is not None:
            from sentry.kernel.table import TABLE
            from sentry.strace import Strace, traced_table

            table = traced_table(TABLE, Strace(strace.append))
        with open(os.devnull, "w") as events, tempfile.TemporaryFile() as inp, \
                tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            inp.write(stdin or b"")
            inp.seek(0)
            kernel = Kernel(exec_source=HostFiles("/"), vfs=self.vfs, table=table, stderr=events)
            fdt = FDTable()
            for f in (inp, out, err):
                fdt.install(HostFD(f.fileno()))
            try:
                status = await kernel.run([a.encode() for a in argv],
                                          [e.encode() for e in (env or ["PATH=/bin"])], fdt,
                                          self.ctx, self.creds)
            finally:
                await kernel.close_files(1, fdt.close_all())
            out.seek(0)
            err.seek(0)
            return Result(status, out.read(), err.read(), list(kernel.events), kernel)


async def sentry_run(argv: list[str], *, dirs: tuple[str, ...] = ("/tmp",), cwd: str = "/",
                     env: list[str] | None = None, strace: list[str] | None = None) -> Result:
    """Run one static program in a fresh Session (see `Session.run`)."""
    s = await Session.start(dirs=dirs)
    return await s.run(argv, cwd=cwd, env=env, strace=strace)
