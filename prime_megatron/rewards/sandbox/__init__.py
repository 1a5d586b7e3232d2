"""Sandbox for model-written Python: namespaces, a throwaway uid, read-only mounts, rlimits.

Only the stdlib is imported here: the bootstrap loads this package before isolating itself.
"""
