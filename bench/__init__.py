"""``python -m bench``: measures openlines against the design.md performance targets.

Starts its own Temporal dev server, worker and API on free ports and a temporary data folder,
drives them through the real HTTP API and prints one table (and optionally JSON). It is a
script that prints numbers, not a test with thresholds: the targets are printed beside them.
"""
