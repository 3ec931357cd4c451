"""/proc and /sys generated from the Sentry's kernel state (see docs/procfs.md).

`ProcView` is the provider the VFS's procfs and sysfs ask; the modules hold one area each:
`system` (meminfo, uptime, loadavg, stat, cpuinfo ...), `process` (/proc/PID and
task/TID), `sysctl` (/proc/sys), `sysfs` (/sys), `usage` (the stub threads' measured CPU
time and residency).
"""

from .view import ProcView

__all__ = ["ProcView"]
