"""Test support: real clients and servers the tests start, and fakes where no real thing can run."""
