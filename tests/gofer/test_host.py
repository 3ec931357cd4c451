"""The host layer against Linux: each operation through gofer.host and natively, same result."""

from __future__ import annotations

import errno
import itertools
import os
import stat
from pathlib import Path

import pytest

from gofer import openfile
from gofer.host import Export, Node
from gofer.procfd import ProcFD
from p9 import SetattrMask


def native_errno(fn, *a, **kw) -> int:
    try:
        fn(*a, **kw)
    except OSError as e:
        return e.errno
    return 0


def ours_errno(fn, *a, **kw) -> int:
    return native_errno(fn, *a, **kw)


def test_walk_getattr_matches_lstat(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "d").mkdir()
    (exp / "d" / "f").write_bytes(b"x" * 5000)
    os.symlink("f", exp / "d" / "l")
    for rel in ("d", "d/f", "d/l"):
        node = root
        refs = []
        for c in rel.split("/"):
            node = node.walk(c)
            refs.append(node)
        a = node.getattr(btime=True)
        st = os.lstat(exp / rel)
        assert (a.mode, a.uid, a.gid, a.nlink, a.size, a.blocks, a.mtime_ns, a.ctime_ns) == (
            st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_blocks,
            st.st_mtime_ns, st.st_ctime_ns,
        )
        assert a.qid_path == st.st_ino
        if a.btime is not None:  # filesystems without btime report none
            assert a.btime[0] * 10**9 + a.btime[1] <= st.st_ctime_ns
        assert node.getattr().mode == a.mode and node.getattr().btime is None
        assert a.qid_type == (0x80 if rel == "d" else 0x02 if rel == "d/l" else 0)
        for r in refs:
            r.release()


def test_walk_errors_match_native(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "f").write_bytes(b"")
    assert ours_errno(root.walk, "missing") == native_errno(os.lstat, exp / "missing") == errno.ENOENT
    f = root.walk("f")
    assert ours_errno(f.walk, "x") == native_errno(os.lstat, exp / "f" / "x") == errno.ENOTDIR
    for dots in (".", ".."):
        assert ours_errno(f.walk, dots) == native_errno(os.lstat, f"{exp}/f/{dots}") == errno.ENOTDIR
    f.release()
    for bad in ("", "a/b", "a\0b"):
        assert ours_errno(root.walk, bad) == errno.EINVAL
    assert ours_errno(root.walk, "n" * 256) == native_errno(os.lstat, exp / ("n" * 256))


def test_open_read_write_flags(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "f").write_bytes(b"0123456789")
    f = root.walk("f")
    of = f.open(os.O_RDWR)
    assert of.read(2, 3) == b"234"
    assert of.write(8, b"abcd") == 4
    of.close()
    assert (exp / "f").read_bytes() == b"01234567abcd"
    of = f.open(os.O_WRONLY | os.O_APPEND)
    of.write(0, b"Z")  # pwrite on O_APPEND appends on Linux
    of.close()
    assert (exp / "f").read_bytes() == b"01234567abcdZ"
    of = f.open(os.O_WRONLY | os.O_TRUNC)
    of.close()
    assert (exp / "f").read_bytes() == b""
    assert ours_errno(f.open, os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
    d = root.walk(".")
    assert ours_errno(d.open, os.O_WRONLY) == native_errno(os.open, exp, os.O_WRONLY) == errno.EISDIR
    d.release()
    f.release()


def test_open_respects_permissions_of_mode(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "ro").write_bytes(b"r")
    os.chmod(exp / "ro", 0o444)
    f = root.walk("ro")
    if os.geteuid() != 0:
        assert ours_errno(f.open, os.O_WRONLY) == native_errno(os.open, exp / "ro", os.O_WRONLY)
    f.release()


def test_create_mkdir_mknod_symlink_link(root: Node, tree) -> None:
    exp, _ = tree
    node, of = root.create("c", os.O_RDWR | os.O_EXCL, 0o640)
    of.write(0, b"hi")
    of.close()
    assert stat.S_IMODE(os.stat(exp / "c").st_mode) == 0o640 & ~_umask()
    assert ours_errno(root.create, "c", os.O_RDWR | os.O_EXCL, 0o600) == errno.EEXIST
    st = root.mkdir("dd", 0o755)
    assert stat.S_ISDIR(st.st_mode) and os.path.isdir(exp / "dd")
    assert ours_errno(root.mkdir, "dd", 0o755) == native_errno(os.mkdir, exp / "dd") == errno.EEXIST
    st = root.mknod("fifo", stat.S_IFIFO | 0o600, 0, 0)
    assert stat.S_ISFIFO(os.lstat(exp / "fifo").st_mode)
    st = root.symlink("sl", "/nowhere/at/all")
    assert os.readlink(exp / "sl") == "/nowhere/at/all"
    sl = root.walk("sl")
    assert sl.readlink() == "/nowhere/at/all"
    assert ours_errno(node.readlink) == native_errno(os.readlink, exp / "c") == errno.EINVAL
    node.link_into(root, "c2")
    assert os.stat(exp / "c2").st_ino == os.stat(exp / "c").st_ino
    d = root.walk("dd")
    assert ours_errno(d.link_into, root, "dlink") == errno.EPERM
    for n in (sl, d, node):
        n.release()
    for name in (".", ".."):
        assert ours_errno(root.mkdir, name, 0o755) == errno.EEXIST


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_rename_unlink(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "a").write_bytes(b"a")
    (exp / "d").mkdir()
    (exp / "d" / "x").write_bytes(b"")
    d = root.walk("d")
    root.rename("a", d, "b")
    assert (exp / "d" / "b").read_bytes() == b"a" and not (exp / "a").exists()
    assert ours_errno(root.unlink, "d", 0x200) == native_errno(os.rmdir, exp / "d") == errno.ENOTEMPTY
    assert ours_errno(root.unlink, "d") == native_errno(os.unlink, exp / "d")
    d.unlink("b")
    d.unlink("x")
    root.unlink("d", 0x200)
    assert not (exp / "d").exists()
    # old-style rename/remove of a fid follow the node
    (exp / "m").write_bytes(b"")
    m = root.walk("m")
    m.rename_self(root, "n")
    assert (exp / "n").exists() and m.name == "n"
    m.remove_self()
    assert not (exp / "n").exists()
    m.release()
    d.release()


def test_setattr_matches_native(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "f").write_bytes(b"0123456789")
    f = root.walk("f")
    f.setattr(SetattrMask.MODE, mode=0o4751)
    assert stat.S_IMODE(os.stat(exp / "f").st_mode) == 0o4751
    f.setattr(SetattrMask.SIZE, size=3)
    assert (exp / "f").read_bytes() == b"012"
    f.setattr(SetattrMask.MTIME | SetattrMask.MTIME_SET, mtime=(12345, 678))
    st = os.stat(exp / "f")
    assert st.st_mtime_ns == 12345 * 10**9 + 678
    before = st.st_atime_ns
    f.setattr(SetattrMask.ATIME)  # now; mtime untouched
    st = os.stat(exp / "f")
    assert st.st_mtime_ns == 12345 * 10**9 + 678 and st.st_atime_ns >= before
    if os.geteuid() == 0:
        f.setattr(SetattrMask.UID | SetattrMask.GID, uid=1234, gid=4321)
        st = os.stat(exp / "f")
        assert (st.st_uid, st.st_gid) == (1234, 4321)
    d = root.walk(".")
    assert ours_errno(d.setattr, SetattrMask.SIZE, size=0) == native_errno(os.truncate, exp, 0)
    d.release()
    f.release()


def test_xattr_statfs_fsync_fallocate(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "f").write_bytes(b"")
    f = root.walk("f")
    f.setxattr("user.k", b"v1")
    assert os.getxattr(exp / "f", "user.k") == b"v1" == f.getxattr("user.k")
    assert "user.k" in f.listxattr()
    assert ours_errno(f.setxattr, "user.k", b"v", os.XATTR_CREATE) == native_errno(
        os.setxattr, exp / "f", "user.k", b"v", os.XATTR_CREATE
    ) == errno.EEXIST
    f.removexattr("user.k")
    assert ours_errno(f.getxattr, "user.k") == native_errno(os.getxattr, exp / "f", "user.k")
    sf = f.statfs()
    sv = os.statvfs(exp)
    assert (sf.bsize, sf.blocks, sf.files, sf.namelen) == (sv.f_bsize, sv.f_blocks, sv.f_files, sv.f_namemax)
    of = f.open(os.O_RDWR)
    of.fallocate(0, 0, 8192)
    assert os.stat(exp / "f").st_size == 8192
    of.fsync()
    of.fsync(datasync=True)
    of.close()
    f.release()


def test_locks_conflict_between_opens(root: Node, tree) -> None:
    exp, _ = tree
    (exp / "f").write_bytes(b"x" * 100)
    f = root.walk("f")
    a, b = f.open(os.O_RDWR), f.open(os.O_RDWR)
    assert a.lock(1, 0, 10) == openfile.LOCK_SUCCESS
    assert b.lock(1, 5, 10) == openfile.LOCK_BLOCKED
    assert b.getlock(1, 5, 10)[0] == 1
    assert b.lock(1, 10, 10) == openfile.LOCK_SUCCESS
    assert a.lock(2, 0, 10) == openfile.LOCK_SUCCESS
    assert b.lock(1, 0, 5) == openfile.LOCK_SUCCESS
    assert a.getlock(0, 0, 0)[0] == 1
    b.close()
    assert a.getlock(1, 0, 0)[0] == 2  # F_UNLCK: closing released b's locks
    a.close()
    f.release()


def test_readdir_offsets_stable(root: Node, tree) -> None:
    exp, _ = tree
    for i in range(50):
        (exp / f"f{i}").write_bytes(b"")
    d = root.walk(".")
    of = d.open(os.O_RDONLY)
    first = list(of.readdir(0))
    names = [os.fsdecode(e.name) for e in first]
    assert names[:2] == [".", ".."]
    assert sorted(names[2:]) == sorted(os.listdir(exp))
    # resuming from any returned offset continues exactly after that entry
    mid = first[20]
    (exp / "new-after-snapshot").write_bytes(b"")
    assert [os.fsdecode(e.name) for e in of.readdir(mid.offset)] == names[21:]
    assert all(e.offset == i + 1 for i, e in enumerate(first))
    # a fresh read from 0 sees the new file
    assert b"new-after-snapshot" in [e.name for e in of.readdir(0)]
    inos = {e.name: e.qid_path for e in of.readdir(0)}
    assert inos[b"f3"] == os.stat(exp / "f3").st_ino
    of.close()
    d.release()


def test_read_only_export_refuses_every_mutation(tree, procfd: ProcFD) -> None:
    exp, _ = tree
    (exp / "f").write_bytes(b"data")
    (exp / "d").mkdir()
    e = Export("ro", str(exp), readonly=True)
    e.open(procfd)
    r = e.root()
    f = r.walk("f")
    d = r.walk("d")
    before = sorted(os.listdir(exp)), b"data", os.stat(exp / "f").st_mode
    ops = [
        lambda: f.setattr(SetattrMask.MODE, mode=0o777),
        lambda: f.setattr(SetattrMask.SIZE, size=0),
        lambda: f.setattr(SetattrMask.MTIME),
        lambda: f.open(os.O_WRONLY),
        lambda: f.open(os.O_RDONLY | os.O_TRUNC),
        lambda: r.create("n", os.O_RDWR, 0o644),
        lambda: r.mkdir("n", 0o755),
        lambda: r.mknod("n", stat.S_IFIFO | 0o644, 0, 0),
        lambda: r.symlink("n", "t"),
        lambda: f.link_into(r, "n"),
        lambda: r.rename("f", r, "g"),
        lambda: r.unlink("f"),
        lambda: r.unlink("d", 0x200),
        lambda: f.remove_self(),
        lambda: f.setxattr("user.a", b"b"),
        lambda: f.removexattr("user.a"),
    ]
    for op in ops:
        assert ours_errno(op) == errno.EROFS
    os.utime(exp / "f", ns=(10**9, 10**9))  # an old atime, so a read would move it
    of = f.open(os.O_RDONLY)
    assert of.read(0, 10) == b"data"
    assert ours_errno(of.fallocate, 0, 0, 10) == errno.EROFS
    of.close()
    assert os.stat(exp / "f").st_atime_ns == 10**9  # read with O_NOATIME: host untouched
    assert (sorted(os.listdir(exp)), (exp / "f").read_bytes(), os.stat(exp / "f").st_mode) == before
    for n in (f, d, r):
        n.release()
    e.close()


def test_nodes_release_their_descriptors(export: Export, tree) -> None:
    exp, _ = tree
    (exp / "a").mkdir()
    (exp / "a" / "b").write_bytes(b"")
    before = len(os.listdir("/proc/self/fd"))
    r = export.root()
    nodes = [r.walk("a") for _ in range(20)]
    leafs = [n.walk("b") for n in nodes]
    opens = [leaf.open(os.O_RDONLY) for leaf in leafs]
    assert len(os.listdir("/proc/self/fd")) >= before + 60
    for o in opens:
        o.close()
    for n in nodes + leafs:
        n.release()
    r.release()
    assert len(os.listdir("/proc/self/fd")) == before


def test_large_directory_readdir_is_linear(root: Node, tree) -> None:
    exp, _ = tree
    big = exp / "big"
    big.mkdir()
    n = 10000
    for i in range(n):
        os.close(os.open(big / f"file-{i:06d}", os.O_CREAT | os.O_WRONLY, 0o644))
    d = root.walk("big")
    of = d.open(os.O_RDONLY)
    seen = []
    off = 0
    while True:
        chunk = list(itertools.islice(of.readdir(off), 200))
        if not chunk:
            break
        seen.extend(e.name for e in chunk)
        off = chunk[-1].offset
    assert len(seen) == n + 2 and len(set(seen)) == n + 2
    of.close()
    d.release()


def test_export_missing_dir_is_clear_error(procfd: ProcFD, tmp_path: Path) -> None:
    e = Export("x", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        e.open(procfd)


def test_create_after_an_ancestor_is_renamed_within_the_export(root: Node, tree) -> None:
    """The moved-out check is physical: a directory moved elsewhere *inside* the export (by
    a client's rename or the host) keeps accepting new entries through old nodes."""
    exp, _ = tree
    (exp / "a" / "b").mkdir(parents=True)
    a = root.walk("a")
    b = a.walk("b")
    root.rename("a", root, "renamed")
    os.rename(exp / "renamed", exp / "again")
    node, of = b.create("new", os.O_RDWR, 0o644)
    of.close()
    node.release()
    b.mkdir("sub", 0o755)
    assert sorted(os.listdir(exp / "again" / "b")) == ["new", "sub"]
    b.release()
    a.release()
