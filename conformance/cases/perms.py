"""Permission checks as an unprivileged uid (owner, group member via a supplementary
group, other) and as root."""

from __future__ import annotations

import errno
import os
import stat

from ..case import USER, Ctx, case, register
from ..target_api import UTIME_NOW, Creds

# (uid, gid) to give an object so that USER (1000, groups 1000 and 1001) relates to it as
# owner, as group member (supplementary group 1001), or as other.
RELATIONS = {"owner": (1000, 50), "group": (50, 1001), "other": (50, 50)}
FILE_MODES = (0o000, 0o400, 0o200, 0o040, 0o020, 0o004, 0o002, 0o604, 0o460, 0o066)
DIR_MODES = (0o700, 0o500, 0o300, 0o100, 0o070, 0o050, 0o030, 0o007, 0o005, 0o003)


def _file(mode: int, rel: str, flags: int):
    async def run(t: Ctx) -> None:
        await t.create(b"f", b"data")
        await t.chown(b"f", *RELATIONS[rel])
        await t.chmod(b"f", mode)
        u = t.as_user(USER)
        r = await u.attempt(u.open(b"f", flags))
        if not isinstance(r, OSError):
            await u.close(r)
    return run


for _m in FILE_MODES:
    for _rel in RELATIONS:
        for _op, _fl in (("read", os.O_RDONLY), ("write", os.O_WRONLY)):
            register("perms", f"file-{_m:03o}-{_rel}-{_op}", _file(_m, _rel, _fl),
                     doc=f"open for {_op} as {_rel} of a {_m:03o} file", needs=("unpriv",))


def _dir(mode: int, rel: str):
    async def run(t: Ctx) -> None:
        await t.mkdir(b"d")
        await t.create(b"d/f", b"x")
        await t.chown(b"d", *RELATIONS[rel])
        await t.chmod(b"d", mode)
        u = t.as_user(USER)
        await u.attempt(u.listdir(b"d"))
        await u.attempt(u.stat(b"d/f"))
        r = await u.attempt(u.open(b"d/new", os.O_CREAT | os.O_WRONLY, 0o644))
        if not isinstance(r, OSError):
            await u.close(r)
        await u.attempt(u.unlink(b"d/f"))
        await t.chmod(b"d", 0o755)
        await t.listdir(b"d")
    return run


for _m in DIR_MODES:
    for _rel in RELATIONS:
        register("perms", f"dir-{_m:03o}-{_rel}", _dir(_m, _rel),
                 doc=f"list, search, create, remove as {_rel} in a {_m:03o} directory",
                 needs=("unpriv",))


@case("perms", "owner-class-only", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """The owner is judged by the owner bits alone, even if group bits would allow."""
    await t.create(b"f")
    await t.chown(b"f", 1000, 1000)
    await t.chmod(b"f", 0o066)
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.open(b"f"))


@case("perms", "root-reads-000")
async def _(t: Ctx) -> None:
    """Root reads and writes a mode-000 file owned by someone else."""
    await t.create(b"f", b"secret")
    await t.chown(b"f", 1000, 1000)
    await t.chmod(b"f", 0o000)
    t.check(await t.slurp(b"f") == b"secret", "root denied")
    h = await t.open(b"f", os.O_WRONLY)
    await t.close(h)


@case("perms", "root-lists-000-dir")
async def _(t: Ctx) -> None:
    """Root lists and searches a mode-000 directory."""
    await t.mkdir(b"d")
    await t.create(b"d/f")
    await t.chmod(b"d", 0o000)
    await t.listdir(b"d")
    await t.stat(b"d/f")


@case("perms", "search-needed-on-path", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Without search permission on a middle directory, the leaf cannot be reached."""
    await t.mkdir(b"a")
    await t.mkdir(b"a/b")
    await t.create(b"a/b/f", b"x")
    await t.chmod(b"a", 0o766)
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.stat(b"a/b/f"))
    await u.fails(errno.EACCES, u.open(b"a/b/f"))


@case("perms", "chmod-not-owner-eperm", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Only the owner may chmod."""
    await t.create(b"f")
    await t.chmod(b"f", 0o666)
    u = t.as_user(USER)
    await u.fails(errno.EPERM, u.chmod(b"f", 0o777))


@case("perms", "chmod-owner", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """The owner may chmod a file they cannot even read."""
    await t.create(b"f")
    await t.chown(b"f", 1000, 1000)
    await t.chmod(b"f", 0o000)
    u = t.as_user(USER)
    await u.chmod(b"f", 0o640)
    await u.stat(b"f")


@case("perms", "chmod-sgid-nonmember-cleared", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """An owner outside the file's group cannot set S_ISGID: it is silently cleared."""
    await t.create(b"f")
    await t.chown(b"f", 1000, 50)
    u = t.as_user(USER)
    await u.chmod(b"f", 0o2755)
    await u.stat(b"f")


@case("perms", "chown-not-root-eperm", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """An unprivileged owner cannot give a file away."""
    await t.create(b"f")
    await t.chown(b"f", 1000, 1000)
    u = t.as_user(USER)
    await u.fails(errno.EPERM, u.chown(b"f", 1002, -1))


@case("perms", "chown-group-member", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """An owner may change the group to one they belong to, not to another."""
    await t.create(b"f")
    await t.chown(b"f", 1000, 1000)
    u = t.as_user(USER)
    await u.chown(b"f", -1, 1001)
    await u.fails(errno.EPERM, u.chown(b"f", -1, 50))
    await u.stat(b"f")


@case("perms", "chown-clears-setuid")
async def _(t: Ctx) -> None:
    """chown of an executable clears S_ISUID and S_ISGID."""
    await t.create(b"f")
    await t.chmod(b"f", 0o6755)
    await t.chown(b"f", 1000, 1000)
    await t.stat(b"f")


@case("perms", "write-clears-setuid", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """A write by an unprivileged user clears the file's S_ISUID bit."""
    await t.create(b"f")
    await t.chown(b"f", 1000, 1000)
    await t.chmod(b"f", 0o4777)
    u = t.as_user(USER)
    h = await u.open(b"f", os.O_WRONLY)
    await u.write(h, b"x")
    await u.close(h)
    await t.stat(b"f")


@case("perms", "truncate-needs-write", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """truncate by path needs write permission."""
    await t.create(b"f", b"abc")
    await t.chmod(b"f", 0o644)
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.truncate(b"f", 0))
    await t.chmod(b"f", 0o646)
    await u.truncate(b"f", 1)
    await t.stat(b"f")


@case("perms", "utimens-now-with-write", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Setting times to now needs write permission; explicit times need ownership."""
    await t.create(b"f")
    await t.chmod(b"f", 0o646)
    u = t.as_user(USER)
    await u.utimens(b"f", UTIME_NOW, UTIME_NOW)
    await u.fails(errno.EPERM, u.utimens(b"f", 10**18, 10**18))
    await t.chmod(b"f", 0o644)
    await u.fails(errno.EACCES, u.utimens(b"f", UTIME_NOW, UTIME_NOW))


@case("perms", "rename-out-of-readonly-dir", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Renaming needs write permission on the source directory."""
    await t.mkdir(b"src")
    await t.mkdir(b"dst")
    await t.create(b"src/f")
    await t.chmod(b"src", 0o755)
    await t.chmod(b"dst", 0o777)
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.rename(b"src/f", b"dst/f"))


@case("perms", "rename-into-readonly-dir", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Renaming needs write permission on the destination directory."""
    await t.mkdir(b"src")
    await t.mkdir(b"dst")
    await t.create(b"src/f")
    await t.chmod(b"src", 0o777)
    await t.chmod(b"dst", 0o755)
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.rename(b"src/f", b"dst/f"))


@case("perms", "mkdir-needs-write", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """mkdir, symlink and link need write permission on the parent."""
    await t.create(b"f")
    await t.chmod(b"f", 0o666)
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.mkdir(b"d"))
    await u.fails(errno.EACCES, u.symlink(b"x", b"l"))
    await u.fails(errno.EACCES, u.mkfifo(b"p"))


@case("perms", "open-trunc-needs-write", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """O_TRUNC without write permission is EACCES and keeps the data."""
    await t.create(b"f", b"keep")
    u = t.as_user(USER)
    await u.fails(errno.EACCES, u.open(b"f", os.O_RDONLY | os.O_TRUNC))
    t.check(await t.slurp(b"f") == b"keep", "data lost")


@case("perms", "unpriv-create-ownership", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Files and directories created by a user belong to its fsuid and fsgid."""
    await t.chmod(b".", 0o777)
    u = t.as_user(USER)
    await u.create(b"f")
    await u.mkdir(b"d")
    await u.symlink(b"f", b"l")
    await u.mkfifo(b"p")
    for n in (b"f", b"d", b"l", b"p"):
        await t.lstat(n)


@case("perms", "chmod-basic")
async def _(t: Ctx) -> None:
    """chmod keeps only permission bits, follows symlinks, is EOPNOTSUPP on a symlink without
    following; fchmod."""
    h0 = await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.chmod(b"f", 0o7777)
    await t.stat(b"f")
    await t.chmod(b"f", 0o100600)
    await t.stat(b"f")
    await t.fails(errno.ENOENT, t.chmod(b"missing", 0o600))
    await t.symlink(b"f", b"l")
    await t.chmod(b"l", 0o640)
    await t.stat(b"f")
    await t.fails(errno.EOPNOTSUPP, t.chmod(b"l", 0o600, follow=False))
    await t.lstat(b"l")
    await t.fchmod(h0, 0o4711)
    await t.fstat(h0)


@case("perms", "chown-clears-setid")
async def _(t: Ctx) -> None:
    """chown clears set-user-ID and set-group-ID on files (even chown -1 -1), not on directories;
    lchown changes the link."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.chmod(b"f", 0o6755)
    await t.chown(b"f", 100, 200)
    await t.stat(b"f")
    await t.chmod(b"f", 0o6745)
    await t.chown(b"f", -1, -1)
    await t.stat(b"f")
    await t.chmod(b"f", 0o2745)
    await t.chown(b"f", 100, -1)
    await t.stat(b"f")
    await t.mkdir(b"d", 0o755)
    await t.chmod(b"d", 0o6755)
    await t.chown(b"d", 5, 6)
    await t.stat(b"d")
    await t.symlink(b"f", b"l")
    await t.chown(b"l", 7, 8, follow=False)
    await t.lstat(b"l")
    await t.stat(b"f")


@case("perms", "search-permission", needs=("access", "unpriv"))
async def _(t: Ctx) -> None:
    """Without search permission nothing below a directory is reachable; search without read allows
    lookups but no listing."""
    await t.mkdir(b"d", 0o755)
    await t.open(b"d/f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.chmod(b"d", 0o700)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EACCES, u.stat(b"d/f"))
    await u.stat(b"d")
    await u.fails(errno.EACCES, u.open(b"d/f", os.O_RDONLY))
    await u.fails(errno.EACCES, u.open(b"d/missing", os.O_RDONLY))
    await u.fails(errno.EACCES, u.listdir(b"d"))
    await t.chmod(b"d", 0o711)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.stat(b"d/f")
    await u.fails(errno.EACCES, u.listdir(b"d"))
    await u.access(b"d/f", 4)
    await u.fails(errno.EACCES, u.access(b"d/f", 2))
    await u.access(b"d", 1)


@case("perms", "owner-group-other", needs=("access", "unpriv"))
async def _(t: Ctx) -> None:
    """The owner class decides even when others have more; group by primary or supplementary gid;
    root needs one x bit to execute."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.chown(b"f", 1000, 2000)
    await t.chmod(b"f", 0o67)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EACCES, u.open(b"f", os.O_RDONLY))
    u = t.as_user(Creds(1001, 2000, ()))
    await u.open(b"f", os.O_RDWR)
    u = t.as_user(Creds(1001, 1001, (2000,)))
    await u.open(b"f", os.O_RDWR)
    u = t.as_user(Creds(1001, 1001, ()))
    await u.open(b"f", os.O_RDWR)
    await u.open(b"f", os.O_RDWR | os.O_TRUNC)
    await u.access(b"f", 1)
    await t.access(b"f", 1)
    await t.chmod(b"f", 0o644)
    await t.fails(errno.EACCES, t.access(b"f", 1))


@case("perms", "create-needs-write-and-search", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Creating needs write and search permission on the directory; an existing name is EEXIST
    first."""
    await t.mkdir(b"ro", 0o555)
    await t.mkdir(b"rw", 0o777)
    await t.chmod(b"rw", 0o777)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EACCES, u.open(b"ro/f", os.O_WRONLY | os.O_CREAT, 0o644))
    await u.fails(errno.EACCES, u.mkdir(b"ro/d", 0o755))
    await u.fails(errno.EEXIST, u.mkdir(b"ro", 0o755))
    await u.open(b"rw/f", os.O_WRONLY | os.O_CREAT, 0o666)
    await u.stat(b"rw/f")
    await u.mkdir(b"rw/d", 0o777)
    await u.stat(b"rw/d")
    await u.fails(errno.EACCES, u.symlink(b"x", b"ro/l"))


@case("perms", "sticky-directory", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """In a sticky directory only the owner of an entry removes or replaces it."""
    await t.mkdir(b"t", 0o777)
    await t.chmod(b"t", 0o1777)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.open(b"t/mine", os.O_WRONLY | os.O_CREAT, 0o666)
    u = t.as_user(Creds(1001, 1001, ()))
    await u.fails(errno.EPERM, u.unlink(b"t/mine"))
    await u.fails(errno.EPERM, u.rename(b"t/mine", b"t/other"))
    await u.open(b"t/theirs", os.O_WRONLY | os.O_CREAT, 0o666)
    await u.fails(errno.EPERM, u.rename(b"t/theirs", b"t/mine"))
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EPERM, u.unlink(b"t/theirs"))
    await u.unlink(b"t/mine")
    await t.unlink(b"t/theirs")


@case("perms", "ownership-rules", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """chmod, chown, utimens of explicit times are the owner's; a member may chown to its group;
    times 'now' need write access."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o666)
    await t.chown(b"f", 1000, 1000)
    u = t.as_user(Creds(1001, 1001, ()))
    await u.fails(errno.EPERM, u.chmod(b"f", 0o600))
    await u.fails(errno.EPERM, u.chown(b"f", 1001, -1))
    await u.fails(errno.EPERM, u.utimens(b"f", 1_000_000_000, 1_000_000_000))
    await u.fails(errno.EACCES, u.utimens(b"f", UTIME_NOW, UTIME_NOW))
    await u.fails(errno.EACCES, u.utimens(b"f", UTIME_NOW, UTIME_NOW))
    u = t.as_user(Creds(1000, 1000, (3000,)))
    await u.chmod(b"f", 0o2640)
    await u.stat(b"f")
    await u.chown(b"f", -1, 3000)
    await u.fails(errno.EPERM, u.chown(b"f", -1, 4000))
    await u.chown(b"f", 1000, -1)
    await u.chmod(b"f", 0o2640)
    await u.stat(b"f")
    await u.utimens(b"f", 1_000_000_000, 1_000_000_000)


@case("perms", "rename-dir-needs-write-on-itself", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Moving a directory to another parent needs write permission on it ('..' changes); renaming
    in place does not."""
    await t.mkdir(b"a", 0o777)
    await t.mkdir(b"b", 0o777)
    await t.chmod(b"a", 0o777)
    await t.chmod(b"b", 0o777)
    await t.mkdir(b"a/sub", 0o555)
    await t.chown(b"a/sub", 1000, 1000)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EACCES, u.rename(b"a/sub", b"b/sub"))
    await u.rename(b"a/sub", b"a/sub2")


@case("perms", "write-drops-setid", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """A write by a non-root caller clears set-user-ID, and set-group-ID when group-executable;
    root's write keeps them."""
    await t.open(b"f", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.chmod(b"f", 0o6777)
    await t.open(b"g", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.chmod(b"g", 0o6767)
    h2 = await t.open(b"h", os.O_WRONLY | os.O_CREAT, 0o644)
    await t.chmod(b"h", 0o6777)
    await t.write(h2, b"root keeps the bits")
    await t.stat(b"h")
    u = t.as_user(Creds(1000, 1000, ()))
    h3 = await u.open(b"f", os.O_WRONLY)
    await u.write(h3, b"x")
    await u.stat(b"f")
    h4 = await u.open(b"g", os.O_WRONLY)
    await u.write(h4, b"x")
    await u.stat(b"g")


@case("perms", "permissions-rename-truncate", needs=("unpriv",))
async def _(t: Ctx) -> None:
    """Without write permission on a directory: no rename, unlink or create; truncate and times
    follow the file's permissions."""
    await t.mkdir(b"ro", 0o755)
    await t.open(b"ro/f", os.O_WRONLY | os.O_CREAT, 0o666)
    await t.chmod(b"ro/f", 0o666)
    await t.open(b"mine", os.O_WRONLY | os.O_CREAT, 0o644)
    u = t.as_user(Creds(1000, 1000, ()))
    await u.fails(errno.EACCES, u.rename(b"ro/f", b"ro/g"))
    await u.fails(errno.EACCES, u.unlink(b"ro/f"))
    await u.truncate(b"ro/f", 0)
    await u.fails(errno.EACCES, u.truncate(b"mine", 0))
    await u.open(b"ro/f", os.O_RDWR)
    await u.utimens(b"ro/f", UTIME_NOW, UTIME_NOW)
    await u.fails(errno.EACCES, u.utimens(b"mine", UTIME_NOW, UTIME_NOW))
    await u.fails(errno.EACCES, u.mknod(b"ro/new", stat.S_IFREG | 0o644))
    await t.chmod(b"mine", 0o4755)
    await t.chown(b"mine", 1000, 1000)
    await t.stat(b"mine")
