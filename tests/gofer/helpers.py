"""Running a gofer for tests: in-process over a socketpair, or as `runpsc gofer serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager

import trio

import p9
from gofer.host import Export
from gofer.ident import IdentityPolicy, restore_ident
from gofer.procfd import ProcFD
from gofer.serve import GoferOptions, serve_stream
from gofer.server import GoferFilesystem


@asynccontextmanager
async def gofer_fs(
    exports: Sequence[Export], *, options: GoferOptions = GoferOptions(), **policy: object
) -> AsyncIterator[tuple[GoferFilesystem, trio.Nursery]]:
    """An opened GoferFilesystem and a nursery to run connections in; closes everything."""
    procfd = ProcFD()
    fs = GoferFilesystem.open(exports, IdentityPolicy.build(**policy), procfd)  # type: ignore[arg-type]
    umask = os.umask(0)  # as gofer.serve.prepare does: the client's mode is final
    try:
        async with trio.open_nursery() as nursery:
            yield fs, nursery
            nursery.cancel_scope.cancel()
    finally:
        os.umask(umask)
        restore_ident()  # requests ran on this (the test's) thread as attaching users
        for e in exports:
            e.close()
        procfd.close()


@asynccontextmanager
async def connect(
    fs: GoferFilesystem, nursery: trio.Nursery, *, options: GoferOptions = GoferOptions(),
    msize: int = 1 << 20, version: bytes = p9.RUNPSC,
) -> AsyncIterator[p9.Client]:
    """A client on a fresh connection to `fs` (served in `nursery`)."""
    a, b = p9.socketpair()
    done = trio.Event()

    async def server() -> None:
        try:
            await serve_stream(b, fs, options)
        finally:
            done.set()

    nursery.start_soon(server)
    async with p9.open_client(a, msize=msize, version=version) as client:
        yield client
    with trio.fail_after(10):
        await done.wait()


def open_fds() -> int:
    """How many descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


@contextmanager
def gofer_process(
    args: Sequence[str], *, env: dict[str, str] | None = None, pass_fds: Sequence[int] = (),
    prefix: Sequence[str] = (),
) -> Iterator[subprocess.Popen]:
    """`runpsc gofer serve ARGS`, waited for until it serves (--ready-fd); killed after.
    `prefix`: a command that runs it (e.g. prlimit or setpriv and their options)."""
    r, w = os.pipe()
    cmd = [*prefix, sys.executable, "-m", "runtime.cli", "gofer", "serve", "--ready-fd", str(w), *args]
    proc = subprocess.Popen(
        cmd, pass_fds=(w, *pass_fds), stderr=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))), env=env,
    )
    os.close(w)
    try:
        deadline = time.monotonic() + 30
        ready = b""
        while time.monotonic() < deadline:
            ready = os.read(r, 1)
            break
        if ready != b"R":
            proc.kill()
            _, err = proc.communicate()
            raise RuntimeError(f"gofer did not start: {err.decode(errors='replace')}")
        os.read(r, 1)  # EOF: the gofer closed its end too (a descriptor count is now settled)
        yield proc
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()


_CONFINE_PROBE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
sys.exit(0 if os.geteuid() == 0 and libc.unshare(0x20000) == 0 else 1)
"""
_can_confine: bool | None = None


def can_confine() -> bool:
    """Whether this machine lets a root process enter a new mount namespace (a container
    without CAP_SYS_ADMIN does not), i.e. whether the gofer can confine itself."""
    global _can_confine
    if _can_confine is None:
        _can_confine = subprocess.run([sys.executable, "-c", _CONFINE_PROBE]).returncode == 0
    return _can_confine


def confine_args() -> list[str]:
    """CLI flags for a gofer in a behaviour test: confined where possible, else --no-confine
    (confinement itself is proven by test_confine.py, which fails where it cannot run)."""
    return [] if can_confine() else ["--no-confine"]


def need_confinement() -> None:
    """Fail (CI) or skip unless the gofer can confine itself here."""
    from tests.support import missing, need_root

    need_root()
    if not can_confine():
        missing("mount namespaces", "run as root with CAP_SYS_ADMIN (e.g. a privileged container)")


NOBODY = 65534
#: A command prefix that runs the rest as an unprivileged user (uid and gid 65534, no groups).
AS_NOBODY = ("setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups")

_ROOTLESS_PROBE = [*AS_NOBODY, "unshare", "-Ur", "-m", "true"]


def need_rootless() -> None:
    """Fail (CI) or skip unless root can run a command as an unprivileged user that may create
    user namespaces (what the rootless gofer confines itself with)."""
    from tests.support import missing, need_binary, need_root

    need_root()
    need_binary("setpriv", "util-linux")
    if subprocess.run(_ROOTLESS_PROBE, capture_output=True).returncode != 0:
        missing("unprivileged user namespaces", "sysctl kernel.unprivileged_userns_clone=1 "
                "and user.max_user_namespaces > 0")
