"""`HostSocket`: a sandbox socket served by a host socket the Sentry holds.

The host socket was created by `Kernel.network` in the mode's network namespace (see
sentry.kernel.network) and is never installed in a program's process. Addresses pass to
the host as the program's raw sockaddr bytes, so the host kernel validates them and its
errors are Linux's own (EADDRINUSE, EADDRNOTAVAIL, EINVAL for a short sockaddr ...). What
stays in the Sentry:

- blocking: the host socket never blocks; the program's O_NONBLOCK / MSG_DONTWAIT decide,
  and a blocking call waits in trio for the host fd (interrupted by signals like every
  blocking syscall), bounded by SO_RCVTIMEO / SO_SNDTIMEO, which are kept here;
- connect: a blocking connect waits for the handshake and reports SO_ERROR's verdict; a
  non-blocking one returns EINPROGRESS and the program polls and reads SO_ERROR;
- options: only a family's listed ones (`options`) reach the host; the others are
  ENOPROTOOPT, so a program cannot attach BPF filters, marks or device bindings;
- MSG_OOB (urgent data) passes to the host; SIGURG and O_ASYNC's SIGIO come from a watch
  of the host fd (`owner_changed`);
- readiness: poll/select/epoll ask the host fd (`notifies_readiness = False`; epoll's
  edge-triggered mode registers `fd` in a host epoll).
"""

from __future__ import annotations

import errno
import select
import socket as _socket
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self

import trio

from sentry.errors import SyscallError
from sentry.kernel import fasync
from sentry.kernel.network import NetworkError
from vfs.abi import (
    O_ASYNC,
    O_NONBLOCK,
    O_RDWR,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLPRI,
    POLLRDHUP,
)

from . import hostsock
from .base import (
    MSG_CTRUNC,
    MSG_DONTWAIT,
    MSG_OOB,
    MSG_PEEK,
    MSG_TRUNC,
    MSG_WAITALL,
    SO_ERROR,
    SO_RCVTIMEO,
    SO_SNDTIMEO,
    SOCK_NONBLOCK,
    SOCK_STREAM,
    SOL_SOCKET,
    Control,
    RecvResult,
    Socket,
    timed_wait_interrupted,
)
from .sockfs import sockfs_of

if TYPE_CHECKING:
    from sentry.kernel.task import Task
    from vfs.file import Memory

#: Flags the host sees on send/recv (MSG_DONTWAIT is ours: the host socket never blocks):
#: OOB DONTROUTE EOR CONFIRM NOSIGNAL MORE; OOB PEEK TRUNC ERRQUEUE.
_SEND_FLAGS = MSG_OOB | 0x4 | 0x80 | 0x800 | 0x4000 | 0x8000
MSG_ERRQUEUE = 0x2000
_RECV_FLAGS = MSG_OOB | MSG_PEEK | MSG_TRUNC | MSG_ERRQUEUE


def errno_of(e: OSError) -> int:
    return e.errno if e.errno is not None else errno.EIO


class HostSocket(Socket):
    """A socket served by a host socket the Sentry holds (see the module docstring)."""

    notifies_readiness = False  # the host kernel sees its readiness changes, not our waitq
    #: The options that reach the host socket: level -> option numbers.
    options: dict[int, frozenset[int]] = {}
    #: The cmsgs a send passes to the host: level -> types (the others are dropped).
    send_cmsgs: dict[int, frozenset[int]] = {}

    def __init__(self, kernel: Any, family: int, type: int, protocol: int, host: _socket.socket,
                 vd: Any = None, flags: int = O_RDWR) -> None:
        super().__init__(kernel, family, type, protocol, vd, flags)
        self.host = host
        #: The host fd, as epoll's edge-triggered mode looks for it (see sys_poll).
        self.fd = host.fileno()
        self._rcvtimeo = bytes(16)
        self._sndtimeo = bytes(16)
        self.io = hostsock.SockIO()
        #: The watch of the host fd for an O_ASYNC owner (see `fasync_changed`).
        self._watch: trio.CancelScope | None = None
        kernel.network.track(host, self)

    @classmethod
    def _open(cls, task: Task, family: int, base: int, protocol: int, type: int) -> Self:
        """A new socket over a host socket made in the sandbox's network namespace; a
        mode that cannot give one is EACCES (with the event), the host's refusals its own
        errno. `type` is socket(2)'s, with SOCK_NONBLOCK; `base` is its kind alone."""
        try:
            host = task.kernel.network.socket(family, base, protocol)
        except NetworkError as e:
            task.kernel.emit("unsupported-socket", family=family, name=f"network: {e}",
                             errno="EACCES")
            raise SyscallError(errno.EACCES) from None
        except OSError as e:
            raise SyscallError(errno_of(e)) from None
        return cls(task.kernel, family, base, protocol, host, *cls._vd_flags(task, type))

    @staticmethod
    def _vd_flags(task: Task, type: int) -> tuple[Any, int]:
        """The sockfs inode and status flags a new socket gets."""
        return (sockfs_of(task.kernel).new_inode(task.creds),
                O_RDWR | (O_NONBLOCK if type & SOCK_NONBLOCK else 0))

    # -- waiting ----------------------------------------------------------------------------

    def _timeout(self, send: bool) -> float | None:
        sec, usec = struct.unpack("<qq", self._sndtimeo if send else self._rcvtimeo)
        t = sec + usec / 1e6
        return t if t > 0 else None

    async def _wait(self, task: Task, writable: bool, deadline: float | None) -> None:
        """Wait for the host fd (a signal interrupts; past `deadline`: EAGAIN)."""
        aw: Awaitable[None] = self._ready_wait(writable)
        if deadline is None:
            await task.sleep_interruptibly(aw)
            return
        with trio.move_on_at(deadline) as timer:
            try:
                await task.sleep_interruptibly(aw)
            except (SyscallError, trio.Cancelled):  # the dispatcher's scope, or this one
                if not timer.cancel_called:  # a signal, not the timeout
                    timed_wait_interrupted(task)
                raise
            return
        raise SyscallError(errno.EAGAIN)

    def _ready_wait(self, writable: bool) -> Awaitable[None]:
        """What `_wait` awaits: the host fd's readiness."""
        return hostsock.wait_fd(self.fd, writable)

    def _deadline(self, send: bool) -> float | None:
        t = self._timeout(send)
        return None if t is None else trio.current_time() + t

    def _nonblock(self, flags: int) -> bool:
        return bool(self.flags & O_NONBLOCK or flags & MSG_DONTWAIT)

    # -- operations -------------------------------------------------------------------------

    async def bind(self, task: Task, addr: bytes) -> None:
        hostsock.bind(self.fd, addr)

    async def listen(self, task: Task, backlog: int) -> None:
        try:
            self.host.listen(max(0, min(backlog, 4096)) if backlog >= 0 else 0)
        except OSError as e:
            raise SyscallError(errno_of(e)) from None

    async def accept(self, task: Task, flags: int) -> tuple[Socket, bytes]:
        deadline = self._deadline(False)
        while True:
            try:
                fd, peer = hostsock.accept4(self.fd, _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC)
                break
            except SyscallError as e:
                if e.errno != errno.EAGAIN or self.flags & O_NONBLOCK:
                    raise
            await self._wait(task, False, deadline)
        host = _socket.socket(fileno=fd)
        new = type(self)(self.kernel, self.family, self.type, self.protocol, host,
                         *self._vd_flags(task, flags))
        return new, peer

    async def connect(self, task: Task, addr: bytes) -> None:
        """The host's non-blocking connect answers a non-blocking program as Linux would
        (EINPROGRESS, EALREADY, EISCONN, 0 once done); a blocking program waits here for
        the handshake (SO_SNDTIMEO: EINPROGRESS) and gets SO_ERROR's verdict."""
        try:
            hostsock.connect(self.fd, addr)
            return
        except SyscallError as e:
            if e.errno not in (errno.EINPROGRESS, errno.EALREADY) or \
                    self.flags & O_NONBLOCK or self.type != SOCK_STREAM:
                raise
        deadline = self._deadline(True)
        while not hostsock.poll_now(self.fd, POLLOUT) & (POLLOUT | POLLERR | POLLHUP):
            try:
                await self._wait(task, True, deadline)
            except SyscallError as e:
                raise SyscallError(errno.EINPROGRESS if e.errno == errno.EAGAIN
                                   else e.errno) from None
        err = self.host.getsockopt(SOL_SOCKET, SO_ERROR)
        if err:
            raise SyscallError(err)
        try:
            hostsock.connect(self.fd, addr)  # the host's socket, too, is connected now
        except SyscallError:
            pass

    def send_control(self, cmsgs: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
        """The cmsgs of a send that reach the host (`send_cmsgs`); a family may refuse
        some first, as its Linux counterpart does."""
        return [c for c in cmsgs if c[1] in self.send_cmsgs.get(c[0], ())]

    async def sendmsg(self, task: Task, data: bytes, addr: bytes | None, control: Control,
                      flags: int) -> int:
        """A send of the Sentry's own bytes (write(2) from inside the Sentry: sendfile,
        splice)."""
        # Files and credentials mean nothing here (Linux's ip_cmsg_send skips them); of
        # the rest only the per-packet settings listed reach the host.
        await control.release()
        view = memoryview(data)

        def push(off: int, hflags: int, cmsgs: list[tuple[int, int, bytes]]) -> int:
            return self.io.send_bytes(view[off:] if off else data, self.fd, hflags, addr,
                                      cmsgs)

        return await self._send(task, len(data), self.send_control(control.other), flags,
                                push)

    async def sendmsg_from(self, task: Task, vecs: list[tuple[int, int]], total: int,
                           addr: bytes | None, control: Control, flags: int) -> int:
        """The program's bytes go from its memory to the host socket in one C call per
        chunk (`hostsock.SockIO`): nothing is copied into Python."""
        await control.release()
        whole = self.type != SOCK_STREAM
        vecs = vecs or [(0, 0)]

        def push(off: int, hflags: int, cmsgs: list[tuple[int, int, bytes]]) -> int:
            return self.io.send(task.stub.pid, hostsock.skip(vecs, off) if off else vecs,
                                whole, self.fd, hflags, addr, cmsgs)

        return await self._send(task, total, self.send_control(control.other), flags, push)

    async def _send(self, task: Task, total: int, cmsgs: list[tuple[int, int, bytes]],
                    flags: int, push: Callable[[int, int, list[tuple[int, int, bytes]]], int]
                    ) -> int:
        """The send loop: `push(offset, host flags, cmsgs)` sends from `offset` of the
        `total` bytes. The host socket is tried first and waited for only on EAGAIN; a
        blocking stream send goes on until all is sent (a signal or timeout after some
        data: the count), a non-blocking one until the host takes less than offered."""
        hflags = (flags & _SEND_FLAGS) | _socket.MSG_NOSIGNAL
        nonblock = self._nonblock(flags)
        deadline = self._deadline(True)
        stream = self.type == SOCK_STREAM
        sent = 0
        while True:
            try:
                n = push(sent, hflags, [] if sent else cmsgs)
            except SyscallError as e:
                if e.errno == errno.EAGAIN:
                    self.async_nospace = True
                if e.errno != errno.EAGAIN or nonblock:
                    if sent and e.errno == errno.EAGAIN:
                        return sent
                    raise
                if sent and not stream:
                    return sent
                try:
                    await self._wait(task, True, deadline)
                except SyscallError as w:
                    if sent:
                        return sent  # a timeout or signal after some data: the count
                    raise w from None
                continue
            offered = min(total - sent, hostsock.IO_CAP)
            sent += n
            if sent >= total or not stream or (nonblock and n < offered):
                return sent

    async def recvmsg(self, task: Task, size: int, flags: int, control_len: int) -> RecvResult:
        """A receive into the Sentry's own memory (read(2) from inside the Sentry)."""
        parts: list[bytes] = []

        def pull(done: int, want: int, hflags: int, hctl: int
                 ) -> tuple[int, int, bytes, int, list[tuple[int, int, bytes]]]:
            data, n, name, mflags, cmsgs = self.io.recv_bytes(want, self.fd, hflags, hctl)
            parts.append(data)
            return n, len(data), name, mflags, cmsgs

        res = await self._recv(task, size, flags, control_len, pull)
        res.data = b"".join(parts)
        res.length = res.length if flags & MSG_TRUNC and self.type != SOCK_STREAM else None
        return res

    async def recv_into(self, task: Task, vecs: list[tuple[int, int]], size: int, flags: int,
                        control_len: int) -> RecvResult:
        """The host socket's bytes go straight to the program's `vecs` in one C call per
        chunk (`hostsock.SockIO`); the result's `length` is the call's count."""
        stream = self.type == SOCK_STREAM
        if stream and flags & MSG_TRUNC:  # TCP discards the bytes: none reach the buffer
            res = await self.recvmsg(task, size, flags, control_len)
            res.length, res.data = len(res.data), b""
            return res
        fits = 0
        for base, n in vecs:
            got = task.copyable(base, n, to_app=True) if n else 0
            fits += got
            if got < n:
                break
        if stream and fits < size:
            # The buffer faults before `size`: EFAULT if more data is queued than it can
            # take, and the data stays queued (tcp_recvmsg consumes only what it copied,
            # and a copy that faults copies nothing of that skb; loopback coalesces a
            # stream's writes); else the data there is received into the part that is
            # writable. EOF, EAGAIN and waits as usual.
            res = await self.recvmsg(task, fits + 1, flags & ~MSG_WAITALL | MSG_PEEK, 0)
            if len(res.data) > fits:
                raise SyscallError(errno.EFAULT)
            if not res.data:
                res.length = 0
                return res
            vecs, size = hostsock.cut(vecs, fits), fits

        def pull(done: int, want: int, hflags: int, hctl: int
                 ) -> tuple[int, int, bytes, int, list[tuple[int, int, bytes]]]:
            v = hostsock.skip(vecs, done) if done else vecs
            return self.io.recv(task.stub.pid, v or [(0, 0)], self.fd, hflags, hctl)

        res = await self._recv(task, size, flags, control_len, pull)
        if res.length is None:
            res.length = 0
        return res

    async def _recv(self, task: Task, size: int, flags: int, control_len: int,
                    pull: Callable[[int, int, int, int],
                                   tuple[int, int, bytes, int, list[tuple[int, int, bytes]]]]
                    ) -> RecvResult:
        """recvmsg(2) on the host socket: the host's data, sender, msg_flags (MSG_TRUNC,
        MSG_OOB ...) and control messages (IP_TTL, IP_TOS, IPV6_HOPLIMIT, IPV6_TCLASS,
        SO_TIMESTAMP(NS), IP_PKTINFO ...: the same layout as the program's, x86_64), which
        the syscall layer writes to the program's buffer (MSG_CTRUNC when they do not
        fit). A program without a control buffer gets the host's MSG_CTRUNC.
        `pull(done, want, host flags, control room)` receives (the host's count, bytes
        delivered (-errno: a fault before any), sender, msg_flags, cmsgs); the host
        socket is tried first and waited for only on EAGAIN. The result's `length` is
        what the call returns (bytes delivered; a datagram's whole length with
        MSG_TRUNC)."""
        hflags = flags & _RECV_FLAGS
        # Reading the error queue or urgent data never blocks (tcp_recv_urg answers
        # EAGAIN or EINVAL at once).
        nonblock = self._nonblock(flags) or bool(flags & (MSG_ERRQUEUE | MSG_OOB))
        deadline = self._deadline(False)
        stream = self.type == SOCK_STREAM
        waitall = bool(flags & MSG_WAITALL) and stream and not flags & MSG_PEEK
        hctl = min(control_len + 256, 65536) if control_len > 0 else 0
        done = 0
        got_any = False
        addr: bytes | None = None
        out_flags = 0
        length = 0
        control = Control()
        while True:
            try:
                n, copied, name, mflags, cmsgs = pull(done, size - done, hflags,
                                                      0 if got_any else hctl)
            except SyscallError as e:
                if e.errno != errno.EAGAIN or nonblock:
                    if got_any:
                        break
                    raise
                try:
                    await self._wait(task, False, deadline)
                except SyscallError:
                    if got_any:
                        break
                    raise
                continue
            if copied < 0 or (not stream and copied < min(n, size)):
                if got_any and done:
                    break
                raise SyscallError(errno.EFAULT)  # Linux: a datagram copied in part, too
            if not got_any:
                control.other = cmsgs
                out_flags = mflags & ~(MSG_CTRUNC if hctl else 0)
                got_any = True
            done += copied
            if name and len(name) >= 2 and int.from_bytes(name[:2], "little"):
                addr = name
            if not stream:
                length = n if flags & MSG_TRUNC else copied
                break
            length = done
            if not n or not waitall or done >= size or copied < n:
                break
        return RecvResult(b"", None if stream else addr, control, out_flags, length)

    async def shutdown(self, task: Task, how: int) -> None:
        try:
            self.host.shutdown(how)
        except OSError as e:
            raise SyscallError(errno_of(e)) from None

    async def getsockopt(self, task: Task, level: int, name: int, optlen: int) -> bytes:
        if level == SOL_SOCKET and name in (SO_RCVTIMEO, SO_SNDTIMEO):
            return self._rcvtimeo if name == SO_RCVTIMEO else self._sndtimeo
        if name not in self.options.get(level, ()):
            raise SyscallError(errno.ENOPROTOOPT)
        try:
            return self.host.getsockopt(level, name, max(1, min(optlen, 1024)))
        except OSError as e:
            raise SyscallError(errno_of(e)) from None

    async def setsockopt(self, task: Task, level: int, name: int, value: bytes) -> None:
        if level == SOL_SOCKET and name in (SO_RCVTIMEO, SO_SNDTIMEO):
            if len(value) < 16:
                raise SyscallError(errno.EINVAL)
            sec, usec = struct.unpack_from("<qq", value)
            if not 0 <= usec < 1_000_000:
                raise SyscallError(errno.EDOM)
            v = struct.pack("<qq", max(sec, 0), usec if sec >= 0 else 0)
            if name == SO_RCVTIMEO:
                self._rcvtimeo = v
            else:
                self._sndtimeo = v
            return
        if name not in self.options.get(level, ()):
            raise SyscallError(errno.ENOPROTOOPT)
        try:
            self.host.setsockopt(level, name, value)
        except OSError as e:
            raise SyscallError(errno_of(e)) from None

    def getsockname(self) -> bytes:
        return hostsock.getsockname(self.fd)

    def getpeername(self) -> bytes:
        return hostsock.getpeername(self.fd)

    # -- the file side ----------------------------------------------------------------------

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        import fcntl

        if cmd in (0x541B, 0x5411, 0x8905):  # FIONREAD/SIOCINQ, SIOCOUTQ, SIOCATMARK
            if mem is None:
                raise SyscallError(errno.EFAULT)
            try:
                out = fcntl.ioctl(self.fd, cmd, bytes(4))
            except OSError as e:
                raise SyscallError(errno_of(e)) from None
            mem.mem_write(arg, out)
            return 0
        if cmd == 0x5421:  # FIONBIO
            if mem is None:
                raise SyscallError(errno.EFAULT)
            on = struct.unpack("<i", mem.mem_read(arg, 4))[0]
            self.flags = self.flags | O_NONBLOCK if on else self.flags & ~O_NONBLOCK
            return 0
        return await super().do_ioctl(cmd, arg, mem)

    def readiness(self, mask: int) -> int:
        return self.io.poll(self.fd, mask) & (mask | POLLERR | POLLHUP)

    async def wait_ready(self, mask: int) -> int:
        while True:
            got = self.readiness(mask)
            if got:
                return got
            await hostsock.wait_mask(self.fd, mask)

    async def release(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self.host.close()

    # -- signal-driven I/O ------------------------------------------------------------------

    def fasync_changed(self, on: bool) -> None:
        self.owner_changed()

    def owner_changed(self) -> None:
        """O_ASYNC set or cleared, or the owner changed: the host kernel sees this socket's
        events, so while an owner may be signalled (O_ASYNC; or, for SIGURG, any owner of a
        stream socket) a watch follows the host fd and turns its edges into signals."""
        o = getattr(self, "fown", None)
        want = isinstance(o, fasync.Owner) and bool(o.pid) and self.refs > 0 and (
            bool(self.flags & O_ASYNC) or self.type == SOCK_STREAM)
        if want and self._watch is None:
            # Registered now, as Linux's fasync list is: an event right after the
            # fcntl must not be missed by a watch that has not started yet.
            ep = select.epoll()
            try:
                ep.register(self.fd, select.EPOLLIN | select.EPOLLOUT | select.EPOLLPRI
                            | select.EPOLLRDHUP | select.EPOLLET)
                ep.poll(0)  # what is ready already was no event
            except OSError:
                ep.close()
                return
            last = hostsock.poll_now(self.fd, POLLIN | POLLOUT | POLLPRI | POLLRDHUP)
            self._watch = trio.CancelScope()
            self.kernel.start_soon(self._follow, self._watch, ep, last)
        elif not want and self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def _follow(self, scope: trio.CancelScope, ep: select.epoll, last: int) -> None:
        """The watch: the host fd edge-triggered in a private epoll; each report's new
        bits become Linux's wake-ups: data (POLL_IN), the peer's FIN (POLL_IN, or POLL_HUP
        once both ways are shut), room after a send found none or a finished connect
        (POLL_OUT), urgent data (SIGURG and POLL_PRI)."""
        try:
            with scope:
                while True:
                    await trio.lowlevel.wait_readable(ep.fileno())
                    for _, ev in ep.poll(0):
                        last = self._edges(last, ev)
        except (OSError, trio.ClosedResourceError):
            pass  # the socket is gone
        finally:
            ep.close()

    def _edges(self, last: int, ev: int) -> int:
        new = ev & ~last
        if new & POLLPRI:
            fasync.sigurg(self, watched=True)
        if new & POLLHUP:
            self.wake_async(fasync.POLL_HUP, watched=True)
        elif ev & POLLIN or new & POLLRDHUP:
            self.wake_async(fasync.POLL_IN, watched=True)
        if ev & POLLOUT and (new & POLLOUT or self.async_nospace):
            self.async_nospace = True  # sent unconditionally here (a connect finished)
            self.wake_async(fasync.POLL_OUT, watched=True)
        return ev
