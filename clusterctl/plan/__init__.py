"""Capacity planning: the history replayed on proposed fleets, each priced."""
