"""End to end: a real browser, other clients, nginx, and the perf smoke checks."""
