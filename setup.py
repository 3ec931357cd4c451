"""Build hook only: pyproject.toml holds the project's metadata; this adds the cffi
extension for the Sentry's hot loop (sentry/platform/_hotloop_build.py)."""

from setuptools import setup

setup(cffi_modules=["sentry/platform/_hotloop_build.py:ffibuilder", "p9/_fastio_build.py:ffibuilder"])
