"""The benchmark behind ``scripts/bench.py``: the engine held against hand-written floors.

Each comparison runs its variants in turns, round after round, in one process, so a noisy
neighbour hits every variant alike; the ratio of a variant to its floor is taken within each
round and the median of those ratios is reported.
"""
