"""Backends: memory, one that awaits, and Redis against a real redis-server."""
