"""9P2000.L for runpsc: a sans-I/O codec, a trio client and server framework, and transports.

The Sentry reads every file of a sandbox through this package and the Gofer serves through
it. It imports nothing else of runpsc's.
"""
