"""The sandbox frozen as a whole (an OCI runtime's `pause`/`resume`), unseen by programs.

Unlike a group stop (`jobctl`), nothing is sent to the application: no signal, no
SIGCHLD to a parent, no change wait() could report. While frozen, the run loop holds
every thread at its next stop instead of resuming it: a thread in user code is kicked
into a host signal stop (the kick is handled as usual once thawed), a thread at a
syscall stop is held before its call is served, and a thread asleep in a call keeps
sleeping (timers run on, as under the cgroup freezer) and is held when the call ends,
before it returns to user mode. So no application instruction runs until `thaw`.

`freeze` returns once every thread is held or asleep; `thaw` lets them all go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from . import sigstate

if TYPE_CHECKING:
    from .kernel import Kernel
    from .task import Task


class Freezer:
    """One Kernel's freeze state: `thawed` is set (and dropped) when the freeze ends."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.thawed: trio.Event | None = None
        self.held: set[Task] = set()
        self._changed = trio.Event()

    @property
    def frozen(self) -> bool:
        return self.thawed is not None

    async def hold(self, t: Task) -> None:
        """Called by the run loop at a stop while frozen: wait (the thread stays stopped)
        until thawed."""
        thawed = self.thawed
        if thawed is None:
            return
        self.held.add(t)
        self._changed.set()
        try:
            await thawed.wait()
        finally:
            self.held.discard(t)

    def _threads(self) -> list[Task]:
        return list(self.kernel.tasks.values())

    async def freeze(self) -> None:
        """Freeze every thread; return once each is held or asleep in a call."""
        if self.thawed is None:
            self.thawed = trio.Event()
        kicked: set[Task] = set()
        while self.thawed is not None:
            running = [th for th in self._threads() if th not in self.held and not th._sleeps]
            if not running:
                return
            for th in running:
                if th not in kicked:  # also a thread born since (a clone under way)
                    kicked.add(th)
                    try:
                        sigstate.kick(th)
                    except OSError:
                        pass  # the thread is gone
            self._changed = trio.Event()
            with trio.move_on_after(0.05):  # also re-check threads that ended meanwhile
                await self._changed.wait()

    def thaw(self) -> None:
        """End the freeze: every held thread goes on from where it stopped."""
        thawed, self.thawed = self.thawed, None
        if thawed is not None:
            thawed.set()
