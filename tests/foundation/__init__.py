"""The foundation: the wire format, configuration, topics and text, pure and table-driven."""
