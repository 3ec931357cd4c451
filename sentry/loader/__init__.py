"""The Sentry's program loader: ELF and `#!` scripts, initial stack and auxv."""

from .elf import Loaded, load, parse_shebang
from .source import ExecFile, ExecSource, HostFiles

__all__ = ["ExecFile", "ExecSource", "HostFiles", "Loaded", "load", "parse_shebang"]
