"""Processes a test leaves behind: the pytest process is made a child subreaper, so what a
test starts stays below it even when its parent dies (an orphan comes to pytest, not to
init), and after each test its children that were not there before are the leftovers."""

from __future__ import annotations

import ctypes
import os
import signal
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans among this process's descendants are reparented to it, not to init."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of `pid`, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), fields[0]
    except (OSError, IndexError, ValueError):
        return None


def parents() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, state letter)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            found[int(entry)] = st
    return found


def descendants(pid: int) -> set[int]:
    """Every process whose parent chain reaches `pid`."""
    table = parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, (pp, _) in table.items() if pp in frontier} - found
        found |= frontier
    return found


def children(pid: int) -> dict[int, str]:
    """The children of `pid`: pid -> state letter ("Z" for a zombie)."""
    return {p: state for p, (pp, state) in parents().items() if pp == pid}


def command_line(pid: int) -> str:
    """What `pid` runs, as ps shows it (its name in brackets once it has no argv)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
        if argv != [b""]:
            return " ".join(a.decode(errors="replace") for a in argv)
        with open(f"/proc/{pid}/comm") as f:
            return f"[{f.read().strip()}]"
    except OSError:
        return "[gone]"


def clean_up_after(before: set[int]) -> list[str]:
    """Kill the live children of this process that are not in `before`, with everything
    below them, and reap them and new zombies; return the command lines of those that
    were alive (a zombie whose parent has not waited yet is no leftover)."""
    me = os.getpid()
    left: list[str] = []
    killed: set[int] = set()
    for pid, state in children(me).items():
        if pid in before or state == "Z":
            continue
        tree = descendants(pid)
        left.append(f"pid {pid}: {command_line(pid)}"
                    + (f" (and {len(tree)} processes below it)" if tree else ""))
        for p in (pid, *tree):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.add(p)
    # What was below a killed leftover comes to this process (the subreaper) as its parent
    # dies: wait until every killed process has been reaped, then reap new zombies.
    deadline = time.monotonic() + 30
    while killed and time.monotonic() < deadline:
        mine = children(me)
        for p in list(killed):
            if p not in mine and _stat(p) is None:
                killed.discard(p)
            elif p in mine:
                try:
                    os.waitpid(p, 0)
                except ChildProcessError:
                    pass
                killed.discard(p)
        if killed:
            time.sleep(0.01)
    for pid, state in children(me).items():
        if pid not in before and state == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return left
