"""A program's stdio that is a host device (the caller's /dev/null, a terminal) is the whole
host's: fchmod of it from the sandbox is EPERM whoever asks, where a native root's fchmod
would change the device node for everyone (a fuzzer inside the sandbox once made the host's
/dev/null mode 0036 this way). Regular files and pipes the caller gave keep Linux's answer
(tests/sentry/test_found.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.runtime.test_do import ROOT
from tests.support import need_root

FCHMOD = ("import os\n"
          "try:\n"
          "    os.fchmod(0, 0o600); print('fchmod ok')\n"
          "except OSError as e:\n"
          "    print('fchmod', e.strerror)\n")


def test_fchmod_of_a_host_device_on_stdin_is_refused(tmp_path: Path) -> None:
    need_root()
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private copy of /dev/null
    os.chmod(node, 0o666)
    with open(node, "rb") as stdin:
        got = subprocess.run([sys.executable, "-m", "runtime.cli", "do", "--", "/usr/bin/python3",
                              "-c", FCHMOD], stdin=stdin, capture_output=True, cwd=str(ROOT),
                             timeout=120)
    assert (got.returncode, got.stdout) == (0, b"fchmod Operation not permitted\n"), got.stderr
    assert stat.S_IMODE(node.stat().st_mode) == 0o666
    # Natively root may: the difference is the point.
    with open(node, "rb") as stdin:
        native = subprocess.run(["/usr/bin/python3", "-c", FCHMOD], stdin=stdin,
                                capture_output=True, timeout=60)
    assert native.stdout == b"fchmod ok\n"
