"""The Sentry's kernel objects: the Kernel that runs programs, and Tasks.

The syscall handlers (`sentry.syscalls`) sit above this package and register in its
table (`table.py`); nothing here imports them.
"""

from .exit import TaskExit
from .kernel import Kernel
from .task import Task

__all__ = ["Kernel", "Task", "TaskExit"]
