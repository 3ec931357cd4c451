"""Build hook only: pyproject.toml holds the project's metadata; this adds the cffi
extensions (their C in p9/fastio.c and sentry/platform/hotloop.c, MANIFEST.in ships it)."""

from setuptools import setup

setup(cffi_modules=["sentry/platform/_hotloop_build.py:ffibuilder", "p9/_fastio_build.py:ffibuilder"])
