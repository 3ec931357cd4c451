"""The capability model's transitions: how the five capability sets and the securebits of
`vfs.Credentials` change at execve, at a uid change, and by prctl and capset (Linux's
security/commoncap.c, capabilities(7)).

Files carry no capabilities here (no security.capability xattr is read), so an execve
follows the set-user-ID and set-group-ID bits, the root rule and the ambient set. Every
privilege check asks `Credentials.has_cap` of the effective set.
"""

from __future__ import annotations

import errno

from sentry.errors import SyscallError
from vfs.creds import (
    ALL_CAPS,
    CAP_LAST_CAP,
    CAP_SETPCAP,
    CAP_SETUID,
    SECBIT_KEEP_CAPS,
    SECBIT_KEEP_CAPS_LOCKED,
    SECBIT_NO_CAP_AMBIENT_RAISE,
    SECBIT_NO_SETUID_FIXUP,
    SECBIT_NOROOT,
    SECURE_ALL_BITS,
    SECURE_ALL_LOCKS,
    Credentials,
)

#: The capabilities a filesystem uid change drops or restores (Linux's CAP_FS_MASK): chown,
#: dac_override, dac_read_search, fowner, fsetid, linux_immutable, mknod, mac_override.
CAP_FS_MASK = sum(1 << c for c in (0, 1, 2, 3, 4, 9, 27, 32))


def cap_valid(cap: int) -> bool:
    """cap_valid: a capability number this kernel knows."""
    return 0 <= cap <= CAP_LAST_CAP


def exec_creds(old: Credentials, *, euid: int | None = None, egid: int | None = None,
               no_new_privs: bool = False, ptrace_unsafe: bool = False
               ) -> tuple[Credentials, bool]:
    """bprm_fill_uid and cap_bprm_creds_from_file for a file without capabilities:
    (the new credentials, whether the exec is secure: AT_SECURE). `euid`/`egid` are a
    set-user-ID or set-group-ID file's owner (None: the ids stay). Root (real or effective
    uid 0 afterwards, unless SECBIT_NOROOT) gets the bounding set plus its inheritable one
    as permitted, and all of them effective if its euid is 0; anyone else keeps only the
    ambient set (permitted = effective = ambient), which a set-id exec clears. With
    no_new_privs the set-id bits are ignored and no capability is gained. Traced by a
    tracer without CAP_SYS_PTRACE (`ptrace_unsafe`, LSM_UNSAFE_PTRACE), a set-id or
    capability-gaining exec is downgraded: the effective ids stay the real ones (unless the
    caller has CAP_SETUID) and no capability is gained, but it counts as set-id. The saved and
    filesystem ids become the effective ones, and SECBIT_KEEP_CAPS is cleared
    (prepare_exec_creds)."""
    if no_new_privs:
        euid = egid = None
    new = old.with_ids(euid=old.euid if euid is None else euid,
                       egid=old.egid if egid is None else egid)
    permitted, effective = 0, False
    if not old.securebits & SECBIT_NOROOT and 0 in (new.euid, new.uid):
        permitted = old.cap_bounding | old.cap_inheritable
        effective = new.euid == 0
    is_setid = new.euid != old.uid or new.egid != old.gid
    ambient = 0 if is_setid else old.cap_ambient
    permitted |= ambient
    if no_new_privs and permitted & ~old.cap_permitted:
        permitted &= old.cap_permitted
    if ptrace_unsafe and (is_setid or permitted & ~old.cap_permitted):
        if not old.has_cap(CAP_SETUID):
            new = new.with_ids(euid=new.uid, egid=new.gid)
        permitted &= old.cap_permitted
    secure = new.euid != old.euid or (new.egid != old.egid and not old.in_group(new.egid)) \
        or is_setid or (new.uid != 0 and (effective or bool(permitted & ~ambient)))
    return new.with_ids(suid=new.euid, fsuid=new.euid, sgid=new.egid, fsgid=new.egid,
                        cap_permitted=permitted,
                        cap_effective=permitted if effective else ambient,
                        cap_ambient=ambient,
                        securebits=old.securebits & ~SECBIT_KEEP_CAPS), secure


def setuid_fixup(old: Credentials, new: Credentials) -> Credentials:
    """cap_emulate_setxuid (set[res]uid, setreuid), unless SECBIT_NO_SETUID_FIXUP: leaving
    uid 0 in all of real, effective and saved clears permitted and effective (not with
    SECBIT_KEEP_CAPS) and always the ambient set; an euid change away from 0 clears the
    effective set, one to 0 makes it the permitted set."""
    if old.securebits & SECBIT_NO_SETUID_FIXUP:
        return new
    permitted, effective, ambient = new.cap_permitted, new.cap_effective, new.cap_ambient
    if 0 in (old.uid, old.euid, old.suid) and 0 not in (new.uid, new.euid, new.suid):
        if not old.securebits & SECBIT_KEEP_CAPS:
            permitted = effective = 0
        ambient = 0
    if old.euid == 0 and new.euid != 0:
        effective = 0
    if old.euid != 0 and new.euid == 0:
        effective = permitted
    return new.with_ids(cap_permitted=permitted, cap_effective=effective, cap_ambient=ambient)


def setfsuid_fixup(old: Credentials, new: Credentials) -> Credentials:
    """cap_task_fix_setuid's LSM_SETID_FS: a filesystem uid leaving 0 drops the filesystem
    capabilities from the effective set, one coming to 0 raises the permitted ones."""
    if old.securebits & SECBIT_NO_SETUID_FIXUP:
        return new
    eff = new.cap_effective
    if old.fsuid == 0 and new.fsuid != 0:
        eff &= ~CAP_FS_MASK
    elif old.fsuid != 0 and new.fsuid == 0:
        eff |= new.cap_permitted & CAP_FS_MASK
    return new.with_ids(cap_effective=eff)


def capset(c: Credentials, eff: int, perm: int, inh: int) -> Credentials:
    """cap_capset: permitted only shrinks, effective within the new permitted set,
    inheritable within inheritable|permitted (unless CAP_SETPCAP) and always within
    inheritable|bounding; the ambient set keeps only what stays permitted and inheritable."""
    eff, perm, inh = eff & ALL_CAPS, perm & ALL_CAPS, inh & ALL_CAPS
    if inh & ~(c.cap_inheritable | c.cap_permitted) and not c.has_cap(CAP_SETPCAP):
        raise SyscallError(errno.EPERM)
    if inh & ~(c.cap_inheritable | c.cap_bounding):
        raise SyscallError(errno.EPERM)
    if perm & ~c.cap_permitted or eff & ~perm:
        raise SyscallError(errno.EPERM)
    return c.with_ids(cap_effective=eff, cap_permitted=perm, cap_inheritable=inh,
                      cap_ambient=c.cap_ambient & perm & inh)


def bounding_drop(c: Credentials, cap: int) -> Credentials:
    """PR_CAPBSET_DROP (cap_prctl_drop): CAP_SETPCAP first (EPERM), then a valid number."""
    if not c.has_cap(CAP_SETPCAP):
        raise SyscallError(errno.EPERM)
    if not cap_valid(cap):
        raise SyscallError(errno.EINVAL)
    return c.with_ids(cap_bounding=c.cap_bounding & ~(1 << cap))


def set_securebits(c: Credentials, bits: int) -> Credentials:
    """PR_SET_SECUREBITS: a locked bit may not change nor its lock go, no unknown bit, and
    the caller needs CAP_SETPCAP; each of these is EPERM."""
    old = c.securebits
    if ((old & SECURE_ALL_LOCKS) >> 1) & (old ^ bits) or old & SECURE_ALL_LOCKS & ~bits \
            or bits & ~(SECURE_ALL_LOCKS | SECURE_ALL_BITS) or not c.has_cap(CAP_SETPCAP):
        raise SyscallError(errno.EPERM)
    return c.with_ids(securebits=bits)


def set_keepcaps(c: Credentials, on: int) -> Credentials:
    """PR_SET_KEEPCAPS: 0 or 1 (EINVAL), EPERM once SECBIT_KEEP_CAPS_LOCKED is set."""
    if on > 1:
        raise SyscallError(errno.EINVAL)
    if c.securebits & SECBIT_KEEP_CAPS_LOCKED:
        raise SyscallError(errno.EPERM)
    bits = c.securebits | SECBIT_KEEP_CAPS if on else c.securebits & ~SECBIT_KEEP_CAPS
    return c.with_ids(securebits=bits)


PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER = 1, 2, 3
PR_CAP_AMBIENT_CLEAR_ALL = 4


def ambient(c: Credentials, op: int, cap: int, a4: int, a5: int) -> tuple[int, Credentials]:
    """PR_CAP_AMBIENT (cap_task_prctl): (the answer, the new credentials). Raising needs
    the capability permitted and inheritable and SECBIT_NO_CAP_AMBIENT_RAISE clear."""
    if op == PR_CAP_AMBIENT_CLEAR_ALL:
        if cap | a4 | a5:
            raise SyscallError(errno.EINVAL)
        return 0, c.with_ids(cap_ambient=0)
    if not cap_valid(cap) or a4 | a5:
        raise SyscallError(errno.EINVAL)
    bit = 1 << cap
    if op == PR_CAP_AMBIENT_IS_SET:
        return int(bool(c.cap_ambient & bit)), c
    if op == PR_CAP_AMBIENT_RAISE:
        if not c.cap_permitted & c.cap_inheritable & bit \
                or c.securebits & SECBIT_NO_CAP_AMBIENT_RAISE:
            raise SyscallError(errno.EPERM)
        return 0, c.with_ids(cap_ambient=c.cap_ambient | bit)
    if op == PR_CAP_AMBIENT_LOWER:
        return 0, c.with_ids(cap_ambient=c.cap_ambient & ~bit)
    raise SyscallError(errno.EINVAL)
