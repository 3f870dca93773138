"""The hub: fan-out pacing and metrics."""
