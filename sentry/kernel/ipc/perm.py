"""What the three System V IPC kinds share: the ipc64_perm record, permission checks with
the caller's credentials, and the id space of one kind (Linux's ipc/util.c)."""

from __future__ import annotations

import errno
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sentry.errors import SyscallError
from vfs.creds import Credentials

IPC_PRIVATE = 0
IPC_CREAT, IPC_EXCL, IPC_NOWAIT = 0o1000, 0o2000, 0o4000
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
IPC_64 = 0x100
CAP_IPC_OWNER, CAP_SYS_ADMIN, CAP_SYS_RESOURCE = 15, 21, 24
#: ids are seq * 32768 + index (IPCMNI_SHIFT 15); indexes are handed out cyclically.
_SEQ_SHIFT = 15
_SEQ_MAX = (1 << 16) - 1
_MIN_CYCLE = 64  # ipc_min_cycle
#: struct ipc64_perm on x86_64 (48 bytes): key, uid, gid, cuid, cgid, mode, seq.
PERM64 = struct.Struct("<iIIIIHxxHxxxxxxQQ")


def now() -> int:
    return int(time.time())


@dataclass
class IpcPerm:
    """kern_ipc_perm: the owner (uid/gid), creator (cuid/cgid), mode and key of an object."""

    key: int
    uid: int
    gid: int
    cuid: int
    cgid: int
    mode: int
    id: int = -1
    seq: int = 0
    deleted: bool = False

    def pack(self) -> bytes:
        return PERM64.pack(self.key, self.uid, self.gid, self.cuid, self.cgid,
                           self.mode & 0xFFFF, self.seq, 0, 0)

    def allows(self, creds: Credentials, want: int) -> bool:
        """ipcperms: `want` is 4 (read) and/or 2 (write/alter), checked against the owner,
        creator or group bits; CAP_IPC_OWNER overrides."""
        granted = self.mode
        if creds.euid in (self.cuid, self.uid):
            granted >>= 6
        elif creds.in_group(self.cgid) or creds.in_group(self.gid):
            granted >>= 3
        return not (want & ~granted & 7) or creds.has_cap(CAP_IPC_OWNER)

    def check(self, creds: Credentials, want: int) -> None:
        if not self.allows(creds, want):
            raise SyscallError(errno.EACCES)

    def is_owner(self, creds: Credentials) -> bool:
        """The owner or creator, or CAP_SYS_ADMIN: who may IPC_SET and IPC_RMID."""
        return creds.euid in (self.uid, self.cuid) or creds.has_cap(CAP_SYS_ADMIN)

    def set_from(self, uid: int, gid: int, mode: int) -> None:
        """IPC_SET's change: owner ids and the low nine mode bits."""
        self.uid, self.gid = uid, gid
        self.mode = (self.mode & ~0o777) | (mode & 0o777)


class HasPerm(Protocol):
    perm: IpcPerm


Obj = TypeVar("Obj", bound=HasPerm)


class IdSpace(Generic[Obj]):
    """The objects of one kind in one IPC namespace, by index; keys map to live objects."""

    def __init__(self) -> None:
        self.by_index: dict[int, Obj] = {}
        self.by_key: dict[int, Obj] = {}
        self._last = -1
        self._seq = 0

    def __iter__(self) -> Iterator[Obj]:
        return iter([self.by_index[i] for i in sorted(self.by_index)])

    def __len__(self) -> int:
        return len(self.by_index)

    def max_index(self) -> int:
        """ipc_get_maxidx: the highest index in use, or 0 when none is (IPC_INFO's answer)."""
        return max(self.by_index, default=0)

    def add(self, obj: Obj, limit: int) -> int:
        """Give `obj` an id (ipc_idr_alloc's cyclic index, the sequence bumped at each
        wrap); ENOSPC past `limit` objects."""
        if len(self.by_index) >= limit:
            raise SyscallError(errno.ENOSPC)
        # idr_alloc_cyclic below max(in_use * 3/2, 64), at most IPCMNI
        top = min(max(len(self.by_index) * 3 // 2, _MIN_CYCLE), 1 << _SEQ_SHIFT)
        idx = next((i for i in range(self._last + 1, top) if i not in self.by_index), None)
        if idx is None:
            idx = next(i for i in range(top) if i not in self.by_index)
        if idx <= self._last:
            self._seq = 0 if self._seq >= _SEQ_MAX else self._seq + 1
        self._last = idx
        obj.perm.seq = self._seq
        obj.perm.id = (self._seq << _SEQ_SHIFT) + idx
        self.by_index[idx] = obj
        if obj.perm.key != IPC_PRIVATE:
            self.by_key[obj.perm.key] = obj
        return obj.perm.id

    def find(self, ident: int) -> Obj:
        """The object with id `ident`: EINVAL if there is none (or the id's sequence is
        stale)."""
        if ident < 0:
            raise SyscallError(errno.EINVAL)
        obj = self.by_index.get(ident & ((1 << _SEQ_SHIFT) - 1))
        if obj is None or obj.perm.id != ident:
            raise SyscallError(errno.EINVAL)
        return obj

    def at_index(self, idx: int, creds: Credentials | None = None) -> Obj:
        """*_STAT's lookup by index: EINVAL if unused; with `creds` (SHM_STAT, SEM_STAT,
        MSG_STAT, not their *_STAT_ANY forms) the caller must be allowed to read it."""
        obj = self.by_index.get(idx) if idx >= 0 else None
        if obj is None:
            raise SyscallError(errno.EINVAL)
        if creds is not None:
            obj.perm.check(creds, 4)
        return obj

    def forget_key(self, obj: Obj) -> None:
        """The object keeps its id but its key goes (IPC_RMID of an attached segment)."""
        if obj.perm.key != IPC_PRIVATE and self.by_key.get(obj.perm.key) is obj:
            del self.by_key[obj.perm.key]
        obj.perm.key = IPC_PRIVATE

    def remove(self, obj: Obj) -> None:
        self.forget_key(obj)
        obj.perm.deleted = True
        self.by_index.pop(obj.perm.id & ((1 << _SEQ_SHIFT) - 1), None)

    def get(self, key: int, flags: int, creds: Credentials, want_existing: Callable[[Obj], None],
            create: Callable[[], Obj]) -> int:
        """ipcget: IPC_PRIVATE always creates; a key finds its object (EEXIST under
        IPC_CREAT|IPC_EXCL, EACCES without the mode's permissions, `want_existing` checks
        the rest) or, with IPC_CREAT, creates one; ENOENT otherwise."""
        if key != IPC_PRIVATE:
            obj = self.by_key.get(key)
            if obj is not None:
                if flags & IPC_CREAT and flags & IPC_EXCL:
                    raise SyscallError(errno.EEXIST)
                obj.perm.check(creds, _want_of(flags))
                want_existing(obj)
                return obj.perm.id
            if not flags & IPC_CREAT:
                raise SyscallError(errno.ENOENT)
        return create().perm.id


def _want_of(flags: int) -> int:
    """The access a get's mode asks for (ipcperms with flg's owner bits)."""
    return (flags & 0o777) >> 6 | (flags & 0o777) >> 3 | flags & 0o777


def new_perm(key: int, flags: int, creds: Credentials) -> IpcPerm:
    return IpcPerm(key, creds.euid, creds.egid, creds.euid, creds.egid, flags & 0o777)
