"""goferfs: files served by a Gofer over 9P2000.L (the `p9` client).

`GoferFS` (`filesystem.py`) is the filesystem; its parts: `inode.py` (a remote file's
cached state), `fids.py` (dentry fids, bounded and pinned), `pages.py` (the page cache),
`prefetch.py` (batched fetches after a readdir), `files.py` (open files and directories).
"""

from .filesystem import GoferFS

__all__ = ["GoferFS"]
