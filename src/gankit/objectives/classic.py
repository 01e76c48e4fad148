"""The original GAN game and its f-divergence / margin relatives."""

from __future__ import annotations

from typing import Literal

from gankit.objectives import functional as L
from gankit.objectives.gan import (AdversarialObjective, R1Params, SigmoidGame,
                                  SigmoidGameParams)


class MinimaxParams(SigmoidGameParams, R1Params):
    name: Literal["minimax"] = "minimax"
    g_loss: Literal["minimax", "feature_matching"] = "minimax"     # see SigmoidGameParams


class Minimax(SigmoidGame):
    """Original minimax GAN, Algorithm 1 of Goodfellow et al. 2014 (saturating G loss).

    k discriminator steps ascend V, then one generator step descends it:
        L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
        L_G =  E_z[log(1 - D(G(z)))]
    Options (``SigmoidGameParams``, Salimans et al. 2016): ``g_loss=feature_matching``,
    ``historical_averaging``, ``real_label``; ``r1_gamma`` (``R1Params``, Mescheder et al.
    2018) adds gamma/2 E_x ||grad_x D(x)||^2 to L_D.
    """

    Params = MinimaxParams

    def g_term(self, fake_out):
        return L.g_loss_saturating(fake_out)


class NonSaturatingParams(SigmoidGameParams, R1Params):
    name: Literal["nonsaturating"] = "nonsaturating"


class NonSaturating(SigmoidGame):
    """Non-saturating GAN, the heuristic of Goodfellow et al. 2014, section 3.

        L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
        L_G = -E_z[log D(G(z))]
    With ``g_loss=feature_matching`` (Salimans et al. 2016, section 3.1) instead
        L_G = || E_x f(x) - E_z f(G(z)) ||_2^2     (f: D's last hidden features)
    and with ``historical_averaging`` w (section 3.3) each player's loss gains
    w || theta - (1/t) sum_i theta[i] ||^2; ``real_label`` smooths D's real target (3.4).
    With ``r1_gamma`` (Mescheder et al. 2018, eq. 9) L_D gains gamma/2 E_x ||grad_x D(x)||^2,
    lazily: N times that every N-th step (``r1_interval``; Karras et al. 2020).
    On text it is the "standard GAN" baseline of Gulrajani et al. 2017's language model.
    """

    Params = NonSaturatingParams
    data_kinds = SigmoidGame.data_kinds + ("text",)

    def g_term(self, fake_out):
        return L.g_loss_nonsaturating(fake_out)


class LeastSquaresParams(R1Params):
    name: Literal["lsgan"] = "lsgan"


class LeastSquares(AdversarialObjective):
    """Least-squares GAN, Mao et al. 2017 (a=0, b=c=1).

        L_D = 1/2 E_x[(D(x) - 1)^2] + 1/2 E_z[D(G(z))^2]
        L_G = 1/2 E_z[(D(G(z)) - 1)^2]
    """

    Params = LeastSquaresParams

    def d_terms(self, real_out, fake_out):
        return L.d_loss_least_squares(real_out, fake_out)

    def g_term(self, fake_out):
        return L.g_loss_least_squares(fake_out)


class HingeParams(R1Params):
    name: Literal["hinge"] = "hinge"


class Hinge(AdversarialObjective):
    """Hinge GAN, Lim & Ye 2017; Miyato et al. 2018 (SN-GAN).

        L_D = E_x[max(0, 1 - D(x))] + E_z[max(0, 1 + D(G(z)))]
        L_G = -E_z[D(G(z))]
    """

    Params = HingeParams

    def d_terms(self, real_out, fake_out):
        return L.d_loss_hinge(real_out, fake_out)

    def g_term(self, fake_out):
        return L.g_loss_critic(fake_out)
