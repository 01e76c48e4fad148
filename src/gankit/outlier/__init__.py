"""Outlier detection with trained generative models (``gankit score``).

A score per image, higher = more anomalous, by a method the loaded model offers
(:mod:`gankit.outlier.methods`: capabilities, not type switches), on images read from a
folder, a ``.npz`` array or a built-in test split (:mod:`gankit.outlier.inputs`); with the
truth known, AUROC / AUPRC, a histogram and sheets of the most and least anomalous images
(:mod:`gankit.outlier.evaluate`). :func:`gankit.outlier.score.score_images` ties them
together; ``gankit.api.score`` is its public face.
"""
