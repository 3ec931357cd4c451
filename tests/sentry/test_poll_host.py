"""epoll on host-kernel files, compared with Linux: the program's stdin and stdout are host
pipes that the test drives (it writes to stdin when asked, then closes it), so EPOLLET's
edges come from the host kernel (an edge-triggered host epoll inside the EpollFD); devices
without poll are refused with EPERM."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import trio

from tests.support import native_child_setup

from .platform_helpers import build_c

PROGS = Path(__file__).resolve().parent / "progs"
FIRST, MORE = b"abc", b"def"


def _react(line: bytes, write, close) -> None:  # noqa: ANN001
    if line == b"first please\n":
        write(FIRST)
    elif line == b"more please\n":
        write(MORE)
    elif line == b"close please\n":
        close()


def run_native(prog: str) -> tuple[int, bytes]:
    p = subprocess.Popen([prog], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         preexec_fn=native_child_setup)
    assert p.stdin is not None and p.stdout is not None

    def write(data: bytes) -> None:
        p.stdin.write(data)
        p.stdin.flush()

    out = b""
    for line in p.stdout:
        out += line
        _react(line, write, p.stdin.close)
    if not p.stdin.closed:
        p.stdin.close()
    return p.wait(timeout=60), out


async def run_sandbox(prog: str) -> tuple[int, bytes, list]:
    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel
    from sentry.kernel.fdtable import FDTable
    from vfs import Credentials, Tmpfs, VirtualFilesystem
    from vfs.fs import devfs
    from vfs.fs.host import HostFD

    vfs = VirtualFilesystem(Tmpfs())
    ctx, creds = vfs.new_context(), Credentials.root()
    await devfs.install(vfs, ctx, creds, b"/dev")
    f = await vfs.open(ctx, creds, None, b"/prog", os.O_CREAT | os.O_WRONLY, 0o755)
    await f.write(Path(prog).read_bytes())
    await f.dec_ref()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    fdt = FDTable()
    for fd in (in_r, out_w, out_w):
        fdt.install(HostFD(fd))
    os.close(in_r)
    os.close(out_w)
    os.set_blocking(out_r, False)
    out = bytearray()
    state = {"in_w": in_w}

    def write(data: bytes) -> None:
        try:
            os.write(state["in_w"], data)
        except OSError:  # the program is gone already: the output comparison will say so
            pass

    def close() -> None:
        if state["in_w"] >= 0:
            os.close(state["in_w"])
            state["in_w"] = -1

    async def drain() -> None:
        pending = b""
        while True:
            await trio.lowlevel.wait_readable(out_r)
            chunk = os.read(out_r, 65536)
            if not chunk:
                return
            out.extend(chunk)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                _react(line + b"\n", write, close)

    k = Kernel(vfs=vfs, stderr=io.StringIO())
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            status = await k.run([b"/prog"], [], fdt, ctx, creds)
    finally:
        close()
        os.close(out_r)
    return status, bytes(out), k.events


async def test_epoll_on_host_files_matches_linux(tmp_path):
    prog = build_c(tmp_path, "epoll_host", (PROGS / "epoll_host.c").read_text(), "-static",
                   "-w")
    rc, out = run_native(prog)
    assert rc == 0 and b"still writable: no new edge: 0" in out, out  # a sane oracle
    status, got, events = await run_sandbox(prog)
    assert got.decode() == out.decode(), events
    assert status == 0, events
    assert not [e for e in events if e[0] in ("internal-error", "unsupported-syscall")]
