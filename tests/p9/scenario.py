"""One filesystem scenario run twice: through a 9P peer (PathFS) and natively with os.*.

Each step has a 9P half and a native half; results (values, or ('err', errno)) must match.
Peers differ a little (diod lets `..` climb above the export; not every server has
xattrs), so options switch individual steps off, and the caller says why.
"""

from __future__ import annotations

import os
import stat

import p9

BIG = bytes(range(256)) * 1200  # 300 KiB: several Tread/Twrite messages at msize 64 KiB
ODD_NAME = b"caf\xe9-\xff\xfe"  # not valid UTF-8


def populate(root: str) -> None:
    """The same starting tree for the export and the native oracle."""
    with open(os.path.join(root, "f"), "wb") as fh:
        fh.write(b"hello 9p\n")
    os.mkdir(os.path.join(root, "many"))
    for i in range(300):
        open(os.path.join(root, "many", f"entry-{i:04d}-" + "x" * 40), "wb").close()


async def _outcome(coro) -> object:
    try:
        return await coro
    except OSError as e:
        return ("err", e.errno)


def _native(fn, *a) -> object:
    try:
        return fn(*a)
    except OSError as e:
        return ("err", e.errno)


def _st(st_mode: int, size: int, nlink: int) -> tuple:
    return (stat.S_IFMT(st_mode), stat.S_IMODE(st_mode), size if not stat.S_ISDIR(st_mode) else -1, nlink)


async def run(fs: p9.PathFS, native: str, *, xattrs: bool = True, odd_names: bool = True) -> list:
    """Run every step; return the list of (step, ours, native) that differ."""
    N = os.fsencode(native)

    def n(p: str | bytes) -> bytes:
        return os.path.join(N, os.fsencode(p))

    async def nstat(p):
        s = await fs.stat(p)
        return _st(s.attr.mode, s.attr.size, s.attr.nlink)

    def lstat(p):
        s = os.lstat(n(p))
        return _st(s.st_mode, s.st_size, s.st_nlink)

    def nread(p):
        with open(n(p), "rb") as fh:
            return fh.read()

    def nwrite(p, data):
        with open(n(p), "wb") as fh:
            return fh.write(data)

    def nlist(p=b""):
        return sorted(os.listdir(n(p)))

    async def list9(p=b""):
        return sorted(await fs.listdir(p))

    def nutime(p, t):
        os.utime(n(p), ns=t, follow_symlinks=False)
        return os.lstat(n(p)).st_mtime_ns

    async def utime9(p, t):
        await fs.utime(p, t)
        return (await fs.stat(p)).attr.mtime_sec * 10**9 + (await fs.stat(p)).attr.mtime_nsec

    async def fsync9(p):
        async with await fs.walk(p) as f:
            await f.open(os.O_RDWR)
            await f.fsync()
            return await f.write(0, b"H")

    def nfsync(p):
        fd = os.open(n(p), os.O_RDWR)
        try:
            os.fsync(fd)
            return os.pwrite(fd, b"H", 0)
        finally:
            os.close(fd)

    async def write9(p, data):
        return await fs.write_file(p, data)

    async def big9(p):
        await fs.write_file(p, BIG)
        return await fs.read_file(p)

    def nbig(p):
        nwrite(p, BIG)
        return nread(p)

    async def mkdir9(p, mode):
        await fs.mkdir(p, mode)
        return await nstat(p)

    def nmkdir(p, mode):
        os.mkdir(n(p), mode)
        return lstat(p)

    steps = [
        ("listdir root", list9(), lambda: nlist()),
        ("listdir 300 entries", list9("many"), lambda: nlist("many")),
        ("read small", fs.read_file("f"), lambda: nread("f")),
        ("write+read 300KiB", big9("big"), lambda: nbig("big")),
        ("stat big", nstat("big"), lambda: lstat("big")),
        ("overwrite", write9("f", b"second\n"), lambda: nwrite("f", b"second\n")),
        ("fsync+pwrite", fsync9("f"), lambda: nfsync("f")),
        ("read after", fs.read_file("f"), lambda: nread("f")),
        ("mkdir 0750", mkdir9("d", 0o750), lambda: nmkdir("d", 0o750)),
        ("mkdir exists", fs.mkdir("d"), lambda: os.mkdir(n("d"))),
        ("symlink", fs.symlink("../f", "d/l"), lambda: os.symlink("../f", n("d/l"))),
        ("readlink", fs.readlink("d/l"), lambda: os.readlink(n("d/l"))),
        ("stat symlink", nstat("d/l"), lambda: lstat("d/l")),
        ("link", fs.link("f", "hard"), lambda: os.link(n("f"), n("hard"))),
        ("nlink 2", nstat("f"), lambda: lstat("f")),
        ("rename into dir", fs.rename("big", "d/moved"), lambda: os.rename(n("big"), n("d/moved"))),
        ("listdir d", list9("d"), lambda: nlist("d")),
        ("chmod", fs.chmod("d/moved", 0o600), lambda: os.chmod(n("d/moved"), 0o600)),
        ("truncate", fs.truncate("d/moved", 1000), lambda: os.truncate(n("d/moved"), 1000)),
        ("stat moved", nstat("d/moved"), lambda: lstat("d/moved")),
        ("utime", utime9("f", (10**18, 1234567890123456789)),
         lambda: nutime("f", (10**18, 1234567890123456789))),
        ("unlink hard", fs.unlink("hard"), lambda: os.unlink(n("hard"))),
        ("nlink 1", nstat("f"), lambda: lstat("f")),
        ("rmdir non-empty", fs.rmdir("d"), lambda: os.rmdir(n("d"))),
        ("unlink missing", fs.unlink("nope"), lambda: os.unlink(n("nope"))),
        ("unlink a dir", fs.unlink("many"), lambda: os.unlink(n("many"))),
        ("rename missing", fs.rename("nope", "x"), lambda: os.rename(n("nope"), n("x"))),
        ("walk through file", fs.stat("f/x"), lambda: os.lstat(n("f/x"))),
        ("stat missing", fs.stat("d/nope"), lambda: os.lstat(n("d/nope"))),
        ("replace by rename", fs.rename("d/moved", "f"), lambda: os.rename(n("d/moved"), n("f"))),
        ("stat replaced", nstat("f"), lambda: lstat("f")),
        ("unlink symlink", fs.unlink("d/l"), lambda: os.unlink(n("d/l"))),
        ("rmdir", fs.rmdir("d"), lambda: os.rmdir(n("d"))),
        ("listdir end", list9(), lambda: nlist()),
    ]
    if odd_names:
        steps += [
            ("non-UTF-8 name", write9(ODD_NAME, b"odd"), lambda: nwrite(ODD_NAME, b"odd")),
            ("read non-UTF-8", fs.read_file(ODD_NAME), lambda: nread(ODD_NAME)),
            ("listdir with odd", list9(), lambda: nlist()),
        ]
    if xattrs:
        steps += [
            ("setxattr", fs.setxattr("f", "user.k", b"v\x00\xff"),
             lambda: os.setxattr(n("f"), "user.k", b"v\x00\xff")),
            ("getxattr", fs.getxattr("f", "user.k"), lambda: os.getxattr(n("f"), "user.k")),
            ("listxattr", fs.listxattr("f"),
             lambda: [x.encode() for x in os.listxattr(n("f"))]),
            ("getxattr missing", fs.getxattr("f", "user.none"),
             lambda: os.getxattr(n("f"), "user.none")),
            ("removexattr", fs.removexattr("f", "user.k"), lambda: os.removexattr(n("f"), "user.k")),
            ("listxattr empty", fs.listxattr("f"),
             lambda: [x.encode() for x in os.listxattr(n("f"))]),
        ]
    diffs = []
    for name, ours_coro, native_fn in steps:
        ours = await _outcome(ours_coro)
        theirs = _native(native_fn)
        if isinstance(theirs, int) and ours is None:
            ours = theirs  # os.write-like natives return counts where PathFS returns None
        if ours != theirs and not (ours is None and theirs is None):
            diffs.append((name, ours, theirs))
    return diffs


def tree(root: str) -> dict:
    """Snapshot a native tree: relative path → (type, mode, size, content or link target)."""
    out = {}
    rootb = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(rootb):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, rootb)
            if stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    body = fh.read()
            else:
                body = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                        st.st_size if not stat.S_ISDIR(st.st_mode) else -1, body)
    return out
