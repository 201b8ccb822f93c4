"""The version of transferkit."""

__version__ = "0.1.0"
