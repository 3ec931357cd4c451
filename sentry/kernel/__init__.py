"""The Sentry's kernel objects: the Kernel that runs programs, and Tasks.

`Kernel` is imported lazily: syscall handler modules import `Task`/`TaskExit` from here,
and the Kernel itself imports the loader and memory manager, which import the table.
"""

from typing import Any

from .exit import TaskExit
from .task import Task

__all__ = ["Kernel", "Task", "TaskExit"]


def __getattr__(name: str) -> Any:
    if name == "Kernel":
        from .kernel import Kernel

        return Kernel
    raise AttributeError(name)
