"""The Sentry's virtual filesystem: mounts, path resolution with Linux's rules, open file
descriptions, and the filesystems behind them (tmpfs, devfs, pipefs, procfs, goferfs,
overlay). Usable directly from Python, so it is testable without the Sentry.
"""
