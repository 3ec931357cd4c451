"""System V IPC kernel state: shared memory, semaphores and message queues of one
sandbox's IPC namespaces (`Kernel.ipc`, or a task's own: `ipc_of`); the syscalls are in sentry/syscalls/sys_shm.py,
sys_sem.py and sys_msg.py."""

from .namespace import IpcLimits, IpcNamespace, ipc_of

__all__ = ["IpcLimits", "IpcNamespace", "ipc_of"]
