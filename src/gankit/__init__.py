"""gankit: train, evaluate and understand Generative Adversarial Networks."""

__version__ = "0.1.0"
