"""The Sentry's virtual filesystem: mounts, path resolution with Linux's rules, open file
descriptions, and the filesystems behind them (tmpfs, devfs, pipefs, procfs, goferfs,
overlay). Usable directly from Python, so it is testable without the Sentry.
"""

from .abi import Stat, StatFS, pack_dirent64, parse_dirents64
from .creds import Credentials
from .dentry import Dentry, Inode
from .file import DirectoryFD, FileDescription, Memory, PathFD, RegularFD, WaitQueue
from .filesystem import Filesystem
from .fs.tmpfs import Tmpfs
from .mount import FSContext, Mount, VirtualDentry
from .virtualfs import VirtualFilesystem

__all__ = [
    "Credentials",
    "Dentry",
    "DirectoryFD",
    "FSContext",
    "FileDescription",
    "Filesystem",
    "Inode",
    "Memory",
    "Mount",
    "PathFD",
    "RegularFD",
    "Stat",
    "StatFS",
    "Tmpfs",
    "VirtualDentry",
    "VirtualFilesystem",
    "WaitQueue",
    "pack_dirent64",
    "parse_dirents64",
]
