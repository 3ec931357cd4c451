"""Credentials: who is asking, as Linux's `struct cred` says it.

Why immutable: Linux shares one `cred` between threads and replaces it on change (commit_creds);
a frozen value makes that sharing safe and a change an explicit `dataclasses.replace`.
Permission checks in the VFS use `fsuid`/`fsgid`, the supplementary groups and the effective
capability set, the same way for every filesystem; every privilege check of the VFS and the
Sentry asks `has_cap` (never "is the uid 0"), so dropping a capability takes its privilege away.
The five capability sets and the securebits change as Linux's rules say in
`sentry.kernel.caps` (execve, set*id, prctl, capset).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# Capability numbers (include/uapi/linux/capability.h) the VFS consults.
CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_FOWNER = 3
CAP_FSETID = 4
CAP_KILL = 5
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_LINUX_IMMUTABLE = 9
CAP_NET_BIND_SERVICE = 10
CAP_IPC_LOCK = 14
CAP_SYS_CHROOT = 18
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_SYS_NICE = 23
CAP_SYS_RESOURCE = 24
CAP_MKNOD = 27
CAP_LAST_CAP = 40
ALL_CAPS = (1 << (CAP_LAST_CAP + 1)) - 1

# securebits (include/uapi/linux/securebits.h): each bit with its lock one above it.
SECBIT_NOROOT = 1 << 0
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_KEEP_CAPS = 1 << 4
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECURE_ALL_BITS = SECBIT_NOROOT | SECBIT_NO_SETUID_FIXUP | SECBIT_KEEP_CAPS \
    | SECBIT_NO_CAP_AMBIENT_RAISE
SECURE_ALL_LOCKS = SECURE_ALL_BITS << 1


@dataclass(frozen=True, slots=True)
class Credentials:
    """A task's identity. Build with `Credentials.root()` or `Credentials.user(...)`."""

    uid: int = 0
    gid: int = 0
    euid: int = 0
    egid: int = 0
    suid: int = 0
    sgid: int = 0
    fsuid: int = 0
    fsgid: int = 0
    groups: frozenset[int] = field(default_factory=frozenset)
    cap_effective: int = ALL_CAPS
    cap_permitted: int = ALL_CAPS
    cap_inheritable: int = 0
    cap_bounding: int = ALL_CAPS
    cap_ambient: int = 0
    securebits: int = 0

    @classmethod
    def root(cls) -> Credentials:
        """uid/gid 0 with every capability (a container's root)."""
        return cls()

    @classmethod
    def user(cls, uid: int, gid: int, groups: tuple[int, ...] | frozenset[int] = ()) -> Credentials:
        """An unprivileged user: all ids set to uid/gid, no capabilities."""
        return cls(uid, gid, uid, gid, uid, gid, uid, gid, frozenset(groups), 0, 0, 0, ALL_CAPS, 0, 0)

    def has_cap(self, cap: int) -> bool:
        """True if `cap` is in the effective set."""
        return bool(self.cap_effective >> cap & 1)

    def for_access(self) -> Credentials:
        """access_override_creds (access/faccessat without AT_EACCESS): the real ids, and
        unless SECBIT_NO_SETUID_FIXUP the permitted set as effective for a real uid 0,
        none for any other."""
        eff = self.cap_effective
        if not self.securebits & SECBIT_NO_SETUID_FIXUP:
            eff = self.cap_permitted if self.uid == 0 else 0
        return replace(self, fsuid=self.uid, fsgid=self.gid, cap_effective=eff)

    def in_group(self, gid: int) -> bool:
        """True if `gid` is the fs gid or a supplementary group (in_group_p)."""
        return gid == self.fsgid or gid in self.groups

    def with_ids(self, **changes: Any) -> Credentials:
        """A copy with some fields changed (what commit_creds does); `changes` are field
        names and values, checked by `dataclasses.replace`."""
        return replace(self, **changes)
