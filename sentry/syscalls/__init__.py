"""The Sentry's syscall handlers, one module per family, and the table they register in.

Importing this package registers every handler in `table.TABLE`; each family module is
imported explicitly below (one line per module).
"""

from . import sys_mmap, sys_process  # noqa: F401, I001  (registers handlers)
from . import sys_file, sys_fs, sys_futex, sys_xattr  # noqa: F401, I001  (registers handlers)
from . import sys_signal  # noqa: F401, I001  (registers handlers)
from . import sys_poll  # noqa: F401, I001  (poll/select: registers handlers)
from . import sys_signalfd  # noqa: F401, I001  (signalfd: registers handlers)
from .table import TABLE, Entry, Level, SyscallError, fixed_errno, name_of, number, syscall

__all__ = ["TABLE", "Entry", "Level", "SyscallError", "fixed_errno", "name_of", "number", "syscall"]
