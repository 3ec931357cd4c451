"""Every case in tests/vfs/cases runs on the host kernel (the oracle, a real temporary
directory) and on each VFS target; the results must be identical step by step."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from .cases import ALL
from .ops import HostTarget, run_steps
from .targets import TARGETS, host_base


async def host_results(tmp_path, steps: list[tuple]) -> list:
    top = tempfile.mkdtemp(prefix="runpsc-vfs-oracle-", dir=host_base() or str(tmp_path))
    os.chmod(top, 0o755)
    h = HostTarget(top)
    try:
        return await run_steps(h, steps)
    finally:
        await h.close()
        shutil.rmtree(top)


def diff(steps: list[tuple], want: list, got: list) -> str:
    lines = []
    for step, w, g in zip(steps, want, got, strict=True):
        mark = "  " if w == g else "!!"
        lines.append(f"{mark} {step!r:.70}: host={w!r:.60} ours={g!r:.60}")
    return "\n".join(lines)


#: (case, target) pairs known to differ from the host, with the reason; they must still
#: differ (strict xfail), so a fix shows up.
_NO_SEEK_HOLE = "9P has no SEEK_DATA/SEEK_HOLE: the whole file is data, as with Linux's v9fs"
_NO_TMPFILE = "9P2000.L has no O_TMPFILE (EOPNOTSUPP, as with Linux's v9fs)"
KNOWN = {
    **{("io.sparse_seek_data_hole", t): _NO_SEEK_HOLE
       for t in ("goferfs", "goferfs-shared", "goferfs-diod")},
    **{("io.tmpfile", t): _NO_TMPFILE for t in ("goferfs", "goferfs-shared", "goferfs-diod")},
    **{("layers.lower_hardlinks", t): "overlay copy-up breaks a lower hard link (as Linux's "
       "overlayfs without index=on)" for t in ("overlay", "overlay-gofer")},
    ("io.fallocate", "goferfs-diod"): "plain 9P2000.L has no Tallocate (EOPNOTSUPP)",
    ("xattr.user_xattrs", "goferfs-diod"):
        "plain 9P2000.L cannot create an empty xattr: diod takes Txattrcreate size 0 as removal",
}


def _params() -> list:
    out = []
    for case in sorted(ALL):
        for target in sorted(TARGETS):
            marks = []
            if (case, target) in KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[(case, target)]))
            out.append(pytest.param(case, target, marks=marks, id=f"{case}-{target}"))
    return out


@pytest.mark.parametrize(("case", "target"), _params())
async def test_case_matches_host(case: str, target: str, tmp_path) -> None:
    steps = ALL[case]
    want = await host_results(tmp_path, steps)
    async with TARGETS[target](tmp_path) as t:
        got = await run_steps(t, steps)
    assert got == want, f"{case} on {target}:\n" + diff(steps, want, got)
