"""What users touch: the `runpsc` command line and the Python API for sandboxes. Nothing in
runpsc imports this package.
"""
