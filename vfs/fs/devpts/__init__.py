"""Pseudo-terminals: devpts (/dev/pts/N, /dev/ptmx) and the line discipline.

| module | what it holds |
|---|---|
| `termios.py` | struct termios / winsize and the flag bits (Linux's numbers) |
| `linedisc.py` | n_tty: input editing, echo, signals from special characters, output processing |
| `terminal.py` | `Terminal` (a pty pair's state), `MasterFD`, `ReplicaFD`, the `JobControl` hook |
| `fs.py` | `DevPtsFS`, `DevPts` (allocation, the device openers), `install` |
"""

from .fs import DevPts, DevPtsFS, install
from .terminal import JobControl, MasterFD, ReplicaFD, Terminal, TerminalFD
from .termios import Termios, Winsize

__all__ = ["DevPts", "DevPtsFS", "JobControl", "MasterFD", "ReplicaFD", "Terminal",
           "TerminalFD", "Termios", "Winsize", "install"]
