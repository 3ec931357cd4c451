"""Escape attempts against the host layer: each must fail and leave the outside tree untouched.

The same attacks are made over 9P in test_escape_9p.py; here they hit gofer.host directly so a
failure points at the exact operation.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading

import pytest

from gofer.host import Export, Node
from gofer.ident import Ident, apply_ident
from gofer.procfd import ProcFD
from p9 import SetattrMask
from tests.gofer.conftest import snapshot
from tests.support import need_root

SECRET = b"outside-secret\n"


def err(fn, *a, **kw) -> int:
    try:
        fn(*a, **kw)
    except OSError as e:
        return e.errno
    return 0


def assert_cannot_reach(node: Node) -> None:
    """Whatever `node` is, nothing through it yields the outside secret."""
    for name in ("secret", "etc", "sub", ".."):
        try:
            child = node.walk(name)
        except OSError:
            continue
        try:
            of = child.open(os.O_RDONLY)
        except OSError:
            child.release()
            continue
        try:
            if stat.S_ISREG(of.mode):
                assert of.read(0, 100) != SECRET
        finally:
            of.close()
            child.release()


@pytest.fixture
def guard(tree):
    """Snapshot the outside tree (and /etc/passwd) before and check them after the test."""
    _, out = tree
    before = snapshot(out)
    passwd = os.stat("/etc/passwd")
    yield
    assert snapshot(out) == before
    after = os.stat("/etc/passwd")
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (
        passwd.st_mode, passwd.st_uid, passwd.st_mtime_ns,
    )


@pytest.mark.parametrize("target", ["/", "..", "../outside", "OUT", "OUT/secret", "/etc/passwd"])
def test_symlinks_out_are_data_never_followed(root: Node, tree, guard, target: str) -> None:
    exp, out = tree
    target = target.replace("OUT", str(out))
    os.symlink(target, exp / "link")
    link = root.walk("link")
    assert link.readlink() == target
    assert link.getattr().qid_type == 0x02
    assert err(link.open, os.O_RDONLY) == errno.ELOOP
    assert err(link.open, os.O_RDWR | os.O_TRUNC) == errno.ELOOP
    assert err(link.walk, "secret") == errno.ENOTDIR
    assert err(link.walk, "etc") == errno.ENOTDIR
    assert err(link.setattr, SetattrMask.MODE, mode=0o777) == errno.EOPNOTSUPP
    assert err(link.setattr, SetattrMask.SIZE, size=0) == errno.EINVAL
    assert err(link.setxattr, "user.x", b"y") in (errno.EPERM, errno.EOPNOTSUPP)
    if os.geteuid() == 0:
        link.setattr(SetattrMask.UID, uid=4242)  # lchown: changes the link only
        assert os.lstat(exp / "link").st_uid == 4242
    # creating through a symlink's name never creates or truncates the target
    assert err(root.create, "link", os.O_RDWR | os.O_TRUNC, 0o644) in (errno.ELOOP, errno.EEXIST)
    assert err(root.mkdir, "link", 0o755) == errno.EEXIST
    # hard-linking the symlink links the symlink, not what it points at
    link.link_into(root, "link2")
    assert os.lstat(exp / "link2").st_ino == os.lstat(exp / "link").st_ino
    assert_cannot_reach(link)
    link.release()


def test_dangling_symlink_create_does_not_create_outside(root: Node, tree, guard) -> None:
    exp, out = tree
    os.symlink(str(out / "created-by-attacker"), exp / "dangling")
    assert err(root.create, "dangling", os.O_RDWR, 0o644) in (errno.ELOOP, errno.EEXIST)
    assert err(root.mknod, "dangling", stat.S_IFREG | 0o644, 0, 0) == errno.EEXIST
    assert not (out / "created-by-attacker").exists()


def test_dotdot_chains_stop_at_export_root(root: Node, tree, guard) -> None:
    exp, _ = tree
    (exp / "a" / "b" / "c").mkdir(parents=True)
    root_qid = root.qid()
    node = root.ref()
    for name in ["a", "b", "c"] + [".."] * 40:
        nxt = node.walk(name)
        node.release()
        node = nxt
    assert node.qid() == root_qid
    assert_cannot_reach(node)
    node.release()
    for bad in ("../outside", "../../etc", "a/../..", "/etc"):
        assert err(root.walk, bad) == errno.EINVAL


def test_proc_self_fd_tricks(root: Node, tree, guard, export: Export) -> None:
    exp, _ = tree
    os.symlink(f"/proc/self/fd/{export.root_fd}/..", exp / "fdlink")
    os.symlink("/proc/self/root/etc", exp / "rootlink")
    os.symlink("/proc/1/root", exp / "initroot")
    for name in ("fdlink", "rootlink", "initroot"):
        n = root.walk(name)
        assert err(n.open, os.O_RDONLY) == errno.ELOOP
        assert err(n.walk, "passwd") == errno.ENOTDIR
        assert_cannot_reach(n)
        n.release()
    for bad in ("proc/self/fd", "\0", f"{export.root_fd}"):
        assert err(root.walk, bad) in (errno.EINVAL, errno.ENOENT)


def test_symlink_swapped_in_during_walks(root: Node, tree, guard) -> None:
    """Another process swaps d between a real directory and a symlink to the outside tree
    (renameat2 RENAME_EXCHANGE, as fast as it can) while we walk d/secret and read it."""
    exp, out = tree
    (exp / "d").mkdir()
    (exp / "d" / "secret").write_bytes(b"inside\n")
    os.symlink(str(out), exp / "swap")
    swapper = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, str(exp)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert swapper.stdout is not None
        assert swapper.stdout.readline() == b"ready\n"
        seen = {"inside": 0, "refused": 0}
        for _ in range(3000):
            try:
                d = root.walk("d")
            except OSError:
                seen["refused"] += 1
                continue
            try:
                f = d.walk("secret")
            except OSError:
                seen["refused"] += 1
                d.release()
                continue
            of = f.open(os.O_RDONLY)
            data = of.read(0, 100)
            of.close()
            f.release()
            d.release()
            assert data == b"inside\n"
            seen["inside"] += 1
        assert seen["refused"] > 0, "the swap never raced with a walk; the test proved nothing"
    finally:
        swapper.kill()
        swapper.wait()


_SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
print("ready", flush=True)
while True:
    libc.renameat2(d, b"d", d, b"swap", 2)  # RENAME_EXCHANGE
"""


def test_hardlink_and_rename_across_exports_refused(tree, procfd: ProcFD, guard) -> None:
    exp, out = tree
    (exp / "rw").mkdir()
    (exp / "ro").mkdir()
    (exp / "ro" / "precious").write_bytes(b"keep")
    rw = Export("rw", str(exp / "rw"))
    ro = Export("ro", str(exp / "ro"), readonly=True)
    rw.open(procfd)
    ro.open(procfd)
    rwr, ror = rw.root(), ro.root()
    p = ror.walk("precious")
    assert err(p.link_into, rwr, "stolen") == errno.EXDEV
    assert err(ror.rename, "precious", rwr, "stolen") == errno.EXDEV
    assert not (exp / "rw" / "stolen").exists()
    assert (exp / "ro" / "precious").read_bytes() == b"keep"
    for n in (p, rwr, ror):
        n.release()
    rw.close()
    ro.close()


def test_bind_mount_inside_export_not_crossed(root: Node, tree, guard) -> None:
    need_root()
    exp, out = tree
    (exp / "mnt").mkdir()
    subprocess.run(["mount", "--bind", str(out), str(exp / "mnt")], check=True)
    try:
        assert err(root.walk, "mnt") == errno.ENOENT
        assert_cannot_reach(root)
    finally:
        subprocess.run(["umount", "-l", str(exp / "mnt")], check=True)


def test_directory_renamed_out_from_under_a_node(root: Node, tree, guard) -> None:
    """A host process moves export/a (with a node open inside it) outside the export: '..'
    from the node still ends at the export root, never in the outside tree."""
    exp, out = tree
    (exp / "a" / "b").mkdir(parents=True)
    a = root.walk("a")
    b = a.walk("b")
    moved = out.parent / "moved-out"
    os.rename(exp / "a", moved)
    try:
        # nothing can be created out there through the node
        for op in (lambda: b.create("x", os.O_RDWR, 0o644), lambda: b.mkdir("x", 0o755),
                   lambda: b.mknod("x", stat.S_IFIFO | 0o644, 0, 0), lambda: b.symlink("x", "t")):
            assert err(op) == errno.ENOENT
        (exp / "f").write_bytes(b"")
        f = root.walk("f")
        assert err(f.link_into, b, "x") == errno.ENOENT
        assert err(root.rename, "f", b, "x") == errno.ENOENT
        f.release()
        assert os.listdir(moved / "b") == []
        up = b.walk("..").walk("..").walk("..").walk("..")
        assert up.qid() == root.qid()
        assert_cannot_reach(up)
        of = up.open(os.O_RDONLY)
        names = [e.name for e in of.readdir(0)]
        of.close()
        assert b"outside" not in names and b"secret" not in names
        up.release()
    finally:
        b.release()
        a.release()
        os.rename(moved, exp / "a")


def test_device_node_creation_as_non_root(root: Node, tree, guard) -> None:
    need_root()
    exp, _ = tree
    os.chmod(exp, 0o777)
    result: dict[str, int] = {}

    def as_nobody() -> None:
        apply_ident(Ident(65534, 65534))
        result["chr"] = err(root.mknod, "null2", stat.S_IFCHR | 0o666, 1, 3)
        result["blk"] = err(root.mknod, "sda2", stat.S_IFBLK | 0o666, 8, 0)
        result["fifo"] = err(root.mknod, "fifo", stat.S_IFIFO | 0o666, 0, 0)

    t = threading.Thread(target=as_nobody)
    t.start()
    t.join()
    assert result == {"chr": errno.EPERM, "blk": errno.EPERM, "fifo": 0}
    assert sorted(os.listdir(exp)) == ["fifo"]
    assert os.lstat(exp / "fifo").st_uid == 65534


def test_existing_device_nodes_cannot_be_opened(root: Node, tree, guard) -> None:
    need_root()
    exp, _ = tree
    os.mknod(exp / "mem", stat.S_IFCHR | 0o666, os.makedev(1, 1))  # /dev/mem
    n = root.walk("mem")
    assert err(n.open, os.O_RDONLY) == errno.EACCES
    n.release()


def test_identity_switch_enforces_host_permissions(root: Node, tree, guard) -> None:
    need_root()
    exp, _ = tree
    (exp / "private").write_bytes(b"root only")
    os.chmod(exp / "private", 0o600)
    p = root.walk("private")
    result: dict[str, int] = {}

    def as_nobody() -> None:
        apply_ident(Ident(65534, 65534))
        result["read"] = err(p.open, os.O_RDONLY)
        result["chmod"] = err(p.setattr, SetattrMask.MODE, mode=0o666)
        result["create"] = err(root.create, "x", os.O_RDWR, 0o644)

    t = threading.Thread(target=as_nobody)
    t.start()
    t.join()
    assert result == {"read": errno.EACCES, "chmod": errno.EPERM, "create": errno.EACCES}
    p.release()


def test_kernel_pseudo_filesystems_never_served(procfd: ProcFD) -> None:
    """Even an export of / that may cross mount points never enters /proc, /sys, /dev/pts:
    through /proc a client could reach other processes' memory and magic links."""
    e = Export("slash", "/", readonly=True, submounts=True)
    e.open(procfd)
    r = e.root()
    try:
        for name in ("proc", "sys"):
            if os.path.ismount(f"/{name}"):
                assert err(r.walk, name) == errno.ENOENT
        usr = r.walk("usr")  # an ordinary directory (maybe another mount) is fine
        usr.release()
        if os.path.ismount("/dev/pts"):
            dev = r.walk("dev")
            assert err(dev.walk, "pts") == errno.ENOENT
            dev.release()
    finally:
        r.release()
        e.close()
