"""Runnable demonstrations; `cats_vs_dogs` is the reference example."""
