"""Semi-supervised GAN with a K+1-class critic (Salimans et al. 2016, "Improved Techniques for
Training GANs", section 5; Odena 2016).

The critic outputs K logits l_1..l_K for the real classes; the (K+1)-th, "generated", has
the fixed logit 0 (the softmax is over-parameterised, so fixing one logit loses nothing).
With Z(x) = sum_k exp l_k(x):
    p(y = k | x, real) = softmax(l(x))_k,     D(x) = p(real | x) = Z(x) / (Z(x) + 1)
                                                   = sigmoid(logsumexp_k l_k(x)).
The critic's loss is the supervised cross-entropy on the labelled subset plus the GAN loss
on unlabelled and generated data:
    L_D = L_sup + w L_unsup,
    L_sup   = -E_{(x,y) labelled} log softmax(l(x))_y
    L_unsup = -1/2 E_x log D(x) - 1/2 E_z log(1 - D(G(z)))
            = 1/2 E_x [softplus(lse(x)) - lse(x)] + 1/2 E_z softplus(lse(G(z)))
(lse = logsumexp_k l_k; the 1/2 as in the authors' code; w = ``unlabelled_weight``, 1 in the
paper). G trains by feature matching (section 3.1), || E_x f(x) - E_z f(G(z)) ||^2 over the
critic's last hidden layer, on an unlabelled batch of its own; the paper found it, not the
usual G loss, gave the best classifier. The classifier is the critic: its test error is
computed with its averaged weights when ``train.ema_beta`` keeps them (the paper's Polyak
averaging, here as an exponential moving average; ``gankit eval --metrics test-error``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import GeneratorRole
from gankit.errors import ConfigError
from gankit.objectives.base import ObjectiveParams, Scalars
from gankit.objectives.conditional import accuracy, require_labels
from gankit.objectives.gan import GANObjective


class SSGANParams(ObjectiveParams):
    name: Literal["ssgan"] = "ssgan"
    # G's loss: feature matching (the paper's choice for semi-supervised learning) or the
    # non-saturating -log D(G(z)) with D(x) = sigmoid(lse(x))
    g_loss: Literal["feature_matching", "nonsaturating"] = "feature_matching"
    unlabelled_weight: float = Field(1.0, ge=0)          # w of L_unsup
    historical_averaging: float = Field(0.0, ge=0, le=1e6)


def unsupervised_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_unsup = 1/2 E[softplus(lse(x)) - lse(x)] + 1/2 E[softplus(lse(G(z)))] (a scalar)
    from the K class logits of unlabelled real (B, K) and generated (B', K) data: the GAN
    loss of D(x) = sigmoid(logsumexp_k l_k(x)) (Salimans et al. 2016, section 5)."""
    lse_real = torch.logsumexp(real_logits.float(), 1)                  # (B,)
    lse_fake = torch.logsumexp(fake_logits.float(), 1)                  # (B',)
    return 0.5 * (F.softplus(lse_real) - lse_real).mean() + 0.5 * F.softplus(lse_fake).mean()


class SSGAN(GANObjective):
    """Semi-supervised GAN with a K+1-class critic (Salimans et al. 2016, section 5).

    The generated class's logit is fixed at 0, D(x) = sigmoid(logsumexp_k l_k(x)),
        L_D = -E_lab log softmax(l(x))_y + w L_unsup(l(x), l(G(z)))   (``unsupervised_loss``)
        L_G = || E_x f(x) - E_z f(G(z)) ||^2                          (feature matching)
    needs ``data.labelled_per_class``; the critic is the classifier (capability
    "classifier"; ``gankit eval --metrics test-error``)."""

    Params = SSGANParams
    critic_is_probability: ClassVar[bool] = True      # D(x) = sigmoid(lse): a probability
    averaged_nets: ClassVar[tuple[str, ...]] = ("D",)  # the classifier, under train.ema_beta
    classifier_net: ClassVar[str] = "D"
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    smoke_config: ClassVar[dict[str, Any]] = {
        "data": {"name": "mnist", "split": "test", "labelled_per_class": 1}}

    @classmethod
    def roles(cls, params, info, latent):
        k = require_labels("ssgan", info)
        if not info.labelled:
            raise ConfigError("the ssgan objective learns from a labelled subset: set "
                              "data.labelled_per_class (e.g. 10 for 100 MNIST labels)")
        return {"G": GeneratorRole(z_dim=latent.dim), "D": cls.critic_role(params, out_dim=k)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.LATENT, caps.CRITIC, caps.CLASSIFIER})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """Adam(3e-3, beta1 0.5): the authors' MNIST settings."""
        return {"name": "adam", "lr": 3e-3, "betas": (0.5, 0.999)}

    def adversarial_output(self, out: Tensor) -> Tensor:
        """The real-vs-generated logit lse_k l_k(x) (B,) from the class logits (B, K)."""
        return torch.logsumexp(out, 1)

    def loss_D(self, ctx) -> tuple[Tensor, Scalars]:
        D, batch = self.nets["D"], ctx.batch
        _, fake = self.fakes_for_D(ctx, batch["x"].shape[0])           # (B, *shape)
        lab_logits = D(batch["x_lab"])                                 # (B, K)
        real_logits, fake_logits = D(batch["x"]), D(fake)              # (B, K) each
        sup = F.cross_entropy(lab_logits.float(), batch["y_lab"])
        unsup = unsupervised_loss(real_logits, fake_logits)
        loss = sup + self.params.unlabelled_weight * unsup
        return loss, {"loss/D": loss.detach(), "loss/D_sup": sup.detach(),
                      "loss/D_unsup": unsup.detach(),
                      "acc/labelled": accuracy(lab_logits, batch["y_lab"]),
                      "D(x)": self.score(self.adversarial_output(real_logits)),
                      "D(G(z))": self.score(self.adversarial_output(fake_logits))}

    def loss_G(self, ctx) -> tuple[Tensor, Scalars]:
        loss, _ = self.g_adversarial(ctx, self.fakes_for_G(ctx, ctx.local_batch)[1])
        return loss, {"loss/G": loss.detach()}

    def classify(self, x: Tensor, net: nn.Module | None = None) -> Tensor:
        """Class logits (n, K) of images x (n, *shape) by the critic ``net`` (default: the
        trained one; the trainer passes its averaged copy)."""
        return (net or self.nets["D"])(x)
