"""The platforms (ptrace, seccomp) against what a program may do to the mechanism under it:
its own seccomp filter, SIGSYS blocked or handled, JIT code making syscalls, vfork, a
thread exiting while another execs, a jump to the stub's gadget, the legacy vsyscall page. Each is compared with
Linux where Linux has an answer, and each platform with the other.

The rest of the sentry tests run on the default platform (seccomp where the host supports
it), and again on ptrace with RUNPSC_PLATFORM=ptrace (scripts/test.sh)."""

import os

import pytest

from sentry.platform.stub import GADGET
from tests.sentry.progs.harness import build, native, sentry_run

PLATFORMS = ("ptrace", "seccomp")


@pytest.fixture(params=PLATFORMS)
def platform(request, monkeypatch):
    monkeypatch.setenv("RUNPSC_PLATFORM", request.param)
    return request.param


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return build(tmp_path_factory.mktemp("platform_bad"), "platform_bad")


@pytest.mark.parametrize("mode", ["sigsys", "jit", "vfork", "exit_exec"])
async def test_matches_linux(prog, platform, mode):
    want = native([prog, mode])
    got = await sentry_run([prog, mode])
    assert (got.status, got.stdout) == (want.status, want.stdout)


async def test_vsyscall_page(prog, platform):
    """The legacy vsyscall page (gettimeofday, time, getcpu at fixed addresses), which the
    host emulates outside the syscall entry. On seccomp the emulation's seccomp check
    notifies the call and the Sentry answers it as Linux does (a bad pointer: SIGSEGV); on
    ptrace SYSEMU never sees it and the stub's filter kills the process (SIGSYS): in
    neither case does the host run it for the program."""
    got = await sentry_run([prog, "vsyscall"])
    if platform == "ptrace":
        assert got.status == 31 and got.stdout == b"", got  # SIGSYS (sentry/README.md)
        return
    want = native([prog, "vsyscall"])
    assert (got.status, got.stdout) == (want.status, want.stdout)


async def test_spoofed_int80_never_runs_an_injected_call_in_the_i386_table(prog, platform,
                                                                           tmp_path):
    """int 0x80 with rcx and r11 as `syscall` leaves them is served as the 64-bit call its
    registers spell (mprotect, eax 10), for which the Sentry injects a host mprotect. On
    seccomp an injected call may run in place of the application's own entry: never this
    one's, which the host would read in the i386 table (unlink(ebx): a host path here)."""
    victim = tmp_path / "victim"
    victim.write_text("x")
    got = await sentry_run([prog, "int80_mprotect", str(victim)])
    assert got.stdout.decode().splitlines() == ["int80_mprotect 0 ",
                                                "int80_mprotect.readable 1 "]
    assert got.status == 0 and victim.exists()
    native([prog, "int80_mprotect", str(victim)])  # Linux: the i386 unlink
    assert not victim.exists()


async def test_own_filter_cannot_switch_off_the_sentrys(prog, monkeypatch):
    """The program's seccomp filter is the Sentry's to refuse (ENOSYS, as documented in
    docs/syscalls.md); either way its later calls are served, the same on both platforms."""
    outs = []
    for name in PLATFORMS:
        monkeypatch.setenv("RUNPSC_PLATFORM", name)
        got = await sentry_run([prog, "ownfilter"])
        assert got.status == 0, got
        outs.append(got.stdout)
    assert outs[0] == outs[1]
    lines = outs[0].decode().splitlines()
    assert "after_filter.open 1 " in lines and "after_filter.write 1 " in lines


async def test_gadget_jump_is_served_by_the_sentry(prog, platform):
    """A jump to the stub's `syscall; int3` makes an application call like any other: the
    Sentry answers it (getpid is the sandbox's pid), then int3 raises SIGTRAP."""
    got = await sentry_run([prog, "gadget", hex(GADGET)])
    assert got.stdout.decode().splitlines() == ["gadget.trap 1 ", "gadget.is_getpid 1 "]
    assert got.status == 0


async def test_platform_is_the_one_asked_for(prog, platform):
    got = await sentry_run([prog, "jit"])
    assert got.kernel.platform == platform == os.environ["RUNPSC_PLATFORM"]


SPIN = r"""
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    syscall(SYS_getcpu, 0, 0, 0);  /* the probe: from now on the test may kill the stub */
    for (;;) {
        syscall(SYS_getppid);  /* answered from notifications (and in C) on seccomp */
        syscall(SYS_umask, 022);
        for (volatile int i = 0; i < 1000; i++) {}
    }
}
"""


async def test_sigkill_from_outside_ends_the_sandbox(tmp_path, platform):
    """A host SIGKILL to the stub, wherever its thread is (user code, a notification, a
    ptrace stop), ends the sandbox with SIGKILL and leaves no stub behind."""
    import signal

    import trio

    from .platform_helpers import build_c, run

    prog = build_c(tmp_path, "spin", SPIN, "-static")
    probed = trio.Event()
    stubs: list[int] = []

    def getcpu(t, *_):
        """Test-only probe: records the host thread."""
        stubs.append(t.stub.pid)
        probed.set()
        return 0

    async def killer() -> None:
        await probed.wait()
        os.kill(stubs[0], signal.SIGKILL)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer)
            status, _, _, _ = await run([prog], extra={"getcpu": getcpu})
    assert status == signal.SIGKILL
    assert not os.path.exists(f"/proc/{stubs[0]}")
