"""The Sentry's program loader: ELF and `#!` scripts, initial stack and auxv."""

from .elf import Loaded, load, parse_shebang
from .source import ExecFile, ExecSource, HostFiles, VfsFiles

__all__ = ["ExecFile", "ExecSource", "HostFiles", "Loaded", "VfsFiles", "load", "parse_shebang"]
