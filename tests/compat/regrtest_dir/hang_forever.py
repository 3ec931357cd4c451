"""A regrtest module that never ends (run with `--testdir`): one test passes, the next
starts a child that sleeps and then blocks for ever, so the runner's budget must kill the
whole sandbox, the child included."""

import os
import subprocess
import unittest


class HangForever(unittest.TestCase):
    def test_a_passes(self):
        pass

    def test_b_blocks(self):
        subprocess.Popen(["sleep", "100000"])
        r, _ = os.pipe()  # the write end stays open: the read never returns
        os.read(r, 1)
