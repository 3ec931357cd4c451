"""`runpsc do` run by an unprivileged user: its gofers confine themselves inside user
namespaces of their own, and the program runs as that user, compared with the same command
run natively as that user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gofer.helpers import need_rootless

#: A user with no privileges (scripts/setup.sh gives it a passwd entry and a subordinate id
#: range, which its confined Sentry runs as). Not nobody (65534): that is also the id a
#: user namespace shows for owners it does not map (root's files, seen by the gofers), which
#: would make the program the owner of /etc/passwd in the sandbox's view.
USER = 4321
AS_USER = ("setpriv", "--reuid", str(USER), "--regid", str(USER), "--clear-groups")


@pytest.fixture
def vol() -> Iterator[Path]:
    need_rootless()
    d = Path(tempfile.mkdtemp(prefix="runpsc-rootless-"))
    os.chmod(d, 0o755)
    (d / "data").write_bytes(b"the user's data\n")
    os.chown(d / "data", USER, USER)
    os.chown(d, USER, USER)
    yield d
    shutil.rmtree(d)


def as_user(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*AS_USER, *argv], cwd=cwd, capture_output=True, timeout=180,
                          stdin=subprocess.DEVNULL)


def test_do_as_an_unprivileged_user_like_native(vol: Path) -> None:
    script = ("id; cat data; echo made > new; cat new; ls -n new | cut -d' ' -f3-4; "
              "head -1 /etc/os-release; touch /etc/passwd 2>&1 || echo refused; "
              "cat /etc/shadow 2>&1 || echo refused")
    want = as_user("sh", "-c", script, cwd=vol)
    (vol / "new").unlink()
    got = as_user(sys.executable, "-m", "runtime.cli", "do", "--volume", f"{vol}:{vol}", "--cwd", str(vol),
                    "--", "sh", "-c", script, cwd=vol)
    assert got.returncode == want.returncode == 0, got.stderr.decode(errors="replace")
    assert got.stdout == want.stdout, got.stderr.decode(errors="replace")
    assert os.stat(vol / "new").st_uid == USER
