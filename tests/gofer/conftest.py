"""Fixtures for the gofer tests: an export beside an 'outside' tree that must stay untouched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gofer.host import Export, Node
from gofer.procfd import ProcFD


def snapshot(top: Path) -> dict[str, tuple]:
    """Everything observable about a tree: names, types, modes, owners, sizes, contents, times."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            content = b""
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    content = f.read()
            link = os.readlink(p) if os.path.islink(p) else ""
            out[os.path.relpath(p, top)] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_nlink, content, link,
            )
    st = os.lstat(top)
    out["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


@pytest.fixture
def procfd() -> Iterator[ProcFD]:
    pf = ProcFD()
    yield pf
    pf.close()


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(export dir, outside dir); outside holds a secret file the export must never reach."""
    exp = tmp_path / "export"
    out = tmp_path / "outside"
    exp.mkdir()
    out.mkdir()
    (out / "secret").write_bytes(b"outside-secret\n")
    (out / "sub").mkdir()
    os.chmod(tmp_path, 0o755)
    return exp, out


@pytest.fixture
def export(tree: tuple[Path, Path], procfd: ProcFD) -> Iterator[Export]:
    e = Export("test", str(tree[0]))
    e.open(procfd)
    yield e
    e.close()


@pytest.fixture
def root(export: Export) -> Iterator[Node]:
    r = export.root()
    yield r
    r.release()
