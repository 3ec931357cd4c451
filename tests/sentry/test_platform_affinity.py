"""CPU placement: the Sentry's thread and its stubs share one CPU (RUNPSC_CPU), the caller's
mask is honoured and comes back afterwards."""

import os

import pytest

from sentry.platform import affinity

from .platform_helpers import build_c, run

PROBE = r"""
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    syscall(SYS_getcpu, 0, 0, 0);          /* the test's probe: records the masks */
    pid_t p = fork();
    if (p == 0) { syscall(SYS_getcpu, 0, 0, 0); _exit(0); }
    waitpid(p, 0, 0);
    return 0;
}
"""


@pytest.fixture
def placement(monkeypatch):
    """Set RUNPSC_CPU for one test; the choice is forgotten before and after."""

    def use(value):
        if value is None:
            monkeypatch.delenv(affinity.ENV, raising=False)
        else:
            monkeypatch.setenv(affinity.ENV, value)
        affinity.reset()

    affinity.reset()
    yield use
    monkeypatch.undo()
    affinity.reset()


@pytest.fixture
def two_cpus():
    mask = os.sched_getaffinity(0)
    if len(mask) < 2:
        pytest.skip("needs an affinity mask of at least two CPUs")
    return mask


async def _probe(tmp_path):
    """Run PROBE; return [(sandbox pid, stub's mask, Sentry thread's mask)] per probe."""
    prog = build_c(tmp_path, "probe", PROBE, "-static")
    seen = []

    def getcpu(t, *_):
        """Test-only probe."""
        seen.append((t.tgid, os.sched_getaffinity(t.stub.pid), os.sched_getaffinity(0)))
        return 0

    status, _, _, _ = await run([prog], extra={"getcpu": getcpu})
    assert status == 0
    return seen


async def test_default_pins_sentry_and_every_stub_to_one_cpu(tmp_path, placement, two_cpus):
    placement(None)
    seen = await _probe(tmp_path)
    assert [pid for pid, _, _ in seen] == [1, 2]  # pid 1, then its forked child
    cpu = affinity.choose()
    assert cpu in two_cpus
    for _, stub_mask, sentry_mask in seen:
        assert stub_mask == sentry_mask == {cpu}
    assert os.sched_getaffinity(0) == two_cpus  # the caller's mask is back


async def test_off_keeps_the_callers_mask(tmp_path, placement, two_cpus):
    placement("off")
    seen = await _probe(tmp_path)
    for _, stub_mask, sentry_mask in seen:
        assert stub_mask == sentry_mask == two_cpus


async def test_a_cpu_number_is_honoured(tmp_path, placement, two_cpus):
    cpu = max(two_cpus)
    placement(str(cpu))
    seen = await _probe(tmp_path)
    for _, stub_mask, sentry_mask in seen:
        assert stub_mask == sentry_mask == {cpu}
    assert os.sched_getaffinity(0) == two_cpus


async def test_a_cpu_outside_the_callers_mask_is_not_used(tmp_path, placement, two_cpus):
    placement(str(max(two_cpus) + 1000))
    seen = await _probe(tmp_path)
    for _, stub_mask, _ in seen:
        assert stub_mask == two_cpus


async def test_callers_narrow_mask_is_respected(tmp_path, placement, two_cpus):
    """A caller's `taskset -c N` stays as it is: everything runs on N."""
    placement(None)
    cpu = min(two_cpus)
    os.sched_setaffinity(0, {cpu})
    try:
        seen = await _probe(tmp_path)
        assert os.sched_getaffinity(0) == {cpu}
    finally:
        os.sched_setaffinity(0, two_cpus)
    for _, stub_mask, sentry_mask in seen:
        assert stub_mask == sentry_mask == {cpu}


def test_a_bad_value_is_a_clear_error(placement):
    placement("fast")
    with pytest.raises(ValueError, match="RUNPSC_CPU='fast'"):
        affinity.choose()


SPIN = r"""
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);  /* vDSO: no syscall */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
int main(void) {
    syscall(SYS_getcpu, 0, 0, 0);
    for (double end = now() + 0.3; now() < end;) {}   /* 300 ms without a syscall */
    syscall(SYS_getcpu, 0, 0, 0);
    return 0;
}
"""


async def test_a_computing_stub_may_use_the_callers_cpus(tmp_path, placement, two_cpus):
    """While a stub computes without syscalls it may run on any CPU of the caller's mask;
    at its next syscall it is back on the Sentry's CPU."""
    import trio

    placement(None)
    prog = build_c(tmp_path, "spin", SPIN, "-static")
    at_probe, during, stub_pid = [], [], []

    def getcpu(t, *_):
        """Test-only probe: the stub's mask at a syscall stop."""
        stub_pid[:] = [t.stub.pid]
        at_probe.append(os.sched_getaffinity(t.stub.pid))
        return 0

    async def watch():
        while len(at_probe) < 2:
            if stub_pid:
                try:
                    during.append(os.sched_getaffinity(stub_pid[0]))
                except OSError:
                    pass
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        status, _, _, _ = await run([prog], extra={"getcpu": getcpu})
    assert status == 0
    cpu = affinity.choose()
    assert at_probe == [{cpu}, {cpu}]
    assert two_cpus in during  # loosened while it computed
