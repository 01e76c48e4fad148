"""What a trained model offers, so that views and metrics can ask instead of switching on names.

An objective declares its capabilities with ``Objective.capabilities(params)`` (a class method,
so a config can be checked before anything is built). Each name below promises methods or
attributes on the objective instance:

================  ==============================================================================
``samples``       ``sample_inputs(n, rng) -> dict`` and ``generate(inputs, net) -> (n, *shape)``
``critic``        ``critic_map(x) -> (n,)``: the critic's value at data points (a probability
                  D(x) for sigmoid games, the raw critic value otherwise; ``critic_is_probability``;
                  ``critic_is_energy``: an energy, low on the data, as BEGAN's L(x)) and
                  ``generator_field(x) -> (n, *shape)``: -grad_x of G's loss at x
``latent``        ``latent`` (a ``Latent``): the inputs carry ``z`` that may be interpolated
``codes``         ``code_spec() -> (categorical K, continuous m)``; inputs ``c_cat`` (n,),
                  ``c_cont`` (n, m) (InfoGAN)
``categorical``   among the codes, a categorical one with K >= 2 values (``c_cat``)
``labels``        class-conditional sampling: inputs carry ``y`` (n,) int64 labels
``likelihood``    ``log_likelihood(x, net=None, samples=None) -> (n,)`` in nats per example
                  (``net``: the density net to use, e.g. the trainer's EMA sampler; default the
                  trained one; ``samples``: importance samples of an estimate, None: the
                  model's default; exact models ignore it) and ``likelihood_protocol(samples)
                  -> dict``: how it is computed (exact, or the estimator and its samples)
``encoding``      ``encode(x) -> (n, z_dim)``: the latent code of data points (a VAE's
                  posterior mean) and ``decode(z) -> (n, *shape)``: the mean image at codes z
``reconstruction`` ``reconstruct(x) -> x_hat`` of the same shape; optional
                  ``reconstruction_of``: its name as a format ("D({})", "dec(enc({}))") and
                  ``sample_name``: what its samples are called ("G(z)", "sample")
``translation``   ``directions`` {"AtoB": net name, ...} and ``inverse`` {direction: the net that
                  undoes it} (CycleGAN; empty for pix2pix); ``generate`` translates held-out
                  inputs
``text``          ``decode(x) -> list[str]``
``classifier``    ``classify(x, net=None) -> (n, K)`` class logits of data points, by the net named
                  ``classifier_net`` (the trainer passes its averaged copy when it keeps one)
``captions``      text-conditioned sampling: inputs carry ``tokens`` (n, length) int64 caption
                  ids that may be replaced, encoded by the data's ``CaptionInfo.encode``
``elbo``          ``elbo(x, net=None, samples=None) -> (n,)``: the evidence lower bound in nats
                  (a latent-variable model; ``samples``: draws of z per example)
``anomaly``       ``anomaly_score(x) -> {"score": (n,), ...}``: the model's own anomaly score,
                  higher = more anomalous, with its parts (f-AnoGAN), and
                  ``anomaly_protocol() -> dict``
``styles``        a style-based generator (StyleGAN): ``num_ws(net=None)``, ``style_layers(spec)
                  -> (lo, hi)`` (w indices of "coarse" / "middle" / "fine" / "i-j"),
                  ``to_w(inputs, net=None) -> (n, num_ws, w_dim)``, ``truncated(inputs, psi)``
                  and ``mixed(inputs_a, inputs_b, spec)`` (inputs whose samples are truncated /
                  take B's styles in ``spec``); inputs may carry ``w`` (n, num_ws, w_dim)
                  instead of z, and per-layer noise ``noise<i>`` that ``with_noise`` redraws
================  ==============================================================================
"""

from __future__ import annotations

SAMPLES = "samples"
CRITIC = "critic"
LATENT = "latent"
CODES = "codes"
CATEGORICAL = "categorical"
LABELS = "labels"
LIKELIHOOD = "likelihood"
RECONSTRUCTION = "reconstruction"
ENCODING = "encoding"
TRANSLATION = "translation"
TEXT = "text"
CLASSIFIER = "classifier"
CAPTIONS = "captions"
ELBO = "elbo"
ANOMALY = "anomaly"
STYLES = "styles"

MEANING = {
    SAMPLES: "draws samples",
    CRITIC: "a critic map over inputs",
    LATENT: "a latent z that can be interpolated",
    CODES: "interpretable latent codes (InfoGAN)",
    CATEGORICAL: "a categorical latent code",
    LABELS: "class-conditional sampling",
    LIKELIHOOD: "a likelihood per example",
    RECONSTRUCTION: "reconstructions of inputs",
    ENCODING: "an encoder into the latent space",
    TRANSLATION: "translation between two image domains",
    TEXT: "text decoding",
    CLASSIFIER: "a classifier of data points",
    CAPTIONS: "caption-conditioned sampling",
    ELBO: "an evidence lower bound per example",
    ANOMALY: "an anomaly score per example",
    STYLES: "a style-based generator (truncation, style mixing)",
}


def describe(caps) -> str:
    """'a likelihood per example, draws samples' for error messages (sorted, stable)."""
    return ", ".join(MEANING[c] for c in sorted(caps)) or "nothing"


def missing_message(needed, offered) -> str | None:
    """None when ``offered`` covers ``needed``; else a short reason naming what is missing."""
    lacking = sorted(set(needed) - set(offered))
    if not lacking:
        return None
    return f"needs {describe(lacking)}, which this model does not offer"
