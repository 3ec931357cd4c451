"""splice, tee, vmsplice, sendfile and copy_file_range between pipes and files, compared
with Linux (progs/splice.c), errors included."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from tests.sentry.progs.harness import Session, build, native_in_scratch, sentry_run
from tests.support import native_child_setup


async def test_splice_family_matches_native(tmp_path):
    prog = build(tmp_path, "splice")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0


def _stdin_pipe(data: bytes) -> int:
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


async def test_splice_from_host_stdin_pipe_matches_native(tmp_path):
    """stdin is a host pipe (stdout and stderr host files), natively and in the sandbox."""
    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel
    from sentry.kernel.fdtable import FDTable
    from sentry.loader import HostFiles
    from vfs.fs.host import HostFD

    prog = build(tmp_path, "splice_stdio")
    data = b"0123456789abcdefghij"
    scratch = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    r = _stdin_pipe(data)
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run([prog, scratch], stdin=r, stdout=out, stderr=err,
                               preexec_fn=native_child_setup, check=False)
            err.seek(0)
            want = err.read()
    finally:
        os.close(r)
        shutil.rmtree(scratch)
    assert p.returncode == 0, want
    s = await Session.start(dirs=("/tmp", "/tmp/w"))
    r = _stdin_pipe(data)
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                open(os.devnull, "w") as events:
            kernel = Kernel(exec_source=HostFiles("/"), vfs=s.vfs, stderr=events)
            fdt = FDTable()
            for fd in (r, out.fileno(), err.fileno()):
                fdt.install(HostFD(fd))
            try:
                status = await kernel.run([prog.encode(), b"/tmp/w"], [], fdt, s.ctx, s.creds)
            finally:
                await kernel.close_files(1, fdt.close_all())
            err.seek(0)
            got = err.read()
    finally:
        os.close(r)
    assert got.decode().splitlines() == want.decode().splitlines()
    assert os.waitstatus_to_exitcode(status) == 0
