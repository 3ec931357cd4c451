"""POSIX message queues served by the Sentry, compared with Linux (progs/mqueue.c, run
natively in fresh IPC and mount namespaces with an mqueue filesystem mounted): open and
create rules, priorities, every error, non-blocking and timed calls, mq_notify by signal
and by SIGEV_THREAD (glibc's netlink helper thread),
a receive woken by another process and restarted after an SA_RESTART handler, poll, the
queue files in the mqueue filesystem (at /dev/mqueue in the sandbox), another uid."""

from __future__ import annotations

import io
from pathlib import Path

from tests.support import need_binary

from .platform_helpers import build_c, install_files, native, run_captured

PROGS = Path(__file__).resolve().parent / "progs"


async def _run_in_sandbox(prog: str) -> tuple[int, bytes, object]:
    import sentry.syscalls  # noqa: F401 - registers the handlers the Kernel serves
    from sentry.kernel import Kernel
    from vfs import Credentials, Tmpfs, VirtualFilesystem
    from vfs.fs import devfs, pipefs

    vfs = VirtualFilesystem(Tmpfs(mode=0o755))
    ctx, creds = vfs.new_context(), Credentials.root()
    await devfs.install(vfs, ctx, creds, b"/dev")
    pipefs.install(vfs)
    await install_files(vfs, ctx, creds, {"/mqueue": prog})
    k = Kernel(vfs=vfs, stderr=io.StringIO())
    await vfs.mount(ctx, creds, k.ipc.mqueue, None, b"/dev/mqueue", source="mqueue")
    status, out = await run_captured(k, ["/mqueue", "/dev/mqueue"], None, ctx, creds)
    return status, out, k


async def test_mqueue_matches_linux(tmp_path):
    prog = build_c(tmp_path, "mqueue", (PROGS / "mqueue.c").read_text(), "-static", "-w")
    mnt = tmp_path / "mq"
    mnt.mkdir()
    st, out = native([need_binary("unshare", "util-linux"), "--ipc", "--mount", "sh", "-c",
                      f"mount -t mqueue none {mnt} && exec {prog} {mnt}"])
    assert st == 0 and b"signal 12 code -3" in out, out  # a sane oracle
    status, got, k = await _run_in_sandbox(prog)
    assert got.decode() == out.decode(), k.events
    assert status == st, k.events
    assert not [e for e in k.events if e[0] in ("internal-error", "unsupported-syscall")]
