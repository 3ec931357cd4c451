"""Running a gofer: parse exports and listeners, bind, confine, serve with resource bounds.

Order matters: listeners are bound and export roots opened with plain blocking calls while
the process is still single-threaded (a mount namespace entered with unshare(2) covers only
the calling thread), then the process confines itself, and only then does trio start.

Each connection is served by its own `p9.Server` over a `_Budget` view of the shared
filesystem, which bounds the fids it may hold; an idle connection (nothing received for
`idle_timeout` seconds) is closed; when a connection ends the framework closes every File,
which releases every descriptor it held.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import resource
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass

import trio

import p9

from .host import Export, Node
from .ident import IdentityPolicy
from .procfd import ProcFD
from .server import GoferFile, GoferFilesystem
from .tlsaccess import TLSAccess, accept_tls, refuse_attach

__all__ = ["Listen", "GoferOptions", "parse_export", "parse_listen", "bind", "prepare", "serve", "serve_stream", "run"]

log = logging.getLogger("gofer")


def parse_export(spec: str) -> Export:
    """`NAME=DIR[:opt,...]` with options ro, rw, submounts, devices.

    Raises:
        ValueError: malformed spec, unknown option, or DIR not a directory.
    """
    name, eq, rest = spec.partition("=")
    if not eq or not name or not rest:
        raise ValueError(f"export {spec!r} is not NAME=DIR[:ro]")
    path, _, opts = rest.partition(":")
    e = Export(name, path)
    for opt in filter(None, opts.split(",")):
        if opt == "ro":
            e.readonly = True
        elif opt == "rw":
            e.readonly = False
        elif opt == "submounts":
            e.submounts = True
        elif opt == "devices":
            e.allow_devices = True
        else:
            raise ValueError(f"export {spec!r}: unknown option {opt!r} (ro, rw, submounts, devices)")
    if "/" in name:
        raise ValueError(f"export name {name!r} contains '/'")
    if not os.path.isdir(path):
        raise ValueError(f"export {spec!r}: {path!r} is not a directory")
    return e


@dataclass(frozen=True)
class Listen:
    """A parsed --listen: kind is 'unix', 'tcp', 'tls' (TCP with TLS on top) or 'fd'."""

    kind: str
    address: str
    port: int = 0

    def open_to_network(self) -> bool:
        """A plain tcp: listener on an address other than loopback (worth a warning: the
        attach trusts the uname the client sends, and nothing is encrypted)."""
        if self.kind != "tcp":
            return False
        import ipaddress

        try:
            return not ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return self.address != "localhost"


def parse_listen(spec: str) -> Listen:
    """`unix:PATH`, `tcp:HOST:PORT`, `tls:HOST:PORT` or `fd:N`."""
    kind, _, addr = spec.partition(":")
    if kind == "unix" and addr:
        return Listen("unix", addr)
    if kind in ("tcp", "tls"):
        host, _, port = addr.rpartition(":")
        if host and port.isdigit():
            return Listen(kind, host.strip("[]"), int(port))
    if kind == "fd" and addr.isdigit():
        return Listen("fd", addr)
    raise ValueError(f"listen {spec!r} is not unix:PATH, tcp:HOST:PORT, tls:HOST:PORT or fd:N")


def bind(listen: Listen) -> socket.socket:
    """A bound, listening socket (or for fd:N, the inherited socket, listening or connected)."""
    if listen.kind == "unix":
        try:
            if stat.S_ISSOCK(os.lstat(listen.address).st_mode):
                os.unlink(listen.address)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Connecting needs write permission on the socket file: owner only, whatever the
        # umask (the serving process runs with umask 0), since attaching trusts the uname.
        old = os.umask(0o177)
        try:
            s.bind(listen.address)
        finally:
            os.umask(old)
        s.listen(128)
        return s
    if listen.kind in ("tcp", "tls"):
        family = socket.AF_INET6 if ":" in listen.address else socket.AF_INET
        return socket.create_server(
            (listen.address, listen.port), family=family, backlog=128, reuse_port=False
        )
    s = socket.socket(fileno=int(listen.address))
    if s.type != socket.SOCK_STREAM:
        raise ValueError(f"fd:{listen.address} is not a stream socket")
    return s


@dataclass(frozen=True)
class GoferOptions:
    """Per-connection bounds and protocol limits."""

    max_fids: int = 10000
    idle_timeout: float | None = 300.0
    max_msize: int = 1 << 20
    max_inflight: int = 64
    #: Poll a connection this long for the next request before sleeping (p9.Server's
    #: spin_us): a sequential client's next request usually comes within it, and sleeping
    #: then being woken costs more on a VM. Backs off when a client pauses.
    spin_us: float = 100.0


# Requests the gofer completes without waiting, handled in the connection's reader task (no
# task spawn per request). Not Tlopen, Tread, Twrite, Tlock: on a FIFO those wait.
INLINE_MESSAGES = (p9.QUICK_MESSAGES - {p9.Tlopen}) | {
    p9.Tlcreate, p9.Tmkdir, p9.Tunlinkat, p9.Trenameat, p9.Tsymlink, p9.Tlink, p9.Tmknod,
    p9.Trename, p9.Tremove, p9.Treaddir, p9.Tsetxattr, p9.Tremovexattr, p9.Tucreate,
    p9.Tumkdir, p9.Tumknod, p9.Tusymlink, p9.Tallocate, p9.Tgetlock,
}


class _Budget(p9.Filesystem):
    """One connection's view of the filesystem: counts the Files it holds against a bound."""

    walk_sources = True

    def __init__(self, fs: GoferFilesystem, limit: int, *,
                 exports: frozenset[str] | None = None, who: str = "") -> None:
        self.fs = fs
        self.limit = limit
        self.count = 0
        #: The exports this connection may attach (None: all), and whom it is for logs.
        self.exports = exports
        self.who = who

    def cred_token(self) -> int:
        return self.fs.cred_token()

    def fid_room(self) -> int:
        return self.limit - self.count

    async def attach(self, aname: bytes, uname: bytes, uid: int) -> p9.File:
        if self.exports is not None:
            export = self.fs.lookup(os.fsdecode(aname))
            if export.name not in self.exports:
                raise refuse_attach(self.who, export.name)
        self.take()
        try:
            f = await self.fs.attach(aname, uname, uid)
        except BaseException:
            self.count -= 1
            raise
        return _Counted.wrap(f, self)

    def take(self) -> None:
        if self.count >= self.limit:
            raise OSError(errno.EMFILE, f"connection holds {self.count} fids (limit {self.limit})")
        self.count += 1


class _Counted(GoferFile):
    """A GoferFile whose clones and children are charged to a connection's budget."""

    __slots__ = ("budget",)
    budget: _Budget

    @classmethod
    def wrap(cls, f: GoferFile, budget: _Budget) -> _Counted:
        c = cls(f.node, f.ident, f.switch)
        c.budget = budget
        c.inline_io = f.inline_io
        return c

    def _child(self, node: Node) -> GoferFile:
        try:
            self.budget.take()
        except OSError:
            node.release()
            raise
        c = _Counted(node, self.ident, self.switch)
        c.budget = self.budget
        return c

    async def close(self) -> None:
        if not self.closed:
            self.budget.count -= 1
        await super().close()


async def serve_stream(
    stream: trio.abc.Stream, fs: GoferFilesystem, options: GoferOptions, *,
    exports: frozenset[str] | None = None, who: str = "",
) -> None:
    """Serve one connection with its own fid budget and idle timeout; `exports` limits what
    it may attach (EACCES for others, logged with `who`)."""
    budget = _Budget(fs, options.max_fids, exports=exports, who=who)
    server = p9.Server(
        budget,
        max_msize=options.max_msize,
        max_inflight=options.max_inflight,
        default_uname=b"",
        default_uid=fs.policy.anonymous.uid,
        inline=INLINE_MESSAGES,
        # The framework's own timeout keeps the direct socket send/receive path (a stream
        # wrapper here doubled the cost of every metadata request).
        idle_timeout=options.idle_timeout or None,
        spin_us=options.spin_us,
    )
    await server.serve_stream(stream)  # (which ends only this connection, whatever happens)


async def serve(
    sockets: Sequence[socket.socket],
    fs: GoferFilesystem,
    options: GoferOptions,
    *,
    tls: TLSAccess | None = None,
    tls_sockets: Sequence[socket.socket] = (),
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on bound sockets until cancelled (or, for only connected fds, until they close).

    `tls_sockets` (listening sockets among `sockets`) speak TLS with `tls`'s context: a
    client completes a handshake with a verified certificate before anything is served, and
    attaches only what `tls` allows its certificate.
    """
    listeners: list[trio.SocketListener] = []
    tls_listeners: list[trio.SocketListener] = []
    connected: list[trio.SocketStream] = []
    for s in sockets:
        ts = trio.socket.from_stdlib_socket(s)
        if s in tls_sockets:
            tls_listeners.append(trio.SocketListener(ts))
        elif s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            listeners.append(trio.SocketListener(ts))
        else:
            connected.append(trio.SocketStream(ts))
    if tls_listeners and tls is None:
        raise ValueError("a TLS listener needs its certificate, key and client CA")

    async def handle(stream: trio.abc.Stream) -> None:
        await serve_stream(stream, fs, options)

    async def handle_tls(stream: trio.SocketStream) -> None:
        assert tls is not None
        accepted = await accept_tls(stream, tls)
        if accepted is not None:
            tstream, peer, cn = accepted
            await serve_stream(tstream, fs, options, exports=tls.exports_for(cn),
                               who=f"{peer} (CN={cn})")

    async with trio.open_nursery() as nursery:
        for c in connected:
            nursery.start_soon(handle, c)
        if listeners:
            await nursery.start(trio.serve_listeners, handle, listeners)
        if tls_listeners:
            await nursery.start(trio.serve_listeners, handle_tls, tls_listeners)
        task_status.started()


def prepare(
    exports: Sequence[Export],
    listens: Sequence[Listen],
    *,
    policy: IdentityPolicy,
    confine: bool = True,
) -> tuple[GoferFilesystem, list[socket.socket]]:
    """Open every export and bind every listener, then confine the process (if asked).

    Must run before trio starts (single-threaded; see the module docstring).
    """
    # Clients send the mode they want, their umask already applied (v9fs, gVisor, diod's
    # clients): ours must not be applied a second time.
    os.umask(0)
    _raise_fd_limit()
    procfd = ProcFD()
    fs = GoferFilesystem.open(exports, policy, procfd)
    sockets = [bind(listen) for listen in listens]
    if confine:
        from . import confine as confinement

        _preload()
        procfd.rebase(confinement.confine(switch_identity=policy.switch))
    return fs, sockets


def run(
    exports: Sequence[Export],
    listens: Sequence[Listen],
    *,
    policy: IdentityPolicy,
    options: GoferOptions = GoferOptions(),
    confine: bool = True,
    ready_fd: int | None = None,
    tls: TLSAccess | None = None,
) -> None:
    """Prepare (open, bind, confine), then serve until interrupted (the CLI's body).

    `ready_fd`, if given, gets one byte written and is closed once serving has started.
    `tls` serves the `tls:` listeners (its context is loaded before: confinement hides the
    certificate files).
    """
    if tls is None and any(x.kind == "tls" for x in listens):
        raise ValueError("a tls: listener needs --tls-cert, --tls-key and --tls-client-ca")
    fs, sockets = prepare(exports, listens, policy=policy, confine=confine)
    tls_sockets = [s for s, x in zip(sockets, listens, strict=True) if x.kind == "tls"]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(serve, sockets, fs, options, tls=tls,
                                                  tls_sockets=tls_sockets))
            if ready_fd is not None:
                os.write(ready_fd, b"R")
                os.close(ready_fd)

    trio.run(main)


def _raise_fd_limit() -> None:
    """Every fid holds a descriptor: take the hard RLIMIT_NOFILE, not the usual soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.info("gofer: could not raise RLIMIT_NOFILE from %d to %d", soft, hard)


def _preload() -> None:
    """Import what serving imports lazily, while the host's files are still visible."""
    import encodings.idna  # noqa: F401

    import trio.lowlevel  # noqa: F401
    import trio.to_thread  # noqa: F401

    # No thread may be started here: unshare(CLONE_NEWNS) moves only the calling thread, so
    # an idle worker left in trio's thread cache would keep serving from the host's mounts.
