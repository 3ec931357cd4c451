"""System V IPC kernel state: shared memory, semaphores and message queues of one
sandbox's IPC namespace (`Kernel.ipc`); the syscalls are in sentry/syscalls/sys_shm.py,
sys_sem.py and sys_msg.py."""

from .namespace import IpcLimits, IpcNamespace

__all__ = ["IpcLimits", "IpcNamespace"]
