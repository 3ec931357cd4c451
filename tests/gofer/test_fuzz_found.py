"""What the 9P fuzzer (test_fuzz_9p.py) found in the gofer:

- Tmknod with a device number that does not fit the kernel's 32-bit dev_t made the gofer
  fail internally (os.makedev overflowed: Rlerror EIO and a logged traceback) where
  mknod(2) through glibc answers EINVAL (compared with a native mknod).
- An xattr name with a NUL in it (Tgetxattr, Txattrwalk, Tsetxattr, Tremovexattr, and the
  commit of a Txattrcreate at Tclunk): an internal error (EIO and a traceback). No native
  call can pass such a name (the kernel takes a C string); it is refused with EINVAL, as
  the gofer refuses a file name with a NUL.
- Tsetxattr with flags beyond a C int: an internal error (os.setxattr overflowed); Linux's
  setxattr answers EINVAL for any flag but XATTR_CREATE/XATTR_REPLACE (compared with a
  native setxattr with an unknown flag).
- Twrite at an offset beyond loff_t, and Tlock/Tgetlock with a start or length of 2^63 or
  more: internal errors (os.pwrite and the struct flock overflowed). A write there is
  EINVAL (pwrite(2) with a negative offset); lock fields are the client's signed l_start
  and l_len and get the kernel's answer for them (a negative length is the bytes before
  start), compared with native fcntl(F_OFD_SETLK/GETLK) and pwrite.
- Tgetattr of a file whose times are before 1970 (a Tsetattr may set them): an internal
  error (a negative second in a u64 field). They go as a C server sends a time_t, the u64
  of its two's complement (compared with the native stat).
- Tmknod with a mode beyond a C int: an internal error; the kernel keeps the low 16 bits
  (umode_t) of a C caller's mode (compared with a native mknod through libc).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
import tempfile

import pytest

import p9
from gofer.host import Export
from gofer.serve import GoferOptions, serve_stream
from tests.gofer.helpers import gofer_fs
from tests.p9.fuzz9p import ErrorLog
from tests.p9.test_ours import _raw
from tests.support import need_root


def _glibc_makedev(major: int, minor: int) -> int:
    """gnu_dev_makedev: the 64-bit dev_t glibc builds (and refuses when over 32 bits)."""
    return ((major & 0xFFFFF000) << 32) | ((major & 0xFFF) << 8) | \
        ((minor & 0xFFFFFF00) << 12) | (minor & 0xFF)


@pytest.mark.parametrize(("major", "minor"), [(1 << 31, 0), (0xFFFFFFFF, 0xFFFFFFFF),
                                              (0x1000, 0), (0, 0x100000), (1, 3)])
async def test_mknod_device_numbers_match_native(tmp_path, major, minor):
    need_root()
    native_dir, exp = tmp_path / "native", tmp_path / "e"
    native_dir.mkdir()
    exp.mkdir()
    mode = stat.S_IFIFO | 0o644
    try:
        os.mknod(native_dir / "n", mode, _glibc_makedev(major, minor))
        want: p9.Message | int = 0
    except OSError as e:
        want = e.errno
    with ErrorLog() as log:
        async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
            a, b = p9.socketpair()
            nursery.start_soon(serve_stream, b, fs, GoferOptions())
            async with a:
                await _raw(a, 0xFFFF, p9.Tversion(1 << 16, p9.PLAIN.version))
                await _raw(a, 0, p9.Tattach(0, p9.NOFID, b"root", b"e", 0))
                _, got = await _raw(a, 1, p9.Tmknod(0, b"n", mode, major, minor, 0))
    assert log.records == []
    if want:
        assert got == p9.Rlerror(want)
        assert want == errno.EINVAL and not (exp / "n").exists()
    else:
        assert isinstance(got, p9.Rmknod) and stat.S_ISFIFO(os.lstat(exp / "n").st_mode)


async def test_xattr_names_with_a_nul_are_refused():
    need_root()
    exp = tempfile.mkdtemp(prefix="runpsc-xattr-")
    try:
        with ErrorLog() as log:
            async with gofer_fs([Export("e", exp)]) as (fs, nursery):
                a, b = p9.socketpair()
                nursery.start_soon(serve_stream, b, fs, GoferOptions())
                async with a:
                    await _raw(a, 0xFFFF, p9.Tversion(1 << 16, p9.RUNPSC))
                    await _raw(a, 0, p9.Tattach(0, p9.NOFID, b"root", b"e", 0))
                    name = b"user.a\x00b"
                    got = [(await _raw(a, 1, m))[1] for m in (
                        p9.Tgetxattr(0, name, 0), p9.Txattrwalk(0, 1, name),
                        p9.Tsetxattr(0, name, b"v", 0), p9.Tremovexattr(0, name),
                        p9.Twalk(0, 2, ()), p9.Txattrcreate(2, name, 1, 0),
                        p9.Twrite(2, 0, b"v"), p9.Tclunk(2))]
        assert log.records == []
        einval = p9.Rlerror(errno.EINVAL)
        assert got[:4] == [einval] * 4 and got[7] == einval
        assert os.listxattr(exp) == []
    finally:
        os.rmdir(exp)


@pytest.mark.parametrize("flags", [1 << 31, 0xFFFFFFFF, 4])
async def test_setxattr_flags_match_native(tmp_path, flags):
    need_root()
    native_file, exp = tmp_path / "native", tmp_path / "e"
    native_file.write_bytes(b"")
    exp.mkdir()
    with pytest.raises(OSError) as info:
        os.setxattr(native_file, "user.x", b"v", 4)  # an unknown flag that fits a C int
    with ErrorLog() as log:
        async with gofer_fs([Export("e", str(exp))]) as (fs, nursery):
            a, b = p9.socketpair()
            nursery.start_soon(serve_stream, b, fs, GoferOptions())
            async with a:
                await _raw(a, 0xFFFF, p9.Tversion(1 << 16, p9.RUNPSC))
                await _raw(a, 0, p9.Tattach(0, p9.NOFID, b"root", b"e", 0))
                _, got = await _raw(a, 1, p9.Tsetxattr(0, b"user.x", b"v", flags))
    assert log.records == []
    assert got == p9.Rlerror(info.value.errno) == p9.Rlerror(errno.EINVAL)


async def _session(exp: str, script: list[p9.Message]) -> list[p9.Message]:
    """Replies to `script` after attaching `exp` and opening its file "f" as fid 1."""
    with ErrorLog() as log:
        async with gofer_fs([Export("e", exp)]) as (fs, nursery):
            a, b = p9.socketpair()
            nursery.start_soon(serve_stream, b, fs, GoferOptions())
            async with a:
                await _raw(a, 0xFFFF, p9.Tversion(1 << 16, p9.PLAIN.version))
                await _raw(a, 0, p9.Tattach(0, p9.NOFID, b"root", b"e", 0))
                await _raw(a, 0, p9.Twalk(0, 1, (b"f",)))
                assert isinstance((await _raw(a, 0, p9.Tlopen(1, os.O_RDWR)))[1], p9.Rlopen)
                got = [(await _raw(a, 1, m))[1] for m in script]
    assert [r.getMessage() for r in log.records] == []
    return got


def _native_errno(call) -> int:
    try:
        call()
    except OSError as e:
        return e.errno
    return 0


@pytest.mark.parametrize(("start", "length"), [
    (1 << 63, 10), ((1 << 64) - 1, 1), (10, (1 << 64) - 1), (10, 1 << 63), (0, 5)])
async def test_lock_ranges_match_native(tmp_path, start, length):
    need_root()
    exp = tmp_path / "e"
    exp.mkdir()
    (exp / "f").write_bytes(b"")
    (tmp_path / "native").write_bytes(b"")
    s64 = [v - (1 << 64) if v >> 63 else v for v in (start, length)]
    fd = os.open(tmp_path / "native", os.O_RDWR)
    try:
        flock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, *s64, 0)
        want_set = _native_errno(lambda: fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock))
        want_get = _native_errno(lambda: fcntl.fcntl(fd, fcntl.F_OFD_GETLK, flock))
    finally:
        os.close(fd)
    got = await _session(str(exp), [
        p9.Tlock(1, p9.LockType.WRLCK, 0, start, length, 1, b"c"),
        p9.Tgetlock(1, p9.LockType.WRLCK, start, length, 1, b"c")])
    assert got[0] == (p9.Rlock(p9.LockStatus.SUCCESS) if not want_set else p9.Rlerror(want_set))
    if want_get:
        assert got[1] == p9.Rlerror(want_get)
    else:
        assert isinstance(got[1], p9.Rgetlock)


@pytest.mark.parametrize("offset", [(1 << 64) - 1, 1 << 63, (1 << 63) - 1])
async def test_write_offsets_match_native(tmp_path, offset):
    need_root()
    exp = tmp_path / "e"
    exp.mkdir()
    (exp / "f").write_bytes(b"")
    (tmp_path / "native").write_bytes(b"")
    signed = offset - (1 << 64) if offset >> 63 else offset
    fd = os.open(tmp_path / "native", os.O_RDWR)
    try:
        want = _native_errno(lambda: os.pwrite(fd, b"x", signed))
    finally:
        os.close(fd)
    got = await _session(str(exp), [p9.Twrite(1, offset, b"x")])
    assert got[0] == p9.Rlerror(want) if want else isinstance(got[0], p9.Rwrite)


async def test_times_before_1970_match_native(tmp_path):
    need_root()
    exp = tmp_path / "e"
    exp.mkdir()
    (exp / "f").write_bytes(b"")
    os.utime(exp / "f", ns=(-5_500_000_000, -1))
    st = os.stat(exp / "f")
    got = await _session(str(exp), [p9.Tgetattr(1, p9.GetattrMask.BASIC),
                                    p9.Tgetattr(1, p9.GetattrMask.ALL)])
    for reply in got:
        assert isinstance(reply, p9.Rgetattr)
        signed = [v - (1 << 64) if v >> 63 else v
                  for v in (reply.attr.atime_sec, reply.attr.mtime_sec)]
        assert signed == [st.st_atime_ns // 10**9, st.st_mtime_ns // 10**9] == [-6, -1]
        assert (reply.attr.atime_nsec, reply.attr.mtime_nsec) == (500_000_000, 999_999_999)


@pytest.mark.parametrize("mode", [3938713297, (1 << 32) - 1, 0x10000 | stat.S_IFIFO | 0o644])
async def test_mknod_modes_match_native(tmp_path, mode):
    need_root()
    exp = tmp_path / "e"
    exp.mkdir()
    (exp / "f").write_bytes(b"")
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.mknod(os.fsencode(tmp_path / "n"), ctypes.c_uint(mode), ctypes.c_uint64(0))
    want = ctypes.get_errno() if r < 0 else 0
    got = await _session(str(exp), [p9.Tmknod(0, b"n", mode, 0, 0, 0)])
    if want:
        assert got[0] == p9.Rlerror(want)
    else:
        assert isinstance(got[0], p9.Rmknod)
        assert os.lstat(exp / "n").st_mode == os.lstat(tmp_path / "n").st_mode
