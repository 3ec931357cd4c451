"""Credentials: get/set of real, effective and saved user and group ids, supplementary
groups, capget/capset; the capability changes a uid change makes are `sentry.kernel.caps`'s.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from sentry.kernel import caps
from sentry.kernel.pidns import task_of
from sentry.kernel.table import syscall
from sentry.kernel.task import PR_SET_DUMPABLE
from vfs.creds import CAP_SETGID, CAP_SETUID, Credentials

from .sys_file import i32

if TYPE_CHECKING:
    from sentry.kernel.task import Task


# credentials --------------------------------------------------------------------------------


@syscall("getuid")
def sys_getuid(t: Task, *_: int) -> int:
    """Implements Linux syscall getuid(2)."""
    return t.creds.uid


@syscall("geteuid")
def sys_geteuid(t: Task, *_: int) -> int:
    """Implements Linux syscall geteuid(2)."""
    return t.creds.euid


@syscall("getgid")
def sys_getgid(t: Task, *_: int) -> int:
    """Implements Linux syscall getgid(2)."""
    return t.creds.gid


@syscall("getegid")
def sys_getegid(t: Task, *_: int) -> int:
    """Implements Linux syscall getegid(2)."""
    return t.creds.egid


@syscall("getresuid")
def sys_getresuid(t: Task, ruid: int, euid: int, suid: int, *_: int) -> int:
    """Implements Linux syscall getresuid(2)."""
    c = t.creds
    for addr, v in ((ruid, c.uid), (euid, c.euid), (suid, c.suid)):
        t.mem_write(addr, struct.pack("<I", v))
    return 0


@syscall("getresgid")
def sys_getresgid(t: Task, rgid: int, egid: int, sgid: int, *_: int) -> int:
    """Implements Linux syscall getresgid(2)."""
    c = t.creds
    for addr, v in ((rgid, c.gid), (egid, c.egid), (sgid, c.sgid)):
        t.mem_write(addr, struct.pack("<I", v))
    return 0


@syscall("getgroups")
def sys_getgroups(t: Task, size: int, addr: int, *_: int) -> int:
    """Implements Linux syscall getgroups(2)."""
    groups = sorted(t.creds.groups)
    size = i32(size)
    if size < 0:
        raise SyscallError(errno.EINVAL)
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise SyscallError(errno.EINVAL)
    t.mem_write(addr, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


@syscall("setgroups")
def sys_setgroups(t: Task, size: int, addr: int, *_: int) -> int:
    """Implements Linux syscall setgroups(2): needs CAP_SETGID."""
    size = i32(size)
    if size < 0 or size > 65536:
        raise SyscallError(errno.EINVAL)
    c = t.creds
    if not c.has_cap(CAP_SETGID):
        raise SyscallError(errno.EPERM)
    groups = struct.unpack(f"<{size}I", t.mem_read(addr, 4 * size)) if size else ()
    t.creds = c.with_ids(groups=frozenset(groups))
    return 0


_NOCHANGE = 0xFFFFFFFF


def _ids_of(t: Task, kind: str) -> tuple[int, int, int, bool]:
    c = t.creds
    ids = (c.uid, c.euid, c.suid) if kind == "u" else (c.gid, c.egid, c.sgid)
    return (*ids, c.has_cap(CAP_SETUID if kind == "u" else CAP_SETGID))


def _set_ids(t: Task, kind: str, r: int, e: int, s: int) -> None:
    """setres[ug]id's rule: unprivileged callers may only pick among real/effective/saved."""
    real, eff, saved, privileged = _ids_of(t, kind)
    r, e, s = (x & 0xFFFFFFFF for x in (r, e, s))
    if not privileged:
        allowed = {real, eff, saved}
        for v in (r, e, s):
            if v != _NOCHANGE and v not in allowed:
                raise SyscallError(errno.EPERM)
    _commit_ids(t, kind, real if r == _NOCHANGE else r, eff if e == _NOCHANGE else e,
                saved if s == _NOCHANGE else s)


def _commit_ids(t: Task, kind: str, real: int, eff: int, saved: int) -> None:
    c = t.creds
    if kind == "u":
        commit_creds(t, caps.setuid_fixup(c, c.with_ids(uid=real, euid=eff, suid=saved, fsuid=eff)))
    else:
        commit_creds(t, c.with_ids(gid=real, egid=eff, sgid=saved, fsgid=eff))


def commit_creds(t: Task, new: Credentials) -> None:
    """commit_creds: a change of effective or filesystem ids, or a gain of capabilities,
    makes the process undumpable (fs.suid_dumpable is 0) until its next execve, which
    keeps ptrace and process_vm_readv of other users' processes away from it."""
    old = t.creds
    if (old.euid, old.egid, old.fsuid, old.fsgid) != (new.euid, new.egid, new.fsuid,
                                                      new.fsgid) or \
            new.cap_permitted & ~old.cap_permitted:
        t.prctl_state[PR_SET_DUMPABLE] = 0
    t.creds = new


@syscall("setresuid")
def sys_setresuid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """Implements Linux syscall setresuid(2), capabilities following the uid change."""
    _set_ids(t, "u", r, e, s)
    return 0


@syscall("setresgid")
def sys_setresgid(t: Task, r: int, e: int, s: int, *_: int) -> int:
    """Implements Linux syscall setresgid(2)."""
    _set_ids(t, "g", r, e, s)
    return 0


def _setid(t: Task, kind: str, v: int) -> None:
    """set[ug]id: all three ids when privileged, else the effective one, which must be the
    real or saved id."""
    real, _eff, saved, privileged = _ids_of(t, kind)
    v &= 0xFFFFFFFF
    if v == _NOCHANGE:
        raise SyscallError(errno.EINVAL)
    if privileged:
        _commit_ids(t, kind, v, v, v)
    elif v in (real, saved):
        _commit_ids(t, kind, real, v, saved)
    else:
        raise SyscallError(errno.EPERM)


def _setreid(t: Task, kind: str, r: int, e: int) -> None:
    """setre[ug]id: the saved id follows the new effective one when the real id is set or
    the effective id changes away from the old real id."""
    real, eff, saved, privileged = _ids_of(t, kind)
    r, e = r & 0xFFFFFFFF, e & 0xFFFFFFFF
    if not privileged:
        if r != _NOCHANGE and r not in (real, eff):
            raise SyscallError(errno.EPERM)
        if e != _NOCHANGE and e not in (real, eff, saved):
            raise SyscallError(errno.EPERM)
    new_real = real if r == _NOCHANGE else r
    new_eff = eff if e == _NOCHANGE else e
    if r != _NOCHANGE or (e != _NOCHANGE and e != real):
        saved = new_eff
    _commit_ids(t, kind, new_real, new_eff, saved)


@syscall("setuid")
def sys_setuid(t: Task, uid: int, *_: int) -> int:
    """Implements Linux syscall setuid(2)."""
    _setid(t, "u", uid)
    return 0


@syscall("setgid")
def sys_setgid(t: Task, gid: int, *_: int) -> int:
    """Implements Linux syscall setgid(2)."""
    _setid(t, "g", gid)
    return 0


@syscall("setreuid")
def sys_setreuid(t: Task, r: int, e: int, *_: int) -> int:
    """Implements Linux syscall setreuid(2)."""
    _setreid(t, "u", r, e)
    return 0


@syscall("setregid")
def sys_setregid(t: Task, r: int, e: int, *_: int) -> int:
    """Implements Linux syscall setregid(2)."""
    _setreid(t, "g", r, e)
    return 0


@syscall("setfsuid")
def sys_setfsuid(t: Task, uid: int, *_: int) -> int:
    """Implements Linux syscall setfsuid(2): the filesystem uid may become the real,
    effective, saved or current one (any with CAP_SETUID); leaving 0 drops the
    filesystem capabilities from the effective set, coming back to 0 restores them.
    Returns the previous fsuid whether or not it changed."""
    c = t.creds
    old = c.fsuid
    uid &= 0xFFFFFFFF
    if uid == _NOCHANGE:
        return old
    if uid in (c.uid, c.euid, c.suid, c.fsuid) or c.has_cap(CAP_SETUID):
        if uid != old:
            commit_creds(t, caps.setfsuid_fixup(c, c.with_ids(fsuid=uid)))
    return old


@syscall("setfsgid")
def sys_setfsgid(t: Task, gid: int, *_: int) -> int:
    """Implements Linux syscall setfsgid(2): the filesystem gid may become the real,
    effective, saved or current one (any with CAP_SETGID). Returns the previous fsgid."""
    c = t.creds
    old = c.fsgid
    gid &= 0xFFFFFFFF
    if gid == _NOCHANGE:
        return old
    if gid in (c.gid, c.egid, c.sgid, c.fsgid) or c.has_cap(CAP_SETGID):
        commit_creds(t, c.with_ids(fsgid=gid))
    return old


# capabilities -------------------------------------------------------------------------------

CAP_V1, CAP_V2, CAP_V3 = 0x19980330, 0x20071026, 0x20080522
MASK32 = 0xFFFFFFFF


def _cap_header(t: Task, hdr: int) -> tuple[int, int]:
    """cap_validate_magic: (words per set, pid); an unknown version is written back as the
    preferred one (v3) and is EINVAL."""
    version, pid = struct.unpack("<Ii", t.mem_read(hdr, 8))
    if version not in (CAP_V1, CAP_V2, CAP_V3):
        t.mem_write(hdr, struct.pack("<I", CAP_V3))
        raise SyscallError(errno.EINVAL)
    return (1 if version == CAP_V1 else 2), pid


@syscall("capget")
def sys_capget(t: Task, hdr: int, data: int, *_: int) -> int:
    """Implements Linux syscall capget(2): any process's effective, permitted and
    inheritable sets; a NULL data pointer only probes the version (0 even when it was
    unknown)."""
    try:
        words, _pid = _cap_header(t, hdr)
    except SyscallError as e:
        if e.errno == errno.EINVAL and not data:
            return 0
        raise
    if not data:
        return 0
    pid = struct.unpack("<i", t.mem_read(hdr + 4, 4))[0]
    if pid < 0:
        raise SyscallError(errno.EINVAL)
    target = t if pid == 0 else task_of(t, pid)
    if target is None:
        raise SyscallError(errno.ESRCH)
    c = target.creds
    out = b"".join(struct.pack("<III", (c.cap_effective >> s) & MASK32,
                               (c.cap_permitted >> s) & MASK32,
                               (c.cap_inheritable >> s) & MASK32) for s in (0, 32)[:words])
    t.mem_write(data, out)
    return 0


@syscall("capset")
def sys_capset(t: Task, hdr: int, data: int, *_: int) -> int:
    """Implements Linux syscall capset(2) on the caller (`caps.capset`'s rules)."""
    words, pid = _cap_header(t, hdr)
    if pid not in (0, t.tid):
        raise SyscallError(errno.EPERM)
    raw = t.mem_read(data, 12 * words)
    eff = perm = inh = 0
    for i, words3 in enumerate(struct.iter_unpack("<III", raw)):
        e, p, h = (int(w) for w in words3)
        eff |= e << (32 * i)
        perm |= p << (32 * i)
        inh |= h << (32 * i)
    commit_creds(t, caps.capset(t.creds, eff, perm, inh))
    return 0
