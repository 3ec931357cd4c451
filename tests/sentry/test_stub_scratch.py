"""The stub's scratch page is the application's to write (issue 19, finding 5): a thread
writing it while another maps shared tmpfs files may hurt only its own program. The Sentry
acts on nothing read back from it (sentry/README.md, "Trust boundary and limits"), so a
forged control message no longer makes it close the stub's channel, and a process whose
own receives fail leaves nothing queued for a sibling stub to receive in its place.
progs/stub_scratch.c natively (a directory on /dev/shm) and in the sandbox (its /tmp)."""

import shutil
import tempfile

import pytest

from tests.sentry.progs.harness import build, native, sentry_run

WANT = {
    "cmsg": "cmsg: 2000 of 2000 shared mappings showed the file\n",
    "fork": "fork: parent 2000 of 2000 shared mappings showed its file; child status 0\n",
}


@pytest.mark.parametrize("mode", ["cmsg", "fork"])
async def test_scratch_page_writes_hurt_only_the_writer(tmp_path, mode):
    prog = build(tmp_path, "stub_scratch")
    d = tempfile.mkdtemp(prefix="runpsc-native-", dir="/dev/shm")
    try:
        want = native([prog, d, mode])
    finally:
        shutil.rmtree(d)
    assert (want.stdout.decode(), want.status) == (WANT[mode], 0), want  # a sane oracle
    got = await sentry_run([prog, "/tmp", mode])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status, got.events
    assert not [e for e in got.events if e[0] == "internal-error"], got.events
