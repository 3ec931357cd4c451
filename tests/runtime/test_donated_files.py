"""Donated host files in `runpsc do` (the root's files come from the local gofer with
their host descriptors): reads and private mappings of a root file, a page past the end
of the file (SIGBUS, which only a real mapping of the file gives), a file truncated on the
host while mapped, and what descriptors the program can reach afterwards — each compared
with the same program run natively (tests/sentry/progs/donated_map.c)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.test_do import ROOT, runpsc
from tests.sentry.progs.harness import build
from tests.support import native_child_setup, need_root


@pytest.fixture(scope="module")
def prog(tmp_path_factory) -> str:
    need_root()
    d = tmp_path_factory.mktemp("progs")
    out = build(d, "donated_map", static=False)  # libc is mapped through donation too
    os.chmod(d, 0o755)
    return out


@pytest.fixture
def host_file() -> Iterator[Path]:
    """A 10,000-byte file on a disk directory of the host (the sandbox's root shows it)."""
    d = Path(tempfile.mkdtemp(prefix="runpsc-donated-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    f = d / "data"
    f.write_bytes(bytes((i * 7 + i // 251) & 0xFF for i in range(10_000)))
    try:
        yield f
    finally:
        shutil.rmtree(d)


def _native(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, stdin=subprocess.DEVNULL,
                          preexec_fn=native_child_setup)


@pytest.mark.parametrize("mode", ["read", "fds"])
def test_reads_mappings_and_descriptors_match_native(prog, host_file, mode) -> None:
    want = _native(prog, mode, str(host_file))
    assert want.returncode == 0, want.stderr
    if mode == "read":
        assert b"past the end: signal SIGBUS" in want.stdout
    got = runpsc("do", "--", prog, mode, str(host_file))
    assert (got.stdout, got.returncode) == (want.stdout, 0), got.stderr.decode(errors="replace")


def _truncated_while_mapped(argv: list[str], f: Path) -> tuple[bytes, int]:
    """Run `argv` (donated_map trunc F): once it says the file is mapped, truncate F on
    the host to 100 bytes and let it touch the mapping."""
    f.write_bytes(b"x" * 10_000)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=str(ROOT), preexec_fn=native_child_setup)
    assert p.stdin is not None and p.stdout is not None
    out = b""
    try:
        while not out.endswith(b"mapped\n"):
            line = p.stdout.readline()
            assert line, (out, p.stderr.read() if p.stderr else b"")
            out += line
        os.truncate(f, 100)
        p.stdin.write(b"g")
        p.stdin.close()
        out += p.stdout.read()
        return out, p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_host_truncation_while_mapped_is_sigbus(prog, host_file) -> None:
    want = _truncated_while_mapped([prog, "trunc", str(host_file)], host_file)
    assert b"second page after truncation: signal SIGBUS" in want[0]
    got = _truncated_while_mapped([sys.executable, "-m", "runtime.cli", "do", "--", prog,
                                   "trunc", str(host_file)], host_file)
    assert got == want
