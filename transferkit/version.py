"""The version of transferkit."""

__version__ = "0.2.0"
