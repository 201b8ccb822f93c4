"""Small helpers shared across transferkit's modules (not part of the public API)."""
