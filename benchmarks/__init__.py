"""Benchmarks of the bridge: control-step latency, audio safety on a real jackd, CPU and memory, desk traffic.

Run them all with ``make bench`` (``python -m benchmarks.run``); each module
also runs on its own with ``python -m benchmarks.<name>``. Results land in
``benchmarks/results/``.
"""
