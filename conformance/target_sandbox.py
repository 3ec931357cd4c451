"""`sandbox:WHERE` — the cases run by a program inside `runpsc do`, through the Sentry's
own system calls, on one of the sandbox's filesystems.

Why: the `vfs:` targets call the VFS in process; a sandbox adds what its programs really
meet — the system call layer, path resolution from a process's cwd and descriptors, the
mount table — so the sandbox is a conformance target like the others. The program inside
is `conformance/agent.py` (the oracle's own `DirTarget` on a directory of the sandbox);
this module is its host half: every `Target` call becomes one request over the sandbox's
stdin/stdout, answered with the call's result or errno.

WHERE (`SANDBOX_KINDS`): `tmpfs` (the sandbox's own /tmp), `root` (a directory of the
in-memory overlay over the host's /), `volume` (`--volume` of a fresh host directory: a
local gofer), `9p:ADDRESS,aname=NAME[,cache=POLICY]` (`--mount` of a running gofer; tls:
with the run's TLS options).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import trio

import p9

from .agent import STAT_TAG
from .target_api import ROOT, Creds, Stat, Target

#: `sandbox:` kinds besides `sandbox:9p:ADDRESS,aname=NAME[,OPTIONS]`.
SANDBOX_KINDS = ("tmpfs", "root", "volume")
_LEN = struct.Struct("<I")
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where each kind's cases run inside the sandbox.
_WHERE = {"tmpfs": "/tmp/conformance", "root": "/var/runpsc-conformance",
          "volume": "/volume/conformance", "9p": "/remote/conformance"}


class _Agent:
    """The `runpsc do` process running the agent, and the requests in flight to it."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self.lock = trio.Lock()
        self.next_id = 1
        self.waiting: dict[int, tuple[trio.Event, list[Any]]] = {}
        self.buf = bytearray()
        self.dead: str | None = None

    async def frame(self) -> Any:
        while True:
            if len(self.buf) >= _LEN.size:
                (n,) = _LEN.unpack_from(self.buf)
                if len(self.buf) >= _LEN.size + n:
                    body = bytes(self.buf[_LEN.size : _LEN.size + n])
                    del self.buf[: _LEN.size + n]
                    # (marshal: plain values only; never code run on load)
                    return marshal.loads(body)
            data = await self.stdout.receive_some(1 << 16)
            if not data:
                return None
            self.buf += data

    async def read_replies(self) -> None:
        while (reply := await self.frame()) is not None:
            rid, err, value = reply
            ev, box = self.waiting.pop(rid)
            box.extend((err, value))
            ev.set()
        self.dead = "the sandbox's agent ended"
        for ev, box in self.waiting.values():
            box.extend((5, self.dead))
            ev.set()
        self.waiting.clear()

    async def call(self, view: int, method: str, *args: Any) -> Any:
        if self.dead:
            raise OSError(5, self.dead)
        rid = self.next_id
        self.next_id += 1
        ev, box = trio.Event(), list[Any]()
        self.waiting[rid] = (ev, box)
        body = marshal.dumps((rid, view, method, args))
        async with self.lock:
            await self.stdin.send_all(_LEN.pack(len(body)) + body)
        await ev.wait()
        err, value = box
        if err:
            raise OSError(err, value)
        return value


def _from_wire(value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == STAT_TAG:
        return Stat(*value[1:])
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    return value


def _forward(name: str) -> Any:
    async def method(self: Any, *args: Any) -> Any:
        view = await self.view()
        mask = self._mask
        if mask[0] != mask[1]:  # (umask is not async: sent before the next call)
            await self._agent.call(view, "umask", mask[0])
            mask[1] = mask[0]
        return _from_wire(await self._agent.call(view, name, *args))

    method.__name__ = name
    method.__doc__ = f"`{name}` by the agent inside the sandbox."
    return method



class SandboxTarget(Target):
    """One view (root, credentials) of the agent's directory target. A derived view is
    made in the agent at its first call (`derive` cannot wait for a round trip)."""

    def __init__(self, agent: _Agent, path: bytes, features: frozenset[str], *,
                 view: int | None = 0, parent: SandboxTarget | None = None,
                 root: bytes | None = None, creds: Creds = ROOT,
                 mask: list[int] | None = None) -> None:
        self._agent = agent
        #: [this view's umask, the one the agent's view has] (shared, as DirTarget shares
        #: its umask, with the views derived without a new root)
        self._mask = mask if mask is not None else [0o022, 0o022]
        self._view = view
        self._parent = parent
        self._root = root
        self._made = trio.Lock()
        self.path = path
        self.features = features
        self.creds = creds

    def derive(self, *, root: bytes | None = None, creds: Creds | None = None) -> Target:
        path = self.path if root is None else os.path.join(self.path, root)
        return SandboxTarget(self._agent, path, self.features, view=None, parent=self,
                             root=root, creds=creds or self.creds,
                             mask=self._mask if root is None else None)

    def umask(self, mask: int) -> int:
        old, self._mask[0] = self._mask[0], mask
        return old

    async def view(self) -> int:
        """This view's number in the agent (made there now if need be)."""
        async with self._made:
            if self._view is None:
                assert self._parent is not None
                c = self.creds
                self._view = await self._agent.call(
                    await self._parent.view(), "derive", self._root,
                    (c.uid, c.gid, list(c.groups)))
        return self._view

    def abspath(self, path: bytes) -> bytes:
        return os.path.join(self.path, path)

    async def aclose(self) -> None:
        if self._view is not None and not self._agent.dead:
            await self._agent.call(self._view, "aclose")

    # Every operation (abstract or optional) is the agent's, as it is.
    open = _forward("open")
    close = _forward("close")
    read = _forward("read")
    write = _forward("write")
    pread = _forward("pread")
    pwrite = _forward("pwrite")
    lseek = _forward("lseek")
    ftruncate = _forward("ftruncate")
    truncate = _forward("truncate")
    fsync = _forward("fsync")
    fstat = _forward("fstat")
    stat = _forward("stat")
    mkdir = _forward("mkdir")
    rmdir = _forward("rmdir")
    unlink = _forward("unlink")
    rename = _forward("rename")
    link = _forward("link")
    symlink = _forward("symlink")
    readlink = _forward("readlink")
    mknod = _forward("mknod")
    listdir = _forward("listdir")
    opendir = _forward("opendir")
    getdents = _forward("getdents")
    chmod = _forward("chmod")
    fchmod = _forward("fchmod")
    chown = _forward("chown")
    utimens = _forward("utimens")
    setxattr = _forward("setxattr")
    getxattr = _forward("getxattr")
    listxattr = _forward("listxattr")
    removexattr = _forward("removexattr")
    setlk = _forward("setlk")
    getlk = _forward("getlk")
    statat = _forward("statat")
    mkdirat = _forward("mkdirat")
    flink = _forward("flink")
    readdir_kinds = _forward("readdir_kinds")
    access = _forward("access")
    fallocate = _forward("fallocate")


def _tls_args(tls: p9.TLSClientConfig | None) -> list[str]:
    if tls is None:
        return []
    args = ["--tls-ca", tls.ca]
    if tls.cert:
        args += ["--tls-cert", tls.cert]
    if tls.key:
        args += ["--tls-key", tls.key]
    if tls.server_name:
        args += ["--tls-server-name", tls.server_name]
    return args


def sandbox_kind(where: str) -> str:
    """The kind a `sandbox:WHERE` target reports (it selects the documented exceptions)."""
    return "sandbox-9p" if where.startswith("9p:") else f"sandbox-{where}"


@contextlib.asynccontextmanager
async def open_sandbox(where: str, *,
                       tls: p9.TLSClientConfig | None = None) -> AsyncIterator[Target]:
    """Start `runpsc do` with the agent on WHERE's directory; the root view of it."""
    args: list[str] = []
    host_dir: str | None = None
    kind = "9p" if where.startswith("9p:") else where
    if kind == "volume":
        host_dir = tempfile.mkdtemp(prefix="runpsc-conformance-volume-")
        os.chmod(host_dir, 0o755)
        args += ["--volume", f"{host_dir}:/volume"]
    elif kind == "9p":
        args += ["--mount", f"{where}:/remote", *_tls_args(tls)]
    elif kind not in SANDBOX_KINDS:
        raise ValueError(f"unknown sandbox target {where!r}")
    inside = _WHERE[kind]
    script = (f"mkdir -p {inside} && chmod 755 {inside} && "
              f"exec {sys.executable} -m conformance.agent {inside}")
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "runtime.cli", "do", "--cwd", _REPO, *args, "--", "sh", "-c",
         script], stdin=-1, stdout=-1, cwd=_REPO)  # (-1: subprocess.PIPE)
    agent = _Agent(proc)
    try:
        async with trio.open_nursery() as nursery:
            hello = await agent.frame()
            if hello is None:
                raise OSError(5, "the sandbox's agent did not start (runpsc do failed)")
            nursery.start_soon(agent.read_replies)
            t = SandboxTarget(agent, os.fsencode(inside), frozenset(hello))
            try:
                yield t
            finally:
                with contextlib.suppress(OSError):
                    await t.aclose()
                await agent.stdin.aclose()
                with trio.move_on_after(30):
                    await proc.wait()
                nursery.cancel_scope.cancel()
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
        if host_dir is not None:
            shutil.rmtree(host_dir, ignore_errors=True)
