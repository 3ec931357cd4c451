"""busybox-static applets under the Sentry compared with native runs (stdout and status).

Every applet of the issue's list that needs no fork runs twice on the same data: natively
in a fresh tmpfs directory (/dev/shm) and in the sandbox in a copy of it under /tmp (tmpfs),
with identical file times; commands use relative paths so their output can match byte for
byte. Stateful sequences (mkdir/cp/mv/ln/rm, tar and gzip there and back, dd) run step by
step in both places and every step is compared.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tests.sentry.progs.harness import Session, fix_times, native
from tests.support import need_binary

LINES = "\n".join([
    "banana 3 yellow", "apple 1 red", "apple 1 red", "cherry 7 dark red", "date 2 brown",
    "elderberry 5 black", "fig 4 purple", "grape 6 green", "grape 6 green", "kiwi 9 brown",
    "lemon 8 yellow needle", "mango 10 orange",
]) + "\n"
PASSWD = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n" \
         "alice:x:1000:1000:Alice:/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"

#: (argv after the applet name's path, stdin, compare sorted lines?)
SIMPLE: list[tuple[list[str], bytes | None, bool]] = [
    (["echo", "hello", "world"], None, False),
    (["cat", "a.txt", "sub/b.txt"], None, False),
    (["ls", "-l", "sub/b.txt", "sub/c.dat", "sub/link"], None, False),
    (["ls", "-la", "sub"], None, False),
    (["ls", "-R", "sub"], None, False),
    (["ls", "-1", "sub/deep", "missing"], None, False),
    (["wc", "a.txt", "passwd.txt", "sub/c.dat"], None, False),
    (["head", "-n", "3", "a.txt"], None, False),
    (["tail", "-n", "2", "a.txt"], None, False),
    (["sort", "a.txt"], None, False),
    (["sort", "-r", "-n", "-k2", "a.txt"], None, False),
    (["uniq", "-c", "a.txt"], None, False),
    (["md5sum", "a.txt", "sub/c.dat"], None, False),
    (["sha256sum", "a.txt", "sub/c.dat", "sub/link"], None, False),
    (["find", "."], None, True),
    (["find", ".", "-type", "f", "-name", "*.txt"], None, True),
    (["grep", "-n", "red", "a.txt"], None, False),
    (["grep", "-r", "needle", "."], None, True),
    (["grep", "-c", "nothing-matches", "a.txt"], None, False),
    (["sed", "s/a/A/g;3d", "a.txt"], None, False),
    (["awk", "-F:", "{ n += $3 } END { print NR, n }", "passwd.txt"], None, False),
    (["awk", "{ print $2, $1 }", "a.txt"], None, False),
    (["tr", "a-z", "A-Z"], LINES.encode(), False),
    (["cut", "-d:", "-f1,3", "passwd.txt"], None, False),
    (["seq", "1", "3", "20"], None, False),
    (["stat", "-c", "%n %s %a %F %h %U %G %Y", "a.txt", "sub/link", "sub/deep/d.txt"],
     None, False),
    (["stat", "-c", "%n %s %a %F %h %U %G %Y", "sub", "sub/deep"], None, False),
    (["stat", "-L", "-c", "%n %s %F", "sub/link"], None, False),
    (["du", "-a", "sub"], None, True),
    (["dd", "if=a.txt", "bs=7", "skip=2", "count=3"], None, False),
]

#: Outputs that follow readdir order: vfs tmpfs differs from Linux here.
DIR_LAYOUT: list[list[str]] = [
    ["tar", "cf", "-", "sub"],
]

#: Stateful steps in a scratch directory "w" (relative paths), each compared.
STEPS: list[list[str]] = [
    ["mkdir", "-p", "x/y/z"],
    ["cp", "../a.txt", "x/"],
    ["cp", "-r", "../sub", "x/y/"],
    ["mv", "x/a.txt", "x/moved.txt"],
    ["ln", "-s", "moved.txt", "x/sym"],
    ["ln", "x/moved.txt", "x/hard"],
    ["ls", "-R", "x"],
    ["stat", "-c", "%n %s %a %h %F", "x/moved.txt", "x/sym", "x/hard"],
    ["stat", "-c", "%n %s %a %h %F", "x/y/sub", "x/y/z"],
    ["cat", "x/sym"],
    ["rm", "x/y/sub/c.dat"],
    ["rmdir", "x/y/z"],
    ["rmdir", "x/y"],
    ["ls", "-R", "x"],
    ["rm", "-r", "x"],
    ["ls", "-a"],
    ["dd", "if=../sub/c.dat", "of=dd.out", "bs=100", "count=5", "seek=1"],
    ["md5sum", "dd.out"],
    ["tar", "cf", "t.tar", "-C", "..", "sub", "a.txt"],
    ["tar", "tf", "t.tar", "a.txt", "sub/deep/d.txt"],
    ["gzip", "t.tar"],
    ["ls", "-1"],
    ["gunzip", "t.tar.gz"],
    ["mkdir", "out"],
    ["tar", "xf", "t.tar", "-C", "out"],
    ["ls", "-R", "out"],
    ["stat", "-c", "%n %s %a %Y", "out/a.txt", "out/sub/b.txt", "out/sub/c.dat",
     "out/sub/deep/d.txt"],
    ["md5sum", "out/a.txt", "out/sub/b.txt", "out/sub/c.dat", "out/sub/deep/d.txt"],
    ["gzip", "-c", "out/a.txt"],
]


def _make_data(root: str) -> None:
    os.makedirs(f"{root}/sub/deep")
    with open(f"{root}/a.txt", "w") as f:
        f.write(LINES)
    with open(f"{root}/passwd.txt", "w") as f:
        f.write(PASSWD)
    with open(f"{root}/sub/b.txt", "w") as f:
        f.write("the b file\nwith a needle in it\n")
    with open(f"{root}/sub/c.dat", "wb") as f:
        f.write(bytes((i * 7 + 3) % 256 for i in range(3000)))
    with open(f"{root}/sub/deep/d.txt", "w") as f:
        f.write("deep\n")
    os.symlink("b.txt", f"{root}/sub/link")
    os.chmod(f"{root}/sub/c.dat", 0o600)
    os.chmod(f"{root}/sub/deep", 0o750)
    os.mkdir(f"{root}/w")


@pytest.fixture(scope="module")
def busybox():
    return need_binary("busybox", "busybox-static")


@pytest.fixture
def native_dir():
    d = tempfile.mkdtemp(prefix="runpsc-bb-", dir="/dev/shm")
    data = f"{d}/data"
    _make_data(data)
    fix_times(data)
    yield data
    shutil.rmtree(d)


async def _session(native_data: str) -> Session:
    s = await Session.start(dirs=("/tmp", "/etc"))
    for name in ("passwd", "group"):
        with open(f"/etc/{name}", "rb") as f:
            data = f.read()
        from vfs.abi import O_CREAT, O_WRONLY

        fd = await s.vfs.open(s.ctx, s.creds, None, f"/etc/{name}".encode(), O_CREAT | O_WRONLY,
                              0o644)
        await fd.write(data)
        await fd.dec_ref()
    await s.copy_in(native_data, "/tmp/data")
    return s


def _same(want, got, argv, sort: bool) -> None:
    w, g = want.stdout.decode(errors="replace"), got.stdout.decode(errors="replace")
    if sort:
        w, g = sorted(w.splitlines()), sorted(g.splitlines())
    assert (g, got.code) == (w, want.code), f"{argv}: stderr {got.stderr!r}"


async def test_applets_match_native(busybox, native_dir):
    s = await _session(native_dir)
    for argv, stdin, sort in SIMPLE:
        want = native([busybox, *argv], stdin=stdin, cwd=native_dir)
        got = await s.run([busybox, *argv], cwd="/tmp/data", stdin=stdin)
        _same(want, got, argv, sort)


async def test_stateful_steps_match_native(busybox, native_dir):
    s = await _session(native_dir)
    wdir = f"{native_dir}/w"
    for argv in STEPS:
        want = native([busybox, *argv], cwd=wdir)
        got = await s.run([busybox, *argv], cwd="/tmp/data/w")
        _same(want, got, argv, False)
    host = open(f"{wdir}/dd.out", "rb").read()  # noqa: SIM115
    assert await s.read_file("/tmp/data/w/dd.out") == host


async def test_directory_layout_matches_native(busybox, native_dir):
    s = await _session(native_dir)
    for argv in DIR_LAYOUT:
        want = native([busybox, *argv], cwd=native_dir)
        got = await s.run([busybox, *argv], cwd="/tmp/data")
        _same(want, got, argv, False)
