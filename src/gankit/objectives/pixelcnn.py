"""PixelCNN (van den Oord et al. 2016): maximum likelihood of an autoregressive image model.

p(x) = prod_i p(x_i | x_<i) over the pixels in raster order, each factor read from the
network's logits at that pixel (``AutoregressiveRole``; networks in ``gankit.nn.pixelcnn``):
a Bernoulli for binarised images (pixel 1 when x = 1, 0 when x = -1) or a 256-way softmax
over grey levels (level = round((x + 1) * 127.5)). The likelihood is exact, so the training
loss on held-out data is the test NLL; sampling is sequential, one pixel per forward pass.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import AutoregressiveRole, Role
from gankit.core.step import Phase, StepContext
from gankit.objectives.base import Objective, ObjectiveParams, Scalars
from gankit.core.modes import eval_mode

LEVELS = {"bernoulli": 1, "categorical": 256}


class PixelCNNObjectiveParams(ObjectiveParams):
    name: Literal["pixelcnn"] = "pixelcnn"
    # bernoulli: binary pixels (binarised data); categorical: a softmax over 256 grey levels
    output: Literal["bernoulli", "categorical"] = "bernoulli"
    progress: bool = True              # a tqdm bar over the pixels while sampling


class PixelCNN(Objective):
    """PixelCNN: an autoregressive density with an exact likelihood (van den Oord et al. 2016).

    van den Oord, Kalchbrenner & Kavukcuoglu 2016 (Pixel Recurrent Neural Networks, section
    3.5) and the gated PixelCNN of van den Oord et al. 2016 (Conditional Image Generation with
    PixelCNN Decoders).

        L_nll = -E_x[ sum_i log p(x_i | x_<i) ]          (nats per image, exact)
        p(x_i | x_<i) = Bernoulli(sigmoid(l_i))          (output: bernoulli, binary pixels)
                      = softmax(l_i)[level of x_i]       (output: categorical, 256 levels)

    Logged: ``loss/nll`` (nats per image) and ``bpd/train`` (bits per dimension). Samples are drawn
    pixel by pixel in raster order from uniforms u (n, *shape) of ``sample_inputs`` (inverse
    CDF), so a sample is a function of its inputs like a GAN's of its z; only the rows up to
    the current one are computed (the output there never reads later rows). A tqdm bar shows
    the pixels (``progress``); ``last_sampling`` keeps images/s of the latest call. Adam(1e-3).
    """

    Params = PixelCNNObjectiveParams
    sample_nets: ClassVar[tuple[str, ...]] = ("density",)
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    smoke_config: ClassVar[dict[str, Any]] = {
        "model": {"name": "pixelcnn", "channels": 4, "layers": 2, "head": 8},
        "objective": {"progress": False}}

    @classmethod
    def phases(cls, params, options) -> tuple[Phase, ...]:
        return (Phase("nll", ("density",), real="fresh"),)

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        return {"density": AutoregressiveRole(levels=LEVELS[params.output])}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LIKELIHOOD})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(1e-3, betas 0.9/0.999) (Kingma & Ba's defaults)."""
        return {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999)}

    # ---- the likelihood -----------------------------------------------------------------
    def pixel_log_probs(self, logits: Tensor, x: Tensor) -> Tensor:
        """log p(x_i | x_<i) per pixel (B, *shape) from logits (B, levels, *shape) and images
        (B, *shape) in [-1, 1]."""
        if self.params.output == "bernoulli":
            target = (x > 0).to(logits.dtype)
            return -F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="none")
        level = ((x + 1) * 127.5).round().clamp(0, 255).long()
        return -F.cross_entropy(logits, level, reduction="none")

    def log_likelihood(self, x: Tensor, net: nn.Module | None = None,
                       samples: int | None = None) -> Tensor:
        """Exact log p(x) (B,) in nats of images (B, *shape) in [-1, 1] (``samples`` is
        ignored: nothing is estimated)."""
        net = net or self.nets["density"]
        with torch.no_grad(), eval_mode(net):
            return self.pixel_log_probs(net(x), x).flatten(1).sum(1)

    def likelihood_protocol(self, samples: int | None = None) -> dict[str, Any]:
        return {"estimator": "exact (autoregressive factorisation)"}

    def loss_nll(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        x = ctx.batch["x"]
        logp = self.pixel_log_probs(self.nets["density"](x), x).flatten(1).sum(1)   # (B,)
        loss = -logp.mean()
        bpd = loss.detach() / (x[0].numel() * torch.log(torch.tensor(2.0)))
        # "bpd/train": the training batches' bits/dim, apart from metric nll's held-out "bpd"
        return loss, {"loss/nll": loss.detach(), "bpd/train": bpd}

    # ---- sampling -------------------------------------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return {"u": torch.rand((n, *self.info.shape), generator=rng, device=self.device)}

    def pick(self, logits: Tensor, u: Tensor) -> Tensor:
        """Pixel values in [-1, 1] (B,) from the logits (B, levels) at one pixel and
        uniforms u (B,), by the inverse CDF."""
        if self.params.output == "bernoulli":
            return torch.where(u < torch.sigmoid(logits[:, 0]), 1.0, -1.0)
        cdf = torch.softmax(logits.double(), 1).cumsum(1)
        level = torch.searchsorted(cdf, u.double()[:, None]).clamp(max=255)[:, 0]
        return level.float() / 127.5 - 1

    @torch.no_grad()
    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None,
                 by_rows: bool | None = None) -> Tensor:
        """Samples (n, 1, H, W) in [-1, 1], pixel by pixel in raster order, each pixel by the
        inverse CDF of its conditional at the uniform ``u`` of that pixel. Row by row when the
        network offers ``row_context`` / ``pixel_logits`` (the gated stacks), else from the
        network's output on the part of the image drawn so far that the pixel reads (its
        ``receptive_field`` (rows above, columns each side) when it declares one, else every
        row up to r): the same values as the network on the whole image, in a fraction of
        the work. ``by_rows`` False: the windowed path even for the gated stacks (for
        comparisons). Speed of the last call in ``last_sampling`` (images/s)."""
        net, u = net or self.nets["density"], inputs["u"]
        n, _, H, W = u.shape
        rows = hasattr(net, "row_context") if by_rows is None else by_rows
        x, kept = torch.zeros_like(u), []       # kept: the row path's features of rows above
        start = time.perf_counter()
        with eval_mode(net), self.progress(H * W, n) as bar:
            for r in range(H):
                if rows:
                    self.draw_row_cached(net, x, u, r, bar, kept)
                else:
                    self.draw_row(net, x, u, r, bar)
        seconds = time.perf_counter() - start
        self.last_sampling = {"images": n, "seconds": seconds,
                              "images_per_s": n / seconds if seconds > 0 else float("inf")}
        return x

    def draw_row(self, net: nn.Module, x: Tensor, u: Tensor, r: int, bar) -> None:
        """Fills row r of x (n, 1, H, W) in place, running ``net`` on each pixel's window."""
        H, W = x.shape[-2:]
        up, side = getattr(net, "receptive_field", (H, W))
        r0 = max(0, r - up)
        for c in range(W):
            c0, c1 = max(0, c - side), min(W, c + side + 1)
            logits = net(x[:, :, r0: r + 1, c0:c1])[:, :, 0, r - r0, c - c0]   # (n, levels)
            x[:, 0, r, c] = self.pick(logits, u[:, 0, r, c])
            bar.update(1)

    def draw_row_cached(self, net: nn.Module, x: Tensor, u: Tensor, r: int, bar,
                        kept: list) -> None:
        """Fills row r of x in place: the vertical stack once for the row (``kept``: its
        features of the rows above, see ``row_context``), then the horizontal stack on the
        strip of the row each pixel reads."""
        W = x.shape[-1]
        side = getattr(net, "receptive_field", (W, W))[1]
        context = net.row_context(x, r, kept)                           # [(n, 2C, 1, W)]
        for c in range(W):
            c0 = max(0, c - side)
            logits = net.pixel_logits(x[:, :, r: r + 1, c0: c + 1],
                                      [t[..., c0: c + 1] for t in context])  # (n, levels)
            x[:, 0, r, c] = self.pick(logits, u[:, 0, r, c])
            bar.update(1)

    def progress(self, pixels: int, n: int):
        """A tqdm bar over the pixels of a batch of n images (off with ``progress: false``
        and when stderr is not a terminal)."""
        from tqdm.auto import tqdm
        return tqdm(total=pixels, desc=f"PixelCNN sampling {n} images", unit="px",
                    disable=None if self.params.progress else True, leave=False)
