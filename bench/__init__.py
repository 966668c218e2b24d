"""Benchmarks (`make bench`): comparisons measured side by side in one run, reported as ratios."""
