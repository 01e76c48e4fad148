"""Named building blocks: objectives, networks, data sets, metrics.

Each registry maps a name to ``"module:attribute"`` and imports it only when asked for, so
``gankit list`` is fast and importing gankit has no side effects. Adding a variant means adding
one module plus one line here; nothing else switches on names. What each kind must provide:

* ``OBJECTIVES``: a ``gankit.objectives.base.Objective`` subclass (phases, roles,
  capabilities, ``loss_<phase>``); checked by tests/test_contract.py.
* ``NETWORKS``: a family with ``Params`` (with a ``name``), ``data_kinds`` it takes and
  ``builders`` {role type: builder} (``gankit.core.roles``), optionally
  ``check(params, info)`` (the data shapes it takes) and ``min_batch(params, info, role)``
  (the per-process batch a net needs, e.g. 2 under a fully connected batch norm).
* ``DATASETS``: a class with ``Params``, ``kind`` ("toy1d", "toy2d", "image", "paired",
  "unpaired") and ``build(params, seed=, device=)`` returning a data source
  (``gankit.data.base.DataSource``, with ``heldout()``), optionally ``describe(params)``:
  the ``DataInfo`` the config alone determines (kind, shape), for checks at validation.

Every ``Params`` derives from ``gankit.params.Params`` (unknown keys forbidden, values checked
strictly: a boolean is not a number, a float not an integer).
* ``METRICS``: a metric of the protocol in ``gankit.metrics.protocol``.

Plug-ins and tests add entries with ``register(name, target)``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from gankit.errors import ConfigError


@dataclass
class Registry:
    """Names -> ``"module:attribute"`` (imported on first use) or the object itself."""

    kind: str
    entries: dict[str, Any] = field(default_factory=dict)

    def register(self, name: str, target: Any) -> None:
        """Add ``name`` (a plug-in or a test fixture): ``"module:attribute"`` or the object.
        Raises ValueError if the name is taken (``unregister`` it first)."""
        if name in self.entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self.entries[name] = target

    def unregister(self, name: str) -> None:
        self.entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def get(self, name: str) -> Any:
        if name not in self.entries:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            )
        target = self.entries[name]
        if not isinstance(target, str):
            return target
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def summary(self, name: str) -> str:
        """First line of the entry's docstring (for ``gankit list``)."""
        doc = (self.get(name).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


OBJECTIVES = Registry("objective", {
    "minimax": "gankit.objectives.classic:Minimax",
    "nonsaturating": "gankit.objectives.classic:NonSaturating",
    "wgan": "gankit.objectives.wgan:WGAN",
    "wgan-gp": "gankit.objectives.wgan:WGANGP",
    "lsgan": "gankit.objectives.classic:LeastSquares",
    "hinge": "gankit.objectives.classic:Hinge",
    "cyclegan": "gankit.objectives.cyclegan:CycleGAN",
    "pix2pix": "gankit.objectives.pix2pix:Pix2Pix",
    "cgan": "gankit.objectives.conditional:CGAN",
    "acgan": "gankit.objectives.conditional:ACGAN",
    "infogan": "gankit.objectives.infogan:InfoGAN",
    "began": "gankit.objectives.began:BEGAN",
    "unrolled": "gankit.objectives.unrolled:Unrolled",
    "vae": "gankit.objectives.vae:VAE",
    "pixelcnn": "gankit.objectives.pixelcnn:PixelCNN",
    "ssgan": "gankit.objectives.ssgan:SSGAN",
    "gan-cls": "gankit.objectives.captions:GANCLS",
    "fanogan": "gankit.objectives.fanogan:FAnoGAN",
    "stylegan": "gankit.objectives.stylegan:StyleGAN",
})

NETWORKS = Registry("network", {
    "mlp": "gankit.nn.mlp:MLPFamily",
    "translation": "gankit.nn.translation:TranslationFamily",
    "dcgan": "gankit.nn.dcgan:DCGANFamily",
    "infogan": "gankit.nn.infogan:InfoGANFamily",
    "began": "gankit.nn.began:BEGANFamily",
    "pixelcnn": "gankit.nn.pixelcnn:PixelCNNFamily",
    "ssgan-mlp": "gankit.nn.ssgan:SSGANMLPFamily",
    "captions": "gankit.nn.captions:CaptionsFamily",
    "stylegan": "gankit.nn.stylegan:StyleGANFamily",
    "textconv": "gankit.nn.text:TextConvFamily",
})

DATASETS = Registry("dataset", {
    "ring": "gankit.data.toy:Ring",
    "grid": "gankit.data.toy:Grid",
    "spiral": "gankit.data.toy:Spiral",
    "gaussian1d": "gankit.data.toy:Gaussian1D",
    "mnist": "gankit.data.idx:MNIST",
    "fashion-mnist": "gankit.data.idx:FashionMNIST",
    "cifar10": "gankit.data.cifar:CIFAR10",
    "folder": "gankit.data.folder:ImageFolder",
    "unpaired-folder": "gankit.data.translation:UnpairedFolder",
    "paired-folder": "gankit.data.translation:PairedFolder",
    "mnist-strokes": "gankit.data.translation:MNISTStrokes",
    "fashion-edges": "gankit.data.translation:FashionEdges",
    "mnist-captions": "gankit.data.captions:MNISTCaptions",
    "text": "gankit.data.text:Text",
})

# Each a gankit.metrics.protocol.Metric (tests/test_metric_protocol.py checks them all).
METRICS = Registry("metric", {
    "toy2d": "gankit.metrics.toy:Toy2DMetrics",
    "mnist": "gankit.metrics.offline:ClassifierMetrics",
    "mnist-pr": "gankit.metrics.offline:ClassifierPrecisionRecall",
    "speed": "gankit.metrics.offline:SamplingSpeed",
    "conditional-accuracy": "gankit.metrics.offline:ConditionalAccuracy",
    "class-agreement": "gankit.metrics.offline:ClassAgreement",
    "stacked-mnist": "gankit.metrics.offline:StackedMNISTMetrics",
    "caption-accuracy": "gankit.metrics.captions:CaptionAccuracy",
    "nll": "gankit.metrics.likelihood:HeldOutNLL",
    "test-error": "gankit.metrics.likelihood:HeldOutError",
    "text": "gankit.metrics.text:TextMetrics",
    "fid": "gankit.eval.metrics:FID",
    "is": "gankit.eval.metrics:InceptionScore",
    "kid": "gankit.eval.metrics:KID",
    "pr": "gankit.eval.metrics:PrecisionRecall",
    "ppl": "gankit.metrics.styles:PerceptualPathLength",
    "truncation-pr": "gankit.metrics.styles:TruncationPrecisionRecall",
})

ALL = {"objectives": OBJECTIVES, "networks": NETWORKS, "datasets": DATASETS, "metrics": METRICS}
