"""Benchmark-only code behind ``benchmark.py`` (not installed with the package): side-by-side runs against mindcv,
inference speed per runtime, per-operator profiles, and the one timing rule they share (:mod:`.timing`)."""
