"""Who a request runs as: attaching users, squashing, and per-thread filesystem credentials.

Why per-thread fsuid/fsgid/groups: when the gofer runs as root it honours the attaching
user the way diod does, by letting the host kernel do every permission check with that
user's filesystem credentials. setfsuid(2), setfsgid(2) and the raw setgroups(2) syscall
change only the calling thread, so a request served inline on the trio thread and one
served on a worker thread never see each other's identity. Switching is lazy: a thread
keeps its last identity and pays only when the next request comes from someone else.

The user database is read once at start-up (before confinement hides /etc), so attaching
by name works inside the confined gofer.
"""

from __future__ import annotations

import ctypes
import errno
import grp
import os
import pwd
import threading
from dataclasses import dataclass, field

from .peer import LOCAL, Peer

__all__ = ["Ident", "IdentityPolicy", "UserDB", "apply_ident", "restore_ident", "process_ident", "NONUNAME"]

NONUNAME = 0xFFFFFFFF  # 9P2000.L n_uname meaning "no numeric uid given"

_SYS_SETGROUPS = 116
_SYS_SETFSUID = 122
_SYS_SETFSGID = 123
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


@dataclass(frozen=True, slots=True)
class Ident:
    """A filesystem identity: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()

    def in_group(self, gid: int) -> bool:
        """Whether `gid` is this identity's primary or a supplementary group."""
        return gid == self.gid or gid in self.groups


@dataclass(slots=True)
class UserDB:
    """A snapshot of the host's passwd and group databases, taken before confinement."""

    by_name: dict[str, Ident] = field(default_factory=dict)
    by_uid: dict[int, Ident] = field(default_factory=dict)

    @classmethod
    def load(cls) -> UserDB:
        """Read every passwd entry and its group list (NSS works only before confinement)."""
        members: dict[str, list[int]] = {}
        for g in grp.getgrall():
            for m in g.gr_mem:
                members.setdefault(m, []).append(g.gr_gid)
        db = cls()
        for p in pwd.getpwall():
            ident = Ident(p.pw_uid, p.pw_gid, tuple(sorted(set(members.get(p.pw_name, [])))))
            db.by_name.setdefault(p.pw_name, ident)
            db.by_uid.setdefault(p.pw_uid, ident)
        return db

    def user(self, name: str, what: str = "user") -> Ident:
        """A user given by name or number (a number need not be in the database).

        Raises:
            ValueError: an unknown name.
        """
        ident = self.by_name.get(name)
        if ident is None and name.isdigit():
            ident = self.by_uid.get(int(name), Ident(int(name), int(name)))
        if ident is None:
            raise ValueError(f"unknown {what} {name!r}")
        return ident

    def lookup(self, *, uname: str, n_uname: int) -> Ident | None:
        """The identity for an attach request: n_uname wins when given, then uname."""
        if n_uname != NONUNAME:
            known = self.by_uid.get(n_uname)
            return known if known is not None else Ident(n_uname, n_uname)
        if uname:
            return self.by_name.get(uname)
        return None


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """How attach requests map to identities.

    Args:
        switch: run each request with the attaching user's fs credentials (needs root).
        squash: if set, every attach runs as this identity (diod's --allsquash).
        anonymous: identity for an attach with an empty uname and NONUNAME (gVisor's client).
        network: identity every attach over a transport that proves nothing (plain TCP)
            runs as, unless `trust_client` (default nobody, or uid 65534).
        trust_client: believe the uname/n_uname sent over such transports
            (`--trust-client-identity`).
    """

    switch: bool
    squash: Ident | None
    anonymous: Ident
    db: UserDB
    network: Ident = Ident(65534, 65534)
    trust_client: bool = False
    #: `network` was named by the operator (--tcp-user), not the default.
    network_stated: bool = False

    @classmethod
    def build(cls, *, allsquash: bool = False, squashuser: str | None = None,
              network_user: str | None = None, trust_client: bool = False) -> IdentityPolicy:
        """The policy for this process: switching when root, optional squashing."""
        db = UserDB.load()
        me = process_ident()
        squash = None
        if allsquash or squashuser:
            squash = db.user(squashuser or "nobody", "squash user")
        network = db.user(network_user, "TCP user") if network_user else (
            db.by_name.get("nobody") or Ident(65534, 65534))
        return cls(switch=os.geteuid() == 0, squash=squash, anonymous=me, db=db, network=network,
                   trust_client=trust_client, network_stated=network_user is not None)

    def resolve(self, *, uname: str, n_uname: int, peer: Peer = LOCAL) -> Ident:
        """The identity an attach from `peer` runs as, or OSError(EPERM) for an unknown user
        or a unix peer asking to be someone else (see gofer/README.md, "Identity")."""
        if self.squash is not None:
            return self.squash
        if peer.kind not in ("local", "unix", "tls") and not self.trust_client:
            return self.network
        confined = peer.kind == "unix" and peer.uid != 0
        if not uname and n_uname == NONUNAME:
            return self.peer_ident(peer) if confined else self.anonymous
        ident = self.db.lookup(uname=uname, n_uname=n_uname)
        if ident is None:
            raise OSError(errno.EPERM, f"unknown user {uname!r}")
        if confined and ident.uid != peer.uid:
            raise OSError(errno.EPERM, f"a peer with uid {peer.uid} may attach only as itself, "
                                       f"not as uid {ident.uid}")
        return ident

    def peer_ident(self, peer: Peer) -> Ident:
        """The identity of a unix peer (its SO_PEERCRED uid, groups from the user database)."""
        assert peer.uid is not None
        known = self.db.by_uid.get(peer.uid)
        if known is not None:
            return known
        gid = peer.gid if peer.gid is not None else peer.uid
        return Ident(peer.uid, gid)

    def default_uid(self, peer: Peer) -> int:
        """The uid an anonymous attach (empty uname, NONUNAME) from `peer` stands for."""
        if peer.kind == "unix" and peer.uid != 0:
            return self.peer_ident(peer).uid
        return self.anonymous.uid


_current = threading.local()


def _raw(nr: int, *args: object) -> int:
    r = _libc.syscall(nr, *args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def apply_ident(ident: Ident) -> None:
    """Make the calling thread's filesystem credentials `ident` (no-op if already so).

    Raises:
        OSError(EPERM): the process may not take that identity (no CAP_SETUID/SETGID).
    """
    cur = getattr(_current, "ident", None)
    if cur is ident or cur == ident:
        return
    groups = (ctypes.c_uint32 * max(1, len(ident.groups)))(*ident.groups)
    _raw(_SYS_SETGROUPS, ctypes.c_size_t(len(ident.groups)), groups)
    _libc.syscall(_SYS_SETFSGID, ctypes.c_uint32(ident.gid))
    if _libc.syscall(_SYS_SETFSGID, ctypes.c_uint32(0xFFFFFFFF)) != ident.gid:
        _current.ident = None
        raise OSError(errno.EPERM, f"cannot take fsgid {ident.gid}")
    _libc.syscall(_SYS_SETFSUID, ctypes.c_uint32(ident.uid))
    if _libc.syscall(_SYS_SETFSUID, ctypes.c_uint32(0xFFFFFFFF)) != ident.uid:
        _current.ident = None
        raise OSError(errno.EPERM, f"cannot take fsuid {ident.uid}")
    _current.ident = ident


_TOKENS: dict[Ident, int] = {}


def cred_token(ident: Ident) -> int | None:
    """A small number (1-255) naming `ident` for p9's C walk (`p9.File.walk_source`), or
    None once 255 identities have one (their walks then take the Python path)."""
    t = _TOKENS.get(ident)
    if t is None and len(_TOKENS) < 255:
        t = _TOKENS[ident] = len(_TOKENS) + 1
    return t


def current_cred_token() -> int:
    """The token of the identity the calling thread has now (0: none has been applied)."""
    cur = getattr(_current, "ident", None)
    return 0 if cur is None else _TOKENS.get(cur, 0)


def process_ident() -> Ident:
    """The process's own credentials (what a thread has before any apply_ident)."""
    return Ident(os.geteuid(), os.getegid(), tuple(sorted(set(os.getgroups()))))


def restore_ident() -> None:
    """Give the calling thread the process's own filesystem credentials back."""
    apply_ident(process_ident())
