"""Benchmarks: each module is one script (`python -m bench.<name>`) that prints its own figures."""
