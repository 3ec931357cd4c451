"""What a Linux kernel client (v9fs) needs from the gofer as from diod, against a real
`runpsc gofer serve`, each compared with the same operations made natively by the same
caller (uid, fsgid, groups) on an identical tree:

- the group of new files and directories: a set-gid directory's for anything made in it (and
  its set-gid bit for new directories), else the caller's fsgid, which the request carries;
  S_ISGID kept or dropped as Linux does;
- device nodes: created by a root client on an export with `mknod`, EPERM without it;
- ftruncate(2) through a fid opened for writing works whatever the file's mode.
"""

from __future__ import annotations

import errno
import grp
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

import p9
from tests.gofer.helpers import NOBODY, confine_args, gofer_process
from tests.support import missing, need_binary, need_root

#: The directory set-gid tests make things in: its group, when no member user is known.
SGID_GROUP = 4242

# One operation: [kind, path, *args]; kinds: create (mode), mkdir (mode), symlink (target),
# mknod (mode, major, minor), create_ftruncate (mode, size: open O_CREAT|O_RDWR, write, then
# ftruncate the descriptor), truncate (size: by name).
Op = list

_NATIVE = r"""
import json, os, sys
os.umask(0)
out = []
for kind, path, *a in json.loads(sys.argv[1]):
    try:
        if kind == "create":
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, a[0]))
        elif kind == "mkdir":
            os.mkdir(path, a[0])
        elif kind == "symlink":
            os.symlink(a[0], path)
        elif kind == "mknod":
            os.mknod(path, a[0], os.makedev(a[1], a[2]))
        elif kind == "create_ftruncate":
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, a[0])
            try:
                os.write(fd, b"0123456789")
                os.ftruncate(fd, a[1])
            finally:
                os.close(fd)
        elif kind == "truncate":
            os.truncate(path, a[0])
        out.append(0)
    except OSError as e:
        out.append(e.errno)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Caller:
    """Who makes the operations: uid, fsgid (what the 9P request carries), groups."""

    uid: int
    gid: int
    groups: tuple[int, ...]

    def native(self, top: Path, ops: Sequence[Op]) -> list[int]:
        """Run `ops` natively in `top` as this caller; their errnos (0: done)."""
        groups = ["--groups", ",".join(map(str, self.groups))] if self.groups else ["--clear-groups"]
        r = subprocess.run(
            [need_binary("setpriv", "util-linux"), "--reuid", str(self.uid), "--regid", str(self.gid),
             *groups, sys.executable, "-c", _NATIVE, json.dumps(ops)],
            cwd=top, capture_output=True, text=True, timeout=60, check=True,
        )
        return json.loads(r.stdout)


def db_caller(uid: int, fsgid: int | None = None) -> Caller:
    """A user as the gofer's user database knows it (its primary and supplementary groups),
    with fsgid `fsgid` (default: its primary group)."""
    pw = pwd.getpwuid(uid)
    groups = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem}
    return Caller(uid, pw.pw_gid if fsgid is None else fsgid, tuple(sorted(groups)))


def member_user() -> tuple[int, int]:
    """(uid, gid) of a non-root user of the host database with a supplementary group."""
    for g in grp.getgrall():
        for name in g.gr_mem:
            try:
                pw = pwd.getpwnam(name)
            except KeyError:
                continue
            if pw.pw_uid != 0 and pw.pw_gid != g.gr_gid:
                return pw.pw_uid, g.gr_gid
    missing("a user with a supplementary group", "install postgresql (postgres is in ssl-cert), "
            "as scripts/setup.sh does")
    raise AssertionError  # not reached


async def over_9p(root: p9.Fid, caller: Caller, ops: Sequence[Op]) -> list[int]:
    """Run `ops` through the gofer from `root` (attached as the caller), sending the caller's
    fsgid as a local client would; their errnos."""
    out: list[int] = []
    for kind, path, *a in ops:
        *dirs, name = path.split("/")
        d = await root.walk(dirs)
        try:
            if kind in ("create", "create_ftruncate"):
                await d.create(name, os.O_RDWR | os.O_EXCL, a[0], caller.gid)
                if kind == "create_ftruncate":
                    await d.write(0, b"0123456789")
                    await d.setattr(size=a[1])
            elif kind == "mkdir":
                await d.mkdir(name, a[0], caller.gid)
            elif kind == "symlink":
                await d.symlink(name, a[0], caller.gid)
            elif kind == "mknod":
                await d.mknod(name, a[0], a[1], a[2], caller.gid)
            elif kind == "truncate":
                f = await d.walk([name])
                try:
                    await f.setattr(size=a[0])
                finally:
                    await f.clunk()
            out.append(0)
        except OSError as e:
            out.append(e.errno or 0)
        finally:
            await d.clunk()
    return out


def observed(top: Path) -> dict[str, tuple[int, ...]]:
    """What the comparison looks at, for everything below `top`."""
    out: dict[str, tuple[int, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, size)
    return out


def build(top: Path, sgid_group: int) -> None:
    """The starting tree: a set-gid directory of `sgid_group`, and a plain one, both writable
    by everyone."""
    (top / "sg").mkdir()
    os.chown(top / "sg", 0, sgid_group)
    os.chmod(top / "sg", 0o2777)
    (top / "plain").mkdir()
    os.chmod(top / "plain", 0o777)
    os.chmod(top, 0o755)


@pytest.fixture
def trees() -> Iterator[tuple[Path, Path]]:
    """(export, native): two identical trees that any user can reach."""
    need_root()
    base = Path(tempfile.mkdtemp(prefix="gofer-linux-client-"))
    os.chmod(base, 0o755)
    yield base / "export", base / "native"
    shutil.rmtree(base)


async def compare(trees: tuple[Path, Path], sgid_group: int, work: Sequence[tuple[Caller, list[Op]]],
                  export_opts: str = "") -> None:
    """Build both trees, run `work` natively and through a gofer, compare results and trees."""
    exp, nat = trees
    for top in trees:
        top.mkdir()
        build(top, sgid_group)
    sock = exp.parent / "g.sock"
    with gofer_process(["--export", f"e={exp}{export_opts}", "--listen", f"unix:{sock}",
                        *confine_args()]):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock))
        async with p9.open_client(trio.SocketStream(trio.socket.from_stdlib_socket(s))) as c:
            for caller, ops in work:
                root = await c.attach(b"e", uname=b"", n_uname=caller.uid)
                got = await over_9p(root, caller, ops)
                await root.clunk()
                want = caller.native(nat, ops)
                assert got == want, (caller, ops, got, want)
    assert observed(exp) == observed(nat)


def _make_all(tag: str) -> list[Op]:
    """Everything a caller makes in the set-gid and the plain directory."""
    return [
        ["create", f"sg/{tag}-f", 0o2755], ["create", f"sg/{tag}-f2", 0o6644],
        ["mkdir", f"sg/{tag}-d", 0o755], ["mkdir", f"sg/{tag}-d/sub", 0o700],
        ["create", f"sg/{tag}-d/sub/f", 0o2711],
        ["symlink", f"sg/{tag}-l", "target"], ["mknod", f"sg/{tag}-p", stat.S_IFIFO | 0o644, 0, 0],
        ["create", f"plain/{tag}-f", 0o2755], ["mkdir", f"plain/{tag}-d", 0o2755],
    ]


async def test_new_files_get_the_group_linux_gives(trees: tuple[Path, Path]) -> None:
    """Root (any fsgid) and a user in no group of the directory's."""
    await compare(trees, SGID_GROUP, [
        (db_caller(0), _make_all("root")),
        (Caller(0, 4321, ()), _make_all("root4321")),  # root whose fsgid is another group
        (db_caller(NOBODY), _make_all("nobody")),
    ])


async def test_new_files_of_a_group_member_get_the_group_linux_gives(
        trees: tuple[Path, Path]) -> None:
    """A user in the set-gid directory's group keeps S_ISGID; one whose fsgid is its
    supplementary group makes files of that group."""
    uid, group = member_user()
    await compare(trees, group, [
        (db_caller(uid), _make_all("member")),
        (db_caller(uid, group), _make_all("newgrp")),
    ])


async def test_ftruncate_of_an_open_file_whatever_its_mode(trees: tuple[Path, Path]) -> None:
    """open(O_CREAT, mode 0) then ftruncate: 0, as Linux; truncate by name stays EACCES."""
    nobody = db_caller(NOBODY)
    await compare(trees, SGID_GROUP, [
        (nobody, [["create_ftruncate", "plain/t", 0, 3], ["truncate", "plain/t", 1],
                  ["create_ftruncate", "plain/t2", 0o444, 0]]),
        (db_caller(0), [["create_ftruncate", "plain/r", 0, 4]]),
    ])


async def test_device_nodes_only_where_the_export_allows(trees: tuple[Path, Path]) -> None:
    """With `mknod`, root makes block and character devices as natively (a user still gets
    EPERM); without it every device mknod is EPERM and nothing is made."""
    devs = [["mknod", "plain/null", stat.S_IFCHR | 0o666, 1, 3],
            ["mknod", "plain/loop", stat.S_IFBLK | 0o600, 7, 200],
            ["mknod", "sg/zero", stat.S_IFCHR | 0o644, 1, 5]]
    user_devs = [["mknod", "plain/u-null", stat.S_IFCHR | 0o666, 1, 3],
                 ["mknod", "plain/u-fifo", stat.S_IFIFO | 0o666, 0, 0]]
    await compare(trees, SGID_GROUP, [(db_caller(0), devs), (db_caller(NOBODY), user_devs)],
                  export_opts=":mknod")

    exp = trees[0].parent / "nodev"
    exp.mkdir()
    build(exp, SGID_GROUP)
    sock = trees[0].parent / "n.sock"
    with gofer_process(["--export", f"e={exp}", "--listen", f"unix:{sock}", *confine_args()]):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock))
        async with p9.open_client(trio.SocketStream(trio.socket.from_stdlib_socket(s))) as c:
            root = await c.attach(b"e", uname=b"", n_uname=0)
            got = await over_9p(root, db_caller(0), [*devs, ["mknod", "plain/fifo", stat.S_IFIFO | 0o600, 0, 0]])
    assert got == [errno.EPERM, errno.EPERM, errno.EPERM, 0]
    assert os.listdir(exp / "plain") + os.listdir(exp / "sg") == ["fifo"]


async def test_create_for_another_user_keeps_its_set_id_bits(trees: tuple[Path, Path]) -> None:
    """Tucreate/Tumkdir (runpsc's dialect: root creating on a user's behalf) give what that
    user's own create gives, set-uid and set-gid bits included (the chown to the user
    clears them; they are put back)."""
    exp, nat = trees
    for top in trees:
        top.mkdir()
        build(top, SGID_GROUP)
    nobody = db_caller(NOBODY)
    assert nobody.native(nat, [["create", "plain/f", 0o6755], ["create", "sg/f", 0o4755],
                               ["mkdir", "plain/d", 0o755]]) == [0, 0, 0]
    sock = exp.parent / "g.sock"
    with gofer_process(["--export", f"e={exp}", "--listen", f"unix:{sock}", *confine_args()]):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(sock))
        async with p9.open_client(trio.SocketStream(trio.socket.from_stdlib_socket(s))) as c:
            assert c.dialect.ucreate
            root = await c.attach(b"e", uname=b"", n_uname=0)
            for d, name, mode in (("plain", b"f", 0o6755), ("sg", b"f", 0o4755)):
                f = await root.walk([d])
                await c.rpc(p9.Tucreate(f.fid, name, os.O_RDWR, mode, NOBODY, NOBODY))
                await f.clunk()
            f = await root.walk(["plain"])
            await c.rpc(p9.Tumkdir(f.fid, b"d", 0o755, NOBODY, NOBODY))
            await f.clunk()
    assert observed(exp) == observed(nat)
