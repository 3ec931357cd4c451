"""Run a host program under the Sentry over an in-memory root, and natively, for comparison.

The Sentry's root here is a tmpfs with /tmp and (when vfs has it) /dev; programs are read
from the host by the loader's HostFiles source, so this runs *static* programs (a dynamic
one would need its libraries inside the sandbox root: that is what runtime tests do).
stdout and stderr are host files, read back after the run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import need_binary

PROGS = Path(__file__).resolve().parent


@dataclass
class Result:
    status: int  # wait status
    stdout: bytes
    stderr: bytes
    events: list = field(default_factory=list)

    @property
    def code(self) -> int:
        """Exit code as a shell reports it (128 + signal)."""
        return os.waitstatus_to_exitcode(self.status) if self.status & 0x7F == 0 else (
            128 + (self.status & 0x7F))


def build(tmp: Path, name: str, *, static: bool = True) -> str:
    """Compile tests/sentry/progs/NAME.c into `tmp` and return the binary's path."""
    gcc = need_binary("gcc")
    out = tmp / name
    cmd = [gcc, "-O1", "-w", "-o", str(out), str(PROGS / f"{name}.c")]
    if static:
        cmd.insert(1, "-static")
    subprocess.run(cmd, check=True, capture_output=True)
    return str(out)


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def native(argv: list[str], **kw) -> Result:
    """Run natively (no core dumps); stdout/stderr captured."""
    p = subprocess.run(argv, capture_output=True, preexec_fn=_no_core, **kw)
    status = (p.returncode & 0xFF) << 8 if p.returncode >= 0 else -p.returncode
    return Result(status, p.stdout, p.stderr)


async def sentry_run(argv: list[str], *, dirs: tuple[str, ...] = ("/tmp",), cwd: str = "/",
                     env: list[str] | None = None, strace: list[str] | None = None) -> Result:
    """Run `argv` (a host path to a static program) in a Sentry over a fresh tmpfs root.

    `dirs` are created in the sandbox root first; `strace`, if a list, collects the
    --strace lines.
    """
    from sentry.kernel import Kernel
    from sentry.kernel.fdtable import FDTable
    from sentry.loader import HostFiles
    from sentry.syscalls.sys_file import close_files
    from vfs import Credentials, Tmpfs, VirtualFilesystem
    from vfs.fs.host import HostFD

    vfs = VirtualFilesystem(Tmpfs(mode=0o755))
    creds = Credentials.root()
    ctx = vfs.new_context()
    from vfs.fs import devfs

    await devfs.install(vfs, ctx, creds, b"/dev")
    for d in dirs:
        try:
            await vfs.mkdirat(ctx, creds, None, d.encode(), 0o1777 if d == "/tmp" else 0o755)
        except FileExistsError:
            pass
    await vfs.chdir(ctx, creds, None, cwd.encode())
    table = None
    if strace is not None:
        from sentry.strace import Strace, traced_table
        from sentry.syscalls.table import TABLE

        table = traced_table(TABLE, Strace(strace.append))
    kernel = Kernel(exec_source=HostFiles("/"), vfs=vfs, table=table,
                    stderr=open(os.devnull, "w"))  # noqa: SIM115
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            open(os.devnull, "rb") as null:
        fdt = FDTable()
        for f in (null, out, err):
            fdt.install(HostFD(f.fileno()))
        try:
            status = await kernel.run([a.encode() for a in argv],
                                      [e.encode() for e in (env or ["PATH=/bin"])], fdt, ctx,
                                      creds)
        finally:
            await close_files(_Exited(), fdt.close_all())
            kernel.stderr.close()
        out.seek(0)
        err.seek(0)
        return Result(status, out.read(), err.read(), list(kernel.events))


class _Exited:
    tgid = 1
