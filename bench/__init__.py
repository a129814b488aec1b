"""Benchmarks and the load test: ``python -m bench.run`` (``make bench``) and
``python -m bench.loadtest`` (``make loadtest``). Results are described in BENCHMARKS.md."""
