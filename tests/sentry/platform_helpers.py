"""Helpers for the platform/loader/mm/escape tests: build C programs, run them in a Kernel.

Programs print through a test-only `write`/`writev` that captures what fd 1 and 2 receive,
so these tests do not depend on the file-syscall handlers (sys_file, sys_fs: they need a
VFS). The shared table is never modified.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

from sentry.kernel import Kernel
from sentry.loader import HostFiles
from sentry.syscalls.table import TABLE, Entry, Level, SyscallError, number
from tests.support import native_child_setup, need_binary

_OWN_FAMILIES = {"sentry.syscalls.sys_process", "sentry.syscalls.sys_mmap",
                 "sentry.syscalls.sys_futex",
                 "sentry.syscalls.table"}


class Captured:
    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()


def capture_table(cap: Captured, extra: dict[str, object] | None = None) -> dict[int, Entry]:
    """The shared table plus test-only write/writev capturing fds 1 and 2 (EBADF else)."""

    def write(t, fd, buf, n, *_):
        """Test-only write(2)."""
        if fd not in (1, 2):
            raise SyscallError(errno.EBADF)
        data = t.mem_read(buf, n)
        (cap.out if fd == 1 else cap.err).extend(data)
        return len(data)

    def writev(t, fd, iov, cnt, *_):
        """Test-only writev(2)."""
        return sum(write(t, fd, b, n) for b, n in t.read_iovecs(iov, cnt))

    # Only the process, memory and futex families: these tests run without a VFS.
    tab = {nr: e for nr, e in TABLE.items()
           if e.handler is None or e.handler.__module__ in _OWN_FAMILIES}
    handlers = {"write": write, "writev": writev, **(extra or {})}
    for name, fn in handlers.items():
        nr = number(name)
        tab[nr] = Entry(nr, name, fn, Level.SUPPORTED, "", False)
    return tab


async def run(argv: list[str], *, env: list[str] | None = None,
              extra: dict[str, object] | None = None) -> tuple[int, bytes, bytes, Kernel]:
    """Run argv in a fresh Kernel reading programs from the host; return
    (wait status, stdout, stderr, kernel)."""
    cap = Captured()
    import io

    k = Kernel(exec_source=HostFiles(), table=capture_table(cap, extra), stderr=io.StringIO())
    status = await k.run([a.encode() for a in argv], [e.encode() for e in (env or [])], None)
    return status, bytes(cap.out), bytes(cap.err), k


def build_c(tmp: Path, name: str, source: str, *flags: str) -> str:
    """Compile `source` with gcc into tmp/name; returns the path."""
    gcc = need_binary("gcc")
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / name
    subprocess.run([gcc, "-O1", "-o", str(out), str(src), *flags], check=True,
                   capture_output=True)
    return str(out)


def native(argv: list[str]) -> tuple[int, bytes]:
    """Run argv natively; return (wait-status-like code, stdout)."""
    p = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL,
                       preexec_fn=native_child_setup)
    status = (p.returncode << 8) if p.returncode >= 0 else -p.returncode
    return status, p.stdout


def busybox() -> str:
    path = "/bin/busybox"
    if not os.access(path, os.X_OK):
        need_binary("busybox-not-found", "busybox-static")
    return path


async def install_files(vfs: object, ctx: object, creds: object,
                        files: dict[str, bytes | str],
                        symlinks: dict[str, str] | None = None) -> None:
    """Write `files` and `symlinks` (path -> target) into the VFS, parents made as needed:
    a str value names a host file to copy, made executable (as is content starting with
    `#!`); bytes are the content."""

    async def parents(path: str) -> None:
        cur = b""
        for part in path.strip("/").split("/")[:-1]:
            cur += b"/" + part.encode()
            try:
                await vfs.mkdirat(ctx, creds, None, cur, 0o755)
            except FileExistsError:
                pass

    for path, content in files.items():
        await parents(path)
        data = Path(content).read_bytes() if isinstance(content, str) else content
        mode = 0o755 if isinstance(content, str) or data[:2] == b"#!" else 0o644
        f = await vfs.open(ctx, creds, None, path.encode(), os.O_CREAT | os.O_WRONLY, mode)
        await f.write(data)
        await f.dec_ref()
    for path, target in (symlinks or {}).items():
        await parents(path)
        await vfs.symlinkat(ctx, creds, target.encode(), None, path.encode())


async def run_captured(k: Kernel, argv: list[str], env: list[str] | None, ctx: object,
                       creds: object, *, path: str | None = None) -> tuple[int, bytes]:
    """Run argv as pid 1 of `k` with stdin /dev/null and stdout+stderr a host pipe drained
    meanwhile. Returns (wait status, output)."""
    import trio

    from sentry.kernel.fdtable import FDTable
    from vfs.fs.host import HostFD

    r, w = os.pipe()
    fdt = FDTable()
    null = os.open("/dev/null", os.O_RDONLY)
    for fd in (null, w, w):
        fdt.install(HostFD(fd))  # HostFD serves a dup
    os.close(null)
    os.close(w)
    out = bytearray()

    async def drain() -> None:
        while True:
            await trio.lowlevel.wait_readable(r)
            chunk = os.read(r, 65536)
            if not chunk:
                return
            out.extend(chunk)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            status = await k.run([a.encode() for a in argv],
                                 [e.encode() for e in (env or [])], fdt, ctx, creds,
                                 path=path.encode() if path else None)
    finally:
        os.close(r)
    return status, bytes(out)


async def run_vfs(argv: list[str], files: dict[str, bytes | str],
                  env: list[str] | None = None) -> tuple[int, bytes, Kernel, object]:
    """Run argv in a Kernel whose root is a fresh tmpfs holding `files` (install_files);
    stdout is a host pipe. Returns (wait status, stdout, kernel, vfs)."""
    import io

    from vfs import Credentials, Tmpfs, VirtualFilesystem

    vfs = VirtualFilesystem(Tmpfs())
    ctx, creds = vfs.new_context(), Credentials.root()
    await install_files(vfs, ctx, creds, files)
    k = Kernel(vfs=vfs, stderr=io.StringIO())
    status, out = await run_captured(k, argv, env, ctx, creds)
    return status, out, k, vfs
