"""`mount -t tmpfs` and `umount` (util-linux) as root inside `runpsc do`, compared with the
same commands natively in a private mount namespace (unshare --mount)."""

from __future__ import annotations

from tests.runtime.test_do import runpsc
from tests.support import need_binary, need_root

SCRIPT = ("mkdir -p {d} && mount -t tmpfs -o size=2m,mode=0750 none {d} && "
          "stat -c '%a %F' {d} && df -B1 --output=size,fstype {d} | tail -1 && "
          "echo hi > {d}/f && cat {d}/f && mount -o remount,ro {d} && "
          "(echo no > {d}/g) 2>/dev/null || echo read-only && umount {d} && ls -A {d} | wc -l")


def test_mount_tmpfs_matches_native(tmp_path):
    need_root()
    import subprocess

    unshare = need_binary("unshare", "util-linux")
    need_binary("mount", "mount")
    want = subprocess.run([unshare, "--mount", "sh", "-c", SCRIPT.format(d=tmp_path / "mnt")],
                          capture_output=True, stdin=subprocess.DEVNULL)
    assert want.returncode == 0, want.stderr
    got = runpsc("do", "--", "sh", "-c", SCRIPT.format(d="/tmp/mnt"))
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")
