"""CycleGAN: unpaired image-to-image translation (Zhu, Park, Isola & Efros 2017).

Two translators G: A -> B and F: B -> A (nets ``G_AB``, ``G_BA``) and two critics D_A, D_B,
trained with least-squares adversarial losses, cycle consistency and an identity term. The
critics see generated images drawn from a history of the last 50 (Shrivastava et al. 2017),
which damps oscillation; that history is objective state, checkpointed with the run.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit.core import capabilities as caps
from gankit.core.roles import CriticRole, Role, TranslatorRole
from gankit.core.step import Phase, PhaseOptions, StepContext
from gankit.errors import ConfigError
from gankit.objectives import functional as L
from gankit.objectives.base import Objective, ObjectiveParams

FAKES = "cyclegan/fakes"     # scratch key: the G phase's translations, for the D phase


class ImagePool:
    """History of generated images (Shrivastava et al. 2017; CycleGAN section 4).

    ``query(images)`` returns a batch of the same size: while the pool is filling, each new
    image is stored and returned; once full, each new image is, with probability 1/2,
    swapped with a random stored one (the stored one is returned), else returned as is.
    Images are processed in order, so one batch may swap the same slot twice, exactly as the
    reference implementation. Random choices come from the generator passed in, and the
    whole state is tensors, so a resumed run makes the same choices.
    """

    def __init__(self, size: int):
        self.size = size
        self.images: Tensor | None = None       # (size, C, H, W), allocated on first use
        self.count = 0                          # slots filled

    def query(self, images: Tensor, rng: torch.Generator | None) -> Tensor:
        images = images.detach()
        if self.size == 0:
            return images
        if self.images is None:
            self.images = images.new_zeros((self.size, *images.shape[1:]))
        n = images.shape[0]
        device = rng.device if rng is not None else images.device
        # drawn for every image, filling or not: the stream advances the same way either way
        swap = (torch.rand(n, generator=rng, device=device) > 0.5).tolist()
        slot = torch.randint(self.size, (n,), generator=rng, device=device).tolist()
        out = []
        for i in range(n):
            if self.count < self.size:
                self.images[self.count] = images[i]
                self.count += 1
                out.append(images[i])
            elif swap[i]:
                out.append(self.images[slot[i]].clone())
                self.images[slot[i]] = images[i]
            else:
                out.append(images[i])
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        state = {"count": torch.tensor(self.count, dtype=torch.int64)}
        if self.images is not None:
            state["images"] = self.images
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.count = int(state["count"])
        if "images" in state:
            self.images = state["images"].clone()
        elif self.count:
            raise ValueError("image pool state has a fill count but no images")
        else:
            self.images = None


class CycleGANParams(ObjectiveParams):
    name: Literal["cyclegan"] = "cyclegan"
    lambda_cycle: float = Field(10.0, ge=0)       # lambda
    lambda_identity: float = Field(0.5, ge=0)     # identity weight, as a fraction of lambda
    pool_size: int = Field(50, ge=0, le=10000)    # 0: critics see only the newest fakes


class CycleGAN(Objective):
    """CycleGAN, Zhu et al. 2017: unpaired translation with cycle consistency (lambda = 10).

    With G: A -> B, F: B -> A, least-squares critics D_A, D_B and fakes from a 50-image pool:
        L_G = E_a[(D_B(G(a)) - 1)^2] + E_b[(D_A(F(b)) - 1)^2]
              + lambda (E_a |F(G(a)) - a|_1 + E_b |G(F(b)) - b|_1)
              + lambda_id lambda (E_b |G(b) - b|_1 + E_a |F(a) - a|_1)
        L_D = 1/2 (E_b[(D_B(b) - 1)^2] + E[D_B(pool_B)^2])
              + 1/2 (E_a[(D_A(a) - 1)^2] + E[D_A(pool_A)^2])
    Adam(2e-4, 0.5); the learning rate decays linearly to 0 over the second half.
    """

    Params = CycleGANParams
    sample_nets: ClassVar[tuple[str, ...]] = ("G_AB", "G_BA")
    data_kinds: ClassVar[tuple[str, ...]] = ("unpaired", "paired")
    smoke_config: ClassVar[dict[str, Any]] = {
        "model": {"name": "translation", "ngf": 4, "ndf": 4, "n_blocks": 1}}
    directions: ClassVar[dict[str, str]] = {"AtoB": "G_AB", "BtoA": "G_BA"}
    # the net that undoes each direction (for input / translated / reconstructed pictures)
    inverse: ClassVar[dict[str, str]] = {"AtoB": "G_BA", "BtoA": "G_AB"}

    def __init__(self, params: CycleGANParams, nets: dict[str, nn.Module], latent, info,
                 options: PhaseOptions = PhaseOptions()):
        super().__init__(params, nets, latent, info, options)
        shape_b = getattr(info, "shape_b", ()) or info.shape
        if params.lambda_identity > 0 and shape_b[0] != info.shape[0]:
            raise ConfigError("the identity loss needs domains with equal channels; "
                              "set objective.lambda_identity=0")
        self.pools = {"A": ImagePool(params.pool_size), "B": ImagePool(params.pool_size)}

    # ---- structure ------------------------------------------------------------------
    @classmethod
    def phases(cls, params, options: PhaseOptions) -> tuple[Phase, ...]:
        # the reference order: translators first, then critics on the fakes G just made;
        # both read the step's one pair of real batches
        return (Phase("G", ("G_AB", "G_BA"), real="shared"),
                Phase("D", ("D_A", "D_B"), repeats=options.d_steps, real="shared"))

    @classmethod
    def roles(cls, params, info, latent) -> dict[str, Role]:
        return {"G_AB": TranslatorRole(reads=("a",), writes="b"),
                "G_BA": TranslatorRole(reads=("b",), writes="a"),
                "D_A": CriticRole(reads=("a",), per_sample=True),
                "D_B": CriticRole(reads=("b",), per_sample=True)}

    @classmethod
    def capabilities(cls, params) -> frozenset[str]:
        return frozenset({caps.SAMPLES, caps.TRANSLATION})

    @classmethod
    def default_optim(cls, params, phase: str) -> dict[str, Any]:
        return {"name": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "schedule": "linear",
                "decay_start": 0.5}

    # ---- losses ---------------------------------------------------------------------
    def loss_G(self, ctx: StepContext):
        p, n = self.params, self.nets
        a, b = ctx.batch["a"], ctx.batch["b"]
        fake_b, fake_a = n["G_AB"](a), n["G_BA"](b)                 # (B, C_b, S, S), (B, C_a, ..)
        adv = 2 * (L.g_loss_least_squares(n["D_B"](fake_b))          # CycleGAN's MSE(D, 1):
                   + L.g_loss_least_squares(n["D_A"](fake_a)))       # LSGAN's without the 1/2
        cycle = (n["G_BA"](fake_b) - a).abs().mean() + (n["G_AB"](fake_a) - b).abs().mean()
        loss = adv + p.lambda_cycle * cycle
        scalars = {"loss/G_adv": adv.detach(), "loss/cycle": cycle.detach()}
        if p.lambda_identity > 0:
            idt = (n["G_AB"](b) - b).abs().mean() + (n["G_BA"](a) - a).abs().mean()
            loss = loss + p.lambda_identity * p.lambda_cycle * idt
            scalars["loss/identity"] = idt.detach()
        ctx.scratch[FAKES] = {"A": fake_a.detach(), "B": fake_b.detach()}
        return loss, scalars | {"loss/G": loss.detach()}

    def loss_D(self, ctx: StepContext):
        batch = ctx.batch
        fakes = ctx.scratch.get(FAKES)
        if fakes is None:          # no G phase ran before this one: translate this batch
            with torch.no_grad():
                fakes = {"A": self.nets["G_BA"](batch["b"]), "B": self.nets["G_AB"](batch["a"])}
        scalars: dict[str, Tensor] = {}
        loss = 0.0
        for dom, real in (("A", batch["a"]), ("B", batch["b"])):
            D = self.nets[f"D_{dom}"]
            real_out = D(real)
            fake_out = D(self.pools[dom].query(fakes[dom], ctx.rng))
            term = L.d_loss_least_squares(real_out, fake_out)
            loss = loss + term
            scalars |= {f"loss/D_{dom}": term.detach(), f"D_{dom}(real)": real_out.detach().mean(),
                        f"D_{dom}(fake)": fake_out.detach().mean()}
        return loss, scalars | {"loss/D": loss.detach()}

    # ---- sampling: translating held-out examples ------------------------------------
    def sample_inputs(self, n: int, rng: torch.Generator | None) -> dict[str, Tensor]:
        return example_inputs(self.info, n, self.device)

    def generate(self, inputs: dict[str, Tensor], net: nn.Module | None = None) -> Tensor:
        """Translations by ``net`` (default: the A -> B translator) of the domain it reads."""
        return translate_inputs(net or self.nets[self.directions["AtoB"]], inputs)

    # ---- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        return {f"pool_{dom}/{k}": v for dom, pool in self.pools.items()
                for k, v in pool.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for dom, pool in self.pools.items():
            prefix = f"pool_{dom}/"
            sub = {k[len(prefix):]: v.to(self.device) for k, v in state.items()
                   if k.startswith(prefix)}
            pool.load_state_dict(sub or {"count": torch.tensor(0)})


def translate_inputs(G: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
    """G applied to the inputs of the domains it reads (its ``reads``; default "a")."""
    reads = getattr(G, "reads", ("a",))
    return G(torch.cat([inputs[d] for d in reads], 1) if len(reads) > 1 else inputs[reads[0]])


def example_inputs(info, n: int, device: torch.device) -> dict[str, Tensor]:
    """The first ``n`` fixed held-out examples of each domain (cycled if there are fewer).

    Translation is sampled by translating real inputs, so "sampling" is deterministic: the
    same run always shows the same examples (the rng of ``sample_inputs`` is not needed).
    """
    out = {}
    for key, shape in (("a", info.shape), ("b", getattr(info, "shape_b", ()) or info.shape)):
        ex = getattr(info, f"examples_{key}", None)
        if ex is None or len(ex) == 0:
            ex = torch.zeros((1, *shape))          # no examples known (e.g. a bare DataInfo)
        idx = torch.arange(n) % len(ex)
        out[key] = ex[idx].to(device)
    return out
