"""Kernel state is per sandbox, and a sandbox leaves nothing behind.

(a) Two sandboxes run at once in one trio process, each a futex- and lock-heavy program
(progs/isolation.c: threads on pthread mutexes and condition variables, flock and OFD
locks between threads, POSIX record locks between a parent and its child). Both are pid 1
running the same static binary, so their futex words sit at the same addresses: with
shared queues a wake of one would be taken by a waiter of the other. Each must print what
the native run prints.

(b) Fifty sandboxes run one after another in one process; the Sentry's live tasks, its
open fds, its host child processes and its Python memory come back to their level after
the first few runs and show no growth.
"""

from __future__ import annotations

import gc
import os
import tracemalloc

import trio

from tests.sentry.progs.harness import Session, build, native_in_scratch


def _assert_kernel_clean(kernel) -> None:  # noqa: ANN001
    """What a finished sandbox's kernel must no longer hold."""
    assert kernel.procs == {} and kernel.tasks == {}
    assert len(kernel.futexes) == 0
    assert len(kernel.file_locks) == 0
    assert kernel.signals_queued == 0


async def _session() -> Session:
    return await Session.start(dirs=("/tmp", "/tmp/w"))


async def test_two_sandboxes_at_once_keep_their_futexes_and_locks(tmp_path):
    prog = build(tmp_path, "isolation")
    want = native_in_scratch(prog, timeout=60)
    assert want.code == 0, want.stderr
    assert b"errors 0" in want.stdout
    sessions = [await _session(), await _session()]
    results: list = [None, None]

    async def one(i: int) -> None:
        results[i] = await sessions[i].run([prog, "/tmp/w"])

    with trio.fail_after(240):  # a lost wake-up hangs: fail instead of the whole suite
        async with trio.open_nursery() as nursery:
            for i in range(2):
                nursery.start_soon(one, i)
    for got in results:
        assert [e for e in got.events if e[0] == "internal-error"] == []
        assert got.stdout.decode().splitlines() == want.stdout.decode().splitlines()
        assert got.code == 0, got.stderr
        _assert_kernel_clean(got.kernel)
    assert results[0].kernel.futexes is not results[1].kernel.futexes
    assert results[0].kernel.file_locks is not results[1].kernel.file_locks


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _host_children() -> list[int]:
    """Processes whose parent is this one (zombies included)."""
    me, out = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        if ppid == me:
            out.append(int(name))
    return out


RUNS, WARMUP = 50, 5
#: Python memory a run may leave on top of the level after the warm-up (caches of trio,
#: the logging module, interned strings): a leaked Kernel, with its tasks, stubs and
#: buffers, is far bigger.
SLACK = 512 * 1024
#: How much the level may rise from the first ten measured runs to the last ten.
TREND = 64 * 1024


async def test_fifty_sandboxes_in_a_row_leave_nothing_behind(tmp_path):
    prog = build(tmp_path, "isolation")
    want = native_in_scratch(prog, timeout=60)
    assert want.code == 0, want.stderr
    session = await _session()
    children0 = _host_children()
    # What the process held before the runs (the rest of the suite: in a full run, millions
    # of objects) moves to gc's permanent generation, so each run's gc.collect() walks only
    # what was made since; a cycle a run leaves is still found.
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        levels, fds = [], []
        for i in range(RUNS):
            got = await session.run([prog, "/tmp/w", "small"])
            assert got.code == 0, got.stderr
            assert b"errors 0" in got.stdout
            _assert_kernel_clean(got.kernel)
            del got
            gc.collect()
            fds.append(_open_fds())
            assert _host_children() == children0, f"run {i}: host children left behind"
            if i >= WARMUP:
                levels.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    # The first run creates the program's files in the session's tmpfs, whose contents are
    # memfds held by the session: from then on the count must not move.
    assert fds[1:] == [fds[0]] * (RUNS - 1), f"the Sentry's open fds changed: {fds}"
    base = levels[0]
    assert max(levels) - base < SLACK, [lv - base for lv in levels]
    first, last = levels[:10], levels[-10:]
    assert sum(last) / 10 - sum(first) / 10 < TREND, [lv - base for lv in levels]
