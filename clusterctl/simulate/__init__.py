"""Trace replay in simulated time through the live scheduling policy (``scheduler/policy.py``)."""
