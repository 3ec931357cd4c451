"""Terminal ioctls that depend on the caller: controlling terminal, process groups,
sessions, the master's peer, and the job-control check before a settings change.

Why here and not in the terminal: these read and change the caller's session and fd table
(TIOCSCTTY, TIOCSPGRP, TIOCGPTPEER's new fd) or may stop its process group (SIGTTOU for a
TCSETS from the background). The settings themselves (termios, window size, flushing, the
master's TIOCGPTN and unlockpt) are the terminal's own (vfs.fs.devpts). `sys_ioctl` sends
every request on a terminal here.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from vfs.abi import O_ACCMODE, O_CLOEXEC, O_NOCTTY, O_NONBLOCK
from vfs.creds import CAP_SYS_ADMIN
from vfs.fs.devpts import TerminalFD
from vfs.fs.devpts import terminal as T

if TYPE_CHECKING:
    from sentry.kernel.task import Task

#: Requests that change the terminal: a background group gets SIGTTOU first.
CHANGES = frozenset({T.TCSETS, T.TCSETSW, T.TCSETSF, T.TCSETS2, T.TCSETSW2, T.TCSETSF2,
                     T.TCFLSH, T.TCXONC, T.TCSBRK, T.TCSBRKP, T.TIOCSBRK, T.TIOCCBRK})
_INT = struct.Struct("<i")


async def tty_ioctl(t: Task, f: TerminalFD, cmd: int, arg: int) -> int:
    """ioctl(2) on either end of a terminal."""
    term = f.term
    ctl = t.kernel.tty
    if term.hung_up and not f.is_master:
        raise SyscallError(errno.ENOTTY if cmd == T.TIOCSPGRP else errno.EIO)
    if cmd in CHANGES:
        ctl.check(term, 22)  # SIGTTOU
    mine = ctl.ctty(t) is term
    if cmd == T.TIOCSCTTY:
        if t.sid == t.tgid and term.sid == t.sid:
            return 0
        admin = t.creds.has_cap(CAP_SYS_ADMIN)
        if t.sid != t.tgid or ctl.ctty(t) is not None or f.is_master:
            raise SyscallError(errno.EPERM)
        if term.sid:
            if arg != 1 or not admin:
                raise SyscallError(errno.EPERM)
            ctl.drop(term)  # stolen: its old session loses it
        if not f.readable and not admin:
            raise SyscallError(errno.EPERM)
        ctl.set_ctty(t.sid, t.pgid, term)
        return 0
    if cmd == T.TIOCNOTTY:
        if not mine or f.is_master:
            raise SyscallError(errno.ENOTTY)
        ctl.detach(t, term)
        return 0
    if cmd == T.TIOCGPGRP:
        if not mine and not f.is_master:
            raise SyscallError(errno.ENOTTY)
        t.mem_write(arg, _INT.pack(t.pidns.vpid(term.pgrp)))
        return 0
    if cmd == T.TIOCGSID:
        if not mine and not f.is_master or not term.sid:
            raise SyscallError(errno.ENOTTY)
        t.mem_write(arg, _INT.pack(t.pidns.vpid(term.sid)))
        return 0
    if cmd == T.TIOCSPGRP:
        try:
            ctl.check(term, 22)
        except SyscallError as e:
            if e.errno == errno.EIO:
                raise SyscallError(errno.ENOTTY) from None
            raise
        if not mine or term.sid != t.sid:
            raise SyscallError(errno.ENOTTY)
        pgrp = _INT.unpack(t.mem_read(arg, 4))[0]
        if pgrp < 0:
            raise SyscallError(errno.EINVAL)
        pgrp = t.pidns.gpid(pgrp) or -1  # the kernel's number (-1: none in the namespace)
        members = [p for p in t.kernel.procs.values() if p.pgid == pgrp]
        if not members:
            raise SyscallError(errno.ESRCH)
        if members[0].sid != t.sid:
            raise SyscallError(errno.EPERM)
        term.pgrp = pgrp
        return 0
    if cmd == T.TIOCGPTPEER:
        if not f.is_master:
            raise SyscallError(errno.EIO)  # ptm_open_peer: not a master
        flags = arg & 0xFFFFFFFF & (O_ACCMODE | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        devpts = ctl.devpts
        if devpts is None:
            raise SyscallError(errno.EIO)
        peer = devpts.open_replica(term, flags & ~O_CLOEXEC)
        return t.fdtable.install(peer, cloexec=bool(flags & O_CLOEXEC))
    return await f.ioctl(cmd, arg, t)
