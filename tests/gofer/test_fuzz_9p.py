"""The gofer's 9P server under random request sequences, valid and invalid
(tests/p9/fuzz9p.py): every request answered with its own reply or Rlerror (or the
connection dropped after an impossible frame size), never an internal error, never a
hang, no descriptor left after the connection, nothing made outside the export. On the C
loops' path and on the pure-Python one (what RUNPSC_NO_CFFI gives). A short derandomized
run; bench/p9_fuzz.py is the long one."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import p9._cloops as cloops_mod
from gofer.host import Export
from gofer.serve import GoferOptions, serve_stream
from tests.gofer.helpers import gofer_fs, open_fds
from tests.p9.fuzz9p import (
    DataChooser,
    ErrorLog,
    Request,
    check_tree,
    make_export,
    run_sequence,
    sequence,
)
from tests.support import need_root

#: Seconds a request may take before it is flushed, and the flush before it is a hang:
#: generous, the machine may be busy.
PATIENCE, TIMEOUT = 0.3, 60.0


async def _play(exp: str, reqs: list[Request]) -> int:
    async with gofer_fs([Export("e", exp)]) as (fs, _nursery):
        return await run_sequence(lambda s: serve_stream(s, fs, GoferOptions()), reqs,
                                  TIMEOUT, PATIENCE)


def play(reqs: list[Request], *, c_loops: bool) -> None:
    """Serve `reqs` on a fresh export; every rule of fuzz9p checked."""
    root = tempfile.mkdtemp(prefix="runpsc-fuzz9p-")
    try:
        exp = make_export(root)
        fds = open_fds()
        with ErrorLog() as log, pytest.MonkeyPatch.context() as mp:
            if not c_loops:
                mp.setattr(cloops_mod, "_fastio", None)
            trio.run(_play, exp, reqs)
        assert [r.getMessage() for r in log.records] == []
        assert open_fds() == fds
        check_tree(root)
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize("c_loops", [True, False], ids=["c-loop", "python"])
# No shrinking: each example starts a server, and a failure names its request already.
@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_request_sequences(c_loops: bool, data: st.DataObject) -> None:
    need_root()
    if c_loops and cloops_mod._fastio is None:
        if os.environ.get("RUNPSC_NO_CFFI"):
            pytest.skip("RUNPSC_NO_CFFI: the pure-Python path only")
        pytest.fail("p9._fastio is not built (scripts/setup.sh builds it)")
    ch = DataChooser(data)
    play(sequence(ch, ch.int(1, 40)), c_loops=c_loops)
