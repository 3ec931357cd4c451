"""`Socket`: the interface every socket family implements, and what crosses it.

Why one base class: the syscall layer (`sentry.syscalls.sys_socket`) decodes application
memory (sockaddrs, msghdrs, iovecs, cmsgs) once for every family, and a family only sees
Python values: addresses as raw sockaddr bytes (each family decodes its own, with
`sockaddr`), data as bytes, ancillary data as `Control`. A socket is a vfs
`FileDescription`, so read/write/readv/writev, poll/select/epoll, fcntl and close reach it
through the paths every file takes: `do_read`/`do_write` are recvmsg/sendmsg with no flags.

The defaults answer what Linux answers for a socket whose family lacks the operation
(`sock_no_*`: EOPNOTSUPP), so a family overrides only what it supports. Readiness is
`readiness(mask)` plus `waitq` notifications (a Sentry-emulated family, like pipes), or
`notifies_readiness = False` for a family whose readiness only the host kernel sees.
"""

from __future__ import annotations

import errno
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentry.errors import SyscallError
from sentry.kernel import fasync, signals, sigstate
from sentry.kernel.current import CURRENT_TASK
from vfs.abi import O_ASYNC, O_NONBLOCK, O_RDWR, Stat
from vfs.file import FileDescription, Memory

if TYPE_CHECKING:
    from sentry.kernel.task import Task
    from vfs.mount import VirtualDentry

# -- constants (x86_64 Linux) -----------------------------------------------------------------

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET = 0, 1, 2, 10, 16, 17
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM, SOCK_SEQPACKET = 1, 2, 3, 4, 5
SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
MSG_OOB, MSG_PEEK, MSG_DONTROUTE, MSG_CTRUNC = 0x1, 0x2, 0x4, 0x8
MSG_TRUNC, MSG_DONTWAIT, MSG_EOR, MSG_WAITALL = 0x20, 0x40, 0x80, 0x100
MSG_CONFIRM, MSG_ERRQUEUE, MSG_NOSIGNAL, MSG_MORE = 0x800, 0x2000, 0x4000, 0x8000
MSG_WAITFORONE, MSG_FASTOPEN, MSG_CMSG_CLOEXEC = 0x10000, 0x20000000, 0x40000000
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
SOL_SOCKET = 1
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_NO_CHECK = 7, 8, 9, 10, 11
SO_PRIORITY, SO_LINGER, SO_BSDCOMPAT, SO_REUSEPORT, SO_PASSCRED = 12, 13, 14, 15, 16
SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT, SO_RCVTIMEO, SO_SNDTIMEO = 17, 18, 19, 20, 21
SO_BINDTODEVICE, SO_TIMESTAMP, SO_ACCEPTCONN, SO_PEERSEC = 25, 29, 30, 31
SO_SNDBUFFORCE, SO_RCVBUFFORCE, SO_PASSSEC, SO_MARK = 32, 33, 34, 36
SO_PROTOCOL, SO_DOMAIN, SO_PEEK_OFF, SO_PEERGROUPS = 38, 39, 42, 59
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
#: ioctls every socket may answer.
SIOCINQ = FIONREAD = 0x541B
SIOCATMARK = 0x8905
SIOCOUTQ = 0x5411
#: The interface ioctls any socket answers (Linux's sock_ioctl passes them to dev_ioctl),
#: about the sandbox's network namespace; glibc's if_nametoindex/if_indextoname use them.
SIOCGIFNAME, SIOCGIFINDEX = 0x8910, 0x8933
#: struct ifreq: the name (IFNAMSIZ) and a union (ifr_ifindex at its start).
IFNAMSIZ, IFREQ_SIZE = 16, 40

#: Linux's defaults (net.core.{w,r}mem_default/_max) and SOCK_MIN_{SND,RCV}BUF.
WMEM_DEFAULT = RMEM_DEFAULT = 212992
WMEM_MAX = RMEM_MAX = 212992
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304
SOMAXCONN = 4096


@dataclass(slots=True)
class Ucred:
    """struct ucred as the sandbox sees it: sandbox pid and ids, never host ones."""

    pid: int
    uid: int
    gid: int


class Control:
    """Ancillary data of one message, decoded.

    `rights` are open files, each holding one reference owned by this object while it is
    in flight (`release` drops them; a receiver that installs them takes them over).
    `creds` is SCM_CREDENTIALS. `other` keeps every other cmsg as (level, type, data) for
    the family to use or refuse (IP_PKTINFO, SO_TIMESTAMP ...). A plain slotted class:
    one is made for every read and write of a socket.
    """

    __slots__ = ("rights", "creds", "other")

    def __init__(self, rights: list[FileDescription] | None = None, creds: Ucred | None = None,
                 other: list[tuple[int, int, bytes]] | None = None) -> None:
        self.rights: list[FileDescription] = [] if rights is None else rights
        self.creds = creds
        self.other: list[tuple[int, int, bytes]] = [] if other is None else other

    def __bool__(self) -> bool:
        return bool(self.rights or self.creds is not None or self.other)

    async def release(self) -> None:
        """Drop the references of the files carried (a message never delivered)."""
        rights, self.rights = self.rights, []
        for f in rights:
            await f.dec_ref()


class RecvResult:
    """What recvmsg returns: the data, the sender's sockaddr (None when the family has
    none to give), ancillary data, and the msg_flags bits (MSG_TRUNC, MSG_EOR ...).
    `length`: for MSG_TRUNC on datagram sockets, the full length of the message (what
    Linux returns instead of len(data)); None means len(data)."""

    __slots__ = ("data", "addr", "control", "flags", "length")

    def __init__(self, data: bytes, addr: bytes | None = None, control: Control | None = None,
                 flags: int = 0, length: int | None = None) -> None:
        self.data = data
        self.addr = addr
        self.control = Control() if control is None else control
        self.flags = flags
        self.length = length


SocketFactory = Any  # Callable[[Task, int, int], Socket]: (task, type, protocol) -> Socket


def current_task() -> Task:
    """The Task whose syscall is being served (read/write reach a socket without one)."""
    return CURRENT_TASK.get()


def send_sigpipe(t: Task) -> None:
    """EPIPE on a socket without MSG_NOSIGNAL: SIGPIPE to the writer, as pipes do."""
    if not t.killed_by:
        signals.send(t, t, signal.SIGPIPE, sigstate.siginfo(signal.SIGPIPE, 0, t.tgid),
                     thread=True)


def timed_wait_interrupted(task: Task) -> None:
    """A socket call waiting with SO_RCVTIMEO/SO_SNDTIMEO set was cut short by a signal:
    it returns EINTR and is not restarted, even under SA_RESTART (Linux's
    sock_intr_errno gives -EINTR rather than -ERESTARTSYS when a timeout is set)."""
    sigstate.ts(task).no_restart = True


class Socket(FileDescription):
    """An open socket of any family.

    Attributes:
        family, type, protocol: as socket(2) got them (`type` without SOCK_NONBLOCK and
            SOCK_CLOEXEC).
        kernel: the Kernel whose sandbox owns it.
        async_nospace: a send found no room (Linux's SOCKWQ_ASYNC_NOSPACE), so the next
            write space is signalled to an O_ASYNC owner (POLL_OUT), and only then.
    """

    async_nospace = False

    def __init__(self, kernel: Any, family: int, type: int, protocol: int,
                 vd: VirtualDentry | None = None, flags: int = O_RDWR) -> None:
        super().__init__(vd, flags)
        self.kernel = kernel
        self.family = family
        self.type = type
        self.protocol = protocol

    # -- helpers families share -------------------------------------------------------------

    @property
    def nonblocking(self) -> bool:
        return bool(self.flags & O_NONBLOCK)

    async def stat(self) -> Stat:
        """fstat: what sockfs shows (S_IFSOCK, mode 0777, the socket's inode)."""
        return await super().stat()

    # -- the operations (Linux's proto_ops); defaults as sock_no_* --------------------------

    async def pair(self, task: Task, other: Socket) -> None:
        """socketpair(2): connect this fresh socket to `other`, made by the same factory."""
        raise SyscallError(errno.EOPNOTSUPP)

    async def bind(self, task: Task, addr: bytes) -> None:
        raise SyscallError(errno.EOPNOTSUPP)

    async def listen(self, task: Task, backlog: int) -> None:
        raise SyscallError(errno.EOPNOTSUPP)

    async def accept(self, task: Task, flags: int) -> tuple[Socket, bytes]:
        """A new connected socket (its status flags include O_NONBLOCK if `flags` has
        SOCK_NONBLOCK) and the peer's sockaddr."""
        raise SyscallError(errno.EOPNOTSUPP)

    async def connect(self, task: Task, addr: bytes) -> None:
        raise SyscallError(errno.EOPNOTSUPP)

    async def sendmsg(self, task: Task, data: bytes, addr: bytes | None, control: Control,
                      flags: int) -> int:
        """Send `data`; the bytes accepted. `control` is the family's to keep (in flight)
        or to release; it is released by the caller only if this raises."""
        raise SyscallError(errno.EOPNOTSUPP)

    async def recvmsg(self, task: Task, size: int, flags: int, control_len: int) -> RecvResult:
        raise SyscallError(errno.EOPNOTSUPP)

    async def shutdown(self, task: Task, how: int) -> None:
        raise SyscallError(errno.EOPNOTSUPP)

    async def getsockopt(self, task: Task, level: int, name: int, optlen: int) -> bytes:
        """The option's value; the syscall layer truncates it to `optlen`."""
        raise SyscallError(errno.ENOPROTOOPT)

    async def setsockopt(self, task: Task, level: int, name: int, value: bytes) -> None:
        raise SyscallError(errno.ENOPROTOOPT)

    def getsockname(self) -> bytes:
        raise SyscallError(errno.EOPNOTSUPP)

    def getpeername(self) -> bytes:
        raise SyscallError(errno.ENOTCONN)

    # -- signal-driven I/O (O_ASYNC) ---------------------------------------------------------

    def wake_async(self, reason: int, *, watched: bool = False) -> None:
        """Linux's sk_wake_async: an event of kind `reason` (fasync.POLL_IN ...) for the
        owner of an O_ASYNC socket; write space (POLL_OUT) only after a send found none.
        `watched`: seen by a watch of a host fd, not during a task's syscall."""
        if not self.flags & O_ASYNC:
            return
        if reason == fasync.POLL_OUT:
            if not self.async_nospace:
                return
            self.async_nospace = False
        fasync.kill(self, reason, watched=watched)

    def fasync_changed(self, on: bool) -> None:
        """O_ASYNC set or cleared: a family whose events the Sentry sees calls
        `wake_async` itself, so nothing to start here."""

    # -- the paths every file takes -----------------------------------------------------------

    async def send(self, task: Task, data: bytes, addr: bytes | None, control: Control,
                   flags: int) -> int:
        """sendmsg plus what every family does on EPIPE: SIGPIPE unless MSG_NOSIGNAL. The
        syscall layer and write(2) send through here."""
        try:
            return await self.sendmsg(task, data, addr, control, flags)
        except OSError as e:
            if e.errno == errno.EPIPE and not flags & MSG_NOSIGNAL:
                send_sigpipe(task)
            raise

    async def send_from(self, task: Task, vecs: list[tuple[int, int]], total: int,
                        addr: bytes | None, control: Control, flags: int) -> int:
        """`send` of the first `total` bytes of the program's iovecs `vecs` (`total`
        already capped): the syscall layer's way in, so a family that can move them
        without a copy into Python (a host socket: `sendmsg_from`) does."""
        try:
            return await self.sendmsg_from(task, vecs, total, addr, control, flags)
        except OSError as e:
            if e.errno == errno.EPIPE and not flags & MSG_NOSIGNAL:
                send_sigpipe(task)
            raise

    async def sendmsg_from(self, task: Task, vecs: list[tuple[int, int]], total: int,
                           addr: bytes | None, control: Control, flags: int) -> int:
        """The family's send from program memory; by default the bytes are gathered (a
        fault: EFAULT) and handed to `sendmsg`."""
        parts, left = [], total
        for base, n in vecs:
            if left <= 0:
                break
            if n:
                parts.append(task.mem_read(base, min(n, left)))
                left -= min(n, left)
        return await self.sendmsg(task, b"".join(parts), addr, control, flags)

    async def recv_into(self, task: Task, vecs: list[tuple[int, int]], size: int, flags: int,
                        control_len: int) -> RecvResult:
        """recvmsg of up to `size` bytes delivered into the program's iovecs `vecs`: the
        syscall layer's way in. The result's `length` is what the call returns; its
        control is the caller's to release. By default `recvmsg`, then the data is
        copied out (a fault: EFAULT, the control released)."""
        res = await self.recvmsg(task, size, flags, control_len)
        pos, data = 0, res.data
        try:
            for base, n in vecs:
                if pos >= len(data):
                    break
                piece = data[pos : pos + n]
                task.mem_write(base, piece)
                pos += len(piece)
        except BaseException:
            await res.control.release()
            raise
        if res.length is None:
            res.length = len(data)
        return res

    async def do_read(self, n: int) -> bytes:
        res = await self.recvmsg(current_task(), n, 0, 0)
        if res.control.rights:
            await res.control.release()
        return res.data

    async def do_write(self, data: bytes) -> int:
        return await self.send(current_task(), data, None, Control(), 0)

    async def do_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        if cmd in (SIOCGIFINDEX, SIOCGIFNAME):
            return self._interface_ioctl(cmd, arg, mem)
        raise SyscallError(errno.ENOTTY)

    def _interface_ioctl(self, cmd: int, arg: int, mem: Memory | None) -> int:
        """SIOCGIFINDEX (name -> index) and SIOCGIFNAME (index -> name) of the sandbox's
        network namespace; ENODEV for no such interface, as Linux."""
        if mem is None:
            raise SyscallError(errno.EFAULT)
        req = bytearray(mem.mem_read(arg, IFREQ_SIZE))
        known = self.kernel.network.interfaces()
        if cmd == SIOCGIFINDEX:
            name = bytes(req[:IFNAMSIZ]).split(b"\0", 1)[0].decode(errors="surrogateescape")
            index = next((i for i, n in known if n == name), None)
            if index is None:
                raise SyscallError(errno.ENODEV)
            req[IFNAMSIZ:IFNAMSIZ + 4] = index.to_bytes(4, "little", signed=True)
        else:
            want = int.from_bytes(req[IFNAMSIZ:IFNAMSIZ + 4], "little", signed=True)
            found = next((n for i, n in known if i == want), None)
            if found is None:
                raise SyscallError(errno.ENODEV)
            req[:IFNAMSIZ] = found.encode(errors="surrogateescape")[:IFNAMSIZ - 1].ljust(
                IFNAMSIZ, b"\0")
        mem.mem_write(arg, bytes(req))
        return 0
