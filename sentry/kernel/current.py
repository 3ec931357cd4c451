"""Which Task the running trio task serves.

Why a module of its own: hooks the VFS calls (SIGPIPE), files whose answer depends on who
asks (signalfd, /proc/self, /proc/PID/status's State) and the Kernel all need it, and
none of them should import the Kernel (or the Task module, which imports signals) for it.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .task import Task

#: The Task whose syscall the current trio task serves (set by the Kernel per trio task).
CURRENT_TASK: contextvars.ContextVar[Task] = contextvars.ContextVar("runpsc_current_task")
