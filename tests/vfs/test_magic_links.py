"""The VFS's magic-link hook (`Filesystem.jump_link`): a symlink whose filesystem hands the
path walk a file rather than a path, followed as Linux's nd_jump_link follows
/proc/PID/fd/N — at the end of a path, in its middle, under O_CREAT, with the errors Linux
gives (ELOOP for O_NOFOLLOW, ENOTDIR for a trailing slash on a file, EISDIR for a
directory opened for writing) — while readlink and lstat still see the link."""

from __future__ import annotations

import errno

import pytest

from vfs import Credentials, Tmpfs, VirtualFilesystem
from vfs.abi import (
    AT_SYMLINK_NOFOLLOW,
    O_CREAT,
    O_EXCL,
    O_NOFOLLOW,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    S_IFLNK,
    S_IFMT,
)
from vfs.fs import pipefs
from vfs.fs.synthetic import DirNode, SymlinkNode, SyntheticFS


@pytest.fixture
async def env():
    v = VirtualFilesystem(Tmpfs())
    pipefs.install(v)
    ctx, c = v.new_context(), Credentials.root()
    await v.mkdirat(ctx, c, None, b"/links", 0o755)
    await v.mkdirat(ctx, c, None, b"/d", 0o755)
    f = await v.open(ctx, c, None, b"/d/file", O_RDWR | O_CREAT, 0o644)
    await f.write(b"the file")
    d = await v.open(ctx, c, None, b"/d", O_RDONLY)
    r, w = pipefs.new_pipe(v, c)
    targets = {b"file": f, b"dir": d, b"pipe": r}
    fs = SyntheticFS(DirNode({name: SymlinkNode(b"text:" + name, jump=lambda fd=fd: fd.vd)
                              for name, fd in targets.items()}))
    await v.mount(ctx, c, fs, None, b"/links")
    return v, ctx, c, f, w


async def test_a_magic_link_opens_the_file_it_stands_for(env) -> None:
    v, ctx, c, f, w = env
    await v.unlinkat(ctx, c, None, b"/d/file")  # no path names it now
    g = await v.open(ctx, c, None, b"/links/file", O_RDONLY)
    assert g is not f and g.vd == f.vd and await g.read(100) == b"the file"
    assert await v.readlinkat(ctx, c, None, b"/links/file") == b"text:file"
    assert (await v.stat(ctx, c, None, b"/links/file", AT_SYMLINK_NOFOLLOW)).mode & S_IFMT == S_IFLNK
    # O_CREAT opens it; O_EXCL, O_NOFOLLOW and a trailing slash fail as on Linux
    h = await v.open(ctx, c, None, b"/links/file", O_WRONLY | O_CREAT, 0o600)
    assert h.vd == f.vd
    for flags, path, code in ((O_WRONLY | O_CREAT | O_EXCL, b"/links/file", errno.EEXIST),
                              (O_RDONLY | O_NOFOLLOW, b"/links/file", errno.ELOOP),
                              (O_RDONLY, b"/links/file/", errno.ENOTDIR),
                              (O_WRONLY | O_CREAT, b"/links/dir", errno.EISDIR)):
        with pytest.raises(OSError) as e:
            await v.open(ctx, c, None, path, flags)
        assert e.value.errno == code, (flags, path)


async def test_a_walk_continues_from_a_magic_link(env) -> None:
    v, ctx, c, f, w = env
    await v.renameat2(ctx, c, None, b"/d", None, b"/moved")
    g = await v.open(ctx, c, None, b"/links/dir/file", O_RDONLY)
    assert await g.read(100) == b"the file"
    st = await v.stat(ctx, c, None, b"/links/dir/")
    assert st.ino == (await v.stat(ctx, c, None, b"/moved")).ino
    with pytest.raises(OSError) as e:
        await v.open(ctx, c, None, b"/links/file/x", O_RDONLY)
    assert e.value.errno == errno.ENOTDIR


async def test_an_anonymous_pipe_reopens_without_waiting(env) -> None:
    v, ctx, c, f, w = env
    r2 = await v.open(ctx, c, None, b"/links/pipe", O_RDONLY)
    w2 = await v.open(ctx, c, None, b"/links/pipe", O_WRONLY)
    await w.write(b"one ")
    await w2.write(b"two")
    assert await r2.read(100) == b"one two"
