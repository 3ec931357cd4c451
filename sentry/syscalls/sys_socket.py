"""The socket syscalls: decode application memory once, for every family.

socket, socketpair, bind, listen, accept, accept4, connect, sendto, recvfrom, sendmsg,
recvmsg, sendmmsg, recvmmsg, shutdown, getsockopt, setsockopt, getsockname, getpeername.
Each handler checks and copies what Linux's net/socket.c checks and copies (sockaddr
lengths against sockaddr_storage, msghdr, iovecs, cmsgs; EFAULT, EINVAL, EMSGSIZE,
ENOBUFS as Linux), turns SOCK_NONBLOCK/SOCK_CLOEXEC and O_NONBLOCK/MSG_DONTWAIT into what
the family sees, and calls a `sentry.socket.Socket`. Blocking calls are in the kernel's
interruptible set (`sigstate.INTERRUPTIBLE`), so a handled signal ends them with EINTR or
restarts them, as it does pipes and wait4. SIGPIPE on EPIPE comes from `Socket.send`.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

import trio

from sentry.errors import SyscallError
from sentry.kernel.table import Level, syscall
from sentry.socket import Control, RecvResult, Socket, Ucred, families
from sentry.socket.base import (
    MSG_CMSG_CLOEXEC,
    MSG_CTRUNC,
    MSG_DONTWAIT,
    MSG_TRUNC,
    MSG_WAITFORONE,
    SCM_CREDENTIALS,
    SCM_RIGHTS,
    SOCK_CLOEXEC,
    SOCK_NONBLOCK,
    SOCK_TYPE_MASK,
    SOL_SOCKET,
)
from sentry.socket.sockaddr import SOCKADDR_STORAGE
from vfs.abi import O_NONBLOCK
from vfs.creds import CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN
from vfs.file import MAX_RW

from .sys_file import access_ok, i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task

#: Linux's AF_MAX and SOCK_MAX: family and type numbers beyond are refused outright.
AF_MAX, SOCK_MAX = 46, 11
#: Names of the families Linux knows, for the unsupported-socket event.
FAMILY_NAMES = {
    1: "AF_UNIX", 2: "AF_INET", 3: "AF_AX25", 4: "AF_IPX", 5: "AF_APPLETALK",
    6: "AF_NETROM", 7: "AF_BRIDGE", 8: "AF_ATMPVC", 9: "AF_X25", 10: "AF_INET6",
    11: "AF_ROSE", 12: "AF_DECnet", 13: "AF_NETBEUI", 14: "AF_SECURITY", 15: "AF_KEY",
    16: "AF_NETLINK", 17: "AF_PACKET", 18: "AF_ASH", 19: "AF_ECONET", 20: "AF_ATMSVC",
    21: "AF_RDS", 22: "AF_SNA", 23: "AF_IRDA", 24: "AF_PPPOX", 25: "AF_WANPIPE",
    26: "AF_LLC", 27: "AF_IB", 28: "AF_MPLS", 29: "AF_CAN", 30: "AF_TIPC",
    31: "AF_BLUETOOTH", 32: "AF_IUCV", 33: "AF_RXRPC", 34: "AF_ISDN", 35: "AF_PHONET",
    36: "AF_IEEE802154", 37: "AF_CAIF", 38: "AF_ALG", 39: "AF_NFC", 40: "AF_VSOCK",
    41: "AF_KCM", 42: "AF_QIPCRTR", 43: "AF_SMC", 44: "AF_XDP", 45: "AF_MCTP",
}
_INT = struct.Struct("<i")
_UINT = struct.Struct("<I")
#: struct msghdr on x86_64: name, namelen (int + pad), iov, iovlen, control, controllen,
#: flags (int + pad).
MSGHDR = struct.Struct("<QI4xQQQQi4x")
_MSG_NAMELEN, _MSG_CONTROLLEN, _MSG_FLAGS = 8, 40, 48
MMSGHDR_SIZE = MSGHDR.size + 8
#: struct cmsghdr: size_t len, int level, int type.
CMSGHDR = struct.Struct("<Qii")
UIO_MAXIOV = 1024
_INT_MAX = 0x7FFFFFFF
_TIMESPEC = struct.Struct("<qq")


def _cmsg_align(n: int) -> int:
    return (n + 7) & ~7


def socket_of(t: Task, fd: int) -> Socket:
    """The socket at `fd`: EBADF if not open, ENOTSOCK if not a socket."""
    f = t.fdtable.get(i32(fd))
    if not isinstance(f, Socket):
        raise SyscallError(errno.ENOTSOCK)
    return f


def read_sockaddr(t: Task, addr: int, addrlen: int) -> bytes:
    """move_addr_to_kernel: EINVAL for a length outside 0..sizeof(sockaddr_storage),
    EFAULT for an unreadable address."""
    n = i32(addrlen)
    if n < 0 or n > SOCKADDR_STORAGE:
        raise SyscallError(errno.EINVAL)
    if n == 0:
        return b""
    return t.mem_read(addr, n)


def write_sockaddr(t: Task, name: bytes, addr: int, addrlen_ptr: int) -> None:
    """move_addr_to_user: copy at most *addrlen bytes of `name`, store its full length;
    EINVAL for a negative *addrlen, EFAULT for bad pointers."""
    if not addrlen_ptr:
        return
    (ulen,) = _INT.unpack(t.mem_read(addrlen_ptr, 4))
    if ulen < 0:
        raise SyscallError(errno.EINVAL)
    if ulen and name:
        t.mem_write(addr, name[:ulen])
    t.mem_write(addrlen_ptr, _INT.pack(len(name)))


def _family_name(family: int) -> str:
    return FAMILY_NAMES.get(family, f"family {family}")


async def _new_socket(t: Task, domain: int, type_: int, protocol: int) -> tuple[Socket, int]:
    """__sock_create's checks, then the family's factory; returns (socket, fd flags)."""
    domain, type_, protocol = i32(domain), i32(type_), i32(protocol)
    flags = type_ & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SyscallError(errno.EINVAL)
    kind = type_ & SOCK_TYPE_MASK
    if domain < 0 or domain >= AF_MAX:
        raise SyscallError(errno.EAFNOSUPPORT)
    if kind >= SOCK_MAX:
        raise SyscallError(errno.EINVAL)
    factory = families(t.kernel).get(domain)
    if factory is None:
        t.kernel.emit("unsupported-socket", family=domain, name=_family_name(domain),
                      type=kind, errno="EAFNOSUPPORT")
        raise SyscallError(errno.EAFNOSUPPORT)
    sock = factory(t, kind, protocol)
    if flags & SOCK_NONBLOCK:
        sock.flags |= O_NONBLOCK
    return sock, flags


async def _install(t: Task, f: Any, cloexec: bool) -> int:
    try:
        return t.fdtable.install(f, cloexec=cloexec)
    except SyscallError:
        await f.dec_ref()
        raise


@syscall("socket", level=Level.PARTIAL,
         note="AF_UNIX (stream, dgram, seqpacket) in the Sentry; other families as the "
         "sandbox registers them, else EAFNOSUPPORT with a visible event")
async def sys_socket(t: Task, domain: int, type_: int, protocol: int, *_: int) -> int:
    """Implements Linux syscall socket(2)."""
    sock, flags = await _new_socket(t, domain, type_, protocol)
    return await _install(t, sock, bool(flags & SOCK_CLOEXEC))


@syscall("socketpair", level=Level.PARTIAL,
         note="AF_UNIX; EOPNOTSUPP for families without pairs, as Linux")
async def sys_socketpair(t: Task, domain: int, type_: int, protocol: int, sv: int,
                         *_: int) -> int:
    """Implements Linux syscall socketpair(2)."""
    a, flags = await _new_socket(t, domain, type_, protocol)
    try:
        b = (await _new_socket(t, domain, type_, protocol))[0]
    except BaseException:
        await a.dec_ref()
        raise
    try:
        await a.pair(t, b)
    except BaseException:
        await a.dec_ref()
        await b.dec_ref()
        raise
    cloexec = bool(flags & SOCK_CLOEXEC)
    table = t.fdtable
    fa, fb = -1, -1
    try:
        fa = table.install(a, cloexec=cloexec)
        fb = table.install(b, cloexec=cloexec)
        t.mem_write(sv, struct.pack("<ii", fa, fb))
    except SyscallError:
        for fd, f in ((fa, a), (fb, b)):
            if fd >= 0:
                table.remove(fd)
            await f.dec_ref()
        raise
    return 0


@syscall("bind", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_bind(t: Task, fd: int, addr: int, addrlen: int, *_: int) -> int:
    """Implements Linux syscall bind(2)."""
    sock = socket_of(t, fd)
    await sock.bind(t, read_sockaddr(t, addr, addrlen))
    return 0


@syscall("listen", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_listen(t: Task, fd: int, backlog: int, *_: int) -> int:
    """Implements Linux syscall listen(2)."""
    sock = socket_of(t, fd)
    await sock.listen(t, i32(backlog))
    return 0


async def _accept(t: Task, fd: int, addr: int, addrlen: int, flags: int) -> int:
    flags = i32(flags)
    if flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK):
        raise SyscallError(errno.EINVAL)
    sock = socket_of(t, fd)
    new, peer = await sock.accept(t, flags)
    try:
        if addr:
            write_sockaddr(t, peer, addr, addrlen)
    except SyscallError:
        await new.dec_ref()
        raise
    return await _install(t, new, bool(flags & SOCK_CLOEXEC))


@syscall("accept", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_accept(t: Task, fd: int, addr: int, addrlen: int, *_: int) -> int:
    """Implements Linux syscall accept(2)."""
    return await _accept(t, fd, addr, addrlen, 0)


@syscall("accept4", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_accept4(t: Task, fd: int, addr: int, addrlen: int, flags: int, *_: int) -> int:
    """Implements Linux syscall accept4(2)."""
    return await _accept(t, fd, addr, addrlen, flags)


@syscall("connect", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_connect(t: Task, fd: int, addr: int, addrlen: int, *_: int) -> int:
    """Implements Linux syscall connect(2)."""
    sock = socket_of(t, fd)
    await sock.connect(t, read_sockaddr(t, addr, addrlen))
    return 0


@syscall("shutdown", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_shutdown(t: Task, fd: int, how: int, *_: int) -> int:
    """Implements Linux syscall shutdown(2)."""
    sock = socket_of(t, fd)
    await sock.shutdown(t, i32(how))
    return 0


def _msg_flags(sock: Socket, flags: int) -> int:
    flags = i32(flags) & 0xFFFFFFFF
    if sock.flags & O_NONBLOCK:
        flags |= MSG_DONTWAIT
    return flags


# -- ancillary data ----------------------------------------------------------------------------


def _check_creds(t: Task, c: Ucred) -> None:
    """scm_check_creds: only one's own pid and ids without the capabilities."""
    cr = t.creds
    if c.pid != t.tgid and not cr.has_cap(CAP_SYS_ADMIN):
        raise SyscallError(errno.EPERM)
    if c.uid not in (cr.uid, cr.euid, cr.suid) and not cr.has_cap(CAP_SETUID):
        raise SyscallError(errno.EPERM)
    if c.gid not in (cr.gid, cr.egid, cr.sgid) and not cr.has_cap(CAP_SETGID):
        raise SyscallError(errno.EPERM)
    if c.pid not in t.kernel.procs:
        raise SyscallError(errno.ESRCH)  # __scm_send's find_get_pid


def parse_control(t: Task, sock: Socket, raw: bytes) -> Control:
    """The cmsgs of a sendmsg, as __scm_send walks them: EINVAL for a header whose length
    does not fit; for families that take SOL_SOCKET's SCM_RIGHTS/SCM_CREDENTIALS
    (`accepts_scm`), the files (each with a reference taken; EBADF for a closed fd,
    EINVAL past SCM_MAX_FD) and checked credentials (EPERM). Every other cmsg is kept
    raw for the family."""
    ctl = Control()
    scm = bool(getattr(sock, "accepts_scm", False))
    pos = 0
    hdr = CMSGHDR.size
    try:
        while pos + hdr <= len(raw):
            clen, level, ctype = CMSGHDR.unpack_from(raw, pos)
            if clen < hdr or clen > len(raw) - pos:
                raise SyscallError(errno.EINVAL)
            body = raw[pos + hdr : pos + clen]
            if scm and level == SOL_SOCKET and ctype == SCM_RIGHTS:
                n = len(body) // 4
                if len(ctl.rights) + n > 253:
                    raise SyscallError(errno.EINVAL)
                for (fd,) in struct.iter_unpack("<i", body[: 4 * n]):
                    ctl.rights.append(t.fdtable.get(fd).inc_ref())
            elif scm and level == SOL_SOCKET and ctype == SCM_CREDENTIALS:
                if clen != hdr + 12:
                    raise SyscallError(errno.EINVAL)
                pid, uid, gid = struct.unpack("<iII", body)
                c = Ucred(t.pidns.gpid(pid) or 0, uid, gid)  # the kernel's number
                _check_creds(t, c)
                ctl.creds = c
            elif scm and level != SOL_SOCKET:
                pass  # __scm_send skips other levels
            else:
                ctl.other.append((level, ctype, bytes(body)))
            pos += _cmsg_align(clen)
    except BaseException:
        rights, ctl.rights = ctl.rights, []
        for f in rights:
            f.refs -= 1  # taken above and never handed on: no release can be due
        raise
    return ctl


async def encode_control(t: Task, ctl: Control, space: int, flags: int) -> tuple[bytes, int]:
    """put_cmsg and scm_detach_fds: the cmsgs that fit in `space` bytes and the msg_flags
    bits to add (MSG_CTRUNC). Files are installed in the caller's table (MSG_CMSG_CLOEXEC
    sets FD_CLOEXEC); those that do not fit are closed."""
    out = bytearray()
    add = 0
    hdr = CMSGHDR.size

    def put(level: int, ctype: int, data: bytes) -> None:
        nonlocal add
        room = space - len(out)
        clen = hdr + len(data)
        if room < hdr:
            add |= MSG_CTRUNC
            return
        if room < clen:
            add |= MSG_CTRUNC
            clen = room
        rec = CMSGHDR.pack(hdr + len(data), level, ctype) + data
        out.extend(rec[:clen])
        pad = min(_cmsg_align(clen), room) - clen
        out.extend(bytes(pad))

    if ctl.creds is not None:
        c = ctl.creds
        put(SOL_SOCKET, SCM_CREDENTIALS, struct.pack("<iII", t.pidns.vpid(c.pid), c.uid, c.gid))
    for level, ctype, data in ctl.other:
        put(level, ctype, data)
    rights, ctl.rights = ctl.rights, []
    if rights:
        room = space - len(out)
        fit = max(0, (room - hdr) // 4) if room >= hdr else 0
        fds: list[int] = []
        for f in rights[:fit]:
            try:
                fds.append(t.fdtable.install(f, cloexec=bool(flags & MSG_CMSG_CLOEXEC)))
            except SyscallError:
                break
        if fds:
            put(SOL_SOCKET, SCM_RIGHTS, b"".join(_INT.pack(fd) for fd in fds))
        if len(fds) < len(rights):
            add |= MSG_CTRUNC
            for f in rights[len(fds):]:
                await f.dec_ref()
    return bytes(out), add


# -- send ---------------------------------------------------------------------------------------


def _read_msghdr(t: Task, msg: int) -> tuple[int, int, int, int, int, int, int]:
    return MSGHDR.unpack(t.mem_read(msg, MSGHDR.size))


def _iov(t: Task, iov: int, iovlen: int) -> list[tuple[int, int]]:
    if iovlen > UIO_MAXIOV:
        raise SyscallError(errno.EMSGSIZE)
    return t.read_iovecs(iov, iovlen)


def _namelen(name: int, namelen: int) -> int:
    """copy_msghdr_from_user's msg_namelen: 0 without a name, EINVAL if negative, at most
    sizeof(sockaddr_storage)."""
    if not name:
        return 0
    n = namelen if namelen < 1 << 31 else namelen - (1 << 32)
    if n < 0:
        raise SyscallError(errno.EINVAL)
    return min(n, SOCKADDR_STORAGE)


async def _sendmsg_one(t: Task, sock: Socket, msg: int, flags: int) -> int:
    name, namelen, iov, iovlen, control, controllen, _ = _read_msghdr(t, msg)
    namelen_i = _namelen(name, namelen)
    addr = t.mem_read(name, namelen_i) if namelen_i else None
    vecs = _iov(t, iov, iovlen)
    if controllen > _INT_MAX:
        raise SyscallError(errno.ENOBUFS)
    ctl = Control()
    if controllen >= CMSGHDR.size:
        ctl = parse_control(t, sock, t.mem_read(control, controllen))
    try:
        return await sock.send_from(t, vecs, min(sum(n for _, n in vecs), MAX_RW), addr, ctl,
                                    flags)
    finally:
        await ctl.release()


@syscall("sendmsg", level=Level.PARTIAL, note="msghdr, iovecs and cmsgs decoded here; "
         "SCM_RIGHTS/SCM_CREDENTIALS for AF_UNIX; the rest as the family implements it")
async def sys_sendmsg(t: Task, fd: int, msg: int, flags: int, *_: int) -> int:
    """Implements Linux syscall sendmsg(2)."""
    sock = socket_of(t, fd)
    return await _sendmsg_one(t, sock, msg, _msg_flags(sock, flags))


@syscall("sendto", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_sendto(t: Task, fd: int, buf: int, length: int, flags: int, addr: int,
                     addrlen: int) -> int:
    """Implements Linux syscall sendto(2)."""
    sock = socket_of(t, fd)
    n = min(length & 0xFFFFFFFFFFFFFFFF, _INT_MAX)
    access_ok(buf, n)
    dest = read_sockaddr(t, addr, addrlen) if addr else b""
    return await sock.send_from(t, [(buf, n)] if n else [], n, dest or None, Control(),
                                _msg_flags(sock, flags))


@syscall("sendmmsg", level=Level.PARTIAL, note="one sendmsg per message, as Linux")
async def sys_sendmmsg(t: Task, fd: int, vec: int, vlen: int, flags: int, *_: int) -> int:
    """Implements Linux syscall sendmmsg(2): stops at the first error after a message went
    (which is then returned), as Linux does."""
    sock = socket_of(t, fd)
    n = min(vlen & 0xFFFFFFFF, UIO_MAXIOV)
    fl = _msg_flags(sock, flags)
    done = 0
    while done < n:
        at = vec + done * MMSGHDR_SIZE
        try:
            sent = await _sendmsg_one(t, sock, at, fl)
            t.mem_write(at + MSGHDR.size, _UINT.pack(sent))
        except SyscallError:
            if done:
                break
            raise
        done += 1
    return done


# -- receive --------------------------------------------------------------------------------------


async def _recvmsg_one(t: Task, sock: Socket, msg: int, flags: int) -> int:
    name, namelen, iov, iovlen, control, controllen, _ = _read_msghdr(t, msg)
    namelen_i = _namelen(name, namelen)
    vecs = _iov(t, iov, iovlen)
    for base, n in vecs:
        access_ok(base, n)
    size = min(sum(n for _, n in vecs), MAX_RW)
    if controllen > _INT_MAX:
        controllen = _INT_MAX
    res = await sock.recv_into(t, vecs, size, flags, controllen if control else 0)
    try:
        cbytes, cflags = await encode_control(t, res.control, controllen if control else 0,
                                              flags)
    finally:
        await res.control.release()
    if cbytes:
        t.mem_write(control, cbytes)
    klen = len(res.addr) if name and res.addr else 0
    if klen and namelen_i:
        t.mem_write(name, (res.addr or b"")[:namelen_i])
    t.mem_write(msg + _MSG_NAMELEN, _INT.pack(klen))
    t.mem_write(msg + _MSG_CONTROLLEN, struct.pack("<Q", len(cbytes)))
    t.mem_write(msg + _MSG_FLAGS, _INT.pack(res.flags | cflags))
    return _length(res)


def _length(res: RecvResult) -> int:
    return len(res.data) if res.length is None else res.length


@syscall("recvmsg", level=Level.PARTIAL, note="msghdr, iovecs and cmsgs decoded here "
         "(SCM_RIGHTS installed in the caller's table, MSG_CTRUNC when they do not fit); "
         "the rest as the family implements it")
async def sys_recvmsg(t: Task, fd: int, msg: int, flags: int, *_: int) -> int:
    """Implements Linux syscall recvmsg(2)."""
    sock = socket_of(t, fd)
    return await _recvmsg_one(t, sock, msg, _msg_flags(sock, flags))


@syscall("recvfrom", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_recvfrom(t: Task, fd: int, buf: int, length: int, flags: int, addr: int,
                       addrlen: int) -> int:
    """Implements Linux syscall recvfrom(2)."""
    sock = socket_of(t, fd)
    n = min(length & 0xFFFFFFFFFFFFFFFF, _INT_MAX)
    access_ok(buf, n)
    res = await sock.recv_into(t, [(buf, n)] if n else [], n, _msg_flags(sock, flags), 0)
    await res.control.release()
    if addr:
        write_sockaddr(t, res.addr or b"", addr, addrlen)
    return _length(res)


@syscall("recvmmsg", level=Level.PARTIAL,
         note="one recvmsg per message; the timeout is looked at between messages, as Linux")
async def sys_recvmmsg(t: Task, fd: int, vec: int, vlen: int, flags: int, timeout: int,
                       *_: int) -> int:
    """Implements Linux syscall recvmmsg(2)."""
    sock = socket_of(t, fd)
    n = min(vlen & 0xFFFFFFFF, UIO_MAXIOV)
    fl = _msg_flags(sock, flags)
    deadline: float | None = None
    if timeout:
        sec, nsec = _TIMESPEC.unpack(t.mem_read(timeout, _TIMESPEC.size))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SyscallError(errno.EINVAL)
        deadline = trio.current_time() + sec + nsec / 1e9
    done = 0
    while done < n:
        at = vec + done * MMSGHDR_SIZE
        try:
            got = await _recvmsg_one(t, sock, at, fl)
            t.mem_write(at + MSGHDR.size, _UINT.pack(got))
        except SyscallError:
            if done:
                break
            raise
        done += 1
        if fl & MSG_WAITFORONE:
            fl |= MSG_DONTWAIT
        if deadline is not None and trio.current_time() >= deadline:
            break
    if timeout and deadline is not None:
        left = max(0.0, deadline - trio.current_time())
        t.mem_write(timeout, _TIMESPEC.pack(int(left), int((left % 1) * 1e9)))
    return done


# -- options and names --------------------------------------------------------------------------


@syscall("getsockopt", level=Level.PARTIAL, note="SOL_SOCKET options of the Sentry's "
         "families; other levels as the family implements them")
async def sys_getsockopt(t: Task, fd: int, level: int, name: int, optval: int, optlen: int,
                         *_: int) -> int:
    """Implements Linux syscall getsockopt(2)."""
    sock = socket_of(t, fd)
    (ulen,) = _INT.unpack(t.mem_read(optlen, 4))
    if ulen < 0:
        raise SyscallError(errno.EINVAL)
    value = await sock.getsockopt(t, i32(level), i32(name), ulen)
    value = value[:ulen]
    if value:
        t.mem_write(optval, value)
    t.mem_write(optlen, _INT.pack(len(value)))
    return 0


@syscall("setsockopt", level=Level.PARTIAL, note="SOL_SOCKET options of the Sentry's "
         "families; other levels as the family implements them")
async def sys_setsockopt(t: Task, fd: int, level: int, name: int, optval: int, optlen: int,
                         *_: int) -> int:
    """Implements Linux syscall setsockopt(2)."""
    sock = socket_of(t, fd)
    n = i32(optlen)
    if n < 0:
        raise SyscallError(errno.EINVAL)
    value = t.mem_read(optval, n) if n else b""
    await sock.setsockopt(t, i32(level), i32(name), value)
    return 0


@syscall("getsockname", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_getsockname(t: Task, fd: int, addr: int, addrlen: int, *_: int) -> int:
    """Implements Linux syscall getsockname(2)."""
    sock = socket_of(t, fd)
    write_sockaddr(t, sock.getsockname(), addr, addrlen)
    return 0


@syscall("getpeername", level=Level.PARTIAL, note="as the socket's family implements it")
async def sys_getpeername(t: Task, fd: int, addr: int, addrlen: int, *_: int) -> int:
    """Implements Linux syscall getpeername(2)."""
    sock = socket_of(t, fd)
    write_sockaddr(t, sock.getpeername(), addr, addrlen)
    return 0


__all__ = ["MSG_TRUNC", "parse_control", "encode_control", "read_sockaddr", "socket_of",
           "write_sockaddr"]
