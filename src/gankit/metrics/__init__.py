"""Metrics: pure functions on samples/features, plus wrappers that sample a trained model."""
