"""Who may signal whom (Linux's check_kill_permission), compared with a native run:
progs/killperm.c's child drops to uid 65534 and signals root processes (EPERM; SIGCONT
within its session allowed) and processes of its own uid, by kill, a process group,
tgkill and rt_sigqueueinfo."""

from tests.sentry.progs.harness import build, native, sentry_run
from tests.support import need_root


async def test_kill_permissions_match_linux(tmp_path):
    need_root()
    prog = build(tmp_path, "killperm")
    want = native([prog])
    assert b"kill parent SIGUSR1: Operation not permitted" in want.stdout, want  # a sane oracle
    got = await sentry_run([prog])
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status, got.events
    assert not [e for e in got.events if e[0] == "internal-error"]
