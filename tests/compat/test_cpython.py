"""CPython's regression tests natively and inside `runpsc do` (tests/compat/cpython.py):
every test passing natively passes in the sandbox or is listed, with its reason, in
known_differences.txt; every listed test still differs; docs/cpython-tests.md is current.

The CI modules run by default; `RUNPSC_CPYTHON_TESTS=all` (or a comma-separated list of
modules) runs others, each with a pytest timeout above its two budgets.
"""

from __future__ import annotations

import os

import pytest

from tests.compat.cpython import (
    DOC,
    HERE,
    MODULES,
    TESTSUITE,
    Known,
    Module,
    module,
    parse,
    render,
    run,
)
from tests.support import missing


def _chosen() -> list[Module]:
    want = os.environ.get("RUNPSC_CPYTHON_TESTS", "")
    if want == "all":
        return list(MODULES)
    if want:
        return [module(n.strip()) for n in want.split(",") if n.strip()]
    return [m for m in MODULES if m.ci]


def _need_testsuite() -> None:
    if not TESTSUITE.exists():
        missing("CPython's test suite", "apt-get install libpython3.11-testsuite "
                "(or run scripts/setup.sh)")


@pytest.mark.parametrize("m", [
    pytest.param(m, id=m.name, marks=pytest.mark.timeout(2 * m.budget + 120))
    for m in _chosen()])
def test_module_differs_from_native_only_where_listed(m: Module) -> None:
    from tests.compat.cpython import compare

    _need_testsuite()
    c = compare(m)
    assert c.native.ended == "done", f"the native run did not finish: {c.report()}"
    assert not c.unlisted and not c.stale, (
        c.report() + "\n(list each new difference with its reason in "
        "tests/compat/known_differences.txt; `python -m tests.compat.cpython MODULE --prune` "
        "removes what passes again; then `python -m tests.compat.cpython --docs`)")


def test_a_hanging_module_is_killed_with_its_whole_sandbox() -> None:
    """The budget kills runpsc, its gofers and the stubs (a child that sleeps included);
    the autouse fixture of tests/conftest.py fails the test on anything left behind."""
    _need_testsuite()
    hang = Module("hang_forever", 8, False, ("--testdir", str(HERE / "regrtest_dir")))
    got = run(hang, sandboxed=True)
    assert got.ended.startswith("timeout"), got.output.decode(errors="replace")[-2000:]
    assert got.outcomes.get("hang_forever.HangForever.test_b_blocks") is None


def test_marks_are_parsed_worst_first() -> None:
    err = (b"x ... \n@@cpython-test ok test.test_a.T.t1\nnoise\n"
           b"@@cpython-test FAIL test.test_a.T.t2\n@@cpython-test ok test.test_a.T.t2\n"
           b"@@cpython-test skipped test.test_a.T.t3\n@@cpython-test ERROR test.test_a.T.t1\n")
    assert parse(err) == {"test.test_a.T.t1": "ERROR", "test.test_a.T.t2": "FAIL",
                          "test.test_a.T.t3": "skipped"}


def test_known_differences_name_listed_modules() -> None:
    known = Known.load()
    orphans = [t for t in known.reasons if not any(t.startswith(m.prefix) for m in MODULES)]
    assert not orphans, f"listed tests of no module in MODULES: {orphans}"


def test_docs_are_current() -> None:
    assert DOC.exists() and DOC.read_text() == render(), (
        "docs/cpython-tests.md is stale: run .venv/bin/python -m tests.compat.cpython --docs")
