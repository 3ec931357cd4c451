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

import dataclasses
import errno
import functools
import logging
import os
import resource
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

import p9

from .host import Export, Node
from .ident import IdentityPolicy
from .limits import ConnectionBudget, ServerLimits, limit_logs, reject
from .peer import LOCAL, Peer, is_loopback, peer_of, socket_of
from .procfd import ProcFD
from .server import GoferFile, GoferFilesystem
from .tlsaccess import TLSAccess, accept_tls, refuse_attach

__all__ = ["Listen", "GoferOptions", "parse_export", "parse_listen", "bind", "check_identity", "prepare", "serve",
           "serve_stream", "run"]

log = logging.getLogger("gofer")


def parse_export(spec: str) -> Export:
    """`NAME=DIR[:opt,...]` with options ro, rw, submounts, devices, mknod.

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
        elif opt == "mknod":
            e.allow_mknod = True
        else:
            raise ValueError(f"export {spec!r}: unknown option {opt!r} "
                             "(ro, rw, submounts, devices, mknod)")
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
    """Per-connection bounds, the server's shared bounds (`gofer.limits`), protocol limits."""

    max_fids: int = 10000
    idle_timeout: float | None = 300.0
    max_msize: int = 1 << 20
    max_inflight: int = 64
    #: Poll a connection this long for the next request before sleeping (p9.Server's
    #: spin_us): a sequential client's next request usually comes within it, and sleeping
    #: then being woken costs more on a VM. Backs off when a client pauses.
    spin_us: float = 100.0
    #: A started frame must be complete this many seconds after its first bytes (None: no
    #: deadline); see p9.Server(frame_timeout=).
    frame_timeout: float | None = 30.0
    #: Shared by all connections of a server (`limits.ServerLimits`; 0: derived/no cap).
    max_total_fids: int = 0
    reserved_fids: int = 16
    max_connections: int = 128
    max_connections_per_peer: int = 16

    def server_limits(self) -> ServerLimits:
        """The shared bounds for one server with these options."""
        return ServerLimits(total_fids=self.max_total_fids, reserved=self.reserved_fids,
                            max_connections=self.max_connections,
                            max_per_peer=self.max_connections_per_peer)


# Requests the gofer completes without waiting, handled in the connection's reader task (no
# task spawn per request). Not Tlopen, Tread, Twrite, Tlock: on a FIFO those wait.
INLINE_MESSAGES = (p9.QUICK_MESSAGES - {p9.Tlopen}) | {
    p9.Tlcreate, p9.Tmkdir, p9.Tunlinkat, p9.Trenameat, p9.Tsymlink, p9.Tlink, p9.Tmknod,
    p9.Trename, p9.Tremove, p9.Treaddir, p9.Tsetxattr, p9.Tremovexattr, p9.Tucreate,
    p9.Tumkdir, p9.Tumknod, p9.Tusymlink, p9.Tallocate, p9.Tgetlock,
}


class _Budget(p9.Filesystem):
    """One connection's view of the filesystem: charges the Files it holds to its
    `ConnectionBudget`, and attaches as what its peer is allowed to be."""

    walk_sources = True

    def __init__(self, fs: GoferFilesystem, budget: ConnectionBudget, peer: Peer, *,
                 exports: frozenset[str] | None = None, who: str = "") -> None:
        self.fs = fs
        self.budget = budget
        self.peer = peer
        #: The exports this connection may attach (None: all), and whom it is for logs.
        self.exports = exports
        self.who = who

    def cred_token(self) -> int:
        return self.fs.cred_token()

    def fid_room(self) -> int:
        return self.budget.room()

    async def attach(self, aname: bytes, uname: bytes, uid: int) -> p9.File:
        if self.exports is not None:
            export = self.fs.lookup(os.fsdecode(aname))
            if export.name not in self.exports:
                raise refuse_attach(self.who, export.name)
        self.budget.take()
        try:
            f = await self.fs.attach(aname, uname, uid, self.peer)
        except BaseException:
            self.budget.give_back()
            raise
        return _Counted.wrap(f, self.budget)


class _Counted(GoferFile):
    """A GoferFile whose clones and children are charged to a connection's budget, and
    whose new descriptors stay below the server's descriptor ceiling."""

    __slots__ = ("budget",)
    budget: ConnectionBudget

    @classmethod
    def wrap(cls, f: GoferFile, budget: ConnectionBudget) -> _Counted:
        c = cls(f.node, f.ident, f.switch)
        c.budget = budget
        c.inline_io = f.inline_io
        return c

    def _child(self, node: Node) -> GoferFile:
        try:
            self.budget.check_fd(node.fd)
            self.budget.take()
        except OSError:
            node.release()
            raise
        return self._counted(node)

    def _adopted(self, node: Node, quick: bool) -> GoferFile:
        self.budget.saw_fd(node.fd)
        self.budget.take(force=True)
        child = self._counted(node)
        child.inline_io = quick
        return child

    def _counted(self, node: Node) -> _Counted:
        c = _Counted(node, self.ident, self.switch)
        c.budget = self.budget
        return c

    async def open(self, flags: int) -> tuple[p9.Qid, int]:
        got = await super().open(flags)
        self._check_open()
        return got

    async def create(
        self, name: bytes, flags: int, mode: int, gid: int, uid: int | None
    ) -> tuple[GoferFile, p9.Qid, int]:
        child, qid, iounit = await super().create(name, flags, mode, gid, uid)
        try:
            assert isinstance(child, _Counted)
            child._check_open()
        except BaseException:
            await child.close()  # (the file stays created, as after a client's crash)
            raise
        return child, qid, iounit

    def _check_open(self) -> None:
        of = self.of
        if of is not None:
            try:
                self.budget.check_fd(of.fd)
            except OSError:
                of.close()
                self.of = None
                raise

    async def close(self) -> None:
        if not self.closed:
            self.budget.give_back()
        await super().close()


async def serve_stream(
    stream: trio.abc.Stream, fs: GoferFilesystem, options: GoferOptions, *,
    peer: Peer = LOCAL, limits: ServerLimits | None = None,
    exports: frozenset[str] | None = None, who: str = "",
) -> None:
    """Serve one connection from `peer` (LOCAL: the trusted end of a socketpair) with its own
    fid budget, idle and frame deadlines, drawing on `limits` (None: bounds of its own);
    `exports` limits what it may attach (EACCES for others, logged with `who`)."""
    budget = ConnectionBudget(limits or options.server_limits(), options.max_fids)
    frame_timeout = (options.frame_timeout or None) if peer.kind != "local" else None
    if frame_timeout is not None:
        # TCP keepalive and a bound on unacknowledged replies, as the client sets: a
        # client host that died, or a link gone dark, in the middle of a long request
        # (which the idle timeout spares) ends the connection, and with it its open files
        # and locks, in about that long rather than never.
        p9.bound_unacknowledged(stream, frame_timeout)
    server = p9.Server(
        _Budget(fs, budget, peer, exports=exports, who=who),
        max_msize=options.max_msize,
        max_inflight=options.max_inflight,
        default_uname=b"",
        default_uid=fs.policy.default_uid(peer),
        inline=INLINE_MESSAGES,
        # The framework's own timeouts keep the direct socket send/receive path (a stream
        # wrapper here doubled the cost of every metadata request).
        idle_timeout=options.idle_timeout or None,
        # Not for the starter's own socketpair (a sandbox's Sentry): stopped mid-frame by job
        # control (^Z), it must find its gofer still there when it resumes.
        frame_timeout=frame_timeout,
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

    A socket inherited connected is its starter's (trusted, not counted against the
    connection caps); accepted ones are identified by `peer.peer_of` and admitted by the
    server's `ServerLimits`. `tls_sockets` (listening sockets among `sockets`) speak TLS
    with `tls`'s context: a client completes a handshake with a verified certificate before
    anything is served, and attaches only what `tls` allows its certificate.
    """
    limits = options.server_limits()
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

    async def local(stream: trio.abc.Stream) -> None:
        await serve_stream(stream, fs, options, limits=limits)

    async def accepted(stream: trio.abc.Stream) -> None:
        who = peer_of(socket_of(stream))
        refused = limits.admit(who)
        if refused is not None:
            await reject(stream, limits, refused)
            return
        try:
            await serve_stream(stream, fs, options, peer=who, limits=limits)
        finally:
            limits.leave(who)

    async def handle_tls(stream: trio.SocketStream) -> None:
        assert tls is not None
        done = await accept_tls(stream, tls)
        if done is None:
            return
        tstream, addr, cn = done
        who = dataclasses.replace(peer_of(socket_of(stream)), kind="tls")
        refused = limits.admit(who)
        if refused is not None:
            await reject(tstream, limits, refused)
            return
        try:
            await serve_stream(tstream, fs, options, peer=who, limits=limits,
                               exports=tls.exports_for(cn), who=f"{addr} (CN={cn})")
        finally:
            limits.leave(who)

    async with trio.open_nursery() as nursery:
        for c in connected:
            nursery.start_soon(local, c)
        for lst in listeners:
            nursery.start_soon(_accept_loop, lst, accepted, nursery)
        for lst in tls_listeners:
            nursery.start_soon(_accept_loop, lst, handle_tls, nursery)
        task_status.started()


#: Accept errors that mean "out of resources for now": wait and retry (logged, rate-limited).
_ACCEPT_CAPACITY = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


async def _accept_loop(listener: trio.abc.Listener[Any], handle: Any, nursery: trio.Nursery) -> None:
    """Accept forever, each connection served in `nursery` (trio.serve_listeners' loop,
    whose capacity errors log a traceback ten times a second)."""
    while True:
        try:
            stream = await listener.accept()
        except OSError as e:
            if e.errno not in _ACCEPT_CAPACITY:
                raise
            log.warning("gofer: accept failed (%s); retrying", os.strerror(e.errno))
            await trio.sleep(0.1)
            continue
        nursery.start_soon(handle, stream)


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
    check_identity([s for s, x in zip(sockets, listens, strict=True) if x.kind != "tls"], policy)
    if confine:
        from . import confine as confinement

        _preload()
        procfd.rebase(confinement.confine(switch_identity=policy.switch,
                                          mknod=any(e.allow_mknod for e in exports)))
    return fs, sockets


def check_identity(sockets: Sequence[socket.socket], policy: IdentityPolicy) -> None:
    """Refuse a plain-TCP listener other hosts can reach unless the operator stated how its
    attaches' identities are treated (gofer/README.md, "Identity").

    Raises:
        ValueError: such a listener, and neither --trust-client-identity nor --tcp-user (nor
            --allsquash) given.
    """
    if policy.trust_client or policy.network_stated or policy.squash is not None:
        return
    for s in sockets:
        if s.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            continue
        host, port = s.getsockname()[:2]
        if not is_loopback(host):
            raise ValueError(
                f"listening on {host}:{port} over plain TCP, which other hosts reach and which "
                "proves nobody's identity: pass --trust-client-identity to believe the user "
                "each client names, or --tcp-user USER to serve every such attach as USER")


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
    limit_logs()
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
