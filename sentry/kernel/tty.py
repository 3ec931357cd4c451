"""Controlling terminals: which session a terminal controls, and the job control around it.

Why here: a terminal (vfs.fs.devpts) knows only the numbers of the session and foreground
process group it serves; who calls, which groups exist and how signals are sent is the
kernel's. `TTYControl` is the devpts `JobControl` hook: it signals the foreground group for
^C, ^\\, ^Z and window changes, stops a background group that reads (SIGTTIN) or writes
under TOSTOP or changes the settings (SIGTTOU) as Linux's __tty_check_change does, gives a
session leader that opens a terminal without O_NOCTTY its controlling terminal, and on a
hang-up sends SIGHUP and SIGCONT to the session leader. A session keeps its terminal in
`cttys` (by session id) until its leader exits (then the foreground group gets SIGHUP), a
hang-up, TIOCNOTTY or a steal with TIOCSCTTY 1.

Not modelled: a process that is not a session leader and gives up its terminal with
TIOCNOTTY loses it alone; its later children still see the session's terminal.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from sentry.errors import SyscallError
from vfs.abi import O_NOCTTY
from vfs.fs.devpts import DevPts, ReplicaFD, Terminal

from . import jobctl, signals, sigstate
from .current import CURRENT_TASK

if TYPE_CHECKING:
    from vfs.creds import Credentials
    from vfs.fs.devfs import DevTTY
    from vfs.mount import VirtualDentry

    from .kernel import Kernel
    from .task import Task

SIGHUP, SIGTTIN, SIGTTOU, SIGCONT = 1, 21, 22, 18


class TTYControl:
    """One sandbox's controlling terminals (`Kernel.tty`)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.cttys: dict[int, Terminal] = {}  # session id -> its controlling terminal
        self.devpts: DevPts | None = None
        self._detached: set[tuple[int, int]] = set()  # (pid, sid): TIOCNOTTY by a member

    def attach(self, devpts: DevPts, devtty: DevTTY | None = None) -> None:
        """Serve `devpts`' terminals (made from now on) and /dev/tty."""
        self.devpts = devpts
        devpts.control = self
        if devtty is not None:
            devtty.opener = self.open_tty

    def ctty(self, t: Task) -> Terminal | None:
        """`t`'s controlling terminal, if any."""
        if self._detached and (t.tgid, t.sid) in self._detached:
            return None
        return self.cttys.get(t.sid)

    def set_ctty(self, sid: int, pgid: int, term: Terminal) -> None:
        """Make `term` session `sid`'s controlling terminal, `pgid` in the foreground
        (also what `runpsc do` does for pid 1's session before it starts)."""
        term.sid, term.pgrp = sid, pgid
        self.cttys[sid] = term

    def drop(self, term: Terminal) -> None:
        """`term` controls no session any more."""
        if term.sid and self.cttys.get(term.sid) is term:
            del self.cttys[term.sid]
        term.sid = term.pgrp = 0

    def kill_pgrp(self, pgid: int, sig: int, sender: Task | None = None) -> None:
        """The terminal's signals come from the kernel (si_code SI_KERNEL)."""
        info = sigstate.siginfo(sig, sigstate.SI_KERNEL)
        for p in [p for p in self.kernel.procs.values() if p.pgid == pgid]:
            signals.send(sender, p, sig, info)

    # -- the devpts JobControl hook ----------------------------------------------------------

    def signal(self, term: Terminal, sig: int) -> None:
        if term.pgrp:
            self.kill_pgrp(term.pgrp, sig, CURRENT_TASK.get(None))

    def check_read(self, term: Terminal) -> None:
        self.check(term, SIGTTIN)

    def check_write(self, term: Terminal) -> None:
        self.check(term, SIGTTOU)

    def check(self, term: Terminal, sig: int) -> None:
        """Linux's __tty_check_change: may the caller use `term` (its controlling terminal)
        from its process group? A background group is sent `sig` and the call is cut short
        to be restarted once the group is continued; EIO if it cannot be stopped."""
        t = CURRENT_TASK.get(None)
        if t is None or not term.pgrp or t.pgid == term.pgrp or self.ctty(t) is not term:
            return
        s = sigstate.ts(t)
        if s.mask & sigstate.bit(sig) or sigstate.action(t, sig)[0] == sigstate.SIG_IGN:
            if sig == SIGTTIN:
                raise SyscallError(errno.EIO)
            return
        if jobctl.orphaned_pgrp(self.kernel, t.pgid):
            raise SyscallError(errno.EIO)
        self.kill_pgrp(t.pgid, sig, t)
        s.interrupted = True
        raise SyscallError(errno.EINTR)

    def opened(self, term: Terminal, flags: int) -> None:
        t = CURRENT_TASK.get(None)
        if t is None or flags & O_NOCTTY or term.sid:
            return
        if t.sid == t.tgid and self.ctty(t) is None:
            self.set_ctty(t.sid, t.pgid, term)

    def hangup(self, term: Terminal) -> None:
        leader = self.kernel.procs.get(term.sid)
        self.drop(term)
        if leader is not None:
            for sig in (SIGHUP, SIGCONT):
                signals.send(None, leader, sig, sigstate.siginfo(sig, sigstate.SI_KERNEL))

    # -- process life ----------------------------------------------------------------------------

    def process_exited(self, t: Task) -> None:
        """A session leader's exit takes the terminal from its session; the foreground
        group gets SIGHUP (disassociate_ctty for a pty)."""
        if self._detached:
            self._detached = {k for k in self._detached if k[0] != t.tgid}
        if t.sid != t.tgid:
            return
        term = self.cttys.get(t.sid)
        if term is None:
            return
        pgrp = term.pgrp
        self.drop(term)
        if pgrp:
            self.kill_pgrp(pgrp, SIGHUP)

    def detach(self, t: Task, term: Terminal) -> None:
        """TIOCNOTTY: a session leader's session loses the terminal (SIGHUP and SIGCONT
        to the foreground group); any other process only stops seeing it."""
        if t.sid != t.tgid:
            self._detached.add((t.tgid, t.sid))
            return
        pgrp = term.pgrp
        self.drop(term)
        if pgrp:
            for sig in (SIGHUP, SIGCONT):
                self.kill_pgrp(pgrp, sig, t)

    # -- /dev/tty ---------------------------------------------------------------------------------

    async def open_tty(self, vd: VirtualDentry, flags: int, creds: Credentials) -> ReplicaFD:
        """/dev/tty: the caller's controlling terminal (ENXIO without one)."""
        t = CURRENT_TASK.get(None)
        term = self.ctty(t) if t is not None else None
        if term is None:
            raise SyscallError(errno.ENXIO)
        if term.hung_up:
            raise SyscallError(errno.EIO)
        return ReplicaFD(vd, flags, term)

