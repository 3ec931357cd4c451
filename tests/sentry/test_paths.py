"""openat2 with every RESOLVE_* flag, execveat and process_vm_readv/writev, compared with
Linux (progs/paths.c). The program execs itself, so in the sandbox it is read from the
VFS (a copy in /bin), not from the host."""

from __future__ import annotations

import os
import tempfile

from tests.sentry.progs.harness import Session, build, native


async def _sandboxed(prog: str) -> tuple[int, bytes, list]:
    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel
    from sentry.kernel.fdtable import FDTable
    from vfs.abi import O_CREAT, O_WRONLY
    from vfs.fs.host import HostFD

    s = await Session.start(dirs=("/tmp", "/tmp/w", "/bin"))
    f = await s.vfs.open(s.ctx, s.creds, None, b"/bin/paths", O_CREAT | O_WRONLY, 0o755)
    with open(prog, "rb") as h:
        await f.write(h.read())
    await f.dec_ref()
    with open(os.devnull, "rb") as inp, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err, open(os.devnull, "w") as events:
        kernel = Kernel(vfs=s.vfs, stderr=events)
        fdt = FDTable()
        for fd in (inp.fileno(), out.fileno(), err.fileno()):
            fdt.install(HostFD(fd))
        await s.vfs.chdir(s.ctx, s.creds, None, b"/")
        try:
            status = await kernel.run([b"/bin/paths", b"/tmp/w"], [], fdt, s.ctx, s.creds)
        finally:
            await kernel.close_files(1, fdt.close_all())
        out.seek(0)
        return os.waitstatus_to_exitcode(status), out.read(), list(kernel.events)


async def test_paths_match_native(tmp_path):
    prog = build(tmp_path, "paths")
    scratch = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    try:
        want = native([prog, scratch])
    finally:
        import shutil

        shutil.rmtree(scratch)
    assert want.code == 0, want.stderr
    code, got, events = await _sandboxed(prog)
    assert [e for e in events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.decode().splitlines() == want.stdout.decode().splitlines()
    assert code == 0
