"""What the conformance suite cannot express, checked on the VFS directly against the
answers Linux gives (the conformance suite runs everything else: tests/conformance).

- utimensat with an invalid nanosecond field or unknown flags: the suite's targets take
  times as integers of nanoseconds and a follow flag, so neither can be spelled.
- lseek(SEEK_END) on a directory: tmpfs answers EINVAL (ours too), ext4 LLONG_MAX, so the
  suite's oracle (any host filesystem) cannot fix one answer.
"""

from __future__ import annotations

import errno
import os

import pytest

from vfs import Credentials
from vfs.abi import O_CREAT, O_DIRECTORY, O_RDONLY, O_WRONLY

from .helpers import KINDS, layered

C = Credentials.root()
_NS = 1_000_000_000


@pytest.mark.parametrize("kind", KINDS)
async def test_utimensat_rejects_bad_nanoseconds_and_flags(kind: str, tmp_path) -> None:
    async with layered(kind, tmp_path) as (v, _):
        ctx = v.new_context()
        fd = await v.open(ctx, C, None, b"/t/f", O_CREAT | O_WRONLY, 0o644)
        await fd.dec_ref()
        for times, flags in ((((0, _NS), (0, 0)), 0), (((0, -1), (0, 0)), 0), (None, 0x8000)):
            with pytest.raises(OSError) as e:
                await v.utimensat(ctx, C, None, b"/t/f", times, flags)
            assert e.value.errno == errno.EINVAL, (times, flags)


@pytest.mark.parametrize("kind", KINDS)
async def test_seek_end_on_a_directory_is_einval_as_on_tmpfs(kind: str, tmp_path) -> None:
    async with layered(kind, tmp_path) as (v, _):
        ctx = v.new_context()
        await v.mkdirat(ctx, C, None, b"/t/d", 0o755)
        fd = await v.open(ctx, C, None, b"/t/d", O_RDONLY | O_DIRECTORY)
        try:
            with pytest.raises(OSError) as e:
                await fd.seek(0, os.SEEK_END)
            assert e.value.errno == errno.EINVAL
        finally:
            await fd.dec_ref()
