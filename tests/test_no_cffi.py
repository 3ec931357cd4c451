"""RUNPSC_NO_CFFI=1 puts p9's server and the Sentry's platform on their pure-Python paths:
neither cffi extension is even loaded (scripts/test.sh runs their tests so once more)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys
import p9._cloops, sentry.platform.ptrace
print(p9._cloops._fastio is None, sentry.platform.ptrace._hot is None,
      "p9._fastio" in sys.modules, "sentry.platform._hotloop" in sys.modules)
"""


def _probe(no_cffi: bool) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUNPSC_NO_CFFI"}
    if no_cffi:
        env["RUNPSC_NO_CFFI"] = "1"
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                       timeout=60, check=True)
    return r.stdout.split()


def test_no_cffi_loads_neither_extension():
    assert _probe(no_cffi=True) == ["True", "True", "False", "False"]


def test_both_extensions_load_without_the_switch():
    from tests.support import missing

    got = _probe(no_cffi=False)
    if got != ["False", "False", "True", "True"]:
        missing("the cffi extensions (p9._fastio, sentry.platform._hotloop)",
                "scripts/setup.sh builds them")


def test_this_process_follows_the_switch():
    """In the RUNPSC_NO_CFFI=1 run of scripts/test.sh, the tests' own process runs Python."""
    import p9._cloops
    import sentry.platform.ptrace

    if os.environ.get("RUNPSC_NO_CFFI"):
        assert p9._cloops._fastio is None and sentry.platform.ptrace._hot is None
        assert "p9._fastio" not in sys.modules
        assert "sentry.platform._hotloop" not in sys.modules
