"""The file syscalls in the Sentry compared with Linux: one C program, identical output.

`progs/fileops.c` exercises the file and directory syscalls of the issue with their errors
(open/read/write family, offsets, stat family, statx, links, renames, attributes, times,
truncate, fallocate, access, cwd, statfs, dup/fcntl/close_range, POSIX/OFD locks, flock,
pipes, ioctls, sendfile, copy_file_range, xattrs, getdents64, EFAULT on bad pointers,
/dev/null and /dev/zero). It runs natively in a fresh tmpfs directory (/dev/shm) and under
the Sentry in a fresh /tmp (tmpfs too); every line must be the same.
"""

from __future__ import annotations

from tests.sentry.progs.harness import build, native_in_scratch, sentry_run


async def test_fileops_matches_native(tmp_path):
    prog = build(tmp_path, "fileops")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/fo"], dirs=("/tmp", "/tmp/fo"))
    assert got.stderr == b""
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0
    assert [e for e in got.events if e[0] != "unsupported-syscall"] == []
