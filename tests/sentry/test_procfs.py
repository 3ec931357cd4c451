"""/proc from the kernel (sentry/kernel/procview.py): exe, cmdline, environ and stat of
every process across fork, execve through a symlink and a `#!` script, and an argv
rewritten in place; compared with the same program run natively."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import trio

from tests.support import native_child_setup

from .platform_helpers import build_c

PROGS = Path(__file__).resolve().parent / "progs"


async def run_with_proc(argv: list[str], files: dict[str, bytes | str], *,
                        env: list[str] | None = None, symlinks: dict[str, str] | None = None,
                        path: str | None = None) -> tuple[int, bytes, object]:
    """Run argv in a Kernel over a tmpfs root holding `files` (a str value names a host
    file to copy, made executable) and `symlinks`, with devfs at /dev, pipes, and procfs at
    /proc served by the kernel's ProcView. Returns (wait status, stdout, kernel)."""
    from sentry.kernel import Kernel
    from sentry.kernel.fdtable import FDTable
    from sentry.kernel.procview import ProcView
    from vfs import Credentials, Tmpfs, VirtualFilesystem
    from vfs.fs import devfs, pipefs
    from vfs.fs.host import HostFD
    from vfs.fs.procfs import Procfs

    vfs = VirtualFilesystem(Tmpfs(mode=0o755))
    ctx, creds = vfs.new_context(), Credentials.root()
    await devfs.install(vfs, ctx, creds, b"/dev")
    pipefs.install(vfs)
    procfs = Procfs(vfs)
    for d in (b"/proc", b"/tmp"):
        await vfs.mkdirat(ctx, creds, None, d, 0o755)
    await vfs.mount(ctx, creds, procfs, None, b"/proc", source="proc")

    async def mkparents(p: str) -> None:
        cur = b""
        for part in p.strip("/").split("/")[:-1]:
            cur += b"/" + part.encode()
            try:
                await vfs.mkdirat(ctx, creds, None, cur, 0o755)
            except FileExistsError:
                pass

    for p, content in files.items():
        await mkparents(p)
        data = Path(content).read_bytes() if isinstance(content, str) else content
        mode = 0o755 if isinstance(content, str) or data[:2] == b"#!" else 0o644
        f = await vfs.open(ctx, creds, None, p.encode(), os.O_CREAT | os.O_WRONLY, mode)
        await f.write(data)
        await f.dec_ref()
    for p, target in (symlinks or {}).items():
        await mkparents(p)
        await vfs.symlinkat(ctx, creds, target.encode(), None, p.encode())
    r, w = os.pipe()
    fdt = FDTable()
    null = os.open("/dev/null", os.O_RDONLY)
    for fd in (null, w, w):
        fdt.install(HostFD(fd))  # HostFD serves a dup
    os.close(null)
    os.close(w)
    k = Kernel(vfs=vfs, stderr=io.StringIO())
    procfs.provider = ProcView(k)
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
    return status, bytes(out), k


def native(argv: list[str], *, executable: str, env: dict[str, str]) -> tuple[int, bytes]:
    p = subprocess.run(argv, executable=executable, env=env, capture_output=True,
                       stdin=subprocess.DEVNULL, preexec_fn=native_child_setup, timeout=60)
    return (p.returncode << 8 if p.returncode >= 0 else -p.returncode), p.stdout


async def test_proc_exe_cmdline_environ_match_linux(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    prog = build_c(d, "procfs", (PROGS / "procfs.c").read_text(), "-static", "-w")
    (d / "link").symlink_to("procfs")
    (d / "script").write_text(f"#!{d}/procfs\n")
    (d / "script").chmod(0o755)
    argv = ["procfs", "a b", "c"]
    st, want = native(argv, executable=prog, env={"A": "1", "B": "two words", "DIR": str(d)})
    assert st == 0 and b"exec'd child exited 0" in want, want
    assert b"self exe: $DIR/procfs" in want and b"renamed|x y|" in want, want
    status, got, k = await run_with_proc(
        argv, {"/d/procfs": prog, "/d/script": b"#!/d/procfs\n"},
        symlinks={"/d/link": "procfs"}, env=["A=1", "B=two words", "DIR=/d"],
        path="/d/procfs")
    assert got.decode() == want.decode(), k.events
    assert status == st
