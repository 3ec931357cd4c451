"""CPU placement of the Sentry's thread and its stubs: one CPU for both, by default.

Why: every application syscall is two cross-process wakeups (the stub stops and wakes the
Sentry; the Sentry resumes the stub). When the two sit on different CPUs each wakeup is an
inter-processor interrupt, and on a virtual machine a sleeping vCPU must be woken by the
hypervisor: measured here, a minimal C PTRACE_SYSEMU loop costs 30-50 µs per syscall with
tracer and tracee on different CPUs and 5-7 µs on one (bench/syscall_overhead.py prints
both). The Sentry serves one syscall at a time on one thread anyway, so a stub gains
nothing from a second CPU while it makes syscalls.

Policy, from the environment variable RUNPSC_CPU:

- unset, ``auto``: while a Kernel runs (`hold` .. `release`), the Sentry's trio thread and
  every stub run on one CPU: the one the Sentry was on when it first chose, taken from the
  caller's affinity mask (`os.sched_getaffinity`), so a caller's ``taskset`` is honoured.
  Nothing is pinned when the caller's mask already holds a single CPU.
- ``off`` (or ``none``, ``0`` is a CPU number, not off): no pinning; everything keeps the
  caller's mask.
- a CPU number: that CPU (it must be in the caller's mask, else no pinning).

A stub thread that computes without a syscall for longer than the hot loop waits for it
(it is parked) is let onto the caller's other CPUs until its next stop (`loosen`,
`tighten`): a stub that makes syscalls stays with the Sentry, two that compute at once
are not confined to one CPU.

Stubs forked from a stub (fork, threads) inherit its mask. Only the calling thread is
pinned, so other threads of the process (trio's worker threads) keep the caller's mask, and
it is restored when the last holder releases. Gofers are separate processes, started before
any Kernel: they keep the caller's mask (see sentry/README.md for the measurements).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ENV = "RUNPSC_CPU"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class _Pin:
    """Process-wide: who holds the pin, the chosen CPU, and the caller's mask."""

    users = 0
    cpu: int | None = None  # chosen once per process (a stub started earlier uses it)
    chosen = False
    saved: set[int] | None = None  # the holder thread's mask before pinning


def current_cpu() -> int:
    """The CPU the calling thread runs on now (sched_getcpu), or -1 if unknown."""
    return _libc.sched_getcpu()


def choose() -> int | None:
    """The CPU the Sentry and its stubs share under the RUNPSC_CPU policy, or None.

    Raises:
        ValueError: RUNPSC_CPU is neither ``auto``, ``off``/``none`` nor a CPU number.
    """
    if _Pin.chosen:
        return _Pin.cpu
    mask = caller_cpus()
    policy = os.environ.get(ENV, "auto").strip().lower() or "auto"
    cpu: int | None
    if policy in ("off", "none", "no"):
        cpu = None
    elif policy == "auto":
        here = current_cpu()
        cpu = here if here in mask else min(mask)
    else:
        try:
            cpu = int(policy)
        except ValueError:
            raise ValueError(f"{ENV}={policy!r}: expected auto, off or a CPU number") from None
        if cpu not in mask:
            cpu = None  # outside the caller's mask: respect the caller
    if len(mask) <= 1:
        cpu = None  # already on one CPU: nothing to do
    _Pin.cpu, _Pin.chosen = cpu, True
    return cpu


def caller_cpus() -> set[int]:
    """The CPUs the caller allowed this thread (its mask before any pinning of ours)."""
    if _Pin.saved is not None:
        return set(_Pin.saved)
    return os.sched_getaffinity(0)


def hold() -> int | None:
    """Pin the calling thread (the Sentry's) to the chosen CPU; returns it (None: no pin).

    Counted: the caller's mask comes back when every `hold` has its `release`.
    """
    cpu = choose()
    if _Pin.users == 0 and cpu is not None:
        _Pin.saved = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:  # e.g. the CPU went offline: run unpinned
            _Pin.saved = None
    _Pin.users += 1
    return cpu


def release() -> None:
    """Undo one `hold`; the last restores the caller's mask."""
    _Pin.users -= 1
    if _Pin.users == 0 and _Pin.saved is not None:
        saved, _Pin.saved = _Pin.saved, None
        try:
            os.sched_setaffinity(0, saved)
        except OSError:
            pass


def loosen(tid: int) -> bool:
    """Let stub thread `tid`, which computes for a while (its wait is about to park), use
    every CPU of the caller's mask, so two sandboxed processes can compute at once.
    Returns whether it did (only while pinned); `tighten` undoes it."""
    if _Pin.users == 0 or _Pin.cpu is None or _Pin.saved is None:
        return False
    try:
        os.sched_setaffinity(tid, _Pin.saved)
    except OSError:  # gone already
        return False
    return True


def tighten(tid: int) -> None:
    """Put stub thread `tid` back on the Sentry's CPU (it is stopped, or gone)."""
    if _Pin.cpu is None:
        return
    try:
        os.sched_setaffinity(tid, {_Pin.cpu})
    except OSError:
        pass


def stub_cpus() -> set[int] | None:
    """The mask a new stub process gets (None: inherit the Sentry thread's)."""
    cpu = choose()
    return None if cpu is None else {cpu}


def reset() -> None:
    """Forget the choice (tests change RUNPSC_CPU); only while nothing holds the pin."""
    if _Pin.users == 0:
        _Pin.cpu, _Pin.chosen = None, False
