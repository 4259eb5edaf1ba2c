"""Performance tooling: CPU runtime tuning (imported by the models), per-operator profiling, side-by-side benchmarks.

Only :mod:`.runtime` is imported by the package itself; the profiling and comparison machinery loads on demand.
"""
