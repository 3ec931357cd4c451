"""Application memory: the Sentry's list of mappings per address space, brk, and the host
effects of each change (injected into the stub)."""

from .address_space import MemoryManager
from .vma import PAGE, Vma, page_down, page_up

__all__ = ["PAGE", "MemoryManager", "Vma", "page_down", "page_up"]
