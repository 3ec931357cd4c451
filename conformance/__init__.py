"""Filesystem conformance: one suite of behaviour cases, run against the host kernel (the
oracle) and any other target, printed as a matrix.
"""
