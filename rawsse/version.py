"""The package's version, in a module of its own so that any layer may read it without
importing the package's public names (and with them, every layer)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
