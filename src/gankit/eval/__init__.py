"""Evaluation: the FID Inception network, feature extraction with caching, and the API the
``gankit fid`` / ``gankit eval`` commands call. The metric maths lives in :mod:`gankit.metrics`.
"""
