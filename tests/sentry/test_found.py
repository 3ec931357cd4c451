"""Found while testing, each compared with Linux (progs/found.c): waitpid with a SIGCHLD
handler without SA_RESTART reports the child whose exit sent the signal; reads and writes
running into unmapped memory return what was copied before the fault; ftruncate, fchmod and
fstatfs on inherited host stdio answer for the host file or pipe."""

from __future__ import annotations

import os
import subprocess
import tempfile

from tests.sentry.progs.harness import Session, build
from tests.support import native_child_setup


def _native(prog: str) -> tuple[int, bytes]:
    r, w = os.pipe()
    os.close(w)
    with tempfile.TemporaryFile() as err:
        try:
            p = subprocess.run([prog], stdin=r, stdout=subprocess.PIPE, stderr=err,
                               preexec_fn=native_child_setup, check=False)
        finally:
            os.close(r)
        return p.returncode, p.stdout


async def _sandboxed(prog: str) -> tuple[int, bytes, list]:
    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel
    from sentry.kernel.fdtable import FDTable
    from sentry.loader import HostFiles
    from vfs.fs.host import HostFD

    s = await Session.start()
    r, w = os.pipe()
    os.close(w)
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                open(os.devnull, "w") as events:
            kernel = Kernel(exec_source=HostFiles("/"), vfs=s.vfs, stderr=events)
            fdt = FDTable()
            for fd in (r, out.fileno(), err.fileno()):
                fdt.install(HostFD(fd))
            try:
                status = await kernel.run([prog.encode()], [b"PATH=/bin"], fdt, s.ctx, s.creds)
            finally:
                await kernel.close_files(1, fdt.close_all())
            out.seek(0)
            return os.waitstatus_to_exitcode(status), out.read(), list(kernel.events)
    finally:
        os.close(r)


async def test_found_while_testing_matches_native(tmp_path):
    prog = build(tmp_path, "found")
    code, want = _native(prog)
    assert code == 0, want
    assert b"waitpid: ok 30 eintr 0 other 0 handled all" in want
    assert b"read /dev/zero 2GiB: 4096" in want
    got_code, got, events = await _sandboxed(prog)
    assert [e for e in events if e[0] == "internal-error"] == []
    assert got.decode().splitlines() == want.decode().splitlines()
    assert got_code == 0
