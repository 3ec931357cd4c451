"""Sentry behaviour compared with Linux: a NULL dereference dies with SIGSEGV as natively,
an unsupported syscall gets ENOSYS and a visible event, and the --strace lines equal real
strace's for the same program.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile

import pytest

from tests.sentry.progs.harness import build, native, sentry_run
from tests.support import need_binary


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("progs")
    return {name: build(tmp, name) for name in ("nullderef", "enosys", "straceme")}


def _shm_dir() -> str:
    return tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")


async def test_null_deref_is_sigsegv(bins):
    want = native([bins["nullderef"]])
    got = await sentry_run([bins["nullderef"]])
    assert want.status == signal.SIGSEGV and want.stdout == b"before\n"
    assert got.status == want.status
    assert got.stdout == want.stdout
    assert got.code == 128 + signal.SIGSEGV


async def test_unsupported_syscall_is_enosys_and_reported(bins):
    want = native([bins["enosys"]])
    got = await sentry_run([bins["enosys"]])
    assert got.code == want.code == 7
    assert got.stdout.decode().splitlines() == [
        "kexec_file_load = -1 ENOSYS",
        "syscall 1000 = -1 ENOSYS",
    ]
    assert b"syscall 1000 = -1 ENOSYS" in want.stdout
    names = [fields.get("name") for ev, fields in got.events if ev == "unsupported-syscall"]
    assert "kexec_file_load" in names


_TRACED = ("open", "openat", "write", "read", "pread64", "close", "fstat", "newfstatat",
           "lseek", "mkdir", "rename", "unlink", "access", "symlink", "readlink", "pipe2",
           "dup2", "fcntl", "rmdir", "getcwd", "chdir")


def _norm(lines: list[str]) -> list[str]:
    """The program's own file syscalls (from its chdir on), without durations and addresses,
    which differ between runs."""
    out = []
    start = next(i for i, line in enumerate(lines) if line.startswith("chdir("))
    for line in lines[start:]:
        name = line.split("(", 1)[0]
        if name not in _TRACED:
            continue
        line = re.sub(r" <\d+\.\d+>$", "", line)
        line = re.sub(r"0x[0-9a-f]+", "ADDR", line)
        out.append(line)
    return out


async def test_strace_lines_match_strace(bins, tmp_path):
    strace = need_binary("strace")
    d = _shm_dir()
    trace = tmp_path / "native.trace"
    try:
        subprocess.run([strace, "-qq", "-o", str(trace), bins["straceme"], d], check=True)
    finally:
        shutil.rmtree(d)
    want = _norm(trace.read_text().splitlines())
    # strace shows our chdir argument; use the same directory name in the sandbox.
    lines: list[str] = []
    got = await sentry_run([bins["straceme"], d], dirs=("/tmp", d),
                           strace=lines)
    assert got.code == 0
    assert _norm(lines) == want
    assert any(line.startswith("exit_group(0)") and line.endswith("= ?") for line in lines)
