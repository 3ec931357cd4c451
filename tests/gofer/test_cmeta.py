"""p9's C metadata loop over the gofer (p9/_cmeta.py): Twalk of one name, Tgetattr and
Tclunk answered in C from walk sources the gofer offers, and every other request on a fid
C walked to answered after Python adopts it. Each script runs on a connection with the C
loop and on one without it; the replies must be the same, errors included."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

import p9
import p9._cloops as cloops_mod
from gofer.host import Export
from gofer.serve import GoferOptions, serve_stream
from tests.gofer.helpers import gofer_fs, open_fds
from tests.p9.test_fastpath import CountingLib
from tests.p9.test_ours import _raw
from tests.support import need_root

pytestmark = pytest.mark.skipif(cloops_mod._fastio is None, reason="p9._fastio is not built "
                                "(scripts/setup.sh builds it)")


def _norm(reply: p9.Message) -> p9.Message:
    """atime moves when a run reads a file, ctime when it changes one (both runs share the
    tree, so the second's chmod is a change again); everything else must match exactly."""
    if isinstance(reply, (p9.Rgetattr, p9.Rwalkgetattr)):
        values = list(p9.Attr._values(reply.attr))  # type: ignore[attr-defined]
        values[8:10] = values[12:14] = (0, 0)  # atime, ctime
        if isinstance(reply, p9.Rwalkgetattr):
            return p9.Rwalkgetattr(reply.valid, p9.Attr(*values), reply.qids)
        return p9.Rgetattr(reply.valid, reply.qid, p9.Attr(*values))
    return reply


async def _run(exp: str, script, *, c_loop: bool, monkeypatch, options=GoferOptions(),
               policy=None, version=p9.PLAIN.version) -> tuple[list, int]:
    """(replies to `script`, requests C answered) on one fresh gofer connection."""
    lib = CountingLib(cloops_mod._fastio)
    with monkeypatch.context() as mp:
        mp.setattr(cloops_mod, "_fastio", lib)
        if not c_loop:
            mp.setattr(cloops_mod, "CMeta", lambda ffi: None)
        got = []
        async with gofer_fs([Export("e", exp)], **(policy or {})) as (fs, nursery):
            a, b = p9.socketpair()
            nursery.start_soon(serve_stream, b, fs, options)
            async with a:
                await _raw(a, 0xFFFF, p9.Tversion(1 << 16, version))
                for tag, msg in enumerate(script):
                    got.append(_norm((await _raw(a, tag, msg))[1]))
    return got, lib.meta_served


async def _both(exp, script, monkeypatch, **kw) -> list:
    with_c, served = await _run(exp, script, c_loop=True, monkeypatch=monkeypatch, **kw)
    without, none = await _run(exp, script, c_loop=False, monkeypatch=monkeypatch, **kw)
    assert none == 0
    assert served > 0  # the C loop did answer part of the script
    assert with_c == without
    return with_c


@pytest.fixture
def tree(tmp_path):
    exp = tmp_path / "e"
    (exp / "dir" / "sub" / "deep").mkdir(parents=True)
    (exp / "data").write_bytes(b"hello, 9P")
    (exp / "dir" / "x").write_bytes(b"x")
    (exp / os.fsdecode(b"n\xffme")).write_bytes(b"not utf-8")
    os.symlink("data", exp / "link")
    os.chmod(tmp_path, 0o755)
    return exp


A = p9.GetattrMask.BASIC
ROOT = p9.Tattach(0, p9.NOFID, b"root", b"e", 0)


async def test_walk_getattr_clunk_and_their_errors(tree, monkeypatch) -> None:
    script = [
        ROOT,
        p9.Twalk(0, 1, (b"data",)), p9.Tgetattr(1, A), p9.Tgetattr(1, 0), p9.Tclunk(1),
        p9.Twalk(0, 1, (b"dir",)), p9.Twalk(0, 1, (b"data",)),  # newfid in use (C's)
        p9.Twalk(0, 2, (b"missing",)), p9.Twalk(9, 2, (b"data",)),  # ENOENT; unknown fid
        p9.Twalk(0, 2, (b"..",)), p9.Twalk(0, 3, (b".",)),  # Python's leniencies
        p9.Twalk(0, 4, (b"link",)), p9.Tgetattr(4, A),  # the symlink itself
        p9.Twalk(4, 5, (b"x",)),  # from a fid C owns: adopted, then Python answers
        p9.Twalk(1, 6, (b"x",)),  # from a directory C walked to (adopted above)
        p9.Twalk(0, 7, (b"a/b",)), p9.Twalk(0, 7, (b"",)), p9.Twalk(0, 7, (b"x" * 256,)),
        p9.Twalk(0, p9.NOFID, (b"data",)), p9.Twalk(0, 0x10000, (b"data",)),  # beyond C's table
        p9.Tgetattr(0x10000, A), p9.Tclunk(0x10000),
        p9.Twalk(0, 8, (b"data",)), p9.Tgetattr(8, p9.GetattrMask.ALL),  # btime: Python's
        p9.Tclunk(8), p9.Tclunk(8), p9.Tgetattr(8, A), p9.Tclunk(42),
        p9.Twalk(0, 9, (b"data",)), p9.Twalk(0, 9, (b"dir",)),  # in use: C's fid 9
        # Several names: the whole way, part of it (Rwalk of the qids so far), not at all.
        p9.Twalk(0, 10, (b"dir", b"sub", b"deep")), p9.Tgetattr(10, A),
        p9.Twalk(0, 11, (b"dir", b"missing")), p9.Twalk(0, 11, (b"data", b"x")),
        p9.Twalk(0, 11, (b"missing", b"x")), p9.Twalk(0, 11, (b"dir", b"..", b"data")),
        p9.Twalk(0, 11, (b"dir", b"sub", b"deep", b"..", b"..")),  # five names: Python's
        p9.Twalk(10, 12, (b"..",)), p9.Tgetattr(12, A),  # from C's chain, adopted
        p9.Tclunk(12), p9.Tclunk(11), p9.Tclunk(10),
        p9.Tclunk(9), p9.Tclunk(6), p9.Tclunk(4), p9.Tclunk(3), p9.Tclunk(2), p9.Tclunk(1),
        p9.Tclunk(0),
    ]
    got = await _both(str(tree), script, monkeypatch)
    by_msg = dict(zip(map(repr, script), got, strict=False))
    assert by_msg[repr(p9.Twalk(0, 2, (b"missing",)))] == p9.Rlerror(errno.ENOENT)
    assert by_msg[repr(p9.Twalk(0, 1, (b"data",)))] == p9.Rlerror(errno.EBADF)
    assert by_msg[repr(p9.Tgetattr(8, A))] == p9.Rlerror(errno.EBADF)
    st = os.lstat(tree / "link")
    assert got[script.index(p9.Tgetattr(4, A))].attr.mode == st.st_mode  # not followed
    assert len(by_msg[repr(p9.Twalk(0, 11, (b"dir", b"missing")))].qids) == 1
    assert by_msg[repr(p9.Twalk(0, 11, (b"missing", b"x")))] == p9.Rlerror(errno.ENOENT)
    assert got[script.index(p9.Tgetattr(12, A))].qid.path == os.stat(tree / "dir" / "sub").st_ino


async def test_walkgetattr_in_c_answers_like_python(tree, monkeypatch) -> None:
    """Twalkgetattr (our dialect): one name and several, part of the way, errors, a symlink,
    `..`; then getattr, walks and opens of what it made."""
    W = p9.Twalkgetattr
    script = [
        ROOT,
        W(0, 1, (b"data",)), p9.Tgetattr(1, A), W(0, 2, (b"dir", b"sub")), W(0, 3, (b"link",)),
        W(0, 4, (b"missing",)), W(0, 4, (b"dir", b"missing")), W(0, 4, (b"data", b"x")),
        W(0, 4, (b"dir", b"..", b"data")), W(0, 1, (b"data",)),  # `..`; newfid in use
        W(2, 5, (b"deep",)),  # from a fid C owns: adopted first
        p9.Twalk(2, 6, (b"..",)), p9.Tgetattr(6, A), p9.Tlopen(1, os.O_RDONLY),
        p9.Tread(1, 0, 100), W(0, 7, (b"n\xffme",)), p9.Tclunk(7),
        p9.Tclunk(6), p9.Tclunk(5), p9.Tclunk(3), p9.Tclunk(2), p9.Tclunk(1), p9.Tclunk(0),
    ]
    got = await _both(str(tree), script, monkeypatch, version=p9.RUNPSC)
    st = os.stat(tree / "data")
    assert got[1].valid & p9.GetattrMask.BASIC == p9.GetattrMask.BASIC
    assert got[1].attr.size == st.st_size and got[1].qids[0].path == st.st_ino
    assert len(got[3].qids) == 2 and got[4].attr.mode == os.lstat(tree / "link").st_mode
    assert got[5] == p9.Rlerror(errno.ENOENT)
    assert got[6].valid == 0 and len(got[6].qids) == 1  # part of the way: no attributes
    assert got[script.index(p9.Tread(1, 0, 100))] == p9.Rread(b"hello, 9P")
    # Over plain 9P2000.L there is no Twalkgetattr, C or not.
    plain = await _both(str(tree), [ROOT, p9.Twalk(0, 1, (b"data",)), W(0, 2, (b"data",))],
                        monkeypatch)
    assert plain[2] == p9.Rlerror(errno.EOPNOTSUPP)


async def test_fids_c_walked_to_serve_every_other_request(tree, monkeypatch) -> None:
    """Open, read, readdir, walk '..' and setattr on fids the C loop made; a parent
    clunked before its C-walked child is used; a name that is not UTF-8."""
    script = [
        ROOT,
        p9.Twalk(0, 1, (b"n\xffme",)), p9.Tlopen(1, os.O_RDONLY), p9.Tread(1, 0, 100),
        p9.Twalk(0, 2, (b"dir",)), p9.Tlopen(2, os.O_RDONLY | os.O_DIRECTORY),
        p9.Twalk(0, 3, (b"dir", b"sub")),  # Python's (two names): a walk source
        p9.Twalk(3, 4, (b"deep",)),  # C's, its parent Python's
        p9.Tclunk(3),  # the parent goes first: 4 is adopted before, keeps its ancestry
        p9.Twalk(4, 5, (b"..",)), p9.Tgetattr(5, A), p9.Twalk(4, 6, (b"..", b"..")),
        p9.Tgetattr(6, A),
        p9.Twalk(0, 7, (b"data",)), p9.Tsetattr(7, p9.SetattrMask.MODE, p9.SetAttr(mode=0o640)),
        p9.Tgetattr(7, A),
        p9.Twalk(0, 8, (b"dir",)), p9.Treaddir(8, 0, 4096),  # not open: Python's EBADF
        p9.Tclunk(1), p9.Tclunk(2), p9.Tclunk(4), p9.Tclunk(5), p9.Tclunk(6), p9.Tclunk(7),
    ]
    got = await _both(str(tree), script, monkeypatch)
    assert got[3] == p9.Rread(b"not utf-8")
    assert got[script.index(p9.Tgetattr(5, A))].qid.path == os.stat(tree / "dir" / "sub").st_ino
    assert got[script.index(p9.Tgetattr(6, A))].qid.path == os.stat(tree / "dir").st_ino
    assert got[script.index(p9.Tgetattr(7, A))].attr.mode & 0o777 == 0o640


async def test_session_reset_and_disconnect_close_what_c_holds(tree, monkeypatch) -> None:
    before = open_fds()
    walks = [p9.Twalk(0, fid, (b"data",)) for fid in range(1, 9)]
    script = [ROOT, *walks, p9.Tversion(1 << 16, p9.PLAIN.version), ROOT, *walks]
    got = await _both(str(tree), script, monkeypatch)
    assert all(isinstance(r, p9.Rwalk) for r in got[1:9])
    assert open_fds() == before  # C's descriptors closed at Tversion and at the end


async def test_c_walks_stay_within_the_fid_budget(tree, monkeypatch) -> None:
    script = [ROOT, *(p9.Twalk(0, fid, (b"data",)) for fid in range(1, 8)),
              p9.Tclunk(2), p9.Twalk(0, 20, (b"dir",)), p9.Twalk(0, 21, (b"dir",))]
    got = await _both(str(tree), script, monkeypatch, options=GoferOptions(max_fids=5))
    assert [type(r).__name__ for r in got[1:8]] == ["Rwalk"] * 4 + ["Rlerror"] * 3
    assert got[5] == p9.Rlerror(errno.EMFILE)
    assert isinstance(got[-2], p9.Rwalk) and got[-1] == p9.Rlerror(errno.EMFILE)


async def test_c_walks_with_each_fids_own_identity(tree, monkeypatch) -> None:
    """Two users on one connection: each walk runs with its fid's user (C declines a walk
    whose user is not the thread's current one, and Python switches)."""
    need_root()
    private = tree / "private"
    private.mkdir(mode=0o700)
    (private / "f").write_bytes(b"root's")
    nobody = p9.Tattach(1, p9.NOFID, b"nobody", b"e", 65534)
    script = [
        ROOT, nobody,
        p9.Twalk(0, 2, (b"private",)), p9.Twalk(2, 3, (b"f",)),  # root: allowed
        p9.Twalk(1, 4, (b"private",)), p9.Twalk(4, 5, (b"f",)),  # nobody: EACCES in it
        p9.Twalk(0, 6, (b"private",)), p9.Twalk(6, 7, (b"f",)),  # root again
        p9.Twalk(4, 8, (b"f",)), p9.Tgetattr(3, A), p9.Tgetattr(7, A),
    ]
    got = await _both(str(tree), script, monkeypatch, policy={"allsquash": False})
    assert isinstance(got[3], p9.Rwalk) and isinstance(got[7], p9.Rwalk)
    assert got[5] == got[8] == p9.Rlerror(errno.EACCES)


async def test_a_mount_point_inside_the_export_looks_absent(tree, monkeypatch) -> None:
    need_root()
    mnt = tree / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(mnt)]).returncode != 0:
        pytest.fail("cannot mount a tmpfs (root without CAP_SYS_ADMIN?)")
    try:
        got = await _both(str(tree), [ROOT, p9.Twalk(0, 1, (b"mnt",)), p9.Twalk(0, 2, (b"data",))],
                          monkeypatch)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert got[1] == p9.Rlerror(errno.ENOENT)
