"""Serving: streams, publishes, batches, hostile input and shutdown over real sockets."""
