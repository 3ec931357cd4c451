"""How application code runs: stub processes traced with PTRACE_SYSEMU.

The interface (`PtraceStub`: start, wait, registers, memory, inject, kill) is small so a
faster platform (seccomp user notification, a systrap-style SIGSYS handler) can replace it.
"""

from .ptrace import INJECTED, PtraceStub, SigchldWaiter, Stop, StopKind, StubGone

__all__ = ["INJECTED", "PtraceStub", "SigchldWaiter", "Stop", "StopKind", "StubGone"]
