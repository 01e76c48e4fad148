"""Data sources: toy distributions, image data sets, image folders."""
