"""Sans-IO HTTP/1.1: the exchange and the plain-request reader, driven with bytes alone (and fuzzed)."""
