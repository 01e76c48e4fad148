"""The training engine: one trainer for every objective."""
