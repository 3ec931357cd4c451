"""The Sentry: runpsc's kernel. Application threads run in traced stub processes; every
system call they make stops there and is served here, over the VFS.
"""
