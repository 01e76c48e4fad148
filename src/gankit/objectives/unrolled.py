"""Unrolled GAN, Metz, Poole, Pfau & Sohl-Dickstein 2017 (arXiv:1611.02163).

The generator's loss is taken against the discriminator as it will be after K more of its own
updates, differentiated through those updates, so G cannot win by moving to where the current
D is weak but the next few D steps would catch it (the mode hopping behind mode collapse).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from gankit.core.roles import GeneratorRole, Role
from gankit.core.step import StepContext
from gankit.objectives import functional as L
from gankit.objectives.base import Scalars
from gankit.objectives.gan import SigmoidGame, SigmoidGameParams
from gankit.objectives.improved import feature_matching_loss

STEP_BATCH = "unrolled/step_batch"   # scratch key: the D step's (real batch, noise)


class UnrolledParams(SigmoidGameParams):
    name: Literal["unrolled"] = "unrolled"
    unrolling_steps: int = Field(5, ge=0, le=10)      # K; 0 is the plain GAN
    # "step": every inner step (and G's loss) reads the D step's real batch and noise, as the
    # authors' notebook does; "fresh": each inner step draws its own real batch and noise.
    inner_batches: Literal["step", "fresh"] = "step"
    # "nonsaturating": L_G = -E[log D_K(G(z))]; "minimax": the paper's f_K (the notebook's);
    # "feature_matching": ||E f_K(x) - E f_K(G(z))||^2 on D_K's features (Salimans et al.)
    g_loss: Literal["nonsaturating", "minimax", "feature_matching"] = "nonsaturating"


class Unrolled(SigmoidGame):
    """Unrolled GAN, Metz, Poole, Pfau & Sohl-Dickstein 2017 (arXiv:1611.02163, section 2).

    D takes only its ordinary step on the GAN loss (Eq. 11: no unrolling for D):
        L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
    G's loss is taken against D_K, the discriminator after K differentiable copies of D's own
    update U_D (its optimizer's rule and current learning rate, from a copy of its state:
    Adam's moments and step count; nothing is written back), theta_D^0 = theta_D,
        theta_D^{k+1} = U_D(theta_D^k, grad_{theta_D^k} L_D(theta_G, theta_D^k)),  k < K  (Eq. 7)
    and G's gradient flows through the K updates (Eq. 10), second-order terms included; not
    the first-order shortcut that holds theta_D^K constant (the paper's "missing gradient
    term" is the second summand below):
        L_G = -E_z[log D_K(G(z))]                          (g_loss "nonsaturating", default)
        L_G = E_x[log D_K(x)] + E_z[log(1 - D_K(G(z)))]    (g_loss "minimax": the paper's
                                                             surrogate f_K, the notebook's)
        L_G = || E_x f_K(x) - E_z f_K(G(z)) ||_2^2         (g_loss "feature_matching":
                                    Salimans et al. 2016, 3.1, on D_K's hidden features)
        dL_G/dtheta_G = dL_G/dtheta_G|_{theta_D^K fixed} + dL_G/dtheta_D^K . dtheta_D^K/dtheta_G
    K = 0 is the plain GAN: the non-saturating GAN for the default ``g_loss`` (with "step"
    batches G's loss reads the D step's noise, as with ``train.reuse_fakes``).

    Minibatches (``inner_batches``): the paper writes the updates on expectations. The
    authors' toy notebook (github.com/poolio/unrolled_gan) reuses the step's one real
    minibatch and one noise minibatch for the D step, every unrolled step and G's loss; that
    is ``"step"`` (default): the inner steps read the D step's real batch and noise (the last
    one when train.d_steps > 1), and G's loss the same noise. ``"fresh"`` draws a new real
    batch and noise for each inner step (``ctx.draw_real``, counted in ``images_seen``) and
    new noise (and, for "minimax", a real batch) for G's loss.

    Phases run D then G (Algorithm 1 of Goodfellow et al. 2014), so the unrolling starts from
    D after its step of this iteration. The notebook updates both from the same D, so its
    first unrolled step repeats the real one: with "step" batches, K here looks as far ahead
    as K + 1 in the notebook.
    Cost: G's step adds K forward/backward passes of D and their second-order backward.

    With ``historical_averaging`` (Salimans et al. 2016, section 3.3) the inner steps descend
    D's real loss, its historical term included (against the running mean, not updated).
    """

    Params = UnrolledParams
    can_reuse_fakes: ClassVar[bool] = False   # "step" batches already share the D step's noise

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        """The notebook's Adam: lr D 1e-4, G 1e-3, beta1 0.5, beta2 0.999, eps 1e-8."""
        return {"name": "adam", "lr": 1e-4 if phase == "D" else 1e-3, "betas": (0.5, 0.999)}

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        # D's gradient is differentiated again (the unrolled updates): no torch.compile on D
        return {"G": GeneratorRole(z_dim=latent.dim),
                "D": cls.critic_role(params, double_backward=params.unrolling_steps > 0)}

    @classmethod
    def g_reads_real(cls, params) -> bool:
        """G's loss reads the D step's real batch or draws its own (``inner_batches``)."""
        return False

    def g_term(self, fake_out: Tensor) -> Tensor:
        """G's loss against the current D (K = 0; figures' generator field)."""
        if self.params.g_loss == "minimax":
            return L.g_loss_saturating(fake_out)
        return L.g_loss_nonsaturating(fake_out)

    def fakes_for_D(self, ctx: StepContext, n: int) -> tuple[dict[str, Tensor], Tensor]:
        """As every GAN's (n fakes (n, *shape) without G's graph), and keeps the D step's
        real batch and noise in the step's scratch for "step" inner batches."""
        inputs, fake = super().fakes_for_D(ctx, n)
        ctx.scratch[STEP_BATCH] = (dict(ctx.batch), inputs)   # for "step" inner batches
        return inputs, fake

    def _step_batch(self, ctx: StepContext) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The D step's (real batch, noise); a G step without a D step before it in this
        step context (tests, notebooks) draws them."""
        kept = ctx.scratch.get(STEP_BATCH)
        if kept is None:
            kept = ctx.scratch[STEP_BATCH] = (ctx.draw_real(),
                                              self.sample_inputs(ctx.local_batch, ctx.rng))
        return kept

    def _g_loss(self, D, real: Tensor | None, fake: Tensor) -> tuple[Tensor, Tensor]:
        """(L_G, D's logits on the fakes) against the critic D (the unrolled copy or D).
        Feature matching keeps the graph of the real features too: D_K's depend on G."""
        if self.params.g_loss == "feature_matching":
            fake_out, fake_features = D(fake, features=True)
            return feature_matching_loss(D(real, features=True)[1], fake_features), fake_out
        fake_out = D(fake)                                    # (B,)
        if self.params.g_loss == "minimax":
            return L.value_function(D(real), fake_out), fake_out
        return L.g_loss_nonsaturating(fake_out), fake_out

    def _inner_loss(self, D, real: Tensor, fake: Tensor) -> Tensor:
        """D's loss for an unrolled step of the copy D: the GAN loss plus, with historical
        averaging, its weighted term at the copy's parameters."""
        loss = self.d_terms(D(real), D(fake))
        if self.history:
            loss = loss + self.history_weight * self.history_term("D", D.params)
        return loss

    def loss_G(self, ctx: StepContext) -> tuple[Tensor, Scalars]:
        """L_G against D_K (class docstring), differentiable in G's parameters through the K
        functional D updates; logs ``loss/G``, ``D_K(G(z))`` (mean sigmoid) and, for K > 0,
        ``loss/G_plain``, the same loss against the current D. The real D and its optimizer
        state are not touched (``ctx.functional`` works on copies)."""
        K, fresh = self.params.unrolling_steps, self.params.inner_batches == "fresh"
        D = ctx.functional("D") if K else self.nets["D"]
        if not fresh:
            batch, inputs = self._step_batch(ctx)
            fake = self.generate(inputs)                      # (B, *shape), G's graph kept
        for _ in range(K):
            if fresh:
                batch = ctx.draw_real()
                fake = self.generate(self.sample_inputs(batch["x"].shape[0], ctx.rng))
            D.step(self._inner_loss(D, batch["x"], fake))     # theta_D^k -> theta_D^{k+1}
        reads_real = self.params.g_loss != "nonsaturating"
        if fresh:
            fake = self.generate(self.sample_inputs(ctx.local_batch, ctx.rng))
            if reads_real:
                batch = ctx.draw_real()
        real = batch["x"] if reads_real else None
        loss, fake_out = self._g_loss(D, real, fake)
        scalars = {"loss/G": loss.detach(), "D_K(G(z))": self.score(fake_out)}
        if K:   # the same loss against the current D: what unrolling changed
            with torch.no_grad():
                scalars["loss/G_plain"] = self._g_loss(self.nets["D"], real, fake)[0]
        return loss, scalars
