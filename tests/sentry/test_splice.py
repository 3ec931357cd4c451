"""splice, tee, vmsplice, sendfile and copy_file_range between pipes and files, compared
with Linux (progs/splice.c), errors included."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

from tests.runtime.test_do import runpsc
from tests.sentry.progs.harness import build, native_in_scratch, sentry_run
from tests.support import native_child_setup


async def test_splice_family_matches_native(tmp_path):
    prog = build(tmp_path, "splice")
    want = native_in_scratch(prog)
    assert want.code == 0, want.stderr
    got = await sentry_run([prog, "/tmp/w"], dirs=("/tmp", "/tmp/w"))
    assert [e for e in got.events if e[0] in ("internal-error", "unsupported-syscall")] == []
    assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
    assert got.code == 0


def test_splice_tee_vmsplice_on_host_stdio_pipes_match_native(tmp_path):
    """stdin and stdout are host pipes (as `runpsc do ... < pipe | cat`), natively and in
    the confined Sentry (the host tee it peeks stdin with is in its allow-list): splice,
    tee and vmsplice through them."""
    build(tmp_path, "splice_stdio")
    data = b"0123456789abcdefghij"
    scratch = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    try:
        want = subprocess.run([str(tmp_path / "splice_stdio"), scratch], input=data,
                              capture_output=True, preexec_fn=native_child_setup,
                              check=False)
    finally:
        shutil.rmtree(scratch)
    assert want.returncode == 0 and want.stdout, want.stderr
    # (--cwd /: the caller's directory may be under the /tmp the tmpfs hides, as a fresh
    # clone's is, and the warning would be in stderr)
    got = runpsc("do", "--volume", f"{tmp_path}:/progs:ro", "--tmpfs", "/tmp", "--cwd", "/",
                 "--", "/progs/splice_stdio", "/tmp", input=data)
    assert got.stderr.decode().splitlines() == want.stderr.decode().splitlines()
    assert got.stdout == want.stdout  # what tee, vmsplice and splice wrote to stdout
    assert got.returncode == 0
