"""GAN objectives: each variant computes losses and logged scalars; the trainer steps."""
