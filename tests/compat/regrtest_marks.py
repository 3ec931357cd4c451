"""`python3 -m test ARGS` (CPython's regression test runner) with one line per test result
written to stderr: `@@cpython-test STATUS ID`, STATUS one of ok, FAIL, ERROR, skipped,
xfail, xpass. Lines written as the tests run survive a run killed half-way, and do not
depend on parsing unittest's verbose output, which the tests' own prints interleave.

Runs under the interpreter whose tests it runs (Debian's /usr/bin/python3), natively and
inside the sandbox alike, so it imports only the standard library.
"""

import os
import unittest

MARK = "@@cpython-test"


def _mark(status, test):
    os.write(2, f"\n{MARK} {status} {test.id()}\n".encode(errors="replace"))


def _wrap(name, status_of):
    """Make unittest.TestResult.NAME also write a mark, for the runner's results only (the
    tests of unittest itself make results of their own)."""
    original = getattr(unittest.TestResult, name)

    def wrapped(self, test, *args):
        status = status_of(*args)
        if status is not None and isinstance(self, unittest.TextTestResult):
            _mark(status, test)
        return original(self, test, *args)

    setattr(unittest.TestResult, name, wrapped)


def _subtest_status(subtest, err):
    """A failed subtest fails its test (whose own success is then never reported)."""
    if err is None:
        return None
    return "FAIL" if issubclass(err[0], AssertionError) else "ERROR"


_wrap("addSuccess", lambda: "ok")
_wrap("addFailure", lambda err: "FAIL")
_wrap("addError", lambda err: "ERROR")
_wrap("addSkip", lambda reason: "skipped")
_wrap("addExpectedFailure", lambda err: "xfail")
_wrap("addUnexpectedSuccess", lambda: "xpass")
_wrap("addSubTest", _subtest_status)

if __name__ == "__main__":
    from test.libregrtest import main

    main()
