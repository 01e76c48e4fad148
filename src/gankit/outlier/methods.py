"""Anomaly scores, one per image, higher = more anomalous, as methods a model offers.

A method names the capabilities it needs (``gankit.core.capabilities``); ``gankit score``
offers a model the methods whose needs it meets, so there is no switch over objectives:

``nll``       -log p(x) in nats: exact for a PixelCNN, the importance-weighted bound for a
              VAE (Burda et al. 2016; ``--iw-samples`` k).
``elbo``      the negative evidence lower bound (Kingma & Welling 2014) in nats.
``ratio``     log p_background(x) - log p(x): minus the likelihood ratio of Ren et al. 2019,
              with a background model trained on perturbed inputs (``data.perturb``; give
              its run as ``--background``); the background term both models share cancels.
``complexity`` -log2 p(x) - L(x) in bits: the input-complexity score of Serra et al. 2020, a
              log likelihood ratio against a universal model, the lossless PNG code of x
              (L(x) = its length in bits); the model needs no second run.
``critic``    the discriminator's / critic's value at x, oriented so that higher = less like
              the data: minus D(x) (a probability for sigmoid games, the raw critic for WGAN
              and hinge), or the value itself when the objective declares it an energy
              (``critic_is_energy``: BEGAN's reconstruction error L(x), low on the data).
``fanogan``   the f-AnoGAN score (Schlegl et al. 2019): pixel residual + kappa * feature
              residual of the izi_f encoder's reconstruction G(E(x)).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from PIL import Image
from torch import Tensor

from gankit.core import capabilities as caps
from gankit.errors import GankitError

BATCH = 256


@dataclass(frozen=True)
class Method:
    """A way to score: ``needs`` capabilities; ``run(model, x, options) -> {"score": (n,),
    other per-image values}`` on a batch x (n, *shape) in [-1, 1] on the model's device.
    ``meaning``: what the score is; ``explain(model) -> str`` instead, for a method whose
    score reads differently by model (:meth:`describe`)."""

    name: str
    needs: frozenset[str]
    meaning: str
    run: Callable[[Any, Tensor, "Options"], dict[str, Tensor]]
    background: bool = False          # needs a second model (``--background``)
    protocol: dict[str, Any] = field(default_factory=dict)   # fixed choices, for the summary
    explain: Callable[[Any], str] | None = None

    def describe(self, model) -> str:
        """What this method's score is for ``model`` (for the summary and the CLI)."""
        return self.explain(model) if self.explain is not None else self.meaning


@dataclass
class Options:
    """What a method may read beyond the model: ``iw_samples`` (k of an estimate; None:
    the model's default) and ``background``: a second loaded model (``ratio``)."""

    iw_samples: int | None = None
    background: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _k(options: Options) -> dict[str, int]:
    return {} if options.iw_samples is None else {"samples": options.iw_samples}


def _nll(model, x: Tensor, options: Options) -> dict[str, Tensor]:
    return {"score": -model.objective.log_likelihood(x, model.sampler(), **_k(options))}


def _elbo(model, x: Tensor, options: Options) -> dict[str, Tensor]:
    return {"score": -model.objective.elbo(x, model.sampler(), **_k(options))}


def _ratio(model, x: Tensor, options: Options) -> dict[str, Tensor]:
    bg = options.background
    log_p = model.objective.log_likelihood(x, model.sampler(), **_k(options))
    log_bg = bg.objective.log_likelihood(x.to(bg.device), bg.sampler(), **_k(options)).to(x.device)
    return {"score": log_bg - log_p, "nll": -log_p, "nll_background": -log_bg}


def png_bits(x: Tensor) -> Tensor:
    """The input complexity L(x) of Serra et al. 2020 ("Input complexity and
    out-of-distribution detection with likelihood-based generative models", ICLR 2020): the
    length in bits of each image's lossless PNG encoding (Pillow, ``optimize=True``: zlib
    level 9 and the best filter). x (n, C, H, W) in [-1, 1], C = 1 or 3, quantised to 8 bits
    as the images were read -> (n,) float64 bits. The PNG's fixed chunks (signature, header,
    end: 57 bytes) are included; they are the same for every image of one shape and so shift
    all scores alike. ValueError for another channel count."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"png_bits takes (n, 1 or 3, H, W) images, not {tuple(x.shape)}")
    pixels = ((x.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).numpy()                     # (n, H, W, C)
    bits = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG",
                                                                         optimize=True)
        bits.append(8 * buf.getbuffer().nbytes)
    return torch.tensor(bits, dtype=torch.float64)


def _complexity(model, x: Tensor, options: Options) -> dict[str, Tensor]:
    log_p = model.objective.log_likelihood(x, model.sampler(), **_k(options))     # (n,) nats
    code = png_bits(x).to(log_p.device, torch.float64)                            # (n,) bits
    return {"score": -log_p.double() / math.log(2) - code, "nll": -log_p, "png_bits": code}


def critic_orientation(objective) -> tuple[int, str]:
    """How ``objective``'s critic map becomes an anomaly score (higher = more anomalous):
    the sign to apply to it and what the score then is. A critic map is higher on the data
    (D(x), a probability or a raw critic value), so the score is its negation, unless the
    objective declares the map an energy (``critic_is_energy``: higher = less like the
    data, e.g. BEGAN's reconstruction error L(x)), which is a score as it is."""
    if getattr(objective, "critic_is_energy", False):
        label = getattr(objective, "critic_label", None) or "the critic's energy"
        return 1, f"{label}: the critic's energy, higher away from the data"
    return -1, "-D(x): minus the critic's value"


def _critic(model, x: Tensor, options: Options) -> dict[str, Tensor]:
    sign, _ = critic_orientation(model.objective)
    with torch.no_grad():
        return {"score": sign * model.objective.critic_map(x).reshape(len(x))}


def _fanogan(model, x: Tensor, options: Options) -> dict[str, Tensor]:
    return model.objective.anomaly_score(x)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("fanogan", frozenset({caps.ANOMALY}),
           "f-AnoGAN: pixel residual + kappa * critic-feature residual of G(E(x))", _fanogan),
    Method("ratio", frozenset({caps.LIKELIHOOD}),
           "log p_background(x) - log p(x) (Ren et al. 2019), nats", _ratio, background=True),
    Method("nll", frozenset({caps.LIKELIHOOD}), "-log p(x), nats", _nll),
    Method("complexity", frozenset({caps.LIKELIHOOD}),
           "-log2 p(x) - PNG bits of x (Serra et al. 2020), bits; columns nll in nats, "
           "png_bits in bits", _complexity,
           protocol={"complexity": "PNG, 8 bits per channel, Pillow optimize=True"}),
    Method("elbo", frozenset({caps.ELBO}), "-ELBO(x), nats", _elbo),
    Method("critic", frozenset({caps.CRITIC}),
           "the critic's value, oriented: higher = less like the data", _critic,
           explain=lambda model: critic_orientation(model.objective)[1]),
)}


def offered(model) -> list[str]:
    """The names of the methods ``model`` offers, in order of preference."""
    return [n for n, m in METHODS.items() if m.needs <= model.objective.offers]


def choose(model, name: str | None, has_background: bool) -> Method:
    """The method ``name`` (None: the first the model offers, ``ratio`` only with a
    background model). GankitError (one line) for an unknown method, one the model does not
    offer, or ``ratio`` without ``--background`` (and a background with another method)."""
    have = offered(model)
    kind = model.cfg.objective.name
    if name is None:
        usable = [n for n in have if has_background or not METHODS[n].background]
        if not usable:
            raise GankitError(f"a {kind} model offers no anomaly score (methods: "
                              f"{', '.join(METHODS)})")
        name = usable[0]
    if name not in METHODS:
        raise GankitError(f"--method {name}: unknown; choose one of {', '.join(METHODS)}")
    if name not in have:
        raise GankitError(f"--method {name}: a {kind} model does not offer it "
                          f"(it offers {', '.join(have) or 'none'})")
    method = METHODS[name]
    if method.background and not has_background:
        raise GankitError(f"--method {name} needs --background RUN: a model trained on "
                          "perturbed inputs (data.perturb)")
    if has_background and not method.background:
        raise GankitError(f"--background is used by --method ratio only, not {name}")
    return method


@torch.no_grad()
def run_batches(method: Method, model, x: Tensor, options: Options,
                batch: int = BATCH) -> dict[str, Tensor]:
    """``method`` over images x (n, *shape) in [-1, 1] (on the CPU) in batches, on the
    model's device -> {name: (n,) float64 CPU}. GankitError when a score is NaN/infinite."""
    parts: dict[str, list[Tensor]] = {}
    for i in range(0, len(x), batch):
        out = method.run(model, x[i:i + batch].to(model.device), options)
        for k, v in out.items():
            parts.setdefault(k, []).append(v.detach().double().cpu())
    result = {k: torch.cat(v) for k, v in parts.items()}
    bad = int((~torch.isfinite(result["score"])).sum())
    if bad:
        raise GankitError(f"--method {method.name}: {bad} of {len(x)} scores are NaN or infinite")
    return result
