"""ptrace(2) inside the sandbox (sentry/kernel/ptrace.py), compared with a native run:
progs/ptrace.c traces its children through every kind of stop (syscall, signal-delivery,
group, event), reads and writes their registers and memory, changes and skips calls, and
checks the errors; the output holds no pids or addresses, only relations."""

from tests.sentry.progs.harness import build, native, sentry_run


async def test_ptrace_matches_linux(tmp_path):
    prog = build(tmp_path, "ptrace")
    want = native([prog])
    assert b"exit -1 rax=42" in want.stdout and want.stdout.endswith(b"done\n"), want
    got = await sentry_run([prog], dirs=(str(tmp_path),))
    assert got.stdout.decode() == want.stdout.decode(), got.events
    assert got.status == want.status, got.events
    assert not [e for e in got.events if e[0] == "internal-error"]
