"""The Gofer: a 9P2000.L server that exports host directories without ever resolving a host
path string, confined to what it exports. The only part of runpsc that touches host files
on a sandbox's behalf.
"""
