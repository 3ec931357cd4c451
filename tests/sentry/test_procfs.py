"""/proc from the kernel (sentry/procfs): exe, cmdline, environ and stat of
every process across fork, execve through a symlink and a `#!` script, and an argv
rewritten in place; compared with the same program run natively."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from tests.support import native_child_setup

from .platform_helpers import build_c, install_files, run_captured

PROGS = Path(__file__).resolve().parent / "progs"


async def run_with_proc(argv: list[str], files: dict[str, bytes | str], *,
                        env: list[str] | None = None, symlinks: dict[str, str] | None = None,
                        path: str | None = None) -> tuple[int, bytes, object]:
    """Run argv in a Kernel over a tmpfs root holding `files` (a str value names a host
    file to copy, made executable) and `symlinks`, with devfs at /dev, pipes, and procfs at
    /proc served by the kernel's ProcView. Returns (wait status, stdout, kernel)."""
    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel
    from sentry.procfs import ProcView
    from vfs import Credentials, Tmpfs, VirtualFilesystem
    from vfs.fs import devfs, pipefs
    from vfs.fs.procfs import Procfs

    vfs = VirtualFilesystem(Tmpfs(mode=0o755))
    ctx, creds = vfs.new_context(), Credentials.root()
    await devfs.install(vfs, ctx, creds, b"/dev")
    pipefs.install(vfs)
    procfs = Procfs(vfs)
    for d in (b"/proc", b"/tmp"):
        await vfs.mkdirat(ctx, creds, None, d, 0o755)
    await vfs.mount(ctx, creds, procfs, None, b"/proc", source="proc")

    await install_files(vfs, ctx, creds, files, symlinks)
    k = Kernel(vfs=vfs, stderr=io.StringIO())
    procfs.provider = ProcView(k)
    status, out = await run_captured(k, argv, env, ctx, creds, path=path)
    return status, out, k


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
