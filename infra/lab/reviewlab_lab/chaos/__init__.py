"""Chaos scenarios: break one node on purpose under load, watch, and report what was lost."""
